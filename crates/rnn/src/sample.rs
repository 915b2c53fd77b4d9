//! Sampling new text from a trained model, one character at a time, the hidden state
//! carried from each sampled character to the next.

use ndarray::{Array1, Array2, aview1};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{DeepParams, Float, Params, State, TokenId, deep_step, hidden_step, output_logits};

/// Options for [`sample`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleConfig {
    /// Divides the logits before the softmax: below 1 sharpens, above 1 flattens. Near 0
    /// the draw becomes an argmax. Must be > 0.
    pub temperature: f64,
    /// Keep only the k most likely characters (None: all).
    pub top_k: Option<usize>,
    /// Stop after this many sampled characters (the prefix not counted).
    pub max_len: usize,
    /// Stop when this character is drawn (for names: `'\n'`); it is not included.
    pub stop: Option<TokenId>,
}

impl SampleConfig {
    /// Names, as in the classic generator: temperature 1, no top-k, stop at the newline
    /// `stop`, at most 50 characters.
    pub fn names(stop: Option<TokenId>) -> Self {
        SampleConfig {
            temperature: 1.0,
            top_k: None,
            max_len: 50,
            stop,
        }
    }
}

/// A sampled sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The prefix followed by the sampled characters (the stop character excluded).
    pub ids: Vec<TokenId>,
    /// Whether sampling ended on the stop character (rather than at `max_len`).
    pub stopped: bool,
}

// ANCHOR: sample
/// Samples one sequence. The first input is "no input" (the zero vector), as at the start
/// of every training name; the `prefix` characters are then fed in turn to warm up the
/// hidden state, and each sampled character is fed back as the next input.
///
/// # Panics
///
/// If a prefix id is not below `params.n_x()`; callers encode prefixes with the model's
/// vocabulary, which rejects unknown characters with an error first.
pub fn sample<F: Float, R: Rng + ?Sized>(
    params: &Params<F>,
    prefix: &[TokenId],
    config: &SampleConfig,
    rng: &mut R,
) -> Sample {
    let mut a = Array2::<F>::zeros((params.n_a(), 1)); //                (n_a, 1)
    let mut weights = Array1::<f64>::zeros(params.n_y()); //            (n_y)
    let mut ids = prefix.to_vec();
    let mut input: Option<TokenId> = None;
    // Warm up on the prefix: its characters are inputs, nothing is drawn.
    for &id in prefix {
        a = hidden_step(params, a.view(), aview1(&[input]));
        input = Some(id);
    }
    for _ in 0..config.max_len {
        a = hidden_step(params, a.view(), aview1(&[input]));
        let z = output_logits(params, a.view()); //                     (n_y, 1)
        let id = draw(z.column(0), config, &mut weights, rng);
        if Some(id) == config.stop {
            return Sample { ids, stopped: true };
        }
        ids.push(id);
        input = Some(id);
    }
    Sample {
        ids,
        stopped: false,
    }
}
// ANCHOR_END: sample

// ANCHOR: draw
/// Draws one id from softmax(z / temperature), restricted to the `top_k` largest logits.
///
/// The weights are exp((z_i − max z) / temperature): the largest is exactly 1, so even a
/// temperature near 0 (where the others underflow to 0) leaves a valid distribution, and
/// the draw becomes the argmax.
fn draw<F: Float, R: Rng + ?Sized>(
    z: ndarray::ArrayView1<'_, F>,
    config: &SampleConfig,
    weights: &mut Array1<f64>,
    rng: &mut R,
) -> TokenId {
    let max = z.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.as_f64()));
    let inv_t = 1.0 / config.temperature;
    for (w, v) in weights.iter_mut().zip(z.iter()) {
        *w = ((v.as_f64() - max) * inv_t).exp();
    }
    if let Some(k) = config.top_k.filter(|&k| k < weights.len()) {
        // The k-th largest weight; ties at the threshold are kept.
        let mut sorted: Vec<f64> = weights.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let threshold = sorted[k.max(1) - 1];
        weights.mapv_inplace(|w| if w >= threshold { w } else { 0.0 });
    }
    let total: f64 = weights.sum();
    let mut u = rng.random::<f64>() * total;
    let mut last_positive = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            if u < w {
                return i as TokenId;
            }
            u -= w;
            last_positive = i;
        }
    }
    // Rounding can leave u a hair above the last weight.
    last_positive as TokenId
}
// ANCHOR_END: draw

