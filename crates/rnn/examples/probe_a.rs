//! Development aid: each batch-1 kernel of config A timed alone, per name (12 steps), on
//! data that stays in the first-level cache. The products are timed on rows as stored
//! (stride 50) and, for W_aa, also on the aligned rows the fused training step keeps.
fn main() {
    for (name, ns) in rnn::bench::kernel_probe_a() {
        println!("{name:30} {ns:8.0} ns");
    }
}
