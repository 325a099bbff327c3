#!/usr/bin/env bash
# bench/wire/run.sh: what qosc's programs cost on real traffic (issue 11, "the
# cost on the wire"). Not part of the test suite; needs root; about 1 minute
# per repetition.
#
#   bench/wire/run.sh [--runs N] [--secs S] [--rules N] [--rate PPS] [--policy FILE]... [--hosts TABLE]
#                     [--variant LABEL=QOSC_OPTIONS]... [--only REGEX] [--build DIR] [--out DIR]
#
# Three namespaces (netns.sh): trafgen in qw-snd sends 64-byte UDP frames as
# fast as one CPU allows, across 4096 flows (source ports 10000-14095 x
# destination ports 20000-20511), to the sink through the router qw-rtr. On
# veth every hop of a packet runs on the sender's CPU, so the sink's packet
# rate is what one core forwards with the router's programs on it.
# kernel.bpf_stats_enabled=1 gives each program's run_time_ns and run_cnt.
#
# Configurations, each measured --runs times, interleaved (one repetition
# runs all of them, so a noisy minute hits every configuration alike):
#   none        no program, no qdisc: the forwarding baseline
#   empty       an empty XDP program on the router's ingress (qw-r0) and an
#               empty TC program on its egress (qw-r1): the per-packet floors
#   qosc-P      `qosrun attach` of policy P (default options unless a
#               --variant adds qosc options) on both router interfaces: the
#               XDP program of qw-r0 and the TC program of qw-r1 see the
#               forwarded packets
#   htb-P       the HTB tree qosrun built for P, replayed by tc, no filter
#   u32-P       the same HTB tree with one tc u32 filter per rule of P
#               (gen_rules.py writes both; only for the generated policy)
#   u32xdp-P    u32-P plus the empty XDP program on qw-r0: on veth an XDP
#               program alone costs forwarding rate (native XDP copies every
#               packet into a page with XDP headroom), so this is the u32 run
#               that is comparable with qosc's forwarding rate
# Policies: examples/home.qos with its link raised to 10gbit (HTB must not
# limit: the bench measures classification, not shaping); home-nonat, the
# same without `nat` on its isolated bulk class (no conntrack lookup per
# packet); and a generated policy of --rules rules (default 256).
#
# The machine must be quiet: each repetition holds /tmp/qosc-measuring and
# first waits (up to 90 s) until no compiler runs.
#
# --rate PPS: trafgen's paced mode at PPS (it reaches ~130 kpps here) instead
# of as fast as it can; the sink's rate then shows loss at that load.
#
# --only REGEX measures only the configurations whose name (none, empty,
# qosc:POLICY:LABEL, htb:..., u32:..., u32xdp:...) matches the extended regex;
# e.g. --only '^(empty|qosc:home:)' for the baseline and home's variants.
#
# --policy FILE adds a policy (measured as qosc-NAME, NAME = FILE's name
# without .qos; its link as written). --hosts TABLE is passed to every qosc
# attach (`qosrun attach ... --hosts TABLE`): for a policy with `hosts`,
# e.g. --policy my-plans.qos --hosts hosts.csv.
#
# Writes OUT/runs.csv (one line per configuration and repetition), OUT/raw/
# (trafgen's and qosrun's output, the tc trees), OUT/summary.md (medians,
# spreads and the ratios against the baselines of the same run); then
# plot.py draws docs/img/wire-cost.png.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build
out=$here/results
runs=5
secs=8
nrules=256
hosts=""
rate=0
extra_policies=()
variants=()
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rules) nrules=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --policy) extra_policies+=("$(realpath "$2")"); shift 2 ;;
    --hosts) hosts=$(realpath "$2"); shift 2 ;;
    --variant) variants+=("$2"); shift 2 ;;
    --only) only=$2; shift 2 ;;
    --build) build=$(realpath "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
for t in trafgen bpftool tc clang-19 nsenter; do
  command -v "$t" >/dev/null || { echo "run.sh: $t is missing: scripts/setup.sh installs it" >&2; exit 1; }
done
qosc=$build/bin/qosc
qosrun=$build/bin/qosrun
[ -x "$qosc" ] && [ -x "$qosrun" ] || { echo "run.sh: build qosc and qosrun first (scripts/build.sh qosc qosrun)" >&2; exit 1; }
[ ${#variants[@]} -gt 0 ] || variants=("default=")

mkdir -p "$out/raw"
work=$(mktemp -d /tmp/qw-bench.XXXXXX)
. "$here/netns.sh"
holding=0
cleanup() {
  set +e
  for dev in qw-r0 qw-r1; do nsenter --net=/run/netns/qw-rtr "$qosrun" detach "$dev" >/dev/null 2>&1; done
  qw_down
  [ "$holding" = 1 ] && rm -f /tmp/qosc-measuring
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- what is measured ----------------------------------------------------------------------
clang_bpf() { clang-19 -target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c "$1" -o "$2"; }
clang_bpf "$src/bench/baselines/empty.bpf.c" "$work/empty_xdp.o"
clang_bpf "$here/empty_tc.bpf.c" "$work/empty_tc.o"

python3 "$here/gen_rules.py" "$nrules" "$work/rules$nrules"
sed 's/^\(\s*link\) [^;]*;/\1 10gbit;/' "$src/examples/home.qos" >"$work/home.qos"
sed 's/\(isolate saddr\) nat;/\1;/' "$work/home.qos" >"$work/home-nonat.qos"
policies=(home home-nonat "rules$nrules")
for f in "${extra_policies[@]}"; do
  name=$(basename "$f" .qos)
  cp "$f" "$work/$name.qos"; cp "$f" "$out/raw/"
  policies+=("$name")
done
cp "$work/rules$nrules.qos" "$work/rules$nrules.u32" "$work/home.qos" "$work/home-nonat.qos" "$out/raw/"

configs=(none empty)
for v in "${variants[@]}"; do
  label=${v%%=*}; opts=${v#*=}
  for p in "${policies[@]}"; do
    # shellcheck disable=SC2086
    "$qosc" $opts "$work/$p.qos" -o "$work/$p.$label.bpf.o" >"$out/raw/qosc-$p-$label.log" 2>&1 \
      || { cat "$out/raw/qosc-$p-$label.log" >&2; exit 1; }
    configs+=("qosc:$p:$label")
  done
done
configs+=("htb:rules$nrules" "u32:rules$nrules" "u32xdp:rules$nrules")
if [ -n "$only" ]; then
  kept=()
  for c in "${configs[@]}"; do [[ $c =~ $only ]] && kept+=("$c"); done
  [ ${#kept[@]} -gt 0 ] || { echo "run.sh: --only '$only' matches no configuration of: ${configs[*]}" >&2; exit 1; }
  configs=("${kept[@]}")
fi

# ---- the network ---------------------------------------------------------------------------
qw_up
mac=$(qw_mac qw-rtr qw-r0)
cat >"$work/flows.cfg" <<EOF
{
  eth(da=$mac, type=0x0800),
  ipv4(sa=10.71.0.1, da=10.71.1.1, ttl=64),
  udp(sp=dinc(10000, 14095), dp=dinc(20000, 20511)),
  fill(0x00, 18)
}
EOF
cp "$work/flows.cfg" "$out/raw/"

rtr() { nsenter --net=/run/netns/qw-rtr "$@"; }
xdp_id() { ip -n qw-rtr -j link show dev "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get("xdp",{}).get("prog",{}).get("id",""))'; }
tc_id() {
  tc -n qw-rtr -j filter show dev "$1" egress | python3 -c '
import json, sys
ids = [f["options"]["prog"]["id"] for f in json.load(sys.stdin) if f.get("kind") == "bpf" and "prog" in f.get("options", {})]
print(ids[0] if ids else "")'
}
prog_stats() {  # ID -> "run_time_ns run_cnt" (0 0 without a program)
  [ -n "$1" ] || { echo "0 0"; return; }
  bpftool -j prog show id "$1" | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p.get("run_time_ns",0), p.get("run_cnt",0))'
}
sink_rx() { ip netns exec qw-sink cat /sys/class/net/qw-k0/statistics/rx_packets; }

# The HTB tree qosrun built for a policy, as tc commands (replayed for htb-/u32-).
save_tree() {  # POLICY
  { tc -n qw-rtr qdisc show dev qw-r1; tc -n qw-rtr class show dev qw-r1; } >"$out/raw/tree-$1.txt"
  python3 "$here/tree_to_tc.py" "$out/raw/tree-$1.txt" >"$work/tree-$1.tc"
}

setup_config() {  # CONFIG
  local kind p label
  IFS=: read -r kind p label <<<"$1"
  case "$kind" in
    none) ;;
    empty)
      ip -n qw-rtr link set dev qw-r0 xdpdrv obj "$work/empty_xdp.o" sec xdp
      tc -n qw-rtr qdisc add dev qw-r1 clsact
      tc -n qw-rtr filter add dev qw-r1 egress bpf da obj "$work/empty_tc.o" sec tc ;;
    qosc)
      local dev
      for dev in qw-r0 qw-r1; do
        rtr "$qosrun" attach "$work/$p.$label.bpf.o" "$dev" ${hosts:+--hosts "$hosts"} >>"$out/raw/attach.log" 2>&1 \
          || { tail -5 "$out/raw/attach.log" >&2; return 1; }
      done
      [ -f "$work/tree-$p.tc" ] || save_tree "$p" ;;
    htb|u32|u32xdp)
      [ -f "$work/tree-$p.tc" ] || { echo "run.sh: no HTB tree of $p recorded (qosc:$p runs first)" >&2; return 1; }
      sed "s/DEV/qw-r1/g" "$work/tree-$p.tc" | tc -n qw-rtr -batch - 2>&1 | { grep -v "quantum of class .* is small" || true; } >&2
      [ "$kind" = htb ] || sed "s/DEV/qw-r1/g" "$work/$p.u32" | tc -n qw-rtr -batch -
      [ "$kind" != u32xdp ] || ip -n qw-rtr link set dev qw-r0 xdpdrv obj "$work/empty_xdp.o" sec xdp
      ;;
  esac
}

teardown_config() {
  local dev
  for dev in qw-r0 qw-r1; do rtr "$qosrun" detach "$dev" >/dev/null 2>&1 || true; done
  ip -n qw-rtr link set dev qw-r0 xdp off 2>/dev/null || true
  for dev in qw-r0 qw-r1; do
    tc -n qw-rtr qdisc del dev "$dev" clsact 2>/dev/null || true
    tc -n qw-rtr qdisc del dev "$dev" root 2>/dev/null || true
  done
}

measure() {  # REP CONFIG -> a CSV line
  local rep=$1 cfg=$2 xid tid x0 x1 t0 t1 r0 r1 pid
  setup_config "$cfg"
  xid=$(xdp_id qw-r0); tid=$(tc_id qw-r1)
  ip netns exec qw-snd timeout -k 2 $((secs + 3)) trafgen -o qw-s0 -i "$work/flows.cfg" -P 1 -q \
    $([ "$rate" = 0 ] || echo "-b ${rate}pps") \
    >>"$out/raw/trafgen.log" 2>&1 &
  pid=$!
  sleep 1.5   # trafgen's start and the first flows' inserts are not the steady state
  read -r x0 xc0 <<<"$(prog_stats "$xid")"; read -r t0 tc0 <<<"$(prog_stats "$tid")"; r0=$(sink_rx)
  local s0; s0=$(date +%s.%N)
  sleep "$secs"
  read -r x1 xc1 <<<"$(prog_stats "$xid")"; read -r t1 tc1 <<<"$(prog_stats "$tid")"; r1=$(sink_rx)
  local s1; s1=$(date +%s.%N)
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if [ "${cfg%%:*}" = qosc ]; then
    # The flow table still works under load: the top flows as `qosrun stats --flows` shows them.
    { echo "== $rep $cfg"; rtr "$qosrun" stats qw-r1 --flows 5 --no-rates 2>&1 | head -40; } >>"$out/raw/stats-flows.log" || true
  fi
  teardown_config
  python3 - "$rep" "$cfg" "$s0" "$s1" "$r0" "$r1" "$x0" "$x1" "$xc0" "$xc1" "$t0" "$t1" "$tc0" "$tc1" \
    "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF'
import sys
rep, cfg, s0, s1, r0, r1, x0, x1, xc0, xc1, t0, t1, tc0, tc1, load = sys.argv[1:]
dt = float(s1) - float(s0)
def ns(a, b, c, d):
    n = int(d) - int(c)
    return (f"{(int(b) - int(a)) / n:.1f}", n) if n > 0 else ("", 0)
xns, xn = ns(x0, x1, xc0, xc1)
tns, tn = ns(t0, t1, tc0, tc1)
print(f"{rep},{cfg},{dt:.2f},{(int(r1) - int(r0)) / dt:.0f},{xns},{xn},{tns},{tn},{load}")
EOF
}

# ---- the run -------------------------------------------------------------------------------
sysctl -qw kernel.bpf_stats_enabled=1
wait_quiet() {  # another helper's timing: wait up to 10 min for it
  local i=0
  while [ -e /tmp/qosc-measuring ] && [ "$holding" = 0 ] && [ $i -lt 30 ]; do sleep 20; i=$((i + 1)); done
}
csv=$out/runs.csv
echo "rep,config,secs,sink_pps,xdp_ns,xdp_pkts,tc_ns,tc_pkts,load1" >"$csv"
: >"$out/raw/trafgen.log"; : >"$out/raw/attach.log"; : >"$out/raw/stats-flows.log"
{ echo "kernel $(uname -r), $(nproc) CPUs, $(date -u +%FT%TZ), trafgen rate ${rate} pps (0: as fast as it can)"; echo "commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null)$(git -C "$src" diff --quiet 2>/dev/null || echo +dirty)"; } >"$out/raw/host.txt"
for rep in $(seq 1 "$runs"); do
  # Hold the machine per repetition only (< 10 min), so other helpers' builds get the gaps.
  wait_quiet
  touch /tmp/qosc-measuring; holding=1
  for _ in $(seq 1 45); do
    pgrep -x cc1plus >/dev/null || pgrep -x clang-19 >/dev/null || break
    sleep 2
  done
  for cfg in "${configs[@]}"; do
    line=$(measure "$rep" "$cfg")
    echo "$line" | tee -a "$csv"
  done
  rm -f /tmp/qosc-measuring; holding=0
done
sysctl -qw kernel.bpf_stats_enabled=0
/usr/bin/python3 "$here/summarize.py" "$csv" >"$out/summary.md"
cat "$out/summary.md"
