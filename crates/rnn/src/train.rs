//! One training step, the post's `optimize`: forward, backward, clip, update.

use ndarray::{Array2, ArrayView2};

use crate::{Clip, Float, Loss, Optimizer, Params, TokenId, rnn_backward, rnn_forward};

// ANCHOR: train_step
/// One step of training on the sequences `x`, `y` from the hidden state `a0`: forward,
/// backward, clip, update. Returns the loss before the update and `a⟨T⟩`, the hidden state
/// to carry into the next step.
///
/// # Shapes
///
/// `x`, `y`: (T, m), `a0`: (n_a, m) → `a⟨T⟩`: (n_a, m).
pub fn train_step<F: Float>(
    params: &mut Params<F>,
    optimizer: &mut Optimizer<F>,
    clip: Clip,
    x: ArrayView2<'_, Option<TokenId>>,
    y: ArrayView2<'_, Option<TokenId>>,
    a0: ArrayView2<'_, F>,
) -> (Loss, Array2<F>) {
    let (loss, cache) = rnn_forward(params, x, y, a0);
    let (mut grads, _da0) = rnn_backward(params, x, y, &cache);
    clip.apply(&mut grads);
    optimizer.step(params, &grads);
    (loss, cache.a_last().to_owned())
}
// ANCHOR_END: train_step

// ANCHOR: initial_smoothed_loss
/// The classic starting value of the smoothed loss: the loss of a uniform guess over
/// `chars` characters, −ln(1/V) each (for a name, the classic code takes 7 characters:
/// about 23.07 for V = 27).
pub fn initial_smoothed_loss(vocab_size: usize, chars: usize) -> f64 {
    (vocab_size as f64).ln() * chars as f64
}
// ANCHOR_END: initial_smoothed_loss

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OptimizerConfig;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn steps_lower_the_loss_on_one_name() {
        let mut p: Params = Params::init(4, 8, 4, &mut ChaCha8Rng::seed_from_u64(5));
        let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1), &p);
        let x = array![[None], [Some(1)], [Some(2)], [Some(3)]];
        let y = array![[Some(1)], [Some(2)], [Some(3)], [Some(0)]];
        let a0 = Array2::zeros((8, 1));
        let mut step = || {
            let clip = Clip::Value(5.0);
            train_step(&mut p, &mut opt, clip, x.view(), y.view(), a0.view())
        };
        let (first, _) = step();
        for _ in 0..200 {
            step();
        }
        let (last, a_last) = step();
        assert!(
            last.total < 0.5 * first.total,
            "{} -> {}",
            first.total,
            last.total
        );
        assert_eq!(a_last.dim(), (8, 1));
        assert_eq!(opt.t, 202);
    }

    #[test]
    fn initial_loss_of_a_name() {
        assert!((initial_smoothed_loss(27, 7) - 23.070_858_062_030_304).abs() < 1e-12);
    }
}
