#!/usr/bin/env bash
# rnn next to the Python baselines of shared/bench, interleaved in one sitting so that the
# VM's drift hits every variant alike. Prints one JSON line per run (to stdout and to
# $OUT), then a summary table.
#
#   cargo build --release -p rnn-cli
#   python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install numpy threadpoolctl torch
#   PY=/tmp/benchvenv/bin/python BENCH=path/to/shared/bench crates/rnn/benches/side_by_side.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
C=${C:-$ROOT/target/release/charrnn}
PY=${PY:-python3}
BENCH=${BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-/tmp/side_by_side.jsonl}
ROUNDS=${ROUNDS:-3}
export BENCH_MAX_OTHER=${BENCH_MAX_OTHER:-0.5} BENCH_MAX_TRIES=${BENCH_MAX_TRIES:-3}
: > "$OUT"
# Every program prints JSON lines; rnn's are tagged with its name.
rust() { "$C" bench "$@" | tail -1 | sed 's/^{/{"variant":"rnn",/' | tee -a "$OUT"; }
py() { (cd "$BENCH" && "$PY" "$@") | tee -a "$OUT"; }
uptime
for r in $(seq "$ROUNDS"); do
  rust --config a
  py bench_dino.py numpy_seed --threads 1 --names 1000 --runs 1
  rust --config a
  py bench_dino.py numpy_opt --threads 1 --names 1000 --runs 1
done
for th in 1 2; do
  for r in $(seq "$ROUNDS"); do
    rust --config b --threads "$th"
    py bench_shakespeare.py torch_nnrnn --hidden 512 --threads "$th" --steps 10 --runs 2
    rust --config b --threads "$th"
    py bench_shakespeare.py numpy_opt --hidden 512 --threads "$th" --steps 10 --runs 2
  done
  py bench_shakespeare.py torch_compile --hidden 512 --threads "$th" --steps 10 --runs 2
  py bench_shakespeare.py torch_compile_loop --hidden 512 --threads "$th" --steps 10 --runs 2
done
for th in 1 2; do
  py bench_gemm.py numpy --threads "$th" --runs 3
  py bench_gemm.py torch --threads "$th" --runs 3
done
uptime
"$PY" - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("variant") == "rnn":
        key, v = (d["config"], d["threads"], "rnn"), d["chars_per_s"]
        rows.setdefault((d["config"], d["threads"], "rnn GFLOP/s"), []).append(d["gflops"])
        rows.setdefault(("gemm", d["threads"], "rnn " + d["dtype"]), []).append(d["gemm_gflops"])
    elif d["config"] == "C_gemm":
        if d["op"] != "gemm" or d["n"] != 1024:
            continue
        key, v = ("gemm", d["threads"], d["lib"] + " " + d["dtype"]), d["median_gflops"]
    else:
        key, v = (d["config"][0].lower(), d["threads"], d["variant"]), d["median_chars_per_s"]
    rows.setdefault(key, []).append(v)
for key in sorted(rows, key=str):
    vals = rows[key]
    print(*key, "median %.1f" % statistics.median(vals), [round(x, 1) for x in vals], sep="  ")
PY
