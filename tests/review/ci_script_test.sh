#!/usr/bin/env bash
# examples/ci/check-policies.sh on a policy repository made here: a change
# that moves traffic passes and shows the reviewer the traffic that changes;
# a change that adds a rule no packet can reach fails the job.
#   ci_script_test.sh QOSC SOURCE_DIR
set -uo pipefail
QOSC=$1 SRC=$2
REPO=$(mktemp -d /tmp/qosc-ci-test.XXXXXX)
trap 'rm -rf "$REPO"' EXIT
fail() { echo "FAIL: $*"; echo "--- output"; cat "$REPO/out.txt" 2>/dev/null; exit 1; }
git() { command git -C "$REPO" -c user.name=ci -c user.email=ci@example.invalid "$@"; }
git init -q -b main
cp "$SRC/examples/gaming.qos" "$SRC/examples/gaming.tests" "$REPO/"
git add . && git commit -qm "policy"
git checkout -q -b change

# 1. Game ports widened: passes; the diff names the traffic that moves.
sed -i 's/3074-3075, /3074-3076, /' "$REPO/gaming.qos"
grep -q "3074-3076" "$REPO/gaming.qos" || fail "the test's edit did not apply"
(cd "$REPO" && QOSC=$QOSC timeout -k 5 120 bash "$SRC/examples/ci/check-policies.sh" main) >"$REPO/out.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "a valid change failed the job (exit $rc)"
grep -q "3076" "$REPO/out.txt" && grep -q "bulk -> gaming" "$REPO/out.txt" \
  || fail "the diff does not show port 3076 moving from bulk to gaming"
echo "valid change: passed, diff shown"

# 2. A rule that earlier rules already cover: the job fails and says why.
sed -i 's/^\(\s*\)rule tcp dport 23 -> drop;/&\n\1rule udp dport 3075 -> bulk;/' "$REPO/gaming.qos"
grep -q "udp dport 3075 -> bulk" "$REPO/gaming.qos" || fail "the test's second edit did not apply"
(cd "$REPO" && QOSC=$QOSC timeout -k 5 120 bash "$SRC/examples/ci/check-policies.sh" main) >"$REPO/out.txt" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "an unreachable rule did not fail the job (exit $rc)"
grep -qi "never match\|unreachable\|can never" "$REPO/out.txt" || fail "no message about the unreachable rule"
echo "unreachable rule: job failed with the reason"
echo "1 passed, 0 failed"
