// The reference interpreter: the meaning of an ir::Policy for one packet,
// written straight from the language contract.
#include "qosc/packet.hpp"

namespace qosc {
namespace {

bool prefix_covers(const ir::Prefix& p, const std::array<uint8_t, 16>& a) {
  for (unsigned bit = 0; bit < p.len; ++bit) {
    unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
    if ((p.addr[byte] & mask) != (a[byte] & mask)) return false;
  }
  return true;
}

bool ports_contain(const ir::PortSet& s, uint16_t port) {
  for (const auto& iv : s)
    if (iv.lo <= port && port <= iv.hi) return true;
  return false;
}

}  // namespace

bool rule_matches(const ir::Rule& r, const PacketFields& pkt) {
  if (!pkt.ip) return false;
  if (r.family != ir::Family::Any && r.family != pkt.family) return false;
  if (r.protos) {
    if (pkt.proto < 0 || pkt.proto > 255 || !r.protos->test(size_t(pkt.proto))) return false;
  }
  if (r.sport && (!pkt.l4 || !ports_contain(*r.sport, pkt.sport))) return false;
  if (r.dport && (!pkt.l4 || !ports_contain(*r.dport, pkt.dport))) return false;
  if (r.dscp && !r.dscp->test(pkt.dscp & 63)) return false;
  for (const auto& m : r.addrs) {
    if (pkt.family != m.family) return false;
    const auto& a = m.dst ? pkt.daddr : pkt.saddr;
    bool covered = false;
    for (const auto& p : m.prefixes)
      if (prefix_covers(p, a)) { covered = true; break; }
    if (covered == m.negated) return false;
  }
  return true;
}

int first_match(const ir::Policy& policy, const PacketFields& pkt) {
  if (!pkt.ip) return -1;
  for (size_t i = 0; i < policy.rules.size(); ++i)
    if (rule_matches(policy.rules[i], pkt)) return int(i);
  return -1;
}

int32_t classify(const ir::Policy& policy, const PacketFields& pkt) {
  int i = first_match(policy, pkt);
  return i < 0 ? int32_t(policy.default_class) : policy.rules[size_t(i)].target;
}

}  // namespace qosc
