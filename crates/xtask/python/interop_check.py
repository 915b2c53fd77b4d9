"""Check exported safetensors files against charrnn with NumPy and with PyTorch.

usage: interop_check.py MANIFEST.json

MANIFEST.json is written by `cargo xtask interop`: a list of cases, each
{"name", "model", "probs", "eval", "eval_data"}:

  model      `charrnn export` output: PyTorch's names for `rnn = nn.RNN/nn.GRU/nn.LSTM(V,
             n_a, num_layers=N)` (rnn.weight_ih_l{k}, rnn.weight_hh_l{k}, rnn.bias_ih_l{k},
             rnn.bias_hh_l{k}) and `fc = nn.Linear(n_a, V)` (fc.weight, fc.bias), plus an
             "rnn" metadata entry (JSON: vocab, dtype, config with cell and layers, step);
  probs      `charrnn probs --json` for that model: the text, the input ids per step (null
             = no input: the zero vector names models start with) and the probabilities
             after each step, from a zero state;
  eval       `charrnn eval --json --data EVAL_DATA` for that model: loss_per_char;
  eval_data  the text it evaluated.

For each case this script

  1. recomputes the probabilities with NumPy, in float64, from PyTorch's documented
     equations (below), stacked, no dropout;
  2. builds nn.RNN (tanh) / nn.GRU / nn.LSTM with num_layers = N and nn.Linear, in float64
     and in the file's dtype, loads the tensors by name (`load_state_dict(strict=True)`
     after stripping the "rnn." / "fc." prefixes), runs the same one-hot inputs and
     compares its probabilities with charrnn's and NumPy's;
  3. recomputes the loss per character on EVAL_DATA with PyTorch as `charrnn eval` does:
     lines mode, every line from a zero state ("no input", the line's characters, then
     "\\n" predicted); stream mode, chunks of the model's seq_len with the state carried,
     predicting each next character; the mean over every predicted character.

Equations (PyTorch's docs; x one-hot, h and c start at zero; layer k > 0 reads layer k-1's
h; gate blocks of W_ih, W_hh, b_ih, b_hh stacked in the order given):

  RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
  GRU   r = σ(W_ir x + b_ir + W_hr h + b_hr)          (blocks r, z, n)
        z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 - z) ⊙ n + z ⊙ h
  LSTM  i, f, g, o = σ, σ, tanh, σ of W_ih x + b_ih + W_hh h + b_hh   (blocks i, f, g, o)
        c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')
  out   p = softmax(W_fc h_top + b_fc)

Tolerances: probabilities within 1e-12 (f64 files) or 1e-5 (f32 files) of charrnn's;
NumPy and PyTorch float64 within 1e-12 of each other; eval loss within 1e-12 (f64) or
1e-5 (f32) relative. Prints one table row per model; exits 1 on any mismatch.
"""

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file
from torch import nn

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
NP_DTYPES = {"f32": "float32", "f64": "float64"}
TORCH_DTYPES = {"f32": torch.float32, "f64": torch.float64}
TOL_PROBS = {"f64": 1e-12, "f32": 1e-5}
TOL_NUMPY_TORCH = 1e-12
TOL_EVAL = {"f64": 1e-12, "f32": 1e-5}


class Error(Exception):
    pass


# ---------------------------------------------------------------------------------------
# The file


def load(path):
    """(metadata, tensors by name as NumPy arrays, cell, n_layers, n_a, vocabulary size),
    the metadata checked against the tensors."""
    with safe_open(path, framework="np") as f:
        info = json.loads(f.metadata()["rnn"])
    tensors = load_file(path)
    dtypes = {str(t.dtype) for t in tensors.values()}
    if dtypes != {NP_DTYPES[info["dtype"]]}:
        raise Error(f"tensor dtypes {sorted(dtypes)}, metadata says {info['dtype']}")
    config = info["config"]
    cell = config.get("cell", "rnn")
    n_layers = config.get("layers", 1)
    vocab_size = len(info["vocab"])
    n_a = tensors["rnn.weight_hh_l0"].shape[1]
    rows = GATES[cell] * n_a
    want = {"fc.weight": (vocab_size, n_a), "fc.bias": (vocab_size,)}
    for k in range(n_layers):
        want[f"rnn.weight_ih_l{k}"] = (rows, vocab_size if k == 0 else n_a)
        want[f"rnn.weight_hh_l{k}"] = (rows, n_a)
        want[f"rnn.bias_ih_l{k}"] = (rows,)
        want[f"rnn.bias_hh_l{k}"] = (rows,)
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if have != want:
        raise Error(f"tensors {have}, a {n_layers}-layer {cell} of n_a {n_a} needs {want}")
    return info, tensors, cell, n_layers, n_a, vocab_size


def encode(text, info):
    """Character ids as charrnn reads a text (lowercased if the model was trained so)."""
    if info["config"].get("lowercase"):
        text = text.lower()
    index = {c: i for i, c in enumerate(info["vocab"])}
    return [index[c] for c in text]


