#!/usr/bin/env bash
# The qosc demo, entirely inside network namespaces it creates:
#
#   client (qd-cli) ── veth ── router (qd-rtr) ── veth ── server (qd-srv)
#                     ^ the router's egress toward the client is the bottleneck
#
# A game-like UDP flow (irtt, 10 ms interval, server port 3074) runs alone,
# then while a saturating TCP download (iperf3 -R, cubic) fills the link —
# first with a plain shaper (HTB + FIFO, what a user has by default once
# something shapes), then with examples/gaming.qos compiled by qosc for the
# link rate and attached by qosrun. The RTTs and the download rate are
# printed side by side, with qosrun's statistics taken during the download.
#
# Usage: scripts/demo.sh [--rate 100mbit] [--seconds 8] [--policy FILE] [--budget S]
# Needs root. Every tool it starts runs under `timeout -k`, and the whole run
# has a budget (default 4 x (seconds + 10) + 30 s) after which it stops, says
# which step did not finish and cleans up (exit 124). It leaves nothing
# behind: the namespaces are deleted by name (a policy on them detached
# first), also before it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${QOSC_BIN:-$ROOT/${QOSC_BUILD_DIR:-build}/bin}
RATE=100mbit
SECS=8
POLICY=examples/gaming.qos
BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --policy) POLICY=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 1 ;;
  esac
done
case "$SECS" in ''|*[!0-9]*) echo "demo: --seconds takes a whole number, e.g. 8" >&2; exit 1 ;; esac
[ "$SECS" -ge 2 ] && [ "$SECS" -le 120 ] || { echo "demo: --seconds must be 2..120" >&2; exit 1; }
BUDGET=${BUDGET:-$((4 * (SECS + 10) + 30))}
case "$BUDGET" in ''|*[!0-9]*|0) echo "demo: --budget takes a whole number of seconds, e.g. 120" >&2; exit 1 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root to create network namespaces (try: sudo $0)" >&2; exit 1; }
for t in irtt iperf3 ip tc ethtool python3 timeout nice; do
  command -v $t >/dev/null || { echo "demo: '$t' is missing; run scripts/setup.sh" >&2; exit 1; }
done
[ -x "$BIN/qosc" ] && [ -x "$BIN/qosrun" ] || { echo "demo: qosc/qosrun not built in $BIN; run scripts/build.sh" >&2; exit 1; }
[ -f "$POLICY" ] || { echo "demo: no policy file '$POLICY'" >&2; exit 1; }

