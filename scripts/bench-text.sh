#!/usr/bin/env bash
# Side-by-side text CRDT benchmark: `weft bench text` and other text CRDTs
# (diamond-types, json-joy, loro, yjs, automerge; bench/peers/) replay the
# same editing trace on this machine, in the same run, and a markdown table
# is printed.
#
#   scripts/bench-text.sh [--all] [--write] [--runs N] [--runs-automerge N]
#
#   --all               every trace in sequential_traces/ (default: only
#                       automerge-paper.json.gz)
#   --write             also replace the section between
#                       <!-- text-bench:start --> and <!-- text-bench:end -->
#                       in docs/BENCHMARKS.md (appended if missing)
#   --runs N            runs per measurement, median reported (default 3)
#   --runs-automerge N  runs for automerge, which takes ~14 s per replay of
#                       automerge-paper (default: the same as --runs)
#
# Needs cmake and a C toolchain (scripts/deps.sh), node >= 20 and npm with
# access to the npm registry. The traces are read from
# $WEFT_DATA_DIR/editing-traces (default ../shared/data beside the
# checkout); without them the script says so and exits 0. weft is measured
# with build/release/weft bench text; WEFT_BENCH_TEXT overrides the command.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

all=0 write=0 runs=3 runs_am=
while [ $# -gt 0 ]; do
  case "$1" in
  --all) all=1 ;;
  --write) write=1 ;;
  --runs) runs=${2:?--runs needs a number}; shift ;;
  --runs-automerge) runs_am=${2:?--runs-automerge needs a number}; shift ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "bench-text.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$runs" in '' | *[!0-9]* | 0) echo "bench-text.sh: --runs must be a positive integer" >&2; exit 2 ;; esac
runs_am=${runs_am:-$runs}
case "$runs_am" in '' | *[!0-9]* | 0) echo "bench-text.sh: --runs-automerge must be a positive integer" >&2; exit 2 ;; esac

data=${WEFT_DATA_DIR:-$root/../shared/data}
tdir=$data/editing-traces/sequential_traces
if [ ! -f "$tdir/automerge-paper.json.gz" ]; then
  echo "bench-text.sh: no editing traces in $tdir (set WEFT_DATA_DIR); nothing to benchmark"
  exit 0
