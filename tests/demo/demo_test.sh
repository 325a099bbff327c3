#!/usr/bin/env bash
# The README's main command, as the suite runs it: scripts/demo.sh stopped by
# its own budget; killed with SIGKILL half-way (its cleanup never runs, its tools and the policy stay),
# then the same once more with the namespaces deleted by hand afterwards (a
# record of a namespace that is gone, whose inode the kernel hands to the next
# namespace), then a whole run, which must finish within its budget, print the
# headline ratio and leave no namespace, record or pin behind.
#   demo_test.sh BINDIR
set -uo pipefail
# `cmd | grep -q` would fail under pipefail when grep exits first (SIGPIPE): grep -q PAT <<<"$(cmd)".
BIN=${1:?usage: demo_test.sh BINDIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=3
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: the demo needs root (network namespaces, BPF)"; exit 0; fi
for t in irtt iperf3 ethtool setsid; do
  command -v $t >/dev/null || { echo "FAIL: '$t' is missing (scripts/setup.sh installs it)"; exit 1; }
done
export QOSC_BIN=$BIN
LOG=$(mktemp -d /tmp/qosc-demo-test.XXXXXX)
fail() { echo "FAIL: $*"; for f in "$LOG"/*.out; do echo "--- $f"; cat "$f"; done; exit 1; }
cleanup() {
  # Whatever a killed run left: its tools, the policy, the namespaces.
  for ns in qd-cli qd-rtr qd-srv; do ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null; done
  if grep -qw qd-rtr <<<"$(ip netns list)"; then
    timeout -k 3 20 ip netns exec qd-rtr "$BIN/qosrun" detach --force rtr-cli >/dev/null 2>&1
  fi
  for ns in qd-cli qd-rtr qd-srv; do ip netns del $ns 2>/dev/null; done
  rm -rf "$LOG"
}
trap cleanup EXIT

# Starts the demo in its own session, waits until the policy is attached and
# being measured, then kills the demo's shell with SIGKILL.
kill_halfway() {  # $1 label
  local out="$LOG/$1.out"
  setsid bash "$ROOT/scripts/demo.sh" --seconds $SECS >"$out" 2>&1 &
  local pid=$! waited=0
  until grep -q "^-- 2/2" "$out" && grep -q "policy 'gaming'" <<<"$(ip netns exec qd-rtr "$BIN/qosrun" status rtr-cli 2>/dev/null)"; do
    sleep 0.5; waited=$((waited + 1))
    [ $waited -le 240 ] || { kill -9 $pid; fail "$1: the demo did not reach its policy within 120 s"; }
    kill -0 $pid 2>/dev/null || fail "$1: the demo ended before its policy was attached"
  done
  sleep 1   # into the measurement with the policy
  kill -9 $pid
  wait $pid 2>/dev/null
  echo "$1: killed the demo (pid $pid) with SIGKILL while its policy was attached"
}

# A budget too small for the run: it must stop by itself, say which step did
# not finish, and clean up.
start=$(date +%s)
timeout -k 5 60 bash "$ROOT/scripts/demo.sh" --seconds $SECS --budget 12 >"$LOG/budget.out" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 124 ] || fail "a demo over its budget exited $rc (expected 124) after ${took}s"
[ $took -le 25 ] || fail "a demo with a 12 s budget took ${took}s"
grep -q "stopped after its budget of 12s: '.*' did not finish" "$LOG/budget.out" || fail "no budget message"
for ns in qd-cli qd-rtr qd-srv; do grep -qw $ns <<<"$(ip netns list)" && fail "namespace $ns left behind after the budget"; done
echo "over budget: $(grep -o "stopped after.*" "$LOG/budget.out") (${took}s)"

kill_halfway killed-1
kill_halfway killed-2
# A user (or a container runtime) deletes the namespaces, policy and all.
for ns in qd-cli qd-rtr qd-srv; do ip netns pids $ns 2>/dev/null | xargs -r kill -9; ip netns del $ns; done
echo "deleted the namespaces of the killed run by hand"

budget=$((4 * (SECS + 10) + 30))
start=$(date +%s)
timeout -k 5 $((budget + 30)) bash "$ROOT/scripts/demo.sh" --seconds $SECS >"$LOG/full.out" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 0 ] || fail "the demo after the killed runs exited $rc after ${took}s (budget ${budget}s)"
grep -q "lower with the policy" "$LOG/full.out" || fail "the demo printed no headline ratio"
grep -q "in a network namespace that no longer exists" "$LOG/full.out" \
  || fail "qosrun attach did not remove the record of the deleted namespace"
grep "lower with the policy" "$LOG/full.out"
echo "the whole demo took ${took}s (budget ${budget}s)"
for ns in qd-cli qd-rtr qd-srv; do grep -qw $ns <<<"$(ip netns list)" && fail "namespace $ns left behind"; done
left=$(ls -d /run/qosc/rtr-cli@* /sys/fs/bpf/qosc/rtr-cli@* 2>/dev/null)
[ -z "$left" ] || fail "records or pins of rtr-cli left behind: $left"
echo "1 passed, 0 failed"
