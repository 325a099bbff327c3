#!/usr/bin/env bash
# Soak of live host tables (docs/hosts.md, "Soak"): APPLIES host-table
# applies and RELOADS policy reloads, interleaved, while one host that is in
# every table ("steady") receives UDP at ~1,000 packets a second. Before and
# after (the same table applied again), it counts what could leak:
#   - on the interface: HTB classes, qdiscs, tc filters (the kernel objects a
#     host is made of), XDP and TC programs attached;
#   - qosrun's BPF objects: pins under its pin root, and the maps the
#     attached programs use (by id, so other users of the machine do not count);
#   - the machine's BPF programs and maps in all (bpftool; shown, not compared:
#     others may load programs meanwhile);
#   - files under the state root (records, placements, journals).
# qosrun is a command that exits: no process of it outlives a command, so
# its own file descriptors cannot pile up; what a command leaves is counted above.
# Every packet sent to steady must arrive, and some applies must have taken
# the quick path (those whose tables keep the plans' rates). Runs as root in namespaces of its
# own (${QOSC_NS_PREFIX}qh-soak-a/-b):
#   sudo bench/hosts/soak.sh [APPLIES [RELOADS]]     (default 1000 and 200)
# Exit status 0 when nothing leaked and nothing was lost (77: not root); the
# summary is printed. The suite runs a short one (ctest -R HostsSoakShort).
set -euo pipefail
cd "$(dirname "$0")/../.."
APPLIES=${1:-1000}
RELOADS=${2:-200}
BUILD_DIR=${QOSC_BUILD_DIR:-build}
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, BPF)" >&2; exit 77; }
[ -n "${QOSC_SOAK_NO_BUILD:-}" ] || bash scripts/build.sh qosc qosrun
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
QOSC=$BUILD_DIR/bin/qosc
QOSRUN=$BUILD_DIR/bin/qosrun
source bench/hosts/pair.sh
pair_init soak
SENDER=
cleanup() {
  [ -n "$SENDER" ] && kill "$SENDER" 2>/dev/null || true
  pair_down
}
trap cleanup EXIT
trap "exit 1" INT TERM
pair_up

# Two policies that differ in plan rates: every reload changes classes in place.
timeout -k 5 120 "$QOSC" examples/isp.qos --link 1gbit -o "$WORK/isp.bpf.o"
sed 's/plan basic { rate 20mbit;/plan basic { rate 25mbit;/' examples/isp.qos >"$WORK/isp2.qos"
grep -q 'rate 25mbit' "$WORK/isp2.qos" || { echo "soak: examples/isp.qos has no 'plan basic { rate 20mbit;'" >&2; exit 1; }
timeout -k 5 120 "$QOSC" "$WORK/isp2.qos" --link 1gbit -o "$WORK/isp2.bpf.o"
# Tables: steady (b's own address, premium, in every table) and 150 of a
# pool of 300 hosts on random plans: each apply adds, changes and removes.
python3 - "$WORK" "$APPLIES" <<'PY'
import random, sys
work, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(11)
plans = ["basic", "premium", "business"]
def write(path, hosts):
    with open(path, "w") as f:
        f.write("host,plan,prefixes\nsteady,premium,10.77.0.2\n")
        for i in sorted(hosts):
            f.write(f"h{i},{hosts[i]},10.88.{i // 250}.{i % 250 + 1}\n")
write(f"{work}/t0.csv", {i: "basic" for i in range(150)})
for k in range(n):
    write(f"{work}/t{k + 1}.csv", {i: rnd.choice(plans) for i in rnd.sample(range(300), 150)})
PY

attached_ids() {   # the programs attached to $IF (XDP, clsact, the host groups' filters), each id once
  q bpftool -j net show dev $IF | python3 -c '
import json, sys
ids = {p["id"] for s in json.load(sys.stdin) for h in ("xdp", "tc") for p in s.get(h, [])}
print(*sorted(ids))'
}
# What the kernel holds beyond what the placement says the hosts hold (2 classes,
# 1 qdisc and 1 filter per group; per host its class and one leaf + bfifo per
# class of its plan): a leak shows as a number that grows.
counts() {
  local placement classes qdiscs filters ids maps
  placement=$(find "$QOSRUN_STATE_ROOT" -name hosts.state | head -1)
  read -r groups implied_classes implied_qdiscs < <(python3 - "$placement" <<'PY'
import sys
g = c = q = 0
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "group":
        g += 1
    elif f[0] == "host":
        leaves = len(f[9].split()) if f[9] else 0
        c += 1 + leaves
        q += leaves
print(g, 2 * g + c, g + q)
PY
)
  classes=$(q tc class show dev $IF | grep -c '^class htb' || true)
  qdiscs=$(q tc qdisc show dev $IF | grep -c '^qdisc' || true)
  filters=$(for g in $(q tc qdisc show dev $IF | awk '$2 == "htb" && $3 != "1:" {print $3}'); do
              q tc filter show dev $IF parent $g | grep -c 'bpf.* handle ' || true; done | awk '{s += $1} END {print s + 0}')
  ids=$(attached_ids)
  maps=$(for id in $ids; do bpftool -j prog show id "$id" | python3 -c 'import json,sys; print(*json.load(sys.stdin).get("map_ids", []))'; done | tr ' ' '\n' | sort -un | grep -c . || true)
  echo "HTB classes beyond the hosts' $((classes - implied_classes)) (of $classes)"
  echo "qdiscs beyond the hosts' $((qdiscs - implied_qdiscs)) (of $qdiscs)"
  echo "group filters beyond one per group $((filters - groups)) (of $filters)"
  echo "programs attached beyond XDP, TC and one per group $(( $(q bpftool -j net show dev $IF | python3 -c 'import json,sys; print(sum(len(s.get(h, [])) for s in json.load(sys.stdin) for h in ("xdp", "tc")))') - 2 - groups ))"
  echo "maps of the attached programs $maps"
  # (`ip netns exec` remounts /sys: bpffs is not mounted under it there, so
  # qosrun finds its maps by id; this counts what it pinned on the machine's bpffs.)
  echo "pins $(find "$QOSRUN_PIN_ROOT" 2>/dev/null | wc -l)"
  echo "state files $(find "$QOSRUN_STATE_ROOT" -type f | wc -l)"
}
machine() { echo "machine: $(bpftool prog show | grep -c '^[0-9]*:' || true) BPF programs, $(bpftool map show | grep -c '^[0-9]*:' || true) BPF maps"; }

