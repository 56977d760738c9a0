#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz_*.c) for SECONDS (default 60) each,
# starting from its corpus in fuzz/corpus/<target>. New inputs go to
# build/fuzz/corpus/<target>, crash inputs to build/fuzz/crashes/<target>/,
# each target's output to build/fuzz/<target>.log.
#
#   scripts/fuzz.sh                  every target, 60 s each
#   scripts/fuzz.sh 20               a short bounded smoke run (CI)
#   scripts/fuzz.sh 600 fuzz_hub     one target, 10 minutes
#
# A crash, a leak, a timeout, an out-of-memory or any sanitizer report
# (UBSan included: halt_on_error) fails the target. Every target still
# runs; then the failed ones are named with their crash input and the
# command that replays it, and the script exits 1.
# WEFT_FUZZ_BUILD overrides the build directory (default build/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
case $secs in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in fuzz/fuzz_*.c; do
    targets+=("$(basename "$src" .c)")
  done
fi
build=${WEFT_FUZZ_BUILD:-build/fuzz}

scripts/deps.sh test
cmake --preset fuzz -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=()
for name in "${targets[@]}"; do
  bin=$build/fuzz/$name
  corpus=$build/corpus/$name
  crashes=$build/crashes/$name
  log=$build/$name.log
  prefix=$crashes/$(date +%Y%m%d-%H%M%S)-
  seeds=()
  [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
  mkdir -p "$corpus" "$crashes"
  echo "== fuzz $name for ${secs}s"
  rc=0
  "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$prefix" \
    "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|new_units_added)' "$log" || true
    continue
  fi
  failed+=("$name")
  {
    echo
    echo "!! FUZZ FAILURE in $name (exit $rc); full output: $log"
    grep -E 'ERROR: |SUMMARY: |runtime error|^fuzz_[a-z_]+: |Test unit written|^#[0-9]+[[:space:]]+DONE' \
      "$log" | tail -n 20 || true
    for f in "$prefix"*; do
      [ -e "$f" ] || continue
      echo "!! input: $f"
      echo "!! replay: $bin $f   (minimize: $bin -minimize_crash=1 -runs=10000 $f)"
    done
    echo
  } >&2
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${secs}s each without a failure"