def probs_inputs(text, info):
    """The input ids per step for `charrnn probs`: names models start with no input."""
    ids = encode(text, info)
    return [None] + ids if info["config"]["mode"] == "lines" else ids


# ---------------------------------------------------------------------------------------
# NumPy, from the equations


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_probs(w, cell, n_layers, n_a, vocab_size, inputs):
    """Probabilities (T, V), float64, reading `inputs` from zero states."""
    h = [np.zeros(n_a) for _ in range(n_layers)]
    c = [np.zeros(n_a) for _ in range(n_layers)]
    rows = []
    for x_id in inputs:
        x = np.zeros(vocab_size)
        if x_id is not None:
            x[x_id] = 1.0
        below = x
        for k in range(n_layers):
            gi = w[f"rnn.weight_ih_l{k}"] @ below + w[f"rnn.bias_ih_l{k}"]
            gh = w[f"rnn.weight_hh_l{k}"] @ h[k] + w[f"rnn.bias_hh_l{k}"]
            if cell == "rnn":
                h[k] = np.tanh(gi + gh)
            elif cell == "gru":
                i_r, i_z, i_n = np.split(gi, 3)
                h_r, h_z, h_n = np.split(gh, 3)
                r = sigmoid(i_r + h_r)
                z = sigmoid(i_z + h_z)
                n = np.tanh(i_n + r * h_n)
                h[k] = (1.0 - z) * n + z * h[k]
            else:
                i, f, g, o = np.split(gi + gh, 4)
                c[k] = sigmoid(f) * c[k] + sigmoid(i) * np.tanh(g)
                h[k] = sigmoid(o) * np.tanh(c[k])
            below = h[k]
        logits = w["fc.weight"] @ below + w["fc.bias"]
        e = np.exp(logits - logits.max())
        rows.append(e / e.sum())
    return np.array(rows)


# ---------------------------------------------------------------------------------------
# PyTorch


class Net(nn.Module):
    """`rnn` (the recurrent stack) and `fc` (the output layer), PyTorch's own modules."""

    def __init__(self, cell, vocab_size, n_a, n_layers, dtype):
        super().__init__()
        kwargs = dict(num_layers=n_layers, dtype=dtype)
        if cell == "rnn":
            kwargs["nonlinearity"] = "tanh"
        self.rnn = MODULES[cell](vocab_size, n_a, **kwargs)
        self.fc = nn.Linear(n_a, vocab_size, dtype=dtype)
        self.vocab_size = vocab_size
        self.dtype = dtype

    def load_by_name(self, tensors):
        """Each module's state dict from the file's names without the module prefix,
        strict: every name the module has, no name it lacks."""
        parts = {"rnn.": {}, "fc.": {}}
        for name, array in tensors.items():
            prefix = next((p for p in parts if name.startswith(p)), None)
            if prefix is None:
                raise Error(f"tensor {name!r} belongs to neither rnn nor fc")
            parts[prefix][name[len(prefix):]] = torch.from_numpy(array.copy()).to(self.dtype)
        self.rnn.load_state_dict(parts["rnn."], strict=True)
        self.fc.load_state_dict(parts["fc."], strict=True)
        self.eval()

    def one_hot(self, ids):
        """(T, 1, V) one-hot rows; None is the zero vector."""
        x = torch.zeros(len(ids), 1, self.vocab_size, dtype=self.dtype)
        for t, i in enumerate(ids):
            if i is not None:
                x[t, 0, i] = 1.0
        return x

    def logits(self, ids, state=None):
        """(T, V) logits reading `ids` from `state` (None: zeros), and the state after."""
        out, state = self.rnn(self.one_hot(ids), state)
        return self.fc(out[:, 0, :]), state

    def probs(self, ids):
        logits, _ = self.logits(ids)
        return torch.softmax(logits, dim=-1).to(torch.float64).numpy()

    def loss_per_char(self, text, info):
        """The mean negative log-likelihood per predicted character, as `charrnn eval`."""
        total, n_targets = 0.0, 0
        if info["config"]["mode"] == "lines":
            newline = info["vocab"].index("\n")
            for line in text.split("\n"):
                if not line:
                    continue
                ids = encode(line, info)
                logits, _ = self.logits([None] + ids)
                target = torch.tensor(ids + [newline])
                total += F.cross_entropy(logits, target, reduction="sum").item()
                n_targets += len(target)
        else:
            ids = encode(text, info)
            seq_len = max(1, info["config"]["seq_len"])
            n = len(ids) - 1
            state = None
            start = 0
            while start < n:
                end = min(start + seq_len, n)
                logits, state = self.logits(ids[start:end], state)
                target = torch.tensor(ids[start + 1 : end + 1])
                total += F.cross_entropy(logits, target, reduction="sum").item()
                n_targets += end - start
                start = end
        return total / n_targets, n_targets


# ---------------------------------------------------------------------------------------
# One case


