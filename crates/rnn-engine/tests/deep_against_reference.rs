//! The engine's deep networks against the reference: for every cell, one to three layers,
//! with and without dropout, the same loss, gradients, gradient into the initial state
//! and carried state as `rnn::deep_forward`/`deep_backward`; the same parameters after
//! a training run as the reference's loop (forward, backward, `clip_deep`,
//! `DeepOptimizer::step`); and a step that meets a non-finite value changes nothing.
//!
//! As in `against_reference.rs`, the engine's `tanh`, `exp` and σ are within a few units
//! in the last place of the standard library's and its products add in other orders, so
//! the two agree to rounding: 1e-12 relative in `f64`, that type's precision in `f32`.
//! Every case runs at the tier this process selected (`RNN_ISA`).

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{
    CellKind, Clip, DeepOptimizer, DeepParams, DeepShape, DropoutMasks, OptimizerConfig, State,
    TokenId, clip_deep, deep_backward, deep_forward,
};
use rnn_engine::{DeepBuffers, Float, Tier, deep_evaluate, deep_gradients, deep_update_step};

type Ids = Array2<Option<TokenId>>;

/// Largest |a − b| over largest |b| (see `against_reference.rs`).
fn rel_error<F: Float>(a: ArrayView2<'_, F>, b: ArrayView2<'_, f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (a, b)| m.max((a.as_f64() - b).abs()));
    if scale == 0.0 { diff } else { diff / scale }
}

/// Inputs start with "no input" in some columns, and columns end at random lengths with
/// padding (no input, no target) after them; some inputs inside are "no input" too.
fn random_batch(rng: &mut ChaCha8Rng, v: u32, n_steps: usize, m: usize) -> (Ids, Ids) {
    let lens: Vec<usize> = (0..m)
        .map(|j| {
            if j == 0 {
                n_steps
            } else {
                rng.random_range(0..=n_steps)
            }
        })
        .collect();
    let x = Array2::from_shape_fn((n_steps, m), |(t, j)| {
        let starts_name = t == 0 && j % 2 == 0;
        let inside = t < lens[j] && !starts_name && rng.random::<f64>() > 0.05;
        inside.then(|| rng.random_range(0..v))
    });
    let y = Array2::from_shape_fn((n_steps, m), |(t, j)| {
        (t < lens[j]).then(|| rng.random_range(0..v))
    });
    (x, y)
}

#[derive(Clone, Copy, Debug)]
struct Case {
    cell: CellKind,
    layers: usize,
    n_a: usize,
    v: usize,
    n_steps: usize,
    m: usize,
    dropout: Option<f64>,
    seed: u64,
}

fn shape(c: &Case) -> DeepShape {
    DeepShape {
        cell: c.cell,
        n_x: c.v,
        n_a: c.n_a,
        n_y: c.v,
        n_layers: c.layers,
    }
}

fn random_state(shape: DeepShape, m: usize, rng: &mut ChaCha8Rng) -> State {
    let mut s = State::zeros(shape, m);
    for a in s.h.iter_mut() {
        a.mapv_inplace(|_| rng.random_range(-0.5..0.5));
    }
    if shape.cell == CellKind::Lstm {
        for a in s.c.iter_mut() {
            a.mapv_inplace(|_| rng.random_range(-1.0..1.0));
        }
    }
    s
}

fn cast_state<F: Float>(s: &State) -> State<F> {
    State {
        h: s.h.iter().map(|a| a.mapv(F::cast)).collect(),
        c: s.c.iter().map(|a| a.mapv(F::cast)).collect(),
    }
}

