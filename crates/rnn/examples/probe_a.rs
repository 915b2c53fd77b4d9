//! Development aid: each batch-1 kernel of config A timed alone, per name (12 steps).
fn main() {
    let mut total = 0.0;
    for (name, ns) in rnn::bench::kernel_probe_a() {
        println!("{name:28} {:8.0} ns", ns);
        total += ns;
    }
    println!("{:28} {:8.0} ns", "sum", total);
}
