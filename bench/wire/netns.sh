# bench/wire/netns.sh: the bench's three namespaces (sourced by run.sh).
#   qw-snd [qw-s0 10.71.0.1] -- [qw-r0 10.71.0.2] qw-rtr [qw-r1 10.71.1.2] -- [qw-k0 10.71.1.1] qw-sink
# Static neighbours (no ARP under load); the sink has no listener on the
# bench's ports and answers at most icmp_ratelimit port-unreachables.

qw_down() {
  local ns
  for ns in qw-snd qw-rtr qw-sink; do ip netns del "$ns" 2>/dev/null || true; done
}

qw_up() {
  qw_down
  ip netns add qw-snd && ip netns add qw-rtr && ip netns add qw-sink
  ip link add qw-s0 netns qw-snd type veth peer name qw-r0 netns qw-rtr
  ip link add qw-r1 netns qw-rtr type veth peer name qw-k0 netns qw-sink
  ip -n qw-snd addr add 10.71.0.1/24 dev qw-s0
  ip -n qw-rtr addr add 10.71.0.2/24 dev qw-r0
  ip -n qw-rtr addr add 10.71.1.2/24 dev qw-r1
  ip -n qw-sink addr add 10.71.1.1/24 dev qw-k0
  local ns dev
  for ns in qw-snd qw-rtr qw-sink; do ip -n "$ns" link set lo up; done
  ip -n qw-snd link set qw-s0 up; ip -n qw-rtr link set qw-r0 up; ip -n qw-rtr link set qw-r1 up
  ip -n qw-sink link set qw-k0 up
  ip netns exec qw-rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  for dev in qw-r0 qw-r1; do ip netns exec qw-rtr sysctl -qw "net.ipv4.conf.$dev.rp_filter=0"; done
  ip -n qw-snd route add 10.71.1.0/24 via 10.71.0.2
  ip -n qw-sink route add 10.71.0.0/24 via 10.71.1.2
  ip -n qw-rtr neigh replace 10.71.1.1 lladdr "$(qw_mac qw-sink qw-k0)" dev qw-r1 nud permanent
  ip -n qw-rtr neigh replace 10.71.0.1 lladdr "$(qw_mac qw-snd qw-s0)" dev qw-r0 nud permanent
  ip -n qw-sink neigh replace 10.71.1.2 lladdr "$(qw_mac qw-rtr qw-r1)" dev qw-k0 nud permanent
}

qw_mac() {  # NS DEV
  ip -n "$1" -j link show dev "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'
}
