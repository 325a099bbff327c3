#!/usr/bin/env bash
# bench/mq/run.sh: shaped throughput with one HTB for the interface vs one
# HTB per TX queue (issue 11, "every core"; docs/hosts.md). Not part of the
# test suite; needs root; about 2 minutes.
#
#   bench/mq/run.sh [--runs N] [--secs S] [--per-cpu] [--direct] [--cpumap] [--build DIR] [--out DIR]
#
# Three namespaces, every veth with 2 TX and 2 RX queues:
#   qm-snd [qm-s0] -- [qm-r0] qm-rtr [qm-r1] -- [qm-k0] qm-sink
# trafgen sends 64-byte UDP frames from both CPUs (each in turn to host h000
# at 10.72.0.1 and to h064 at 10.72.64.1, 4096 flows each); the router
# forwards them out of qm-r1, where `qosrun attach` put a policy with hosts
# (link 10gbit, 128 hosts of a plan whose ceiling is the link: nothing is
# limited by a rate, only by how fast the shaper runs); the sink drops them
# in XDP. On veth every hop runs on the sending CPU, so each CPU carries its
# own packets through the router's qdisc.
#
# Configurations, interleaved per repetition:
#   none    no qdisc on qm-r1 (veth's noqueue): the forwarding ceiling
#   htb1    attach --hosts --tx-queues 1: one HTB, one lock for both CPUs
#   mq2     attach --hosts (auto: 2 TX queues): mq + one HTB per queue; h000's
#           group is on queue 1, h064's on queue 0: two locks, two qdisc runs
#   (--cpumap adds:)
#   mq2steer mq2 attached with --steer-from qm-r0: qosc's steering program on
#           the router's ingress sends each host's packet through a cpumap to
#           the CPU of its queue, so a host's packets take one CPU's way through
#           forwarding, TC and their queue's HTB, wherever they came in
#   htb1cpu htb1, and on qm-r0 the bench's own cpumap program (xdp_cpumap.bpf.c:
#           the same split of the hosts over the 2 CPUs, which qosrun does not
#           offer with one HTB): what a cpumap gives without a queue per CPU
# Measured: packets per second qm-r1 sent (its tx_packets), and what trafgen
# offered (qm-s0's tx_packets). Writes OUT/runs.csv and OUT/summary.txt.
#
# --per-cpu: CPU 0 sends only to h000 (queue 1) and CPU 1 only to h064
# (queue 0), as when a NIC's receive queues are steered by host: with mq2
# each CPU then takes only its own queue's lock.
# --direct: trafgen runs in qm-rtr and sends on qm-r1 itself through the
# qdisc path (trafgen -q: dev_queue_xmit, so the TC program and the qdisc
# run), without the first veth hop and the forwarding: more of each CPU's
# time is the shaper's, so its lock weighs more.
#
# Holds /tmp/qosc-measuring while measuring (waits up to 10 min for it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build
out=$here/results
runs=3
secs=6
direct=0
per_cpu=0
cpumap=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --direct) direct=1; shift ;;
    --per-cpu) per_cpu=1; shift ;;
    --cpumap) cpumap=1; shift ;;
    --build) build=$(realpath "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
for t in trafgen tc clang-19 nsenter bpftool; do
  command -v "$t" >/dev/null || { echo "run.sh: $t is missing: scripts/setup.sh installs it" >&2; exit 1; }
done
qosc=$build/bin/qosc
qosrun=$build/bin/qosrun
[ -x "$qosc" ] && [ -x "$qosrun" ] || { echo "run.sh: build qosc and qosrun first" >&2; exit 1; }

mkdir -p "$out/raw"
work=$(mktemp -d /tmp/qm-bench.XXXXXX)
cpumap_pin=/sys/fs/bpf/qm-bench-cpumap
holding=0
down() { local ns; for ns in qm-snd qm-rtr qm-sink; do ip netns del "$ns" 2>/dev/null || true; done; }
cleanup() {
  set +e
  nsenter --net=/run/netns/qm-rtr "$qosrun" detach qm-r1 >/dev/null 2>&1
  down
  rm -rf "$cpumap_pin" "$cpumap_pin-maps"
  [ "$holding" = 1 ] && rm -f /tmp/qosc-measuring
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c "$here/xdp_drop.bpf.c" -o "$work/drop.o"
clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c "$here/xdp_cpumap.bpf.c" -o "$work/cpumap.o"
cat >"$work/mq.qos" <<'QOS'
policy mqbench {
    link 10gbit;
    scheduler strict_priority;
    class game { priority 0; }
    class bulk { priority 5; default; }
    rule udp dport 3074 -> game;
    plan flat { rate 50mbit; ceil 10gbit; }
    hosts daddr;
}
QOS
"$qosc" "$work/mq.qos" -o "$work/mq.bpf.o" >"$out/raw/qosc.log" 2>&1 || { cat "$out/raw/qosc.log" >&2; exit 1; }
{ echo "host,plan,prefixes"; for i in $(seq 0 127); do printf 'h%03d,flat,10.72.%d.0/24\n' "$i" "$i"; done; } >"$work/hosts.csv"
cp "$work/mq.qos" "$work/hosts.csv" "$out/raw/"

mac() { ip -n "$1" -j link show dev "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'; }
up() {
  down
  ip netns add qm-snd && ip netns add qm-rtr && ip netns add qm-sink
  local mq="numtxqueues 2 numrxqueues 2"
  ip link add name qm-s0 $mq netns qm-snd type veth peer name qm-r0 $mq netns qm-rtr
  ip link add name qm-r1 $mq netns qm-rtr type veth peer name qm-k0 $mq netns qm-sink
  ip -n qm-snd addr add 10.71.0.1/24 dev qm-s0
  ip -n qm-rtr addr add 10.71.0.2/24 dev qm-r0
  ip -n qm-rtr addr add 10.71.1.2/24 dev qm-r1
  ip -n qm-sink addr add 10.71.1.1/24 dev qm-k0
  local ns; for ns in qm-snd qm-rtr qm-sink; do ip -n "$ns" link set lo up; done
  ip -n qm-snd link set qm-s0 up; ip -n qm-rtr link set qm-r0 up; ip -n qm-rtr link set qm-r1 up
  ip -n qm-sink link set qm-k0 up
  ip netns exec qm-rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.qm-r0.rp_filter=0 net.ipv4.conf.qm-r1.rp_filter=0
  ip -n qm-rtr route add 10.72.0.0/16 via 10.71.1.1 dev qm-r1
  ip -n qm-rtr neigh replace 10.71.1.1 lladdr "$(mac qm-sink qm-k0)" dev qm-r1 nud permanent
  ip -n qm-sink link set dev qm-k0 xdpdrv obj "$work/drop.o" sec xdp
}
up
rmac=$(mac qm-rtr qm-r0)
# Two packets: one to h000 (its group is on queue 1), one to h064 (queue 0);
# each of trafgen's 2 processes (one per CPU) sends both in turn, as a NIC's
# receive CPUs carry every host's packets for a router, or, with --per-cpu,
# CPU 0 only the first and CPU 1 only the second.
if [ "$direct" = 1 ]; then
  dmac=$(mac qm-sink qm-k0); src_ip=10.71.1.2; snd_ns=qm-rtr; snd_dev=qm-r1; qpath=-q
else
  dmac=$rmac; src_ip=10.71.0.1; snd_ns=qm-snd; snd_dev=qm-s0; qpath=
fi
if [ "$per_cpu" = 0 ]; then
  cat >"$work/flows.cfg" <<EOF
{
  eth(da=$dmac, type=0x0800),
  ipv4(sa=$src_ip, da=10.72.0.1, ttl=64),
  udp(sp=dinc(10000, 14095), dp=20000),
  fill(0x00, 18)
}
{
  eth(da=$dmac, type=0x0800),
  ipv4(sa=$src_ip, da=10.72.64.1, ttl=64),
  udp(sp=dinc(10000, 14095), dp=20000),
  fill(0x00, 18)
}
EOF
else
  # trafgen 0.6.8 sends nothing when cpu(N): packets use eth()/ipv4()/udp():
  # the same frame in raw bytes (IPv4 checksum by csumip, UDP checksum 0,
  # 256 source ports).
  raw() {  # CPU THIRD-OCTET
    local d s
    d=$(echo "$dmac" | sed 's/\([0-9a-f][0-9a-f]\)/0x\1/g; s/:/, /g')
    s=$(echo "$src_ip" | tr . ,)
    echo "cpu($1): { $d, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800), 0x45, 0x00, c16(46), c16(0), c16(0x4000), 64, 17, csumip(14, 33), $s, 10, 72, $2, 1, 0x27, dinc(0, 255), c16(20000), c16(26), c16(0), fill(0x00, 18) }"
  }
  { raw 0 0; raw 1 64; } >"$work/flows.cfg"
fi
cp "$work/flows.cfg" "$out/raw/"

stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
# The cpumap program on qm-r0, its map holding CPUs 0 and 1 (queue size 2048).
cpumap_on() {
  rm -rf "$cpumap_pin" "$cpumap_pin-maps"
  bpftool prog load "$work/cpumap.o" "$cpumap_pin" type xdp pinmaps "$cpumap_pin-maps"
  local c; for c in 0 1; do bpftool map update pinned "$cpumap_pin-maps/cpus" key $c 0 0 0 value 0 8 0 0 0 0 0 0; done
  nsenter --net=/run/netns/qm-rtr ip link set dev qm-r0 xdpdrv pinned "$cpumap_pin"
}
cpumap_off() {
  nsenter --net=/run/netns/qm-rtr ip link set dev qm-r0 xdpdrv off 2>/dev/null || true
  rm -rf "$cpumap_pin" "$cpumap_pin-maps"
}
setup() {
  case "$1" in
    none) ;;
    htb1|htb1cpu) nsenter --net=/run/netns/qm-rtr "$qosrun" attach "$work/mq.bpf.o" qm-r1 --hosts "$work/hosts.csv" --tx-queues 1 >>"$out/raw/attach.log" 2>&1 ;;
    mq2) nsenter --net=/run/netns/qm-rtr "$qosrun" attach "$work/mq.bpf.o" qm-r1 --hosts "$work/hosts.csv" >>"$out/raw/attach.log" 2>&1 ;;
    mq2steer) nsenter --net=/run/netns/qm-rtr "$qosrun" attach "$work/mq.bpf.o" qm-r1 --hosts "$work/hosts.csv" --steer-from qm-r0 >>"$out/raw/attach.log" 2>&1 ;;
  esac
  if [ "$1" = htb1cpu ]; then cpumap_on; fi
  { echo "== $1"; tc -n qm-rtr qdisc show dev qm-r1 | grep -v "qdisc bfifo"; } >>"$out/raw/trees.txt"
}
teardown() {
  nsenter --net=/run/netns/qm-rtr "$qosrun" detach qm-r1 >/dev/null 2>&1 || true
  cpumap_off
}
measure() {  # REP CONFIG -> a CSV line
  setup "$2"
  # shellcheck disable=SC2086
  ip netns exec "$snd_ns" timeout -k 2 $((secs + 3)) trafgen --no-sock-mem -o "$snd_dev" -i "$work/flows.cfg" -P 2 $qpath -C \
    >>"$out/raw/trafgen.log" 2>&1 &
  local pid=$!
  sleep 1.5
  local o0 t0 s0 o1 t1 s1
  o0=$(stat "$snd_ns" "$snd_dev" tx_packets); t0=$(stat qm-rtr qm-r1 tx_packets); s0=$(date +%s.%N)
  sleep "$secs"
  o1=$(stat "$snd_ns" "$snd_dev" tx_packets); t1=$(stat qm-rtr qm-r1 tx_packets); s1=$(date +%s.%N)
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if [ "$2" != none ]; then
    { echo "== $1 $2"; tc -n qm-rtr -s qdisc show dev qm-r1 | grep -A1 "qdisc htb [0-9a-f]*: \(root\|parent 400\)"; } >>"$out/raw/qdisc-stats.txt"
  fi
  teardown
  python3 -c "import sys; r,c,s0,s1,o0,o1,t0,t1,l=sys.argv[1:]; dt=float(s1)-float(s0); print(f'{r},{c},{dt:.2f},{(int(o1)-int(o0))/dt:.0f},{(int(t1)-int(t0))/dt:.0f},{l}')" \
    "$1" "$2" "$s0" "$s1" "$o0" "$o1" "$t0" "$t1" "$(cut -d' ' -f1 /proc/loadavg)"
}