def worst(a, b):
    """max |a - b| and where: (value, step, column)."""
    if a.shape != b.shape:
        raise Error(f"shapes differ: {a.shape} and {b.shape}")
    diff = np.abs(a - b)
    t, j = np.unravel_index(diff.argmax(), diff.shape)
    return float(diff[t, j]), int(t), int(j)


def check(case):
    """One table row (dict) and the list of failures for one case."""
    info, tensors, cell, n_layers, n_a, vocab_size = load(case["model"])
    dtype = info["dtype"]
    with open(case["probs"], encoding="utf-8") as f:
        project = json.load(f)
    inputs = probs_inputs(project["text"], info)
    if inputs != project["inputs"]:
        raise Error(f"input ids differ: here {inputs}, charrnn {project['inputs']}")
    theirs = np.array(project["probs"], dtype=np.float64)

    w = {k: v.astype(np.float64) for k, v in tensors.items()}
    p_numpy = numpy_probs(w, cell, n_layers, n_a, vocab_size, inputs)
    nets = {}
    for d in sorted({"f64", dtype}):
        nets[d] = Net(cell, vocab_size, n_a, n_layers, TORCH_DTYPES[d])
        nets[d].load_by_name(tensors)
    with torch.no_grad():
        p_torch = {d: net.probs(inputs) for d, net in nets.items()}

    failures = []
    tol = TOL_PROBS[dtype]

    def compare(what, a, b, limit):
        value, t, j = worst(a, b)
        if not value <= limit:
            failures.append(
                f"{case['name']}: max |Δp| {what} = {value:.3g} > {limit:g} "
                f"(step {t}, input {inputs[t]!r}, char {info['vocab'][j]!r})"
            )
        return value

    row = {
        "model": case["name"],
        "dtype": dtype,
        "steps": len(inputs),
        "numpy": compare("charrnn vs NumPy", theirs, p_numpy, tol),
        "torch64": compare("charrnn vs torch f64", theirs, p_torch["f64"], tol),
        "torch_file": (
            compare(f"charrnn vs torch {dtype}", theirs, p_torch[dtype], tol)
            if dtype != "f64"
            else worst(theirs, p_torch["f64"])[0]
        ),
        "numpy_torch": compare("NumPy vs torch f64", p_numpy, p_torch["f64"], TOL_NUMPY_TORCH),
    }

    if case.get("eval"):
        with open(case["eval"], encoding="utf-8") as f:
            charrnn_eval = json.load(f)
        with open(case["eval_data"], encoding="utf-8") as f:
            text = f.read()
        ours = charrnn_eval["loss_per_char"]
        row["eval_loss"] = ours
        for d, net in nets.items():
            with torch.no_grad():
                loss, n_targets = net.loss_per_char(text, info)
            if n_targets != charrnn_eval["chars"]:
                failures.append(
                    f"{case['name']}: eval predicts {charrnn_eval['chars']} characters, "
                    f"torch {n_targets}"
                )
            rel = abs(loss - ours) / abs(loss)
            row[f"eval_{'file' if d == dtype else 'f64'}"] = rel
            if d == dtype:
                row["eval_torch"] = loss
            if not rel <= TOL_EVAL[dtype]:
                failures.append(
                    f"{case['name']}: loss per char charrnn {ours!r}, torch {d} {loss!r}: "
                    f"relative difference {rel:.3g} > {TOL_EVAL[dtype]:g}"
                )
    return row, failures


def table(rows):
    head = [
        "model", "dtype", "steps", "charrnn-NumPy", "charrnn-torch64",
        "charrnn-torch(dtype)", "NumPy-torch64", "eval loss charrnn", "eval loss torch",
        "rel Δ (dtype)", "rel Δ (f64)",
    ]
    lines = []
    for r in rows:
        ev = "eval_loss" in r
        lines.append([
            r["model"], r["dtype"], str(r["steps"]),
            f"{r['numpy']:.2e}", f"{r['torch64']:.2e}", f"{r['torch_file']:.2e}",
            f"{r['numpy_torch']:.2e}",
            f"{r['eval_loss']:.10f}" if ev else "-",
            f"{r['eval_torch']:.10f}" if ev else "-",
            f"{r['eval_file']:.2e}" if ev else "-",
            f"{r.get('eval_f64', r.get('eval_file')):.2e}" if ev else "-",
        ])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print("max |Δp| over every step and character; eval: loss per char, |Δ| / loss")
    print(fmt.format(*head))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(args.manifest, encoding="utf-8") as f:
        cases = json.load(f)
    rows, failures = [], []
    for case in cases:
        try:
            row, bad = check(case)
        except (Error, KeyError, ValueError, RuntimeError) as e:
            failures.append(f"{case['name']}: {type(e).__name__}: {e}")
            continue
        rows.append(row)
        failures.extend(bad)
    table(rows)
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    if failures:
        for line in failures:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {len(rows)} models")


if __name__ == "__main__":
    main()