/// Runs one case through the reference (f64) and the engine (in F): the relative error of
/// the loss, and the worst of every gradient, dL/d(state) and the carried state.
fn compare<F: Float>(case: &Case) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let shape = shape(case);
    let params: DeepParams = DeepParams::init(shape, &mut rng);
    let (x, y) = random_batch(&mut rng, case.v as u32, case.n_steps, case.m);
    let state = random_state(shape, case.m, &mut rng);
    let masks = case
        .dropout
        .map(|p| DropoutMasks::<f64>::draw(p, shape, case.n_steps, case.m, &mut rng));

    let (loss_ref, cache) = deep_forward(&params, x.view(), y.view(), &state, masks.as_ref());
    let (grads_ref, d_state_ref) = deep_backward(&params, x.view(), y.view(), &cache);

    let p: DeepParams<F> = params.cast();
    let masks_f = masks.as_ref().map(|d| DropoutMasks {
        p: d.p,
        masks: d
            .masks
            .iter()
            .map(|step| step.iter().map(|a| a.mapv(F::cast)).collect())
            .collect(),
    });
    let state_f = cast_state::<F>(&state);
    let mut buf = DeepBuffers::new(shape, case.m, case.n_steps);
    let loss = deep_gradients(&p, x.view(), y.view(), &state_f, masks_f.as_ref(), &mut buf);

    assert_eq!(loss.n_targets, loss_ref.n_targets);
    let loss_err = (loss.total - loss_ref.total).abs() / loss_ref.total.abs().max(1e-300);
    let mut err = 0.0f64;
    for ((name, g), (_, g_ref)) in buf.grads().arrays().into_iter().zip(grads_ref.arrays()) {
        let e = rel_error(g.view(), g_ref.view());
        assert!(e.is_finite(), "{name} is not finite");
        err = err.max(e);
    }
    let d_state = buf.state_grads();
    for k in 0..case.layers {
        err = err.max(rel_error(d_state.h[k].view(), d_state_ref.h[k].view()));
        err = err.max(rel_error(d_state.c[k].view(), d_state_ref.c[k].view()));
    }
    // The carried state: from evaluation (no dropout) against the reference's last
    // state without dropout, and from a training step that changes nothing (SGD, lr 0).
    let (_, cache_eval) = deep_forward(&params, x.view(), y.view(), &state, None);
    let mut carried = state_f.clone();
    let eval_loss = deep_evaluate(&p, x.view(), y.view(), &mut carried, &mut buf);
    assert!(eval_loss.total.is_finite());
    let mut trained = state_f.clone();
    let (mut p_same, mut opt) = (p.clone(), DeepOptimizer::new(OptimizerConfig::sgd(0.0), &p));
    deep_update_step(
        &mut p_same,
        &mut opt,
        Clip::None,
        x.view(),
        y.view(),
        &mut trained,
        masks_f.as_ref(),
        &mut buf,
    )
    .expect("a finite case");
    assert_eq!(p_same, p, "lr 0 leaves the parameters");
    for k in 0..case.layers {
        err = err.max(rel_error(carried.h[k].view(), cache_eval.last.h[k].view()));
        err = err.max(rel_error(carried.c[k].view(), cache_eval.last.c[k].view()));
        err = err.max(rel_error(trained.h[k].view(), cache.last.h[k].view()));
        err = err.max(rel_error(trained.c[k].view(), cache.last.c[k].view()));
    }
    (loss_err, err)
}

/// Hidden sizes on both sides of the kernels' block sizes (row tiles of 4 to 48, 8- and
/// 16-lane registers), up to 300.
const SIZES: [usize; 24] = [
    1, 2, 3, 5, 7, 8, 9, 12, 13, 16, 17, 23, 24, 25, 31, 33, 47, 48, 49, 64, 97, 128, 129, 300,
];

