//! Threads do not change results: the recurrence splits a batch into column groups at tile
//! boundaries, so each column's arithmetic is the same whatever the thread count.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_engine::{Params, TokenId, backward, forward};

type Ids = Array2<Option<TokenId>>;

/// of every column is "no input", as at the start of a name.
fn random_case(rng: &mut ChaCha8Rng, v: u32, n_steps: usize, m: usize) -> (Ids, Ids) {
    let x = Array2::from_shape_fn((n_steps, m), |(t, _)| {
        (t > 0).then(|| rng.random_range(0..v))
    });
    let y = Array2::from_shape_fn((n_steps, m), |_| Some(rng.random_range(0..v)));
    (x, y)
}

/// Worst relative error per parameter, over T in {1, 5, 30} and m in {1, 3}, random
/// parameters with std 0.5 and a random initial state.
/// With two threads the recurrence runs as two groups of batch columns in parallel (at
/// n_a = 256, m = 48 a per-step product is 6.3 MFLOP, above the splitting threshold). The
/// columns are independent sequences and the groups keep the kernel's column tiles, so
/// the results must be bit-identical to one thread, including an uneven split (32 + 16).
#[test]
fn two_threads_give_the_same_bits_as_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (v, n_a, m) = (11usize, 256usize, 48usize);
    let p: Params<f32> = Params::init_with_std(v, n_a, v, 0.1, &mut rng);
    let (x, y) = random_case(&mut rng, v as u32, 6, m);
    let a0 = Array2::from_shape_fn((n_a, m), |_| rng.random_range(-0.5f32..0.5));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            let (loss, cache) = forward(&p, x.view(), y.view(), a0.view());
            let (grads, da0) = backward(&p, x.view(), y.view(), &cache);
            (loss, cache.a_all().to_owned(), grads, da0)
        })
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.0, two.0, "loss");
    assert_eq!(one.1, two.1, "hidden states");
    assert_eq!(one.2, two.2, "gradients");
    assert_eq!(one.3, two.3, "dL/da0");
}
