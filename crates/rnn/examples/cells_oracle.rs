//! Writes random cases for the PyTorch autograd oracle (`cargo xtask autograd`): for every
//! cell and 1 to 3 layers, the weights under PyTorch's names, the inputs, targets and
//! initial state, and the reference's loss and gradients, as JSON.
//!
//! ```text
//! cargo run -p rnn --example cells_oracle -- cases.json
//! ```
//!
//! The script `crates/xtask/python/autograd_check.py` loads the weights into
//! `nn.RNN`/`nn.GRU`/`nn.LSTM(num_layers = N)` and `nn.Linear`, recomputes the loss with
//! autograd and compares. Names: `rnn.weight_ih_l{k}` is `w_ih` of layer k (likewise
//! `weight_hh`, `bias_ih`, `bias_hh`), `fc.weight` is W_ya and `fc.bias` b_y. The vanilla
//! cell's single bias b_a goes to `bias_ih`, with `bias_hh` zero; the gradient with respect
//! to `bias_hh` is then that of b_a, since only the sum of the two biases enters.
//! Input ids are −1 for "no input" (the zero vector), targets −100 for padding
//! (`ignore_index` of PyTorch's cross-entropy). States are (layers, m, n_a), as PyTorch's.

use std::process::ExitCode;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn::{CellKind, DeepParams, DeepShape, State, TokenId, deep_backward, deep_forward};
use serde_json::{Map, Value, json};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: cells_oracle <out.json>");
        return ExitCode::FAILURE;
    };
    let mut cases = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    for cell in CellKind::ALL {
        for n_layers in 1..=3 {
            cases.push(case(cell, n_layers, &mut rng));
        }
    }
    let text = json!({ "cases": cases }).to_string();
    match std::fs::write(&path, text) {
        Ok(()) => {
            eprintln!("cells_oracle: wrote {} cases to {path}", cases.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cells_oracle: cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One random case: sizes, data, weights, and the reference's loss and gradients.
fn case(cell: CellKind, n_layers: usize, rng: &mut ChaCha8Rng) -> Value {
    let vocab = rng.random_range(4..9);
    let shape = DeepShape {
        cell,
        n_x: vocab,
        n_a: rng.random_range(3..7),
        n_y: vocab,
        n_layers,
    };
    let (n_steps, m) = (rng.random_range(3..7), rng.random_range(2..4));
    let params = DeepParams::init(shape, rng);
    let x: Array2<Option<TokenId>> = Array2::from_shape_fn((n_steps, m), |(t, _)| {
        (t > 0).then(|| rng.random_range(0..vocab as TokenId))
    });
    // The last column's last target is padding.
    let y: Array2<Option<TokenId>> = Array2::from_shape_fn((n_steps, m), |(t, j)| {
        (t + 1 < n_steps || j + 1 < m).then(|| rng.random_range(0..vocab as TokenId))
    });
    let mut state0 = State::zeros(shape, m);
    state0
        .h
        .iter_mut()
        .for_each(|a| a.mapv_inplace(|_| rng.random_range(-0.5..0.5)));
    if cell == CellKind::Lstm {
        state0
            .c
            .iter_mut()
            .for_each(|a| a.mapv_inplace(|_| rng.random_range(-0.5..0.5)));
    }

    let (loss, cache) = deep_forward(&params, x.view(), y.view(), &state0, None);
    let (grads, d0) = deep_backward(&params, x.view(), y.view(), &cache);
    let mut grad_json = torch_arrays(&grads, true);
    grad_json.insert("h0".into(), states(&d0.h));
    let mut case = json!({
        "name": format!("{}-{n_layers}", cell.name()),
        "cell": cell.name(),
        "n_layers": n_layers,
        "vocab": vocab,
        "hidden": shape.n_a,
        "inputs": ids(&x, -1),
        "targets": ids(&y, -100),
        "h0": states(&state0.h),
        "weights": torch_arrays(&params, false),
        "loss": loss.total,
    });
    if cell == CellKind::Lstm {
        case["c0"] = states(&state0.c);
        grad_json.insert("c0".into(), states(&d0.c));
    }
    case["grads"] = Value::Object(grad_json);
    case
}

/// The arrays under PyTorch's names; biases as vectors. For the vanilla cell, `bias_hh`
/// is zero for weights and the gradient of b_a for gradients (`is_grad`).
fn torch_arrays(p: &DeepParams, is_grad: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, layer) in p.layers.iter().enumerate() {
        let b_hh = match (p.cell, is_grad) {
            (CellKind::Rnn, true) => layer.b_ih.clone(),
            (CellKind::Rnn, false) => Array2::zeros(layer.b_ih.raw_dim()),
            _ => layer.b_hh.clone(),
        };
        out.insert(format!("rnn.weight_ih_l{k}"), matrix(&layer.w_ih));
        out.insert(format!("rnn.weight_hh_l{k}"), matrix(&layer.w_hh));
        out.insert(format!("rnn.bias_ih_l{k}"), vector(&layer.b_ih));
        out.insert(format!("rnn.bias_hh_l{k}"), vector(&b_hh));
    }
    out.insert("fc.weight".into(), matrix(&p.w_ya));
    out.insert("fc.bias".into(), vector(&p.b_y));
    out
}

fn matrix(a: &Array2<f64>) -> Value {
    json!(a.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>())
}

fn vector(a: &Array2<f64>) -> Value {
    json!(a.iter().copied().collect::<Vec<f64>>())
}

/// Per-layer (n_a, m) states as PyTorch's (layers, m, n_a).
fn states(s: &[Array2<f64>]) -> Value {
    json!(
        s.iter()
            .map(|a| matrix(&a.t().to_owned()))
            .collect::<Vec<_>>()
    )
}

/// Ids as a (T, m) table of integers, `missing` for `None`.
fn ids(x: &Array2<Option<TokenId>>, missing: i64) -> Value {
    let rows: Vec<Vec<i64>> = x
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v.map_or(missing, i64::from)).collect())
        .collect();
    json!(rows)
}