fn cases() -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(2027);
    let mut cases = Vec::new();
    let mut size = 0;
    for cell in CellKind::ALL {
        for layers in 1..=3 {
            for dropout in [None, Some(0.3)] {
                for _ in 0..3 {
                    let n_a = SIZES[size % SIZES.len()];
                    size += 7;
                    let m = rng.random_range(1..=40);
                    // About 1e8 multiply-adds of W_hh per case at most, so that the
                    // reference stays quick.
                    let g = cell.n_gates();
                    let budget = 100_000_000 / (g * n_a * n_a * m * layers).max(1);
                    let n_steps = rng.random_range(1..=70.min(budget.max(1)));
                    cases.push(Case {
                        cell,
                        layers,
                        n_a,
                        v: rng.random_range(2..=70),
                        n_steps,
                        m,
                        dropout,
                        seed: cases.len() as u64,
                    });
                }
            }
        }
    }
    // Named extremes: the batch split over threads (m ≥ 32 at the largest size), one
    // column, one step, the longest sequence.
    for (cell, n_a, m, n_steps, layers) in [
        (CellKind::Lstm, 300, 40, 3, 2),
        (CellKind::Gru, 300, 33, 4, 2),
        (CellKind::Rnn, 256, 40, 5, 3),
        (CellKind::Gru, 17, 1, 70, 3),
        (CellKind::Lstm, 33, 40, 1, 3),
        (CellKind::Lstm, 64, 32, 70, 1),
        // G·n_a × T·m above a million: element-wise passes split by rows over threads.
        (CellKind::Gru, 128, 40, 70, 1),
    ] {
        cases.push(Case {
            cell,
            layers,
            n_a,
            v: 65,
            n_steps,
            m,
            dropout: Some(0.2),
            seed: 99 + cases.len() as u64,
        });
    }
    cases
}

#[test]
fn losses_gradients_and_states_agree_with_the_reference() {
    let (mut worst64, mut worst32) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
    let cases = cases();
    for case in &cases {
        let (loss_err, err) = compare::<f64>(case);
        assert!(
            loss_err <= 1e-12,
            "f64 loss {loss_err:e}: {case:?} at {}",
            Tier::current()
        );
        assert!(
            err <= 1e-12,
            "f64 gradients {err:e}: {case:?} at {}",
            Tier::current()
        );
        worst64 = (worst64.0.max(loss_err), worst64.1.max(err));
        let (loss_err, err) = compare::<f32>(case);
        // f32 carries 24 bits (6e-8); sums over up to 70 steps, 40 columns and 3 layers
        // leave a few thousand units of that.
        assert!(
            loss_err <= 1e-4,
            "f32 loss {loss_err:e}: {case:?} at {}",
            Tier::current()
        );
        assert!(
            err <= 2e-3,
            "f32 gradients {err:e}: {case:?} at {}",
            Tier::current()
        );
        worst32 = (worst32.0.max(loss_err), worst32.1.max(err));
    }
    eprintln!(
        "{} cases at tier {}: worst relative error f64 loss {:e}, gradients and states {:e}; \
         f32 loss {:e}, gradients and states {:e}",
        cases.len(),
        Tier::current(),
        worst64.0,
        worst64.1,
        worst32.0,
        worst32.1
    );
}

/// The engine's results do not depend on the number of threads: the batch is split at
/// fixed column boundaries, products by output columns, element-wise passes by rows, and
/// none of these changes the order of any sum.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let case = Case {
        cell: CellKind::Lstm,
        layers: 2,
        n_a: 160,
        v: 65,
        n_steps: 40,
        m: 40,
        dropout: Some(0.25),
        seed: 11,
    };
    let shape = shape(&case);
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let params: DeepParams<f32> = DeepParams::<f64>::init(shape, &mut rng).cast();
    let (x, y) = random_batch(&mut rng, case.v as u32, case.n_steps, case.m);
    let state = cast_state::<f32>(&random_state(shape, case.m, &mut rng));
    let masks = DropoutMasks::draw(0.25, shape, case.n_steps, case.m, &mut rng);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool");
        pool.install(|| {
            let mut buf = DeepBuffers::new(shape, case.m, case.n_steps);
            let loss = deep_gradients(&params, x.view(), y.view(), &state, Some(&masks), &mut buf);
            let bits: Vec<Vec<u32>> = buf
                .grads()
                .arrays()
                .into_iter()
                .map(|(_, a)| a.iter().map(|v| v.to_bits()).collect())
                .collect();
            (loss.total.to_bits(), bits)
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(run(threads) == one, "{threads} threads differ from one");
    }
}

