#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target (docs/fuzzing.md) one after another with cargo-fuzz and
# libFuzzer, and prints one line of figures per target.
#
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_RUNS       stop a target after this many executions instead (default: no limit)
#   FUZZ_TARGETS    space-separated subset (default: all, from fuzz/Cargo.toml)
#   FUZZ_SANITIZER  address (default) or none (about twice the executions per second)
#   FUZZ_NICE       niceness of the fuzzing processes (default 19: other work goes first)
#
# The committed seeds (fuzz/corpus/<target>) are read, never written: what libFuzzer finds
# goes to fuzz/target/corpus/<target>. Crashes are written to fuzz/artifacts/<target>/ and
# make the run fail; logs and the figures are in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
runs="${FUZZ_RUNS:--1}"
sanitizer="${FUZZ_SANITIZER:-address}"
nice_level="${FUZZ_NICE:-19}"
targets="${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^kamera-worker-fuzz$')}"

# Instrumented builds never share a target dir with normal ones (FUZZ_TARGET_DIR to move it).
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, -Cpasses=sancov-module); only the
# stable toolchain is installed, and RUSTC_BOOTSTRAP admits them there.
export RUSTC_BOOTSTRAP=1
# Release code with debug assertions, so arithmetic overflow panics (a finding) instead of
# wrapping silently.
build=(-a -s "$sanitizer")

mkdir -p artifacts
summary=artifacts/summary.txt
: >"$summary"
nice -n "$nice_level" cargo fuzz build "${build[@]}"

failed=()
for target in $targets; do
  mkdir -p "target/corpus/$target" "artifacts/$target"
  log="artifacts/$target.log"
  echo "fuzz: $target for ${seconds}s (runs: $runs)"
  start=$(date +%s)
  set +e
  nice -n "$nice_level" cargo fuzz run "${build[@]}" "$target" \
    "target/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -runs="$runs" -print_final_stats=1 \
    -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1
  status=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  # libFuzzer's last status line (#N ... cov: C ft: F corp: U/S ... exec/s: E) and totals.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  crashes=$(find "artifacts/$target" -type f | wc -l)
  line="$target execs=${execs:-?} exec/s=${rate:-?} seconds=$elapsed cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} crashes=$crashes status=$status"
  echo "fuzz: $line"
  echo "$line" >>"$summary"
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed+=("$target")
    tail -n 40 "$log"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs in fuzz/artifacts/<target>.log)"
  exit 1
fi
echo "fuzz: every target ran clean; figures in fuzz/artifacts/summary.txt"
