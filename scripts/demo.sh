#!/usr/bin/env bash
# The qosc demo, entirely inside network namespaces it creates:
#
#   client (qd-cli) ── veth ── router (qd-rtr) ── veth ── server (qd-srv)
#                     ^ router egress toward the client is the bottleneck
#
# A game-like UDP flow (irtt, 10 ms interval, server port 3074) runs alone,
# then while a saturating TCP download (iperf3 -R, cubic) fills the link —
# first with a plain shaper (HTB + FIFO, what a user has by default once
# something shapes), then with examples/gaming.qos compiled by qosc and
# attached by qosrun. The RTTs and the download rate are printed side by side.
#
# Usage: scripts/demo.sh [--rate 100mbit] [--seconds 10] [--policy FILE]
# Needs root. Leaves nothing behind (namespaces are deleted by name).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${QOSC_BIN:-$ROOT/${QOSC_BUILD_DIR:-build}/bin}
RATE=100mbit
SECS=10
POLICY=examples/gaming.qos
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --policy) POLICY=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root to create network namespaces (try: sudo $0)" >&2; exit 1; }
for t in irtt iperf3 ip tc python3; do command -v $t >/dev/null || { echo "demo: '$t' is missing; run scripts/setup.sh" >&2; exit 1; }; done
[ -x "$BIN/qosc" ] && [ -x "$BIN/qosrun" ] || { echo "demo: qosc/qosrun not built in $BIN; run scripts/build.sh" >&2; exit 1; }

CLI=qd-cli RTR=qd-rtr SRV=qd-srv
WORK=$(mktemp -d /tmp/qosc-demo.XXXXXX)
cleanup() {
  set +e
  ip netns exec $RTR "$BIN/qosrun" detach rtr-cli >/dev/null 2>&1
  for ns in $CLI $RTR $SRV; do
    ip netns pids $ns 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del $ns 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
cleanup; WORK=$(mktemp -d /tmp/qosc-demo.XXXXXX)

in() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ip netns add $CLI; ip netns add $RTR; ip netns add $SRV
ip link add cli-rtr netns $CLI type veth peer name rtr-cli netns $RTR
ip link add rtr-srv netns $RTR type veth peer name srv-rtr netns $SRV
in $CLI ip addr add 10.77.1.2/24 dev cli-rtr; in $RTR ip addr add 10.77.1.1/24 dev rtr-cli
in $RTR ip addr add 10.77.2.1/24 dev rtr-srv; in $SRV ip addr add 10.77.2.2/24 dev srv-rtr
for ns in $CLI $RTR $SRV; do in $ns ip link set lo up; done
in $CLI ip link set cli-rtr up; in $RTR ip link set rtr-cli up; in $RTR ip link set rtr-srv up; in $SRV ip link set srv-rtr up
in $CLI ip route add default via 10.77.1.1; in $SRV ip route add default via 10.77.2.1
in $RTR sysctl -qw net.ipv4.ip_forward=1
# The shaped link carries full-size frames, as a real NIC would after GRO/GSO
# is undone; see docs/benchmarks.md for why GSO is off on the bottleneck.
in $RTR ethtool -K rtr-cli gso off tso off gro off >/dev/null 2>&1 || true

in $SRV irtt server -b 10.77.2.2:3074 >/dev/null 2>&1 &
in $SRV iperf3 -s -B 10.77.2.2 -D -1 >/dev/null 2>&1 || true
sleep 0.5

measure() {  # $1 label, $2 with-load(0/1) -> writes $WORK/$1.json
  local label=$1 load=$2
  if [ "$load" = 1 ]; then
    in $SRV iperf3 -s -B 10.77.2.2 -D -1 >/dev/null 2>&1 || true; sleep 0.3
    in $CLI iperf3 -c 10.77.2.2 -R -C cubic -t $((SECS + 3)) -J >"$WORK/$label.iperf.json" 2>/dev/null &
    local ip=$!; sleep 2
  fi
  in $CLI irtt client -i 10ms -d ${SECS}s -Q -o "$WORK/$label.irtt.json" 10.77.2.2:3074 >/dev/null 2>&1 || true
  if [ "$load" = 1 ]; then wait $ip || true; fi
}

summary() {  # prints one table row per label
  python3 - "$WORK" "$@" <<'PY'
import json, sys, os, gzip
work, labels = sys.argv[1], sys.argv[2:]
def pct(v, p):
    if not v: return float('nan')
    v = sorted(v); k = (len(v) - 1) * p / 100.0; f = int(k); c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)
print(f"{'configuration':<28}{'RTT p50 ms':>11}{'p99 ms':>10}{'max ms':>10}{'loss %':>8}{'download Mbit/s':>17}")
for lab in labels:
    path = os.path.join(work, lab + ".irtt.json")
    rtts, lost, total = [], 0, 0
    try:
        d = json.load(open(path))
        for rt in d.get("round_trips", []):
            total += 1
            if rt.get("lost", "false") != "false": lost += 1; continue
            rtts.append(rt["delay"]["rtt"] / 1e6)
    except Exception as e:
        print(f"{lab:<28} (no irtt result: {e})"); continue
    bw = "-"
    ip = os.path.join(work, lab + ".iperf.json")
    if os.path.exists(ip):
        try: bw = f"{json.load(open(ip))['end']['sum_received']['bits_per_second']/1e6:.1f}"
        except Exception: bw = "?"
    loss = 100.0 * lost / total if total else float('nan')
    print(f"{lab:<28}{pct(rtts,50):>11.2f}{pct(rtts,99):>10.2f}{max(rtts) if rtts else float('nan'):>10.2f}{loss:>8.1f}{bw:>17}")
PY
}

echo "== qosc demo: bottleneck $RATE, ${SECS}s per measurement"
# 1. plain shaper, FIFO behind it
in $RTR tc qdisc add dev rtr-cli root handle 1: htb default 1
in $RTR tc class add dev rtr-cli parent 1: classid 1:1 htb rate $RATE
echo "-- without QoS (HTB $RATE + FIFO): idle, then under a download"
measure fifo-idle 0; measure fifo-load 1
in $RTR tc qdisc del dev rtr-cli root

# 2. qosc with the policy, compiled for this link rate
echo "-- with $POLICY (qosc --link $RATE)"
"$BIN/qosc" "$POLICY" --link "$RATE" -o "$WORK/policy.bpf.o"
in $RTR "$BIN/qosrun" attach "$WORK/policy.bpf.o" rtr-cli
measure qosc-idle 0; measure qosc-load 1
echo "-- qosrun stats after the run:"
in $RTR "$BIN/qosrun" stats rtr-cli || true
in $RTR "$BIN/qosrun" detach rtr-cli

echo
summary fifo-idle fifo-load qosc-idle qosc-load