csv=$out/runs.csv
echo "rep,config,secs,offered_pps,shaped_pps,load1" >"$csv"
: >"$out/raw/trafgen.log"; : >"$out/raw/attach.log"; : >"$out/raw/trees.txt"; : >"$out/raw/qdisc-stats.txt"
{ echo "kernel $(uname -r), $(nproc) CPUs, $(date -u +%FT%TZ), $([ "$direct" = 1 ] && echo "direct: trafgen -q on qm-r1" || echo "forwarded: trafgen on qm-s0"), $([ "$per_cpu" = 1 ] && echo "one host per CPU" || echo "both hosts from each CPU")"; echo "commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null)$(git -C "$src" diff --quiet 2>/dev/null || echo +dirty)"; } >"$out/raw/host.txt"
i=0
while [ -e /tmp/qosc-measuring ] && [ $i -lt 30 ]; do sleep 20; i=$((i + 1)); done
echo "bench/mq $(date -u +%FT%TZ)" >/tmp/qosc-measuring; holding=1
for _ in $(seq 1 30); do pgrep -x cc1plus >/dev/null || pgrep -x clang-19 >/dev/null || break; sleep 2; done
for rep in $(seq 1 "$runs"); do
  for cfg in none htb1 mq2 $([ "$cpumap" = 1 ] && echo htb1cpu mq2steer); do measure "$rep" "$cfg" | tee -a "$csv"; done
done
rm -f /tmp/qosc-measuring; holding=0
python3 "$here/summarize.py" "$csv" "$out/raw/host.txt" >"$out/summary.txt"
cat "$out/summary.txt"
