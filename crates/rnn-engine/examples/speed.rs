//! Quick throughput probe for the two standard configurations (development aid; the
//! supported entry point is `charrnn bench`): `speed a|b [threads]`.

use rnn_engine::bench::{BenchConfig, run_bench};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if which != "b" {
        let mut c = BenchConfig::a();
        c.threads = threads;
        let r = run_bench::<f64>(&c);
        println!(
            "A f64: {:.0} chars/s, {:.2} GFLOP/s",
            r.chars_per_s, r.gflops
        );
    }
    if which == "a" {
        return;
    }
    let mut c = BenchConfig::b();
    c.threads = threads;
    let r = run_bench::<f32>(&c);
    println!(
        "B f32 {} thread(s): {:.0} chars/s, {:.1} GFLOP/s",
        threads, r.chars_per_s, r.gflops
    );
}
