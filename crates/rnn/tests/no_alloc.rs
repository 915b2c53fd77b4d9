//! The per-time-step loop does not allocate: once the buffers have the batch's shape, a
//! forward and backward pass makes no heap allocation at all.
//!
//! A counting global allocator records every allocation made by this test binary. The
//! test runs single-threaded work only (config A sizes and a batch of 32 that stays below
//! the threshold at which products are split over threads).

// `GlobalAlloc` is an unsafe trait: implementing it (by forwarding to the system
// allocator) is the only unsafe code here, and it exists only in this test binary.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array2, ShapeBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{Bptt, Cache, Float, Grads, Params, TokenId, rnn_backward_into, rnn_forward_into};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the caller's arguments,
// which upholds GlobalAlloc's contract; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller guarantees a non-zero size.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `alloc` above (that is, by System) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
        rnn_forward_into(&params, x.view(), y.view(), a0.view(), &mut cache);
        rnn_backward_into(&params, x.view(), y.view(), &cache, &mut grads, &mut bptt);
    };
    pass(); // sizes the buffers
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    pass();
    ALLOCATIONS.load(Ordering::SeqCst) - before
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
}
