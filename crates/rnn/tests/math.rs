//! The model's mathematics, shown correct: a case worked by hand, gradient checks against
//! finite differences, batch/column equivalence and f32/f64 agreement.

use ndarray::{Array2, array, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{GRADCHECK_EPS, Params, TokenId, gradient_check, rnn_backward, rnn_forward};

type Ids = Array2<Option<TokenId>>;

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-12,
        "{what}: got {got:.17}, want {want:.17}"
    );
}

fn all_close(got: &Array2<f64>, want: &Array2<f64>, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    for ((idx, g), w) in got.indexed_iter().zip(want.iter()) {
        close(*g, *w, &format!("{what}{idx:?}"));
    }
}

/// n_a = 2, vocabulary 3, T = 2, one column. Inputs (none, 1), targets (1, 2),
/// a<0> = (0.5, −0.5).
///
/// The reference numbers below were computed step by step with Python's `math` module from
/// the formulas written in the comments (scalar loops, no libraries), then rounded to 17
/// significant digits.
#[test]
fn tiny_case_worked_by_hand() {
    let p = Params {
        w_ax: array![[0.5, -0.3, 0.2], [0.1, 0.4, -0.6]],
        w_aa: array![[0.2, -0.1], [0.3, 0.25]],
        w_ya: array![[0.3, -0.2], [0.5, 0.1], [-0.4, 0.6]],
        b_a: array![[0.1], [-0.2]],
        b_y: array![[0.05], [-0.05], [0.0]],
    };
    let x: Ids = array![[None], [Some(1)]];
    let y: Ids = array![[Some(1)], [Some(2)]];
    let a0 = array![[0.5], [-0.5]];

    // Step 1 (t = 0), no input:
    //   W_aa a0 + b_a = (0.2·0.5 − 0.1·(−0.5) + 0.1, 0.3·0.5 + 0.25·(−0.5) − 0.2)
    //                 = (0.25, −0.175)
    //   a1 = tanh(0.25, −0.175) = (0.24491866240370913, −0.17323515783466012)
    //   logits = W_ya a1 + b_y = (0.15812263028804477, 0.05513581541838855, −0.20190855966227972)
    //   ŷ1 = softmax = (0.38464594412286074, 0.3470040566970514, 0.268349999180088)
    //   L1 = −ln ŷ1[1] = −ln 0.3470040566970514 = 1.0584188083340138
    // Step 2 (t = 1), input 1 (column 1 of W_ax = (−0.3, 0.4)):
    //   z = W_ax[:,1] + W_aa a1 + b_a = (−0.13369275173579215, 0.23016680926244773)
    //   a2 = tanh(z) = (−0.13290187526983013, 0.2261866334841538)
    //   ŷ2 = (0.3130857244583637, 0.2952293902068445, 0.39168488533479184)
    //   L2 = −ln ŷ2[2] = 0.9372976264054066
    // L = L1 + L2 = 1.9957164347394203
    let (loss, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
    close(loss.total, 1.9957164347394203, "loss");
    assert_eq!(loss.n_targets, 2);
    close(loss.per_char(), 1.9957164347394203 / 2.0, "loss per char");
    close(cache.a(0)[[0, 0]], 0.24491866240370913, "a1[0]");
    close(cache.a(1)[[1, 0]], 0.2261866334841538, "a2[1]");
    close(cache.y_hat(1)[[2, 0]], 0.39168488533479184, "ŷ2[2]");

    // Backward, t = 1 first:
    //   dy2 = ŷ2 − e2 = (0.3130857244583637, 0.2952293902068445, −0.6083151146652082)
    //   da = W_yaᵀ dy2 + 0 = (0.4848664583070147, −0.3980832746701132)
    //   da_raw = (1 − a2²) ⊙ da = (0.47630230644334703, −0.37771717782482517)
    //   dW_ax[:,1] += da_raw; dW_aa += da_raw a1ᵀ; db_a += da_raw
    //   da_next = W_aaᵀ da_raw = (−0.018054692058778132, −0.14205952510054098)
    // then t = 0:
    //   dy1 = ŷ1 − e1 = (0.38464594412286074, −0.6529959433029486, 0.268349999180088)
    //   da = W_yaᵀ dy1 + da_next = (−0.33649888014542945, −0.12327830874735521)
    //   da_raw = (1 − a1²) ⊙ da = (−0.3163139439434214, −0.1195786749360525)
    //   no input: dW_ax unchanged; dW_aa += da_raw a0ᵀ; db_a += da_raw
    //   da0 = W_aaᵀ da_raw = (−0.09913639126950002, 0.0017367256603290186)
    let (g, da0) = rnn_backward(&p, x.view(), y.view(), &cache);
    all_close(
        &g.w_ax,
        &array![
            [0.0, 0.47630230644334703, 0.0],
            [0.0, -0.37771717782482517, 0.0]
        ],
        "dW_ax",
    );
    all_close(
        &g.w_aa,
        &array![
            [-0.041501648177804565, 0.07564466673798481],
            [-0.15229932342778638, 0.12522323238537222]
        ],
        "dW_aa",
    );
    all_close(
        &g.w_ya,
        &array![
            [0.05259729023285304, 0.004181605166599045],
            [-0.19916743258206454, 0.17989879717994484],
            [0.1465701423492115, -0.18408040234654388]
        ],
        "dW_ya",
    );
    all_close(
        &g.b_a,
        &array![[0.15998836249992565], [-0.4972958527608777]],
        "db_a",
    );
    all_close(
        &g.b_y,
        &array![
            [0.6977316685812245],
            [-0.3577665530961041],
            [-0.33996511548512015]
        ],
        "db_y",
    );
    close(da0[[0, 0]], -0.09913639126950002, "da0[0]");
    close(da0[[1, 0]], 0.0017367256603290186, "da0[1]");
}

/// Random sequences of length T for m columns over a vocabulary of `v`; the first input
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
#[test]
fn gradient_check_passes_for_every_parameter() {
    let (v, n_a) = (7usize, 5usize);
    let mut worst = [0.0f64; 5];
    for (case, (n_steps, m)) in [(1, 1), (1, 3), (5, 1), (5, 3), (30, 1), (30, 3)]
        .into_iter()
        .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + case as u64);
        let p: Params = Params::init_with_std(v, n_a, v, 0.5, &mut rng);
        let mut p = p;
        // Non-zero biases too, so their gradients are exercised away from zero.
        p.b_a.mapv_inplace(|_| rng.random_range(-0.5..0.5));
        p.b_y.mapv_inplace(|_| rng.random_range(-0.5..0.5));
        let (x, y) = random_case(&mut rng, v as u32, n_steps, m);
        let a0 = Array2::from_shape_fn((n_a, m), |_| rng.random_range(-0.5..0.5));
        let report = gradient_check(&p, x.view(), y.view(), a0.view(), GRADCHECK_EPS);
        println!("T = {n_steps}, m = {m}\n{report}");
        for (w, row) in worst.iter_mut().zip(&report.rows) {
            *w = w.max(row.worst_rel_error);
        }
        assert!(
            report.worst() < 1e-7,
            "T = {n_steps}, m = {m}: worst relative error {}\n{report}",
            report.worst()
        );
    }
    println!("worst relative error per parameter (w_ax, w_aa, w_ya, b_a, b_y): {worst:?}");
}

