#!/usr/bin/env bash
# Model-checks spec/protocol.pml with spin (see spec/README.md).
#
# Usage: spec/check.sh [--extended] [--verbose] [--keep] [PML]
#   --extended  the heavier bounds (README "Bounds")
#   --verbose   print the counterexample of every expected violation
#   --keep      keep the work directory
#   PML         the model (default: protocol.pml beside this script)
# Environment: SPEC_DEFS adds -D flags to the main safety run (other bounds),
#   SPEC_JOBS runs at once (default 2), CC the C compiler for pan (default
#   cc), SPEC_MEMLIM pan's memory limit in MB per run (default 6144, or
#   10240 with --extended).
#
# Each run: spin -a, cc pan.c, ./pan. A run that must pass fails the script
# if pan reports any error, or if the search was incomplete (depth limit or
# memory limit reached). A run that must fail (mutations, witnesses, the
# findings) fails the script unless pan finds a violation of the expected
# property. Exit 0: all as expected; 1: not; 77: spin is not installed.
set -euo pipefail

if ! command -v spin >/dev/null 2>&1; then
  echo "check.sh: spin is not installed (apt-get install spin): skipped"
  exit 77
fi

extended=0 verbose=0 keep=0 pml=""
for a in "$@"; do
  case "$a" in
    --extended) extended=1 ;;
    --verbose) verbose=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) pml="$a" ;;
  esac
done
[ -n "$pml" ] || pml="$(cd "$(dirname "$0")" && pwd)/protocol.pml"
pml="$(cd "$(dirname "$pml")" && pwd)/$(basename "$pml")"
[ -f "$pml" ] || { echo "check.sh: no model at $pml" >&2; exit 1; }
cc="${CC:-cc}"
memlim="${SPEC_MEMLIM:-6144}"
ccextra=""
if [ "$extended" = 1 ]; then
  memlim="${SPEC_MEMLIM:-10240}"
  ccextra="-DCOLLAPSE"   # compressed state storage: slower, about half the memory
fi
depth=10000

work="$(mktemp -d "${TMPDIR:-/tmp}/weft-spec.XXXXXX")"
if [ "$keep" = 1 ]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi

jobs="${SPEC_JOBS:-2}"
now() { date +%s.%N; }

# check NAME EXPECT MODE "DEFS" [pan flags...]
#   EXPECT: pass, or the tag of the property that must be violated
#   (P0_protocol ... P5_no_phantom), or W<n> for witness n.
#   MODE: safety (cc -DSAFETY: assertions and invalid end states) or np
#   (cc -DNP, pan -l: non-progress cycles).
# Prints one verdict line (PASS or FAIL) and maybe details.
check() {
  local name="$1" expect="$2" mode="$3" defs="$4"; shift 4
  local dir="$work/$name" copt="-O1" ccdefs="-DSAFETY" t0 t1 out
  [ "$expect" = pass ] && copt="-O2 $ccextra"
  [ "$mode" = np ] && ccdefs="-DNP"
  cp "$pml" "$dir/protocol.pml"
  t0=$(now)
  # shellcheck disable=SC2086
  if ! (cd "$dir" && spin -a $defs protocol.pml >spin.log 2>&1); then
    echo "FAIL  $name: spin -a $defs failed:"; cat "$dir/spin.log"; return 1
  fi
  # shellcheck disable=SC2086
  if ! (cd "$dir" && "$cc" $copt -w $ccdefs -DMEMLIM="$memlim" -o pan pan.c >cc.log 2>&1); then
    echo "FAIL  $name: cc pan.c failed:"; cat "$dir/cc.log"; return 1
  fi
  (cd "$dir" && ./pan -m"$depth" -n "$@" >pan.out 2>&1) || true
  t1=$(now)
  out="$dir/pan.out"
  local errors states trans reached secs at
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | tail -1)
  states=$(awk '/states, stored/ {print $1; exit}' "$out")
  trans=$(awk '/transitions \(= / {print $1; exit}' "$out")
  reached=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | tail -1)
  at=$(sed -n 's/.*(at depth \([0-9]*\)).*/\1/p' "$out" | head -1)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local stats="states=${states:-?} transitions=${trans:-?} depth=${reached:-?} time=${secs}s"
  if [ -z "$errors" ]; then
    echo "FAIL  $name: pan did not finish:"; tail -20 "$out"; return 1
  fi
  if [ "$expect" = pass ]; then
    if [ "$errors" != 0 ]; then
      echo "FAIL  $name ($defs): $errors error(s), $stats"
      grep -E '^pan:[0-9]+:' "$out" | head -3
      (cd "$dir" && spin -t $defs protocol.pml 2>&1 | grep -E '^ *MSC:|assert|Error' | sed 's/^ */    /') || true
      return 1
    elif grep -q -E 'max search depth too small|reached -DMEMLIM bound|out of memory' "$out"; then
      echo "FAIL  $name ($defs): search incomplete ($(grep -E -o 'max search depth too small|reached -DMEMLIM bound|out of memory' "$out" | head -1)), $stats"
      return 1
    else
      echo "PASS  $name: errors=0 $stats"
    fi
    return 0
  fi
  local pattern="$expect"
  case "$expect" in W*) pattern="(${expect#W}!=${expect#W})" ;; esac
  local violated
  violated=$(grep -m1 -E '^pan:[0-9]+:' "$out" || true)
  if [ "$errors" != 0 ] && printf '%s' "$violated" | grep -q -F -- "$pattern"; then
    case "$expect" in
      W*) echo "PASS  $name: reached at depth ${at:-?} (${secs}s)" ;;
      *) echo "PASS  $name: violates $expect as expected, at depth ${at:-?} (${secs}s)" ;;
    esac
    if [ "$verbose" = 1 ]; then
      (cd "$dir" && spin -t $defs protocol.pml 2>&1 | grep -E '^ *MSC:|text of failed' | sed 's/^ */    /') || true
    fi
  elif [ "$errors" != 0 ]; then
    echo "FAIL  $name ($defs): expected a violation of $expect, got: $violated"
    return 1
  else
    echo "FAIL  $name ($defs): expected a violation of $expect, found none ($stats)"
    return 1
  fi
}