q timeout -k 5 60 "$QOSRUN" attach "$WORK/isp.bpf.o" $IF --hosts "$WORK/t0.csv" >/dev/null
before=$(counts)
machine_before=$(machine)

# Traffic to steady: numbered UDP datagrams, counted on the other side.
ip netns exec $NS_B timeout -k 2 3600 python3 - "$WORK/received" <<'PY' &
import socket, sys, signal
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("10.77.0.2", 5009))
s.settimeout(1.0)
seen = set()
# SIGTERM only asks: a datagram received is always counted before the loop ends.
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    try:
        d, _ = s.recvfrom(64)
        seen.add(int(d))
    except socket.timeout:
        pass
open(sys.argv[1], "w").write(f"{len(seen)}\n")
PY
RECEIVER=$!
sleep 0.5
ip netns exec $NS_A timeout -k 2 3600 python3 - "$WORK/sent" <<'PY' &
import socket, sys, signal, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
# SIGTERM only asks: a datagram sent is always counted (a handler that wrote n
# could run between sendto and n += 1, and one packet more arrived than was counted).
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
t = time.monotonic()
while not stop:
    s.sendto(b"%d" % n, ("10.77.0.2", 5009))
    n += 1
    t += 0.001
    time.sleep(max(0, t - time.monotonic()))
open(sys.argv[1], "w").write(f"{n}\n")
PY
SENDER=$!

t0=$(date +%s.%N)
fails=0
quick=0   # applies that took the quick path (docs/hosts.md, "Cost")
every=$(( RELOADS > 0 ? (APPLIES + RELOADS - 1) / RELOADS : APPLIES + 1 ))
reloads=0
for k in $(seq 1 "$APPLIES"); do
  q timeout -k 5 60 "$QOSRUN" -vv hosts apply $IF "$WORK/t$k.csv" >"$WORK/last" 2>&1 || { fails=$((fails + 1)); cat "$WORK/last" >&2; }
  grep -q "hosts apply: quick path:" "$WORK/last" && quick=$((quick + 1))
  if [ $((k % every)) = 0 ] && [ $reloads -lt "$RELOADS" ]; then
    obj=$WORK/isp.bpf.o; [ $((reloads % 2)) = 0 ] && obj=$WORK/isp2.bpf.o
    q timeout -k 5 60 "$QOSRUN" reload "$obj" $IF >"$WORK/last" 2>&1 || { fails=$((fails + 1)); cat "$WORK/last" >&2; }
    reloads=$((reloads + 1))
  fi
done
while [ $reloads -lt "$RELOADS" ]; do
  obj=$WORK/isp.bpf.o; [ $((reloads % 2)) = 0 ] && obj=$WORK/isp2.bpf.o
  q timeout -k 5 60 "$QOSRUN" reload "$obj" $IF >"$WORK/last" 2>&1 || { fails=$((fails + 1)); cat "$WORK/last" >&2; }
  reloads=$((reloads + 1))
done
# Back to where it started: the first policy, the first table.
[ $((reloads % 2)) = 1 ] && q timeout -k 5 60 "$QOSRUN" reload "$WORK/isp.bpf.o" $IF >/dev/null
q timeout -k 5 60 "$QOSRUN" hosts apply $IF "$WORK/t0.csv" >/dev/null
t1=$(date +%s.%N)
sleep 0.5
kill -TERM $SENDER; wait $SENDER 2>/dev/null || true
SENDER=
sleep 1.2
kill -TERM $RECEIVER; wait $RECEIVER 2>/dev/null || true
after=$(counts)
machine_after=$(machine)
sent=$(cat "$WORK/sent") received=$(cat "$WORK/received")

leak=0
# The totals (of N) follow the placement, which may hold another group after
# so many changes; what lies beyond the placement must not grow.
[ "$(echo "$before" | sed 's/ (of [0-9]*)//')" = "$(echo "$after" | sed 's/ (of [0-9]*)//')" ] || leak=1
echo "hosts soak, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r): $APPLIES applies ($quick by the quick path) and $reloads reloads in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s, $fails failed"
echo "before (after attach with t0):"; echo "$before" | sed 's/^/  /'
echo "after (t0 applied again):"; echo "$after" | sed 's/^/  /'
echo "$machine_before (before); $machine_after (after; other users of the machine count too)"
echo "steady: $sent sent, $received received, $((sent - received)) lost"
# Some applies keep the plans' rates (same counts per plan) and take the quick
# path: the soak checks both paths against the kernel.
if [ $leak = 0 ] && [ $fails = 0 ] && [ "$sent" = "$received" ] && [ "$sent" -gt 0 ] && [ "$quick" -gt 0 ]; then
  echo "soak: ok"
else
  echo "soak: FAILED (leak=$leak, failed commands=$fails, lost=$((sent - received)), quick applies=$quick)"
  exit 1
fi
