#!/usr/bin/env bash
# rnn next to the Python baselines of shared/bench, interleaved in one sitting so that the
# VM's drift hits every variant alike, at every instruction-set tier of the engine. Prints
# one JSON line per run (to stdout and to $OUT), then a summary table.
#
# The engine's own kernels follow RNN_ISA; the large all-steps products go to
# matrixmultiply, which picks its kernel by its own CPU detection, fixed when it is
# compiled (MMTEST_FEATURE). So each tier runs a charrnn built for it, whose
# matrixmultiply is limited to the same instructions:
#
#   cargo build --release -p rnn-cli                                  # avx512 (target/release)
#   MMTEST_FEATURE=avx2,fma CARGO_TARGET_DIR=target/tier-avx2 cargo build --release -p rnn-cli
#   MMTEST_FEATURE=sse2 CARGO_TARGET_DIR=target/tier-portable cargo build --release -p rnn-cli
#   python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install numpy threadpoolctl torch
#   PY=/tmp/benchvenv/bin/python BENCH=path/to/shared/bench crates/rnn-engine/benches/side_by_side.sh
#
# TIERS (default "avx512 avx2 portable") chooses the tiers; a tier whose binary is missing
# is skipped with a message.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
PY=${PY:-python3}
BENCH=${BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-/tmp/side_by_side.jsonl}
ROUNDS=${ROUNDS:-3}
TIERS=${TIERS:-avx512 avx2 portable}
export BENCH_MAX_OTHER=${BENCH_MAX_OTHER:-0.5} BENCH_MAX_TRIES=${BENCH_MAX_TRIES:-3}
binary() {
  case $1 in
    avx512) echo "${C_AVX512:-$ROOT/target/release/charrnn}" ;;
    avx2) echo "${C_AVX2:-$ROOT/target/tier-avx2/release/charrnn}" ;;
    portable) echo "${C_PORTABLE:-$ROOT/target/tier-portable/release/charrnn}" ;;
  esac
}
tiers=()
for t in $TIERS; do
  if [[ -x $(binary "$t") ]]; then tiers+=("$t"); else echo "tier $t: no binary at $(binary "$t"), skipped"; fi
done
: > "$OUT"
# Every program prints JSON lines; rnn's are tagged with its name (charrnn adds the tier).
rust() {
  local tier=$1
  shift
  RNN_ISA=$tier "$(binary "$tier")" bench "$@" | tail -1 | sed 's/^{/{"variant":"rnn",/' | tee -a "$OUT"
}
py() { (cd "$BENCH" && "$PY" "$@") | tee -a "$OUT"; }
uptime
for r in $(seq "$ROUNDS"); do
  for t in "${tiers[@]}"; do rust "$t" --config a; done
  py bench_dino.py numpy_seed --threads 1 --names 1000 --runs 1
  for t in "${tiers[@]}"; do rust "$t" --config a; done
  py bench_dino.py numpy_opt --threads 1 --names 1000 --runs 1
done
for th in 1 2; do
  for r in $(seq "$ROUNDS"); do
    for t in "${tiers[@]}"; do rust "$t" --config b --threads "$th"; done
    py bench_shakespeare.py torch_nnrnn --hidden 512 --threads "$th" --steps 10 --runs 2
    for t in "${tiers[@]}"; do rust "$t" --config b --threads "$th"; done
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
        tier = d.get("tier", "?")
        key, v = (d["config"], d["threads"], "rnn " + tier), d["chars_per_s"]
        rows.setdefault((d["config"], d["threads"], "rnn " + tier + " GFLOP/s"), []).append(d["gflops"])
        rows.setdefault(("gemm", d["threads"], "rnn " + tier + " " + d["dtype"]), []).append(d["gemm_gflops"])
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
