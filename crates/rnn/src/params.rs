//! The parameters of the network, `Params { w_ax, w_aa, w_ya, b_a, b_y }`, and their
//! gradients, which have the same five arrays and the same shapes.

use ndarray::{Array2, ShapeBuilder};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::Float;

/// Standard deviation of the classic initialisation: weights drawn from N(0, 0.01²).
pub const INIT_STD: f64 = 0.01;

// ANCHOR: params
/// The five parameter arrays of the RNN, named as in the post.
///
/// # Shapes
///
/// | field  | shape      | role                                  |
/// |--------|------------|---------------------------------------|
/// | `w_ax` | (n_a, n_x) | input to hidden (applied as a gather) |
/// | `w_aa` | (n_a, n_a) | hidden to hidden                      |
/// | `w_ya` | (n_y, n_a) | hidden to output logits               |
/// | `b_a`  | (n_a, 1)   | hidden bias                           |
/// | `b_y`  | (n_y, 1)   | output bias                           |
///
/// For a character model n_x = n_y = the vocabulary size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "F: Float")]
pub struct Params<F: Float = f64> {
    /// W_ax, (n_a, n_x). Stored column-major so that the gather of one column is contiguous.
    pub w_ax: Array2<F>,
    /// W_aa, (n_a, n_a).
    pub w_aa: Array2<F>,
    /// W_ya, (n_y, n_a).
    pub w_ya: Array2<F>,
    /// b_a, (n_a, 1).
    pub b_a: Array2<F>,
    /// b_y, (n_y, 1).
    pub b_y: Array2<F>,
}
// ANCHOR_END: params

/// Gradients of the loss with respect to each parameter: the same five arrays and shapes
/// (`dw_ax` is `grads.w_ax`, and so on).
pub type Grads<F = f64> = Params<F>;

/// The canonical order and names of the five arrays, used by checkpoints, optimizers and
/// exports.
pub const PARAM_NAMES: [&str; 5] = ["w_ax", "w_aa", "w_ya", "b_a", "b_y"];

/// A parameter set whose arrays disagree with each other or with the expected sizes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {name} has shape {actual:?}, expected {expected:?}")]
pub struct ShapeError {
    /// Which array is wrong.
    pub name: &'static str,
    /// Its shape.
    pub actual: (usize, usize),
    /// The shape it should have.
    pub expected: (usize, usize),
}

impl<F: Float> Params<F> {
    /// All-zero parameters (also the starting point of a gradient accumulator).
    pub fn zeros(n_x: usize, n_a: usize, n_y: usize) -> Self {
        Params {
            w_ax: Array2::zeros((n_a, n_x).f()),
            w_aa: Array2::zeros((n_a, n_a)),
            w_ya: Array2::zeros((n_y, n_a)),
            b_a: Array2::zeros((n_a, 1)),
            b_y: Array2::zeros((n_y, 1)),
        }
    }

    /// The classic initialisation: weights from N(0, 0.01²), biases zero.
    ///
    /// Draws `w_ax`, then `w_aa`, then `w_ya`, each in row-major order, so that the same
    /// generator state gives the same parameters in `f32` and `f64` (up to rounding).
    pub fn init<R: Rng + ?Sized>(n_x: usize, n_a: usize, n_y: usize, rng: &mut R) -> Self {
        Self::init_with_std(n_x, n_a, n_y, INIT_STD, rng)
    }

    /// Weights from N(0, std²), biases zero. A large `std` (for example 0.5) makes gradients
    /// large enough for a meaningful gradient check.
    pub fn init_with_std<R: Rng + ?Sized>(
        n_x: usize,
        n_a: usize,
        n_y: usize,
        std: f64,
        rng: &mut R,
    ) -> Self {
        let mut p = Self::zeros(n_x, n_a, n_y);
        fill_normal(&mut p.w_ax, std, rng);
        fill_normal(&mut p.w_aa, std, rng);
        fill_normal(&mut p.w_ya, std, rng);
        p
    }

    /// Input size n_x (the vocabulary size for a character model).
    pub fn n_x(&self) -> usize {
        self.w_ax.ncols()
    }

    /// Hidden size n_a.
    pub fn n_a(&self) -> usize {
        self.w_aa.nrows()
    }

    /// Output size n_y (the vocabulary size for a character model).
    pub fn n_y(&self) -> usize {
        self.w_ya.nrows()
    }

    /// Total number of scalar parameters.
    pub fn n_params(&self) -> usize {
        self.arrays().iter().map(|(_, a)| a.len()).sum()
    }