/// [`sample`] for a stack of any cell ([`DeepParams`]): the same walk (no input first, the
/// prefix fed in to warm up the state, each drawn character fed back), with the state of
/// every layer carried by [`deep_step`] and no dropout.
///
/// # Panics
///
/// As [`sample`], if a prefix id is not below the model's input size.
pub fn sample_deep<F: Float, R: Rng + ?Sized>(
    params: &DeepParams<F>,
    prefix: &[TokenId],
    config: &SampleConfig,
    rng: &mut R,
) -> Sample {
    let mut state = State::zeros(params.shape(), 1);
    let mut weights = Array1::<f64>::zeros(params.shape().n_y);
    let mut ids = prefix.to_vec();
    let mut input: Option<TokenId> = None;
    for &id in prefix {
        deep_step(params, &mut state, aview1(&[input]));
        input = Some(id);
    }
    for _ in 0..config.max_len {
        let z = deep_step(params, &mut state, aview1(&[input])); //       (n_y, 1)
        let id = draw(z.column(0), config, &mut weights, rng);
        if Some(id) == config.stop {
            return Sample { ids, stopped: true };
        }
        ids.push(id);
        input = Some(id);
    }
    Sample {
        ids,
        stopped: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A one-layer vanilla stack samples exactly what the post's model samples.
    #[test]
    fn the_deep_sampler_of_a_vanilla_layer_is_the_posts_sampler() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let params: Params = Params::init_with_std(6, 5, 6, 0.8, &mut rng);
        let deep = DeepParams::from_params(&params);
        let config = SampleConfig {
            max_len: 30,
            ..SampleConfig::names(Some(0))
        };
        for seed in 0..5 {
            let a = sample(
                &params,
                &[2, 3],
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            let b = sample_deep(
                &deep,
                &[2, 3],
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(a, b, "seed {seed}");
        }
    }

    fn draw_many(z: &[f64], config: &SampleConfig, n: usize) -> Vec<usize> {
        let z = Array1::from(z.to_vec());
        let mut w = Array1::zeros(z.len());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = vec![0; z.len()];
        for _ in 0..n {
            counts[draw(z.view(), config, &mut w, &mut rng) as usize] += 1;
        }
        counts
    }

    fn config(temperature: f64, top_k: Option<usize>) -> SampleConfig {
        SampleConfig {
            temperature,
            top_k,
            max_len: 50,
            stop: None,
        }
    }

    #[test]
    fn draws_follow_the_softmax() {
        // softmax(ln 0.1, ln 0.6, ln 0.3) = (0.1, 0.6, 0.3)
        let z = [0.1f64.ln(), 0.6f64.ln(), 0.3f64.ln()];
        let counts = draw_many(&z, &config(1.0, None), 20_000);
        let freq: Vec<f64> = counts.iter().map(|&c| c as f64 / 20_000.0).collect();
        for (f, p) in freq.iter().zip([0.1, 0.6, 0.3]) {
            assert!((f - p).abs() < 0.015, "{freq:?}");
        }
    }

    #[test]
    fn tiny_temperature_is_argmax_without_underflow() {
        let z = [1.0, 3.0, 2.999];
        assert_eq!(draw_many(&z, &config(1e-12, None), 500), vec![0, 500, 0]);
    }

    #[test]
    fn high_temperature_flattens() {
        let z = [0.1f64.ln(), 0.6f64.ln(), 0.3f64.ln()];
        let counts = draw_many(&z, &config(100.0, None), 30_000);
        assert!(
            counts
                .iter()
                .all(|&c| (c as f64 / 30_000.0 - 1.0 / 3.0).abs() < 0.02)
        );
    }

    #[test]
    fn top_k_keeps_only_the_k_most_likely() {
        let z = [0.0, 2.0, 1.0, -1.0];
        let counts = draw_many(&z, &config(1.0, Some(2)), 5_000);
        assert_eq!(counts[0] + counts[3], 0);
        assert!(counts[1] > counts[2] && counts[2] > 0);
        assert_eq!(
            draw_many(&z, &config(1.0, Some(1)), 100),
            vec![0, 100, 0, 0]
        );
    }

    #[test]
    fn sampling_is_seeded_stops_and_respects_max_len() {
        let p: Params = Params::init_with_std(5, 8, 5, 1.0, &mut ChaCha8Rng::seed_from_u64(0));
        let cfg = SampleConfig::names(Some(0));
        let a = sample(&p, &[], &cfg, &mut ChaCha8Rng::seed_from_u64(3));
        let b = sample(&p, &[], &cfg, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        assert!(a.ids.len() <= 50);
        assert!(!a.ids.contains(&0));
        let long = SampleConfig {
            max_len: 7,
            stop: None,
            ..cfg
        };
        let c = sample(&p, &[2, 3], &long, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(c.ids.len(), 9);
        assert_eq!(&c.ids[..2], &[2, 3]);
        assert!(!c.stopped);
    }

    #[test]
    fn a_certain_model_repeats_its_certain_character() {
        // An output bias that makes id 2 certain: every draw is 2 until max_len.
        let mut p: Params = Params::zeros(3, 2, 3);
        p.b_y = array![[-50.0], [-50.0], [50.0]];
        let cfg = SampleConfig {
            max_len: 4,
            ..SampleConfig::names(Some(0))
        };
        let s = sample(&p, &[], &cfg, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(s.ids, vec![2, 2, 2, 2]);
    }
}
