"""Continue training a charrnn model in PyTorch, and save it for `charrnn import`.

    charrnn export --checkpoint runs/dinosaurs --out dinos.safetensors
    python pytorch_continue.py dinos.safetensors data/dinosaurs.txt --steps 2000
    charrnn import dinos-torch.safetensors --out runs/dinos-torch --data data/dinosaurs.txt

Needs torch and safetensors (pip install torch safetensors). Not run in CI.
"""

import argparse
import json
import random

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("text")
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--out", default=None)
args = parser.parse_args()

# ANCHOR: load
# The weights carry PyTorch's names; the "rnn" metadata entry holds the vocabulary and the
# training configuration.
with safe_open(args.model, framework="pt") as f:
    info = json.loads(f.metadata()["rnn"])
weights = load_file(args.model)
vocab, config = info["vocab"], info["config"]
V, n_a = len(vocab), weights["rnn.weight_hh_l0"].shape[0]
dtype = weights["fc.weight"].dtype  # float32 or float64, as trained

model = nn.ModuleDict({"rnn": nn.RNN(V, n_a), "fc": nn.Linear(n_a, V)}).to(dtype)
model.load_state_dict(weights)  # strict: exactly these six tensors
# ANCHOR_END: load

text = open(args.text, encoding="utf-8").read()
if config["lowercase"]:
    text = text.lower()
idx = {c: i for i, c in enumerate(vocab)}


def one_hot(ids):
    """(T, 1, V) inputs; None is "no input", the zero vector."""
    x = torch.zeros(len(ids), 1, V, dtype=dtype)
    for t, i in enumerate(ids):
        if i is not None:
            x[t, 0, i] = 1.0
    return x


def example():
    """Inputs and targets as charrnn trains: a name from "no input" to its newline, or a
    chunk of seq_len characters of the stream."""
    if config["mode"] == "lines":
        ids = [idx[c] for c in random.choice([l for l in text.split("\n") if l])]
        return [None] + ids, ids + [idx["\n"]]
    start = random.randrange(len(text) - config["seq_len"] - 1)
    ids = [idx[c] for c in text[start : start + config["seq_len"] + 1]]
    return ids[:-1], ids[1:]


# ANCHOR: train
opt = config["optimizer"]
optimizer = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam}[
    opt["kind"]
](model.parameters(), lr=opt["lr"])
clip = config["clip"]
for step in range(1, args.steps + 1):
    x, y = example()
    a, _ = model["rnn"](one_hot(x))  # a<1..T>: (T, 1, n_a), from a<0> = 0
    logits = model["fc"](a[:, 0])  # (T, V)
    loss = nn.functional.cross_entropy(logits, torch.tensor(y), reduction="sum")
    optimizer.zero_grad()
    loss.backward()
    if clip["kind"] == "value":
        nn.utils.clip_grad_value_(model.parameters(), clip["max"])
    elif clip["kind"] == "norm":
        nn.utils.clip_grad_norm_(model.parameters(), clip["max"])
    optimizer.step()
    if step % 200 == 0:
        print(f"step {info['step'] + step}: loss {loss.item() / len(y):.4f}/char")
# ANCHOR_END: train

# ANCHOR: save
# Back to safetensors with the same names; charrnn import sums the two biases into b_a.
out = args.out or args.model.replace(".safetensors", "-torch.safetensors")
info["step"] += args.steps
tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
save_file(tensors, out, metadata={"rnn": json.dumps(info)})
# ANCHOR_END: save
print(f"wrote {out}")
