"""PyTorch autograd as an oracle for the reference's GRU, LSTM and stacked layers.

Reads the cases written by `cargo run -p rnn --example cells_oracle -- cases.json`: for
each, loads the weights (PyTorch's names and layout) into nn.RNN / nn.GRU / nn.LSTM with
num_layers = N and an nn.Linear on top, in float64, feeds the one-hot inputs (a zero
vector for id -1) and the initial state, computes the summed negative log-likelihood
(targets -100 are padding) and its gradients with autograd, and compares the loss and
every gradient with the reference's.

The error of a tensor is max |reference - torch| / max |torch| (relative to the tensor's
scale). Prints one row per case and tensor; exits 1 if any error exceeds --tol.

Usage: python autograd_check.py cases.json [--tol 1e-10]
"""

import argparse
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
DTYPE = torch.float64


class Model(nn.Module):
    """The recurrent stack as `rnn` and the output layer as `fc`, so that parameter names
    are `rnn.weight_ih_l0`, ..., `fc.weight`, `fc.bias`."""

    def __init__(self, cell, vocab, hidden, n_layers):
        super().__init__()
        kwargs = dict(input_size=vocab, hidden_size=hidden, num_layers=n_layers, dtype=DTYPE)
        if cell == "rnn":
            kwargs["nonlinearity"] = "tanh"
        self.rnn = CELLS[cell](**kwargs)
        self.fc = nn.Linear(hidden, vocab, dtype=DTYPE)


def tensor(values, grad=False):
    return torch.tensor(values, dtype=DTYPE, requires_grad=grad)


def one_hot(inputs, vocab):
    """(T, m) ids, -1 for "no input", as (T, m, vocab) one-hot rows."""
    ids = torch.tensor(inputs)
    x = F.one_hot(ids.clamp(min=0), vocab).to(DTYPE)
    return x * (ids >= 0).unsqueeze(-1).to(DTYPE)


def run_case(case):
    """Autograd's loss and gradients (by name) for one case."""
    model = Model(case["cell"], case["vocab"], case["hidden"], case["n_layers"])
    state = {k: tensor(v) for k, v in case["weights"].items()}
    model.load_state_dict(state, strict=True)
    x = one_hot(case["inputs"], case["vocab"])
    h0 = tensor(case["h0"], grad=True)
    initial = {"h0": h0}
    if case["cell"] == "lstm":
        c0 = tensor(case["c0"], grad=True)
        initial["c0"] = c0
        out, _ = model.rnn(x, (h0, c0))
    else:
        out, _ = model.rnn(x, h0)
    logits = model.fc(out)
    targets = torch.tensor(case["targets"]).reshape(-1)
    loss = F.cross_entropy(
        logits.reshape(-1, case["vocab"]), targets, reduction="sum", ignore_index=-100
    )
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    grads.update({name: t.grad for name, t in initial.items()})
    return loss.item(), grads


def rel_error(reference, torch_value):
    reference = tensor(reference)
    if reference.shape != torch_value.shape:
        raise ValueError(f"shape {tuple(reference.shape)} != torch {tuple(torch_value.shape)}")
    scale = torch_value.abs().max().item()
    diff = (reference - torch_value).abs().max().item()
    return diff / scale if scale > 0 else diff


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases")
    parser.add_argument("--tol", type=float, default=1e-10)
    args = parser.parse_args()
    with open(args.cases) as f:
        cases = json.load(f)["cases"]

    print(f"torch {torch.__version__}, {len(cases)} cases, tolerance {args.tol:.0e}")
    print(f"{'case':<8} {'tensor':<18} {'shape':<12} {'rel error':>10}")
    worst, failures = 0.0, []
    for case in cases:
        loss, grads = run_case(case)
        errors = [("loss", "()", abs(case["loss"] - loss) / abs(loss))]
        if set(grads) != set(case["grads"]):
            failures.append(f"{case['name']}: tensors {sorted(grads)} != {sorted(case['grads'])}")
            continue
        for name, g in grads.items():
            errors.append((name, str(tuple(g.shape)), rel_error(case["grads"][name], g)))
        for name, shape, err in errors:
            flag = "  FAIL" if not err <= args.tol else ""
            print(f"{case['name']:<8} {name:<18} {shape:<12} {err:>10.2e}{flag}")
            worst = max(worst, err)
            if not err <= args.tol:
                failures.append(f"{case['name']} {name}: {err:.3e}")
    print(f"worst relative error: {worst:.3e}")
    if failures:
        print("MISMATCH:\n  " + "\n  ".join(failures))
        return 1
    print("autograd check ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
