#!/usr/bin/env bash
# Installs the Debian 12 packages weft needs, only if some are missing.
# Usage: scripts/deps.sh [build|test]   (test adds the test toolchain)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libuv1-dev libwslay-dev libhttp-parser-dev
      libjansson-dev libsqlite3-dev libssl-dev zlib1g-dev)
if [ "${1:-build}" = test ]; then
  pkgs+=(libcmocka-dev python3 clang libclang-rt-14-dev clang-format emscripten faketime
           libmsgpack-dev spin)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
