#!/usr/bin/env bash
# CI fuzzing: replays the committed regression inputs of each target once, then fuzzes each
# target for a bounded time (FUZZ_SECONDS, default 30) starting from a copy of its committed
# seeds and regressions. Any crash, panic, timeout or out-of-memory fails the script and
# names the input and how to replay it. Runs on stable Rust: RUSTC_BOOTSTRAP=1 lets stable
# accept the nightly-only flags cargo-fuzz passes (-Zsanitizer=address).
#
# Environment:
#   FUZZ_SECONDS    fuzzing time per target in seconds (default 30)
#   FUZZ_TARGETS    targets to run, space-separated (default: corpus checkpoint safetensors)
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_WORK_DIR   where the working corpus goes (default: a new temporary directory,
#                   removed after a run without failures)
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
read -r -a targets <<<"${FUZZ_TARGETS:-corpus checkpoint safetensors}"
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if [[ ! $FUZZ_SECONDS =~ ^[1-9][0-9]*$ ]]; then
  echo "FUZZ_SECONDS must be a whole number of seconds >= 1, not '$FUZZ_SECONDS'" >&2
  exit 2
fi

# cargo-fuzz, pinned; an installed cargo-fuzz of another version is used as it is.
installed=$(cargo fuzz --version 2>/dev/null | head -n1 || true)
if [[ -z $installed ]]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  installed=$(cargo fuzz --version | head -n1)
elif [[ $installed != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  echo "note: using the installed $installed (CI pins $CARGO_FUZZ_VERSION)"
fi
echo "$installed, sanitizer $sanitizer, $FUZZ_SECONDS s per target"

# libfuzzer-sys compiles libFuzzer, which is C++.
if ! command -v "${CXX:-c++}" >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing g++ (libfuzzer-sys compiles libFuzzer)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  else
    echo "no C++ compiler (${CXX:-c++}): libfuzzer-sys needs one to build libFuzzer; install g++" >&2
    exit 1
  fi
fi

# The same build options for `build` and `run`, or `run` would rebuild. The default profile
# is release with debug assertions (so overflow checks too).
build_opts=(--sanitizer "$sanitizer")
replay="RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_opts[*]}"

# libFuzzer flags for every run: a slow input or a runaway allocation is a failure too.
lf_opts=(-timeout=25 -rss_limit_mb=2048 -print_final_stats=1)

nice -n 19 cargo fuzz build "${build_opts[@]}"

keep_work=${FUZZ_WORK_DIR:+1}
work=${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rnn-fuzz.XXXXXX")}
mkdir -p "$work"

# Prints why `target` failed: the crash report from the log (which does not outlive a CI
# machine), then each failing input (`input` if known, else those written to
# artifacts/<target>/ since the marker) with how to replay it and, if small, its bytes.
report_failure() {
  local target=$1 log=$2 marker=$3 input=${4:-}
  echo "----- crash report (full log: $log)"
  if grep -qE "panicked at|==[0-9]+==ERROR|ERROR: libFuzzer" "$log"; then
    awk '/panicked at|==[0-9]+==ERROR|ERROR: libFuzzer/ { on = 1 } on && /^Stack backtrace:$/ { exit } on' "$log" | head -n 120
  else
    tail -n 60 "$log"
  fi
  echo "-----"
  local inputs=() f
  if [[ -n $input ]]; then
    inputs=("$input")
  else
    mapfile -t inputs < <(find "artifacts/$target" -type f -newer "$marker" 2>/dev/null | sort)
  fi
  if ((${#inputs[@]} == 0)); then
    echo "target '$target' failed without writing an input to fuzz/artifacts/$target/"
  fi
  for f in "${inputs[@]}"; do
    echo "FAILING INPUT for target '$target': fuzz/$f"
    echo "  replay: (cd fuzz && $replay $target $f)"
    if (($(wc -c <"$f") <= 65536)); then
      echo "  base64: $(base64 -w0 <"$f")"
    fi
  done
  echo "Once fixed, keep the input in fuzz/regressions/$target/ (see fuzz/README.md)."
}

status=0
for t in "${targets[@]}"; do
  [[ -d seeds/$t ]] || { echo "no seeds/$t: unknown target '$t'" >&2; exit 2; }
  log_dir="$work/logs"
  mkdir -p "$log_dir" "artifacts/$t"
  marker="$work/start-$t"
  touch "$marker"

  # 1. Every committed regression input once, by name: a regression fails fast and clearly.
  mapfile -t regressions < <(find "regressions/$t" -type f ! -name '.*' 2>/dev/null | sort)
  if ((${#regressions[@]})); then
    log="$log_dir/$t-regressions.log"
    if nice -n 19 cargo fuzz run "${build_opts[@]}" "$t" "${regressions[@]}" -- \
      "${lf_opts[@]}" -runs=1 >"$log" 2>&1; then
      echo "$t: ${#regressions[@]} regression inputs replayed, none fails"
    else
      failing=$(sed -n 's/^Running: //p' "$log" | tail -n1)
      echo "$t: a committed regression input fails again: fuzz/$failing"
      report_failure "$t" "$log" "$marker" "$failing"
      status=1
      continue
    fi
  else
    echo "$t: no regression inputs"
  fi

  # 2. Fuzz for FUZZ_SECONDS from a copy of the seeds and regressions: libFuzzer adds new
  # inputs to the working directory only, never to the committed ones.
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  cp seeds/"$t"/* "$corpus"/
  if ((${#regressions[@]})); then cp "${regressions[@]}" "$corpus"/; fi
  log="$log_dir/$t-fuzz.log"
  if nice -n 19 cargo fuzz run "${build_opts[@]}" "$t" "$corpus" -- \
    "${lf_opts[@]}" -max_total_time="$FUZZ_SECONDS" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
    echo "$t: fuzzed $FUZZ_SECONDS s, ${runs:-?} runs, coverage ${cov:-?}, $(find "$corpus" -type f | wc -l) inputs, no crash"
  else
    echo "$t: the fuzzer found a failing input"
    report_failure "$t" "$log" "$marker"
    status=1
  fi
done

if ((status)); then
  echo "fuzzing failed; logs and working corpus kept in $work"
  exit 1
fi
if [[ -z $keep_work ]]; then rm -rf "$work"; fi
echo "fuzzing passed: ${targets[*]}"
