#!/usr/bin/env bash
# packaging/qosc-service as qosrun@.service runs it, without systemd: in a
# network namespace of its own (qt-svc, veth qt-svc-a/qt-svc-b), with the
# unit's capability bounding set and no_new_privs, and the script run by
# /bin/sh (dash on Debian: the script must stay POSIX).
#   start      compiles IFACE.qos and attaches it (foreground qosrun, the
#              script's own process after exec)
#   reload     a changed policy: generation 1, the new link rate
#   reload     a broken policy: fails, says so, the old policy stays
#   reload     a policy qosrun refuses (injected): the old object comes back
#   start      a missing or broken policy: exit 78 (the unit does not retry)
#   SIGTERM    detaches: nothing attached, the qdiscs as before, no record
#   service_test.sh BINDIR SRCDIR
set -uo pipefail
BIN=${1:?usage: service_test.sh BINDIR SRCDIR}
SRC=${2:?usage: service_test.sh BINDIR SRCDIR}
SCRIPT=$SRC/packaging/qosc-service
UNIT=$SRC/packaging/qosrun@.service.in
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (network namespace, BPF)"; exit 0; fi
for t in nsenter setpriv python3 timeout; do
  command -v $t >/dev/null || { echo "FAIL: '$t' is missing (scripts/setup.sh installs it)"; exit 1; }
done

NS=qt-svc
IF=qt-svc-a
PEER=qt-svc-b
TMP=/tmp/qt-svc
PINS=/sys/fs/bpf/qt-svc
export QOSC_ETC_DIR=$TMP/etc QOSC_LIB_DIR=$TMP/lib QOSC_BIN_DIR=$BIN
export QOSRUN_STATE_ROOT=$TMP/run QOSRUN_PIN_ROOT=$PINS
unset QOSRUN_OPTIONS QOSRUN_RELOAD_OPTIONS