# run NAME ...: check in the background, at most $jobs at once; the
# verdicts are printed in order at the end.
names=()
run() {
  local name="$1"
  mkdir -p "$work/$name"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  ( if check "$@" >"$work/$name/verdict" 2>&1; then :; else echo "FAILED" >>"$work/$name/verdict"; fi ) &
  names+=("$name")
}
section() { names+=("=$1"); }

echo "spin model check of $pml ($(spin -V | head -1)), $jobs job(s) at once"
t_start=$(now)
section "properties (must hold)"
if [ "$extended" = 1 ]; then
  run safety pass safety "-DMAX_FAULTS=3 ${SPEC_DEFS:-}" -w27
  run safety-crash-both pass safety "-DCRASH_BOTH" -w26
  run safety-bad-any pass safety "-DBAD_ANY" -w26
  run safety-5-units pass safety "-DNU1=2 -DMAX_FAULTS=1" -w26
  run safety-2-server-crashes pass safety "-DMAX_FAULTS=3 -DMAX_SRV_CRASH=2 -DMAX_REP_CRASH=0"
  run safety-2-replica-crashes pass safety "-DMAX_FAULTS=3 -DMAX_REP_CRASH=2 -DMAX_SRV_CRASH=0 -DMAX_DROP=0" -w26
  run no-livelock pass np "" -l -w26
  run fanout-by-incarnation pass safety "-DFANOUT_BY_INCARNATION"
  run split-commit pass safety "-DSPLIT_COMMIT"
else
  run safety pass safety "${SPEC_DEFS:-}"
  run no-livelock pass np "-DMAX_FAULTS=1" -l
  run fanout-by-incarnation pass safety "-DFANOUT_BY_INCARNATION -DMAX_FAULTS=1"
  run split-commit pass safety "-DSPLIT_COMMIT -DMAX_FAULTS=1"
fi

section "mutations (each must be caught)"
run bug-ack-before-commit P1_acked_durable safety "-DBUG_ACK_BEFORE_COMMIT"
run bug-hw-separate-txn P2_once safety "-DBUG_HW_SEPARATE_TXN"
run bug-dup-not-acked P3_not_stuck safety "-DBUG_DUP_NOT_ACKED"
run bug-broadcast-during-catchup P4_delivery safety "-DBUG_BROADCAST_DURING_CATCHUP"
run bug-no-inc-bump P0_protocol safety "-DBUG_NO_INC_BUMP"
run bug-no-inc-bump-single-ops P1_acked_durable safety "-DBUG_NO_INC_BUMP -DNO_TXN"

section "findings: the rules as first written must fail (README \"Findings\")"
run finding-fanout-by-replica P4_delivery safety "-DFANOUT_BY_REPLICA"
run finding-reject-lost P5_no_phantom safety "-DRULE_REJECT_ONCE -DCHECK_REJECT_KNOWN"

section "witnesses: the interesting cases are reachable"
for w in 1 2 3 4 5 6 7 8; do
  run "witness-$w" "W$w" safety "-DWITNESS=$w"
done
wait

failures=0 passed=0
for n in "${names[@]}"; do
  case "$n" in
    =*) echo "== ${n#=}"; continue ;;
  esac
  cat "$work/$n/verdict"
  if grep -q '^FAILED$' "$work/$n/verdict" || ! grep -q '^PASS' "$work/$n/verdict"; then
    failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
done
secs=$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
echo "wall time ${secs}s"
echo "spec: $passed passed, $failures failed"
[ "$failures" -eq 0 ] || exit 1
