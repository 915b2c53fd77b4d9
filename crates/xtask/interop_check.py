"""Recompute charrnn's next-character probabilities from an exported safetensors file.

usage: interop_check.py MODEL.safetensors PROBS.json [--tol 1e-6]

MODEL.safetensors is written by `charrnn export`: PyTorch's names for
`rnn = nn.RNN(V, n_a)` (tanh, one layer) and `fc = nn.Linear(n_a, V)`, plus an "rnn"
metadata entry (JSON: vocabulary, dtype, training configuration, step).
PROBS.json is written by `charrnn probs --json` for the same model: the text, the input
ids per step (null = no input) and the probabilities after each step.

The forward pass here uses only NumPy, in float64 whatever the file's dtype:

    a<t> = tanh(W_ih x<t> + b_ih + W_hh a<t-1> + b_hh),   a<0> = 0
    y<t> = softmax(W_fc a<t> + b_fc)

Exits 1 with one line on stderr when a probability differs by more than --tol.
"""

import argparse
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def encode(text, vocab, config):
    """The input ids per step, as charrnn reads a text: lowercased if the model was
    trained lowercased; names models start with "no input" (None)."""
    if config.get("lowercase"):
        text = text.lower()
    index = {c: i for i, c in enumerate(vocab)}
    ids = [index[c] for c in text]
    return [None] + ids if config.get("mode") == "lines" else ids


def forward(w, inputs):
    """Probabilities (T, V) for one sequence from a zero hidden state."""
    w_ih, w_hh = w["rnn.weight_ih_l0"], w["rnn.weight_hh_l0"]
    b = w["rnn.bias_ih_l0"] + w["rnn.bias_hh_l0"]
    n_a, vocab_size = w_ih.shape
    a = np.zeros(n_a)
    rows = []
    for x in inputs:
        z = w_hh @ a + b
        if x is not None:
            z = z + w_ih[:, x]  # W_ih times a one-hot column
        a = np.tanh(z)
        logits = w["fc.weight"] @ a + w["fc.bias"]
        e = np.exp(logits - logits.max())
        rows.append(e / e.sum())
    probs = np.array(rows)
    assert probs.shape == (len(inputs), vocab_size)
    return probs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("probs")
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()

    with safe_open(args.model, framework="np") as f:
        info = json.loads(f.metadata()["rnn"])
    tensors = load_file(args.model)
    dtypes = {str(t.dtype) for t in tensors.values()}
    want_dtype = {"f32": "float32", "f64": "float64"}[info["dtype"]]
    if dtypes != {want_dtype}:
        sys.exit(f"error: {args.model}: tensor dtypes {sorted(dtypes)}, metadata says {info['dtype']}")
    w = {k: v.astype(np.float64) for k, v in tensors.items()}

    with open(args.probs, encoding="utf-8") as f:
        project = json.load(f)
    inputs = encode(project["text"], info["vocab"], info["config"])
    if inputs != project["inputs"]:
        sys.exit(f"error: input ids differ: here {inputs}, charrnn {project['inputs']}")
    ours = forward(w, inputs)
    theirs = np.array(project["probs"], dtype=np.float64)
    if ours.shape != theirs.shape:
        sys.exit(f"error: shapes differ: here {ours.shape}, charrnn {theirs.shape}")
    diff = np.abs(ours - theirs)
    t, j = np.unravel_index(diff.argmax(), diff.shape)
    worst = diff[t, j]
    summary = (
        f"{args.model}: {info['dtype']}, n_a {w['rnn.weight_hh_l0'].shape[0]}, "
        f"vocabulary of {len(info['vocab'])}, {len(inputs)} steps reading {project['text']!r}: "
        f"max |p_numpy - p_charrnn| = {worst:.3g} (step {t}, char {info['vocab'][j]!r})"
    )
    if not worst <= args.tol:
        sys.exit(f"error: {summary} > {args.tol:g}")
    print(f"ok: {summary} <= {args.tol:g}")


if __name__ == "__main__":
    main()