START_PID=""
cleanup() {
  [ -n "$START_PID" ] && kill -9 "$START_PID" 2>/dev/null
  if grep -qw $NS <<<"$(ip netns list)"; then
    timeout -k 3 20 nsenter --net=/run/netns/$NS "$BIN/qosrun" detach --force $IF >/dev/null 2>&1
    ip netns del $NS
  fi
  rm -rf "$TMP" "$PINS"
}
fail() {
  echo "FAIL: $*"
  for f in "$TMP"/*.out "$TMP"/*.err; do [ -s "$f" ] && { echo "--- $f"; cat "$f"; }; done
  cleanup
  exit 1
}
cleanup   # what an earlier, killed run left
trap cleanup EXIT

ip netns add $NS || fail "cannot create namespace $NS"
ip -n $NS link add $IF type veth peer name $PEER || fail "cannot create veth $IF"
ip -n $NS link set $IF up && ip -n $NS link set $PEER up || fail "cannot bring up $IF"
mkdir -p "$QOSC_ETC_DIR" "$TMP"

in_ns() { timeout -k 5 60 nsenter --net=/run/netns/$NS "$@"; }
# The unit's CapabilityBoundingSet, as setpriv spells it (-all,+net_admin,...).
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,+/g')
[ -n "$caps" ] || fail "no CapabilityBoundingSet= in $UNIT"
as_unit() { in_ns setpriv --no-new-privs --bounding-set "-all,+$caps" /bin/sh "$SCRIPT" "$@"; }
status() { in_ns "$BIN/qosrun" status $IF --json; }
field() {  # KEY: from `qosrun status --json`
  status 2>/dev/null | python3 -c "import json,sys; j=json.load(sys.stdin); j=j[0] if isinstance(j, list) else j; print(j.get('$1'))" 2>/dev/null
}
snapshot() { in_ns sh -c "tc qdisc show dev $IF; tc filter show dev $IF egress; ip -d link show dev $IF | grep -o 'xdp[a-z]*' || true"; }

before=$(snapshot)
cp "$SRC/examples/gaming.qos" "$QOSC_ETC_DIR/$IF.qos"

# ---- start: compiled, attached, qosrun is the script's process
t0=$(date +%s.%N)
timeout -k 5 100 nsenter --net=/run/netns/$NS setpriv --no-new-privs --bounding-set "-all,+$caps" \
  /bin/sh "$SCRIPT" start $IF >"$TMP/start.out" 2>"$TMP/start.err" &
TIMEOUT_PID=$!
START_PID=""
for _ in $(seq 1 300); do
  START_PID=$(ps -o pid= --ppid $TIMEOUT_PID | tr -d ' ')
  [ -n "$START_PID" ] && [ "$(field attached)" = True ] && break
  kill -0 $TIMEOUT_PID 2>/dev/null || fail "start ended before the policy was attached"
  sleep 0.2
done
[ "$(field attached)" = True ] || fail "start: no policy attached to $IF after 60 s"
t1=$(date +%s.%N)
echo "start: attached after $(python3 -c "print(f'{$t1 - $t0:.1f}')") s (compile + attach)"
[ "$(cat /proc/$START_PID/comm)" = qosrun ] || fail "the start process (pid $START_PID) is $(cat /proc/$START_PID/comm), not qosrun: the script must exec it"
[ "$(field owner_pid)" = "$START_PID" ] || fail "the record's owner is $(field owner_pid), not the start process $START_PID"
[ "$(field mode)" = foreground ] || fail "mode $(field mode), expected foreground"
[ "$(field generation)" = 0 ] || fail "generation $(field generation) after start"
[ "$(field object)" = "$QOSC_LIB_DIR/$IF.bpf.o" ] || fail "object $(field object)"
want=$(python3 -c "
import sys
names=sys.argv[1].split(',')
caps={'chown':0,'dac_override':1,'net_raw':13,'net_admin':12,'sys_admin':21,'sys_ptrace':19,'perfmon':38,'bpf':39}
print(format(sum(1<<caps[n] for n in names), '016x'))" "$(echo "$caps" | tr -d '+')")
have=$(sed -n 's/^CapBnd:\t//p' /proc/$START_PID/status)
[ "$have" = "$want" ] || fail "qosrun's bounding set is $have, expected $want (the unit's)"
echo "start: qosrun pid $START_PID owns the policy, bounding set $have ($caps)"
grep -q "qosc-service: compiled $QOSC_ETC_DIR/$IF.qos" "$TMP/start.out" || fail "start did not say what it compiled"
# Output captured first: with pipefail, `cmd | grep -q` fails when grep exits before cmd has written all.
grep -q "qdisc htb 1: root" <<<"$(in_ns tc qdisc show dev $IF)" || fail "no HTB root on $IF"

# ---- reload: a changed policy
sed 's/link 1gbit;/link 2gbit;/' "$SRC/examples/gaming.qos" >"$QOSC_ETC_DIR/$IF.qos"
as_unit reload $IF >"$TMP/reload1.out" 2>"$TMP/reload1.err" || fail "reload of a changed policy failed"
[ "$(field generation)" = 1 ] || fail "generation $(field generation) after a reload"
[ "$(field link_bps)" = 2000000000 ] || fail "link $(field link_bps) after reloading to 2gbit"
[ "$(field owner_pid)" = "$START_PID" ] || fail "reload changed the owner"
echo "reload: generation 1, link 2gbit, owner still pid $START_PID"
good=$(sha256sum <"$QOSC_LIB_DIR/$IF.bpf.o")

# ---- reload: a policy that does not compile changes nothing
sed 's/rule tcp dport 23 -> drop;/rule tpc dport 23 -> drop;/' "$SRC/examples/gaming.qos" >"$QOSC_ETC_DIR/$IF.qos"
as_unit reload $IF >"$TMP/reload2.out" 2>"$TMP/reload2.err"
rc=$?
[ $rc -ne 0 ] || fail "reload of a broken policy succeeded"
grep -q "error: expected a match after 'rule'" "$TMP/reload2.err" || fail "qosc's message is not in the reload's output"
grep -q "qosc-service: error: .*$IF.qos does not compile (qosc's messages above): $IF keeps the policy it has" "$TMP/reload2.err" \
  || fail "reload did not say the old policy stays"
[ "$(field generation)" = 1 ] && [ "$(field link_bps)" = 2000000000 ] || fail "a broken policy changed what is attached"
[ "$(sha256sum <"$QOSC_LIB_DIR/$IF.bpf.o")" = "$good" ] || fail "a broken policy changed the object"
echo "reload of a broken policy: exit $rc, '$(grep -o 'qosc-service: error: .*' "$TMP/reload2.err" | sed "s|$TMP|TMP|")'"

# ---- reload: qosrun refuses the new object: the attached policy's object comes back
cp "$SRC/examples/gaming.qos" "$QOSC_ETC_DIR/$IF.qos"
QOSRUN_FAIL_AT=reload-tc as_unit reload $IF >"$TMP/reload3.out" 2>"$TMP/reload3.err"
rc=$?
[ $rc -ne 0 ] || fail "reload with qosrun failing succeeded"
grep -q "injected failure at step 'reload-tc'" "$TMP/reload3.err" || fail "qosrun's error is not in the output"
grep -q "qosrun refused the new policy: $IF keeps the policy it has" "$TMP/reload3.err" || fail "no message for a refused reload"
[ "$(field generation)" = 1 ] && [ "$(field link_bps)" = 2000000000 ] || fail "a refused reload changed what is attached"
[ "$(sha256sum <"$QOSC_LIB_DIR/$IF.bpf.o")" = "$good" ] || fail "a refused reload left the new object in place"
left=$(ls "$QOSC_LIB_DIR")
[ "$left" = "$IF.bpf.o" ] || fail "the lib dir holds more than the attached object: $left"
echo "reload refused by qosrun: exit $rc, object of generation 1 back in place, lib dir: $left"

# ---- start with a missing or broken policy: 78, nothing attached
as_unit start qt-svc-b >"$TMP/missing.out" 2>"$TMP/missing.err"
rc=$?
[ $rc -eq 78 ] || fail "start without a policy exited $rc, expected 78"
grep -q "no policy for qt-svc-b: $QOSC_ETC_DIR/qt-svc-b.qos does not exist" "$TMP/missing.err" || fail "no message for a missing policy"
printf 'policy p { link 10mbit; class a { priority 0; default; }\n' >"$QOSC_ETC_DIR/qt-svc-b.qos"
as_unit start qt-svc-b >"$TMP/broken.out" 2>"$TMP/broken.err"
rc2=$?
[ $rc2 -eq 78 ] || fail "start with a broken policy exited $rc2, expected 78"
grep -q "no qosc policy attached" <<<"$(in_ns "$BIN/qosrun" status qt-svc-b)" || fail "something was attached to qt-svc-b"
as_unit start 'x/../y' >/dev/null 2>"$TMP/name.err" && fail "an interface name with '/' was accepted"
echo "start without a policy: exit $rc; with a broken one: exit $rc2"

# ---- SIGTERM (systemctl stop): detaches
kill -TERM "$START_PID"
for _ in $(seq 1 150); do kill -0 $TIMEOUT_PID 2>/dev/null || break; sleep 0.2; done
kill -0 $TIMEOUT_PID 2>/dev/null && fail "start did not end within 30 s of SIGTERM"
wait $TIMEOUT_PID
rc=$?
START_PID=""
[ $rc -eq 0 ] || fail "the start process exited $rc after SIGTERM"
[ "$(field attached)" = False ] || fail "still attached after SIGTERM"
after=$(snapshot)
[ "$before" = "$after" ] || fail "$IF is not as before: before '$before', after '$after'"
[ -z "$(find "$QOSRUN_STATE_ROOT" -name state.json 2>/dev/null)" ] || fail "a record is left"
[ -z "$(find "$PINS" -type f 2>/dev/null)" ] || fail "pins are left"
echo "SIGTERM: exit 0, nothing attached, '$(echo "$after" | head -1)' as before"
echo "1 passed, 0 failed"
