#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS (default 60) each, starting from
# its corpus in fuzz/corpus/<target>. New inputs go to build/fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
scripts/deps.sh test
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"
for t in build/fuzz/fuzz/fuzz_*; do
  name=$(basename "$t")
  mkdir -p "build/fuzz/corpus/$name"
  "$t" -max_total_time="$secs" "build/fuzz/corpus/$name" "fuzz/corpus/$name"
done