/// A batch of m columns gives the sum of m single-column runs: same loss, same gradients.
#[test]
fn a_batch_equals_the_sum_of_its_columns() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let p: Params = Params::init_with_std(6, 4, 6, 0.5, &mut rng);
    let (x, y) = random_case(&mut rng, 6, 8, 3);
    let a0 = Array2::from_shape_fn((4, 3), |_| rng.random_range(-0.5..0.5));
    let (loss, cache) = rnn_forward(&p, x.view(), y.view(), a0.view());
    let (grads, da0) = rnn_backward(&p, x.view(), y.view(), &cache);

    let mut sum_loss = 0.0;
    let mut sum_grads = Params::zeros(6, 4, 6);
    for j in 0..3 {
        let xj = x.slice(s![.., j..j + 1]);
        let yj = y.slice(s![.., j..j + 1]);
        let a0j = a0.slice(s![.., j..j + 1]);
        let (l, c) = rnn_forward(&p, xj, yj, a0j);
        let (g, d) = rnn_backward(&p, xj, yj, &c);
        sum_loss += l.total;
        for ((_, acc), (_, gj)) in sum_grads.arrays_mut().into_iter().zip(g.arrays()) {
            *acc += gj;
        }
        let diff = (&d - &da0.slice(s![.., j..j + 1])).mapv(f64::abs).sum();
        assert!(diff < 1e-14, "da0 column {j}");
    }
    assert!((loss.total - sum_loss).abs() < 1e-12);
    for ((name, a), (_, b)) in grads.arrays().into_iter().zip(sum_grads.arrays()) {
        let diff = (a - b).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(diff < 1e-13, "{name}: {diff}");
    }
}

/// Padding (a `None` target and input past the end of a short example) adds neither loss
/// nor gradient: a padded batch equals the unpadded runs.
#[test]
fn padding_adds_neither_loss_nor_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let p: Params = Params::init_with_std(5, 4, 5, 0.5, &mut rng);
    let short_x: Ids = array![[None], [Some(2)]];
    let short_y: Ids = array![[Some(2)], [Some(0)]];
    let padded_x: Ids = array![[None], [Some(2)], [None], [None]];
    let padded_y: Ids = array![[Some(2)], [Some(0)], [None], [None]];
    let a0 = Array2::zeros((4, 1));
    let (l1, c1) = rnn_forward(&p, short_x.view(), short_y.view(), a0.view());
    let (l2, c2) = rnn_forward(&p, padded_x.view(), padded_y.view(), a0.view());
    assert_eq!(l1.total, l2.total);
    assert_eq!(l2.n_targets, 2);
    let (g1, _) = rnn_backward(&p, short_x.view(), short_y.view(), &c1);
    let (g2, _) = rnn_backward(&p, padded_x.view(), padded_y.view(), &c2);
    for ((name, a), (_, b)) in g1.arrays().into_iter().zip(g2.arrays()) {
        let diff = (a - b).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(diff < 1e-15, "{name}: {diff}");
    }
}

/// The f32 path runs the same code: its loss and gradients agree with f64 to f32 precision.
#[test]
fn f32_agrees_with_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let p64: Params<f64> = Params::init_with_std(9, 16, 9, 0.3, &mut rng);
    let p32: Params<f32> = p64.cast();
    let (x, y) = random_case(&mut rng, 9, 20, 2);
    let (l64, c64) = rnn_forward(&p64, x.view(), y.view(), Array2::zeros((16, 2)).view());
    let (l32, c32) = rnn_forward(&p32, x.view(), y.view(), Array2::zeros((16, 2)).view());
    assert!((l64.total - l32.total).abs() / l64.total < 1e-5);
    let (g64, _) = rnn_backward(&p64, x.view(), y.view(), &c64);
    let (g32, _) = rnn_backward(&p32, x.view(), y.view(), &c32);
    for ((name, a), (_, b)) in g64.arrays().into_iter().zip(g32.arrays()) {
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0.0f64, |m, (a, b)| m.max((a - f64::from(*b)).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{name}: {diff} (scale {scale})"
        );
    }
}