CLI=qd-cli RTR=qd-rtr SRV=qd-srv
CLI_IP=10.77.1.2 SRV_IP=10.77.2.2
WORK=""
STEP="setting up"
WATCHDOG=""
# The measuring tools run at the highest normal-policy priority so that the
# download's own CPU load on a small machine delays irtt's wake-ups less. Not
# a real-time policy: irtt is a Go program whose runtime threads spin-wait for
# each other, and under SCHED_FIFO on two cores they can livelock and ignore
# SIGTERM for good.
PRIO="nice -n -20"

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# A tool in a namespace, killed (TERM, then KILL 3 s later) after $1 seconds.
bounded() { local secs=$1 ns=$2; shift 2; timeout -k 3 "$secs" ip netns exec "$ns" "$@"; }
kill_ns_processes() {
  local ns
  for ns in $CLI $RTR $SRV; do
    ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  done
}
cleanup() {
  set +e
  if [ -n "$WATCHDOG" ]; then
    pkill -P "$WATCHDOG" 2>/dev/null; kill "$WATCHDOG" 2>/dev/null
  fi
  kill_ns_processes
  # Detach before deleting the namespace, so no record or pin outlives it
  # (--force: a record left by a run killed half-way is cleaned up too).
  if grep -qw $RTR <<<"$(ip netns list 2>/dev/null)"; then
    timeout -k 3 20 ip netns exec $RTR "$BIN/qosrun" detach --force rtr-cli >/dev/null 2>&1
  fi
  for ns in $CLI $RTR $SRV; do ip netns del $ns 2>/dev/null; done
  [ -n "$WORK" ] && rm -rf "$WORK"
}
# The trap may run inside a step whose output goes to /dev/null: say it on
# the demo's own stderr, kept as fd 3.
exec 3>&2
on_budget() {
  echo "demo: stopped after its budget of ${BUDGET}s: '$STEP' did not finish; cleaning up" >&3
  exit 124
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap on_budget USR1
cleanup
set -e
WORK=$(mktemp -d /tmp/qosc-demo.XXXXXX)
# The watchdog: when the budget is spent it tells this shell to stop and kills
# what runs in the demo's namespaces, so the step waiting on it returns. If
# this shell was killed outright (its watchdog is then an orphan), it does
# nothing: the namespaces may belong to the next run by then.
( me=$BASHPID
  sleep "$BUDGET"
  [ "$(ps -o ppid= -p "$me" | tr -d ' ')" = "$$" ] || exit 0
  kill -USR1 $$ 2>/dev/null; kill_ns_processes ) 2>/dev/null &   # quiet when the cleanup stops it
WATCHDOG=$!
disown $WATCHDOG

# ---- topology ------------------------------------------------------------------------
ip netns add $CLI; ip netns add $RTR; ip netns add $SRV
ip link add cli-rtr netns $CLI type veth peer name rtr-cli netns $RTR
ip link add rtr-srv netns $RTR type veth peer name srv-rtr netns $SRV
nsx $CLI ip addr add $CLI_IP/24 dev cli-rtr; nsx $RTR ip addr add 10.77.1.1/24 dev rtr-cli
nsx $RTR ip addr add 10.77.2.1/24 dev rtr-srv; nsx $SRV ip addr add $SRV_IP/24 dev srv-rtr
for ns in $CLI $RTR $SRV; do nsx $ns ip link set lo up; done
nsx $CLI ip link set cli-rtr up; nsx $RTR ip link set rtr-cli up
nsx $RTR ip link set rtr-srv up; nsx $SRV ip link set srv-rtr up
nsx $CLI ip route add default via 10.77.1.1; nsx $SRV ip route add default via 10.77.2.1
nsx $RTR sysctl -qw net.ipv4.ip_forward=1
# New namespaces inherit the host's congestion control (often bbr, which hides
# bufferbloat); pin cubic, as most of the Internet's senders use.
for ns in $CLI $SRV; do nsx $ns sysctl -qw net.ipv4.tcp_congestion_control=cubic 2>/dev/null || true; done
# The bottleneck carries real frames, as a NIC's queue would: without this the
# queue would hold 64 KB GSO super-packets (see shared design notes on GSO).
for pair in "$CLI cli-rtr" "$RTR rtr-cli" "$RTR rtr-srv" "$SRV srv-rtr"; do
  set -- $pair; nsx $1 ethtool -K $2 gso off tso off gro off >/dev/null 2>&1 || true
done

# The servers live as long as the demo at most (and die with its namespaces).
nsx $SRV sh -c "timeout -k 3 $BUDGET $PRIO irtt server -b $SRV_IP:3074 >/dev/null 2>&1 &"
nsx $SRV sh -c "timeout -k 3 $BUDGET iperf3 -s -B $SRV_IP >/dev/null 2>&1 &"
sleep 0.5

# ---- measurements ------------------------------------------------------------------------
# The game flow (irtt, the tool users know) and beside it ping: its echo is
# answered in the server's kernel and stamped on arrival by the client's
# kernel (SO_TIMESTAMP), so a busy CPU adds little to it, while irtt's RTTs
# include its own wake-ups on both ends.
irtt_run() {  # $1 label: game flow for SECS seconds
  STEP="irtt client ($1)"
  bounded $((SECS + 10)) $CLI $PRIO ping -n -i 0.01 -c $((SECS * 100)) -w $((SECS + 2)) $SRV_IP \
    >"$WORK/$1.ping.txt" 2>&1 &   # exits 1 when a reply is missing: the summary counts them
  local probe=$!
  bounded $((SECS + 10)) $CLI $PRIO irtt client -Q -i 10ms -d ${SECS}s \
    -o "$WORK/$1.irtt.json" $SRV_IP:3074 >/dev/null 2>&1 || echo "demo: irtt ($1) did not finish" >&2
  STEP="ping ($1)"
  wait $probe || true
}
measure_idle() { irtt_run "$1-idle"; }
measure_load() {  # $1 label; $2: command to run in the middle of the download (optional)
  local label=$1-load
  bounded $((SECS + 15)) $CLI iperf3 -c $SRV_IP -R -C cubic -t $((SECS + 3)) -J \
    >"$WORK/$label.iperf.json" 2>/dev/null &
  local dl=$!
  sleep 2    # the queue fills and cubic reaches its steady state
  local mid=""
  if [ -n "${2:-}" ]; then ( sleep $((SECS / 2)); eval "$2" ) & mid=$!; fi
  irtt_run "$label"
  STEP="iperf3 download ($label)"
  wait $dl || echo "demo: iperf3 ($label) did not finish" >&2
  if [ -n "$mid" ]; then wait "$mid" || true; fi
}

echo "== qosc demo: bottleneck $RATE, ${SECS}s per measurement (namespaces $CLI, $RTR, $SRV)"
echo "-- 1/2 without QoS: HTB $RATE + FIFO on the router"
STEP="plain shaper"
nsx $RTR tc qdisc add dev rtr-cli root handle 1: htb default 1
nsx $RTR tc class add dev rtr-cli parent 1: classid 1:1 htb rate $RATE quantum 1514
nsx $RTR tc qdisc add dev rtr-cli parent 1:1 handle 10: pfifo limit 1000
measure_idle fifo; measure_load fifo
nsx $RTR tc qdisc del dev rtr-cli root

echo "-- 2/2 with $POLICY: qosc --link $RATE, qosrun attach"
STEP="qosc $POLICY"
timeout -k 3 60 "$BIN/qosc" "$POLICY" --link "$RATE" -o "$WORK/policy.bpf.o" 2>"$WORK/qosc.log" \
  || { cat "$WORK/qosc.log" >&2; exit 1; }
STEP="qosrun attach"
bounded 30 $RTR "$BIN/qosrun" attach "$WORK/policy.bpf.o" rtr-cli
measure_idle qosc
measure_load qosc "timeout -k 3 10 ip netns exec $RTR $BIN/qosrun stats rtr-cli --flows 4 >$WORK/stats.txt 2>&1"
STEP="qosrun detach"
bounded 30 $RTR "$BIN/qosrun" detach rtr-cli

echo
echo "-- qosrun stats rtr-cli, during the download:"
sed 's/^/   /' "$WORK/stats.txt" 2>/dev/null || true
echo
STEP="the summary"
timeout -k 3 30 python3 - "$WORK" "$RATE" "$POLICY" <<'PY'
import json, os, re, sys
work, rate, policy = sys.argv[1], sys.argv[2], sys.argv[3]
def pct(v, p):
    if not v: return float('nan')
    v = sorted(v); k = (len(v) - 1) * p / 100.0; f = int(k); c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)