/// The bundled text as ids over its sorted characters.
fn text_ids() -> (Vec<TokenId>, usize) {
    let path = env!("CARGO_MANIFEST_DIR").to_string() + "/../../data/rnn-notes.txt";
    let text = std::fs::read_to_string(path).expect("bundled data");
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids = text
        .chars()
        .map(|c| chars.binary_search(&c).expect("in the vocabulary") as TokenId)
        .collect();
    (ids, chars.len())
}

/// Step `step`'s batch: m streams at equal offsets through the text, chunk after chunk.
fn stream_batch(ids: &[TokenId], n_steps: usize, m: usize, step: usize) -> (Ids, Ids) {
    let stride = (ids.len() - 1) / m;
    let at = |t: usize, j: usize| j * stride + (step * n_steps + t) % (stride - 1);
    let x = Array2::from_shape_fn((n_steps, m), |(t, j)| Some(ids[at(t, j)]));
    let y = Array2::from_shape_fn((n_steps, m), |(t, j)| Some(ids[at(t, j) + 1]));
    (x, y)
}

/// 50 training steps on a stream of the bundled text, the state carried from chunk to
/// chunk, engine against the reference loop, in f64: losses at every step and parameters
/// at the end agree to 1e-9 relative.
#[test]
fn parameters_after_50_training_steps_agree() {
    let (ids, v) = text_ids();
    let recipes = [
        (
            CellKind::Gru,
            2,
            Some(0.2),
            OptimizerConfig::adam(0.01),
            Clip::Norm(5.0),
        ),
        (
            CellKind::Lstm,
            2,
            None,
            OptimizerConfig::adamw(0.01, 0.1),
            Clip::Norm(1.0),
        ),
        (
            CellKind::Rnn,
            3,
            Some(0.1),
            OptimizerConfig::adagrad(0.02),
            Clip::Value(0.5),
        ),
        (
            CellKind::Lstm,
            1,
            Some(0.5),
            OptimizerConfig::sgd(0.05),
            Clip::Norm(5.0),
        ),
    ];
    let (n_a, n_steps, m) = (24, 16, 5);
    for (cell, layers, dropout, optimizer, clip) in recipes {
        let shape = DeepShape {
            cell,
            n_x: v,
            n_a,
            n_y: v,
            n_layers: layers,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let init: DeepParams = DeepParams::init(shape, &mut rng);
        let (mut p_ref, mut p_eng) = (init.clone(), init.clone());
        let mut opt_ref = DeepOptimizer::new(optimizer, &p_ref);
        let mut opt_eng = DeepOptimizer::new(optimizer, &p_eng);
        let (mut s_ref, mut s_eng) = (State::zeros(shape, m), State::zeros(shape, m));
        let mut buf = DeepBuffers::new(shape, m, n_steps);
        let mut clipped = 0;
        for step in 0..50 {
            let (x, y) = stream_batch(&ids, n_steps, m, step);
            let masks = dropout.map(|p| DropoutMasks::draw(p, shape, n_steps, m, &mut rng));
            let (loss_ref, cache) =
                deep_forward(&p_ref, x.view(), y.view(), &s_ref, masks.as_ref());
            let (mut grads, _) = deep_backward(&p_ref, x.view(), y.view(), &cache);
            let norm_ref = clip_deep(&mut grads, clip);
            opt_ref.step(&mut p_ref, &grads);
            s_ref = cache.last;
            let report = deep_update_step(
                &mut p_eng,
                &mut opt_eng,
                clip,
                x.view(),
                y.view(),
                &mut s_eng,
                masks.as_ref(),
                &mut buf,
            )
            .unwrap_or_else(|_| panic!("{cell:?}: step {step} diverged"));
            let loss_err = (report.loss.total - loss_ref.total).abs() / loss_ref.total;
            assert!(loss_err <= 1e-9, "{cell:?}: step {step}: loss {loss_err:e}");
            assert!((report.grad_norm - norm_ref).abs() <= 1e-9 * norm_ref);
            if let Clip::Norm(max) = clip {
                clipped += usize::from(norm_ref > max);
            }
        }
        assert_eq!(opt_eng.t, 50);
        let mut worst = 0.0f64;
        for ((name, a), (_, b)) in p_eng.arrays().into_iter().zip(p_ref.arrays()) {
            let e = rel_error(a.view(), b.view());
            worst = worst.max(e);
            assert!(
                e <= 1e-9,
                "{cell:?}: {name} differs by {e:e} after 50 steps"
            );
        }
        for k in 0..layers {
            assert!(rel_error(s_eng.h[k].view(), s_ref.h[k].view()) <= 1e-9);
            assert!(rel_error(s_eng.c[k].view(), s_ref.c[k].view()) <= 1e-9);
        }
        eprintln!(
            "{cell:?} × {layers} after 50 steps at tier {}: parameters differ by {worst:e} \
             (norm clipping acted at {clipped} steps)",
            Tier::current()
        );
        // The parameters moved: the comparison is not between two untouched copies.
        assert!(rel_error(p_ref.layers[0].w_hh.view(), init.layers[0].w_hh.view()) > 1e-3);
    }
}

/// Bit patterns of every array, so that NaN compares equal to itself.
fn bits(p: &DeepParams) -> Vec<Vec<u64>> {
    p.arrays()
        .into_iter()
        .map(|(_, a)| a.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// A non-finite loss (a NaN weight, a NaN state) or an update that overflows returns an
/// error and leaves parameters, optimizer and state as they were.
#[test]
fn a_non_finite_step_changes_nothing() {
    let shape = DeepShape {
        cell: CellKind::Gru,
        n_x: 7,
        n_a: 9,
        n_y: 7,
        n_layers: 2,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (x, y) = random_batch(&mut rng, 7, 6, 3);
    let good: DeepParams = DeepParams::init(shape, &mut rng);
    for case in 0..3 {
        let mut buf = DeepBuffers::new(shape, 3, 6);
        let mut p = good.clone();
        let mut s = State::zeros(shape, 3);
        let mut opt = DeepOptimizer::new(OptimizerConfig::adam(0.01), &p);
        // A good step first, so that the optimizer has state to keep.
        deep_update_step(
            &mut p,
            &mut opt,
            Clip::Norm(5.0),
            x.view(),
            y.view(),
            &mut s,
            None,
            &mut buf,
        )
        .expect("a good step");
        let (mut y, mut clip) = (y.clone(), Clip::Norm(5.0));
        match case {
            0 => p.layers[1].w_hh[[4, 2]] = f64::NAN,
            1 => s.h[0][[1, 1]] = f64::NAN,
            _ => {
                // Finite loss and gradients, but θ − lr·g overflows: every target is 0,
                // so db_y[0] = Σ (ŷ_0 − 1) is far beyond 1 and lr·g beyond f64::MAX.
                y.mapv_inplace(|t| t.map(|_| 0));
                clip = Clip::None;
                opt = DeepOptimizer::new(OptimizerConfig::sgd(f64::MAX), &p);
            }
        }
        let (p_before, opt_before, s_before) = (bits(&p), opt.clone(), s.clone());
        let result = deep_update_step(
            &mut p,
            &mut opt,
            clip,
            x.view(),
            y.view(),
            &mut s,
            None,
            &mut buf,
        );
        let report = result.expect_err("a non-finite step fails");
        assert_eq!(bits(&p), p_before, "case {case}: parameters");
        if case < 2 {
            assert!(!report.loss.total.is_finite() || !report.grad_norm.is_finite());
            assert_eq!(opt.t, opt_before.t, "case {case}: optimizer");
            assert_eq!(opt.m.as_ref().map(bits), opt_before.m.as_ref().map(bits));
            assert_eq!(opt.v.as_ref().map(bits), opt_before.v.as_ref().map(bits));
        } else {
            assert!(report.loss.total.is_finite() && report.grad_norm.is_finite());
        }
        for (a, b) in
            s.h.iter()
                .chain(&s.c)
                .zip(s_before.h.iter().chain(&s_before.c))
        {
            let same = a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "case {case}: state");
        }
    }
}
