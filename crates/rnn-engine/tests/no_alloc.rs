//! The per-time-step loop does not allocate: once the buffers have the batch's shape, a
//! forward and backward pass makes no heap allocation at all.
//!
//! A counting global allocator records the allocations of each thread. Every measured pass
//! runs on one thread (config A sizes and a batch of 32 stay below the threshold at which
//! work is split over threads; config B's size runs in a one-thread pool), so the count of
//! that thread is the count of the pass.

// `GlobalAlloc` is an unsafe trait: implementing it (by forwarding to the system
// allocator) is the only unsafe code here, and it exists only in this test binary.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ndarray::{Array2, ShapeBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{
    CellKind, Clip, DeepOptimizer, DeepParams, DeepShape, DropoutMasks, OptimizerConfig, State,
};
use rnn_engine::{
    Bptt, Cache, DeepBuffers, Float, Grads, Params, TokenId, backward_into, deep_update_step,
    forward_into,
};

struct Counting;

thread_local! {
    /// Allocations made by this thread. Per thread, so that the test harness's own
    /// allocations on its main thread (progress output, timing) never land in a
    /// measurement; every measured pass runs entirely on the thread that reads the count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: during thread teardown the slot may be gone; nothing is measured then.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to the system allocator with the caller's arguments,
// which upholds GlobalAlloc's contract; the counter (a const-initialized thread-local
// without a destructor, which never allocates) has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged; the caller guarantees a non-zero size.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `alloc` above (that is, by System) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged; `ptr` came from System with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in_second_pass<F: Float>(v: usize, n_a: usize, m: usize, t: usize) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let params: Params<F> = Params::init(v, n_a, v, &mut rng);
    let x: Array2<Option<TokenId>> = Array2::from_shape_fn((t, m), |(i, _)| {
        (i > 0).then(|| rng.random_range(0..v as u32))
    });
    let y: Array2<Option<TokenId>> =
        Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as u32)));
    let a0 = Array2::<F>::zeros((n_a, m).f());
    let mut cache = Cache::new();
    let mut bptt = Bptt::new();
    let mut grads = Grads::zeros(v, n_a, v);
    let mut pass = || {
        forward_into(&params, x.view(), y.view(), a0.view(), &mut cache);
        backward_into(&params, x.view(), y.view(), &cache, &mut grads, &mut bptt);
    };
    pass(); // sizes the buffers
    let before = allocations();
    pass();
    allocations() - before
}

/// Allocations of the second of two deep training steps (forward, backward, clip, Adam,
/// with dropout) on batches of `t` steps.
fn allocations_in_second_deep_step(cell: CellKind, t: usize) -> usize {
    let (v, n_a, m) = (65, 64, 32);
    let shape = DeepShape {
        cell,
        n_x: v,
        n_a,
        n_y: v,
        n_layers: 2,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut params: DeepParams<f64> = DeepParams::init(shape, &mut rng);
    let mut opt = DeepOptimizer::new(OptimizerConfig::adam(0.002), &params);
    let x: Array2<Option<TokenId>> =
        Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as u32)));
    let y: Array2<Option<TokenId>> =
        Array2::from_shape_fn((t, m), |_| Some(rng.random_range(0..v as u32)));
    let masks = DropoutMasks::draw(0.2, shape, t, m, &mut rng);
    let mut state = State::zeros(shape, m);
    let mut buf = DeepBuffers::new(shape, m, t);
    let mut step = || {
        deep_update_step(
            &mut params,
            &mut opt,
            Clip::Norm(5.0),
            x.view(),
            y.view(),
            &mut state,
            Some(&masks),
            &mut buf,
        )
        .expect("a finite step");
    };
    step();
    let before = allocations();
    step();
    allocations() - before
}

// One test function: the counter is global, so measurements must not run concurrently.
#[test]
fn the_per_step_loop_does_not_allocate() {
    // Config A (one name of 12 characters) and a batch of 32: no allocation at all.
    assert_eq!(allocations_in_second_pass::<f64>(27, 50, 1, 12), 0, "m = 1");
    assert_eq!(
        allocations_in_second_pass::<f64>(27, 50, 32, 12),
        0,
        "m = 32"
    );
    // The whole training step of config A (at batch 1 in f64 on AVX-512, the fused step
    // with its aligned copy of W_aa and W_ya) and of config A with a batch of 4 names
    // (the general path), after two steps that size every buffer.
    for batch in [1, 4] {
        let config = rnn_engine::bench::BenchConfig {
            batch,
            ..rnn_engine::bench::BenchConfig::a()
        };
        let mut step = rnn_engine::bench::step_probe::<f64>(&config);
        step();
        step();
        let before = allocations();
        for _ in 0..8 {
            step();
        }
        assert_eq!(allocations() - before, 0, "config A, batch {batch}");
    }
    // At config B's size (n_a = 512, m = 32) the all-steps products (logits, dW_aa, dW_ya)
    // go to the general GEMM, which allocates packing buffers once per call. The per-step
    // loop must add nothing: 40 steps allocate exactly as often as 36. (One thread, as in
    // config B at --threads 1: rayon's queues may allocate when work is first stolen.)
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one thread");
    for dtype in ["f32", "f64"] {
        let count = |t| match dtype {
            "f32" => pool.install(|| allocations_in_second_pass::<f32>(65, 512, 32, t)),
            _ => pool.install(|| allocations_in_second_pass::<f64>(65, 512, 32, t)),
        };
        let (short, long) = (count(36), count(40));
        assert_eq!(
            short, long,
            "{dtype}: {short} allocations at T = 36, {long} at T = 40"
        );
    }
    // The deep step: whatever it allocates per batch (the general GEMM's packing
    // buffers, the optimizer's list of arrays), its per-step loops add nothing.
    for cell in CellKind::ALL {
        let (short, long) = pool.install(|| {
            (
                allocations_in_second_deep_step(cell, 36),
                allocations_in_second_deep_step(cell, 40),
            )
        });
        assert_eq!(
            short, long,
            "{cell:?}: {short} allocations at T = 36, {long} at T = 40"
        );
    }
}
