#!/usr/bin/env bash
# Sets up and runs every test: formatting, a warning-free build, the core
# compiled with emscripten (proof that it stays dependency-free), every
# test under ASan+UBSan (the Promela model is checked with spin as one of
# them), every test again under TSan, every libFuzzer target for 20 s
# (WEFT_FUZZ_SECONDS), and a release build installed and linked through
# pkg-config.
# Heavier runs: WEFT_TEST_ROUNDS=100000 for longer model tests,
# WEFT_SIM_SEEDS=100000 for the protocol simulator, and scripts/fuzz.sh 600
# for libFuzzer (README.md, "Longer runs").
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/deps.sh test

echo "== format"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find include src tools tests bench fuzz -name '*.[ch]')
clang-format --dry-run -Werror $files

echo "== core with emscripten (no dependency beyond libc)"
emdir=$(mktemp -d)
for f in src/core/*.c; do
  emcc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude -Isrc -c "$f" -o "$emdir/$(basename "$f").o"
done
rm -rf "$emdir"

echo "== build and test under ASan+UBSan"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs"
ctest --preset asan -j"$jobs"

echo "== every test again under TSan (the writer thread, the servers' clients)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$jobs"
ctest --preset tsan -j"$jobs"

echo "== every libFuzzer target for a bounded time under ASan+UBSan (clang)"
scripts/fuzz.sh "${WEFT_FUZZ_SECONDS:-20}"

echo "== release build, install, and a consumer built through pkg-config"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs" >/dev/null
prefix=$(mktemp -d)
cmake --install build/release --prefix "$prefix" >/dev/null
cat > "$prefix/consumer.c" <<'C'
#include <stdio.h>
#include <weft/weft.h>
int main(void)
{
	printf("linked libweft %s\n", weft_version());
	return 0;
}
C
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
  sh -c 'cc "$1/consumer.c" -o "$1/consumer" $(pkg-config --cflags --libs weft)' _ "$prefix"
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu" "$prefix/consumer"
test -x "$prefix/bin/weft"
find "$prefix" -name 'libweft.so.0' | grep -q . # SOVERSION link installed
find "$prefix" -name 'libweft.a' | grep -q .
rm -rf "$prefix"
echo "== all tests passed"
