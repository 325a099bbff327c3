# Sourced by bench/hosts/run.sh and soak.sh: the namespace pair both run in,
# qosrun's own roots inside a work directory, and their removal.
#   pair_init TAG     NS_A/NS_B = ${QOSC_NS_PREFIX}qh-TAG-a/-b, IF = qhTAG0 (in a;
#                     its peer qhTAG1 in b), WORK, QOSRUN_STATE_ROOT/PIN_ROOT exported
#   pair_up           the namespaces and the veth pair, up (10.77.0.1 - .2/24)
#   pair_down         detach, namespaces and roots removed (for an EXIT trap)
#   q CMD...          CMD in namespace a with qosrun's roots
# QOSC_NS_PREFIX=qs- keeps runs beside others on one machine apart.
pair_init() {
  local p=${QOSC_NS_PREFIX:-}
  NS_A=${p}qh-$1-a NS_B=${p}qh-$1-b IF=qh${1}0 PEER=qh${1}1
  WORK=$(mktemp -d "/tmp/qh-$1-XXXXXX")
  export QOSRUN_STATE_ROOT=$WORK/run QOSRUN_PIN_ROOT=/sys/fs/bpf/${p}qh-$1
}
q() { ip netns exec "$NS_A" env QOSRUN_STATE_ROOT="$QOSRUN_STATE_ROOT" QOSRUN_PIN_ROOT="$QOSRUN_PIN_ROOT" "$@"; }
pair_down() {
  q timeout -k 2 30 "$QOSRUN" detach "$IF" >/dev/null 2>&1 || true
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$WORK" "$QOSRUN_PIN_ROOT"
}
pair_up() {
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  ip -n "$NS_A" link add "$IF" type veth peer name "$PEER" netns "$NS_B"
  ip -n "$NS_A" addr add 10.77.0.1/24 dev "$IF"
  ip -n "$NS_B" addr add 10.77.0.2/24 dev "$PEER"
  ip -n "$NS_A" link set dev "$IF" up
  ip -n "$NS_B" link set dev "$PEER" up
}