    /// The five arrays with their names, in [`PARAM_NAMES`] order.
    pub fn arrays(&self) -> [(&'static str, &Array2<F>); 5] {
        [
            ("w_ax", &self.w_ax),
            ("w_aa", &self.w_aa),
            ("w_ya", &self.w_ya),
            ("b_a", &self.b_a),
            ("b_y", &self.b_y),
        ]
    }

    /// The five arrays, mutably, in [`PARAM_NAMES`] order.
    pub fn arrays_mut(&mut self) -> [(&'static str, &mut Array2<F>); 5] {
        [
            ("w_ax", &mut self.w_ax),
            ("w_aa", &mut self.w_aa),
            ("w_ya", &mut self.w_ya),
            ("b_a", &mut self.b_a),
            ("b_y", &mut self.b_y),
        ]
    }

    /// Sets every entry to zero, keeping the allocations.
    pub fn fill_zero(&mut self) {
        for (_, a) in self.arrays_mut() {
            a.fill(F::zero());
        }
    }

    /// Copies `other`'s values into these arrays, keeping the allocations.
    ///
    /// # Panics
    ///
    /// If the shapes differ.
    pub fn assign(&mut self, other: &Params<F>) {
        for ((_, a), (_, b)) in self.arrays_mut().into_iter().zip(other.arrays()) {
            a.assign(b);
        }
    }

    /// Checks that the five shapes agree with each other and with `n_x`, `n_y`.
    pub fn check_shapes(&self, n_x: usize, n_y: usize) -> Result<(), ShapeError> {
        let n_a = self.n_a();
        let expected = [(n_a, n_x), (n_a, n_a), (n_y, n_a), (n_a, 1), (n_y, 1)];
        for ((name, a), want) in self.arrays().into_iter().zip(expected) {
            if a.dim() != want {
                return Err(ShapeError {
                    name,
                    actual: a.dim(),
                    expected: want,
                });
            }
        }
        Ok(())
    }

    /// The same parameters in another float type.
    pub fn cast<G: Float>(&self) -> Params<G> {
        let c = |a: &Array2<F>| a.mapv(|v| G::cast(v.as_f64()));
        let mut w_ax = Array2::zeros(self.w_ax.raw_dim().f());
        w_ax.assign(&c(&self.w_ax));
        Params {
            w_ax,
            w_aa: c(&self.w_aa),
            w_ya: c(&self.w_ya),
            b_a: c(&self.b_a),
            b_y: c(&self.b_y),
        }
    }

    /// The global L2 norm over all five arrays, accumulated in `f64`.
    pub fn global_norm(&self) -> f64 {
        self.arrays()
            .iter()
            .map(|(_, a)| sum_of_squares(a))
            .sum::<f64>()
            .sqrt()
    }

    /// Whether every entry is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        self.arrays()
            .iter()
            .all(|(_, a)| a.iter().all(|v| v.is_finite()))
    }
}

/// Σ a², accumulated in `f64`.
fn sum_of_squares<F: Float>(a: &Array2<F>) -> f64 {
    a.iter().map(|&v| v.as_f64() * v.as_f64()).sum()
}

fn fill_normal<F: Float, R: Rng + ?Sized>(a: &mut Array2<F>, std: f64, rng: &mut R) {
    // A standard deviation of zero is valid; a negative or non-finite one is a programming
    // error caught here rather than deep inside rand_distr.
    assert!(
        std.is_finite() && std >= 0.0,
        "init std must be >= 0, got {std}"
    );
    let normal = Normal::new(0.0, std).expect("finite, non-negative std");
    // `iter_mut` walks in logical (row-major) order whatever the memory layout, so the draw
    // order is fixed.
    for v in a.iter_mut() {
        *v = F::cast(normal.sample(rng));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn shapes_follow_the_post() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p: Params = Params::init(27, 50, 27, &mut rng);
        assert_eq!(p.w_ax.dim(), (50, 27));
        assert_eq!(p.w_aa.dim(), (50, 50));
        assert_eq!(p.w_ya.dim(), (27, 50));
        assert_eq!(p.b_a.dim(), (50, 1));
        assert_eq!(p.b_y.dim(), (27, 1));
        assert_eq!((p.n_x(), p.n_a(), p.n_y()), (27, 50, 27));
        assert_eq!(p.n_params(), 50 * 27 + 50 * 50 + 27 * 50 + 50 + 27);
        assert!(p.check_shapes(27, 27).is_ok());
        assert!(p.b_a.iter().chain(p.b_y.iter()).all(|&b| b == 0.0));
    }

    #[test]
    fn init_is_seeded_and_has_the_classic_scale() {
        let p1: Params = Params::init(27, 50, 27, &mut ChaCha8Rng::seed_from_u64(7));
        let p2: Params = Params::init(27, 50, 27, &mut ChaCha8Rng::seed_from_u64(7));
        let p3: Params = Params::init(27, 50, 27, &mut ChaCha8Rng::seed_from_u64(8));
        assert_eq!(p1, p2);
        assert_ne!(p1, p3);
        let n = p1.w_aa.len() as f64;
        let mean = p1.w_aa.sum() / n;
        let std = (p1.w_aa.mapv(|v| (v - mean).powi(2)).sum() / n).sqrt();
        assert!((std - 0.01).abs() < 0.001, "std {std}");
        assert!(mean.abs() < 0.001, "mean {mean}");
    }

    #[test]
    fn f32_init_matches_f64_init() {
        let p64: Params<f64> = Params::init(5, 4, 5, &mut ChaCha8Rng::seed_from_u64(3));
        let p32: Params<f32> = Params::init(5, 4, 5, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(p64.cast::<f32>(), p32);
    }

    #[test]
    fn check_shapes_names_the_wrong_array() {
        let mut p: Params = Params::zeros(3, 2, 3);
        p.w_ya = Array2::zeros((2, 2));
        let e = p.check_shapes(3, 3).unwrap_err();
        assert_eq!(e.name, "w_ya");
        assert_eq!(
            e.to_string(),
            "parameter w_ya has shape (2, 2), expected (3, 2)"
        );
    }

    #[test]
    fn serde_round_trip_keeps_values() {
        let p: Params = Params::init(4, 3, 4, &mut ChaCha8Rng::seed_from_u64(1));
        let s = serde_json::to_string(&p).unwrap();
        let q: Params = serde_json::from_str(&s).unwrap();
        assert_eq!(p, q);
    }
}