fi
if [ "$all" = 1 ]; then
  traces=$(ls "$tdir"/*.json.gz)
else
  traces=$tdir/automerge-paper.json.gz
fi

start=$(date +%s)
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# weft's release build (incremental; configured only the first time)
echo "== weft release build" >&2
weft_note=
if [ ! -f build/release/CMakeCache.txt ]; then
  cmake --preset release >&2 || true
fi
if ! cmake --build --preset release -j"$(nproc)" >"$tmp/build.log" 2>&1; then
  tail -n 20 "$tmp/build.log" >&2
  weft_note="the release build failed; weft's numbers (if any) come from a binary built earlier"
  echo "bench-text.sh: warning: $weft_note" >&2
fi
# WEFT_BENCH_TEXT overrides the command (default: build/release/weft bench text)
bench=${WEFT_BENCH_TEXT:-}
if [ -z "$bench" ]; then
  if [ -x build/release/weft ] && build/release/weft bench text --help >/dev/null 2>&1; then
    bench="build/release/weft bench text"
  else
    weft_note="no weft binary with 'bench text' was built; weft was not measured"
    echo "bench-text.sh: warning: $weft_note" >&2
  fi
fi

# the peers, from the npm registry
peers_note=
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  peers_note="node/npm are not installed; the peers were not measured"
elif ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  peers_note="node $(node --version) is older than 20; the peers were not measured"
else
  echo "== npm install --prefix bench/peers" >&2
  if ! npm install --prefix bench/peers --no-audit --no-fund >&2; then
    peers_note="npm install --prefix bench/peers failed; the peers were not measured"
  fi
fi
[ -n "$peers_note" ] && echo "bench-text.sh: warning: $peers_note" >&2

tables=
for t in $traces; do
  name=$(basename "$t" .json.gz)
  echo "== $name: weft ${bench:-(not built)} (local, remote), $runs runs" >&2
  for f in local remote peers; do : >"$tmp/$name.$f"; done
  if [ -n "$bench" ]; then
    $bench "$t" --mode local --runs "$runs" >"$tmp/$name.local" || echo "bench-text.sh: $bench --mode local failed" >&2
    $bench "$t" --mode remote --runs "$runs" >"$tmp/$name.remote" || echo "bench-text.sh: $bench --mode remote failed" >&2
    cat "$tmp/$name.local" "$tmp/$name.remote" >&2
  fi
  if [ -z "$peers_note" ]; then
    echo "== $name: peers, $runs runs (automerge: $runs_am)" >&2
    node bench/peers/run.mjs "$t" --runs "$runs" --runs-automerge "$runs_am" >"$tmp/$name.peers" || true
    cut -c1-240 "$tmp/$name.peers" >&2
  fi
  tables+=$(node bench/peers/table.mjs "$t" "$tmp/$name.local" "$tmp/$name.remote" "$tmp/$name.peers" "$runs")
  tables+=$'\n\n'
done
elapsed=$(($(date +%s) - start))

# the versions measured, from the peers' own output
versions=
if [ -z "$peers_note" ]; then
  # shellcheck disable=SC2016 # JavaScript template literals
  versions=$(cat "$tmp"/*.peers | node -e '
    const seen = new Map();
    for (const l of require("fs").readFileSync(0, "utf8").split("\n"))
      if (l.startsWith("{")) { const o = JSON.parse(l); seen.set(o.package, o.version); }
    console.log([...seen].map(([p, v]) => `${p} ${v ?? "(not installed)"}`).join(", "));')
fi

cmd="scripts/bench-text.sh"
[ "$all" = 1 ] && cmd+=" --all"
[ "$runs" != 3 ] && cmd+=" --runs $runs"
[ "$runs_am" != "$runs" ] && cmd+=" --runs-automerge $runs_am"
notes=
[ -n "$weft_note" ] && notes+="**Note:** $weft_note."$'\n\n'
[ -n "$peers_note" ] && notes+="**Note:** $peers_note."$'\n\n'
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
section=$(
  cat <<EOF
## Text CRDT against other implementations: \`weft bench text\` and \`bench/peers\`

Generated by \`$cmd --write\` on $(date -u '+%Y-%m-%d %H:%M UTC'):
$(nproc) cores ($model), $(uname -sr), node $(node --version 2>/dev/null || echo "not installed"),
$(cc --version 2>/dev/null | head -n 1); load average before the run: $load
(other work on the machine makes the numbers noisy). Whole run: ${elapsed} s. Peers (npm, WASM where
the package ships it): ${versions:-none}.

Every implementation replays the same trace in the same run on the same machine;
each number is the median of $runs runs in fresh documents (automerge: $runs_am), in one
process per implementation. weft is native C (\`build/release/weft bench text\`);
the peers are their npm packages under node, so the comparison includes the cost of
JavaScript and WASM.

- **local replay**: every patch of the trace applied as its own local edit (one
  transaction, change, commit or flushed patch each) on one document, without
  decompression and JSON parsing. Every final text is checked against the trace's
  \`endContent\`; a mismatch is reported as an error, not as a number.
- **peer ms / weft ms**: the peer's local replay time over weft's; above 1 the peer is slower.
- **remote merge**: the whole history, encoded on the document that made it, merged into a
  fresh document: weft applies its full encoding (with deleted text); diamond-types
  \`mergeBytes(toBytes())\`; json-joy decodes and applies the binary patch of every op;
  loro imports \`export({mode:'update'})\`; yjs \`applyUpdate\` of the v1 state update;
  automerge \`loadIncremental\` of \`save()\`. The peers' time includes reading the text out once.
- **encoded bytes**: the standard whole-document encoding. weft's first number is without
  deleted text, the one in brackets with it; the peers keep their history (yjs: v2 update
  encoding, v1 in brackets; automerge \`save()\`; diamond-types \`toBytes()\`; loro snapshot;
  json-joy \`Model.toBinary()\`).
- **avg update bytes**: the mean size of the update each edit produces: weft's update per
  insert or delete; yjs the \`update\` event (v1) per transaction; automerge
  \`getLastLocalChange()\`; diamond-types \`getPatchSince\` the version before the op; loro
  \`subscribeLocalUpdates\` per commit; json-joy \`Patch.toBinary()\`.
- **load**: the encoded document loaded into a fresh document (peers: and the text read out
  once, since some decode lazily).

${notes}${tables}Traces: [josephg/editing-traces](https://github.com/josephg/editing-traces) by Joseph
Gentle (CC BY 4.0); \`automerge-paper\` comes from automerge/automerge-perf (Martin
Kleppmann). See \`editing-traces/NOTICE.md\` in the data folder.
EOF
)

echo
echo "$section"

if [ "$write" = 1 ]; then
  doc=docs/BENCHMARKS.md
  printf '<!-- text-bench:start -->\n%s\n<!-- text-bench:end -->\n' "$section" >"$tmp/section"
  if grep -q '^<!-- text-bench:start -->$' "$doc" && grep -q '^<!-- text-bench:end -->$' "$doc"; then
    awk -v sec="$tmp/section" '
      $0 == "<!-- text-bench:start -->" { while ((getline l < sec) > 0) print l; skip = 1; next }
      $0 == "<!-- text-bench:end -->" && skip { skip = 0; next }
      !skip { print }' "$doc" >"$tmp/doc"
  else
    { cat "$doc"; echo; cat "$tmp/section"; } >"$tmp/doc"
  fi
  cat "$tmp/doc" >"$doc"
  echo "bench-text.sh: wrote the text-bench section of $doc" >&2
fi
