//! Development aid: each batch-1 kernel of config A timed alone, per name (12 steps), on
//! data that stays in the first-level cache. The products are timed on rows as stored
//! (stride 50) and, for W_aa, also as the fused training step runs them: rows and
//! activations 64-byte aligned and zero-padded to 56.
fn main() {
    for (name, ns) in rnn_engine::bench::kernel_probe_a() {
        println!("{name:30} {ns:8.0} ns");
    }
}