def irtt(label):
    try:
        d = json.load(open(os.path.join(work, label + ".irtt.json")))
    except Exception:
        return None
    rtts, lost = [], 0
    for rt in d.get("round_trips", []):
        if rt.get("lost", "false") != "false": lost += 1
        else: rtts.append(rt["delay"]["rtt"] / 1e6)
    n = len(rtts) + lost
    return {"p50": pct(rtts, 50), "p99": pct(rtts, 99), "max": max(rtts) if rtts else float('nan'),
            "loss": 100.0 * lost / n if n else float('nan')}
def ping(label):
    try:
        txt = open(os.path.join(work, label + ".ping.txt")).read()
    except Exception:
        return None
    rtts = [float(m) for m in re.findall(r"time=([0-9.]+) ms", txt)]
    return {"p50": pct(rtts, 50), "p99": pct(rtts, 99)} if rtts else None
def iperf(label):
    try:
        return json.load(open(os.path.join(work, label + ".iperf.json")))["end"]["sum_received"]["bits_per_second"] / 1e6
    except Exception:
        return None
cols = [("without QoS (HTB+FIFO)", "fifo"), (f"with {os.path.basename(policy)}", "qosc")]
res = {k: {"idle": irtt(k + "-idle"), "load": irtt(k + "-load"), "bw": iperf(k + "-load"),
           "ping_idle": ping(k + "-idle"), "ping_load": ping(k + "-load")} for _, k in cols}
def cell(r, key, fmt):
    return "n/a" if r is None or r.get(key) != r.get(key) else fmt.format(r[key])
rows = [
    ("game RTT idle, p50 / p99", lambda k: f"{cell(res[k]['idle'], 'p50', '{:.2f}')} / {cell(res[k]['idle'], 'p99', '{:.2f}')} ms"),
    ("game RTT under download, p50", lambda k: cell(res[k]['load'], 'p50', '{:.2f} ms')),
    ("game RTT under download, p99", lambda k: cell(res[k]['load'], 'p99', '{:.2f} ms')),
    ("game RTT under download, max", lambda k: cell(res[k]['load'], 'max', '{:.2f} ms')),
    ("game packets lost under download", lambda k: cell(res[k]['load'], 'loss', '{:.1f} %')),
    ("download throughput", lambda k: "n/a" if res[k]['bw'] is None else f"{res[k]['bw']:.1f} Mbit/s"),
    ("ping RTT idle / under download, p99", lambda k: f"{cell(res[k]['ping_idle'], 'p99', '{:.2f}')} / {cell(res[k]['ping_load'], 'p99', '{:.2f}')} ms"),
]
w0 = 34
print(f"{'bottleneck ' + rate:<{w0}}" + "".join(f"{c:>26}" for c, _ in cols))
for name, f in rows:
    print(f"{name:<{w0}}" + "".join(f"{f(k):>26}" for _, k in cols))
f, q = res["fifo"]["load"], res["qosc"]["load"]
if f and q and q["p99"] == q["p99"] and f["p99"] == f["p99"] and q["p99"] > 0:
    print(f"\nunder the download the game flow's p99 RTT is {f['p99'] / q['p99']:.0f}x lower with the policy")
qi = res["qosc"]["idle"]
if q and qi and q["p99"] == q["p99"] and qi["p99"] == qi["p99"]:
    print(f"with the policy, its p99 under the download is {q['p99'] - qi['p99']:+.2f} ms from its idle p99")
print("(ping's echo is answered and time-stamped in the kernels, so it shows the network's part of the RTT\n"
      " with less of this machine's CPU scheduling noise than irtt; its class is the policy's choice for ICMP)")
PY
