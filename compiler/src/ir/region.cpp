// The rule algebra (qosc/region.hpp): boxes of packet space and their
// intersection, difference and union, exact.
#include "qosc/region.hpp"

#include <algorithm>
#include <map>

namespace qosc::ir {

const AtomSet& atom_universe(Family family) {
  static const AtomSet v6 = ~AtomSet();
  static const AtomSet v4 = [] {
    AtomSet a = ~AtomSet();
    a.reset(kAtomUnknown);  // an IPv4 header always names its protocol
    return a;
  }();
  return family == Family::V4 ? v4 : v6;
}

PortValues all_ports() { return PortValues::range(0, 65535); }

AddrValues all_addresses(Family family) {
  return AddrValues::range(0, family == Family::V4 ? u128(0xffffffffu) : ~u128(0));
}

u128 address_value(Family family, const std::array<uint8_t, 16>& bytes) {
  u128 v = 0;
  for (int i = 0; i < (family == Family::V4 ? 4 : 16); ++i) v = v << 8 | bytes[size_t(i)];
  return v;
}

std::array<uint8_t, 16> address_bytes(Family family, u128 value) {
  std::array<uint8_t, 16> a{};
  int n = family == Family::V4 ? 4 : 16;
  for (int i = n - 1; i >= 0; --i, value >>= 8) a[size_t(i)] = uint8_t(value);
  return a;
}

AddrValues prefix_values(const Prefix& p) {
  const int width = p.family == Family::V4 ? 32 : 128;
  u128 lo = address_value(p.family, p.addr);
  const int host = width - p.len;
  u128 span = host >= 128 ? ~u128(0) : (u128(1) << host) - 1;
  lo &= ~span;
  return AddrValues::range(lo, lo + span);
}

bool prefix_contains(const Prefix& outer, const Prefix& inner) {
  return outer.family == inner.family && outer.len <= inner.len && prefix_values(inner).subset_of(prefix_values(outer));
}

std::vector<uint32_t> port_cut_points(const Policy& policy, const std::vector<uint32_t>& rules, bool dst) {
  std::vector<uint32_t> cuts{0, 65536};
  for (uint32_t i : rules) {
    const auto& set = dst ? policy.rules[i].dport : policy.rules[i].sport;
    if (!set) continue;
    for (const auto& iv : *set) {
      cuts.push_back(iv.lo);
      cuts.push_back(uint32_t(iv.hi) + 1);
    }
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  return cuts;
}

Box Box::universe(Family family) {
  Box b;
  b.family = family;
  b.atoms = atom_universe(family);
  b.dscp = ~uint64_t(0);
  b.sport = b.dport = all_ports();
  b.saddr = b.daddr = all_addresses(family);
  return b;
}

namespace {

size_t atom_of(const PacketFields& pkt) {
  if (pkt.proto < 0 || pkt.proto > 255) return kAtomUnknown;
  if (pkt.l4 && pkt.proto == 6) return kAtomTcpPorts;
  if (pkt.l4 && pkt.proto == 17) return kAtomUdpPorts;
  return atom_without_ports(pkt.proto);
}

}  // namespace

bool Box::contains(const PacketFields& pkt) const {
  if (!pkt.ip || pkt.family != family) return false;
  return atoms.test(atom_of(pkt)) && (dscp >> (pkt.dscp & 63) & 1) && sport.contains(pkt.sport) &&
         dport.contains(pkt.dport) && saddr.contains(address_value(family, pkt.saddr)) &&
         daddr.contains(address_value(family, pkt.daddr));
}

BoxHull BoxHull::of(const Box& b) {
  // v4 values sit in the low 32 bits of the 128-bit value: take them whole.
  // Taking the top bits is monotone, so hulls of boxes that meet still meet.
  auto top = [&](u128 v) { return b.family == Family::V4 ? uint64_t(v) : uint64_t(v >> 64); };
  BoxHull h;
  h.family = b.family;
  h.dscp = b.dscp;
  h.sport_lo = b.sport.lowest(), h.sport_hi = b.sport.highest();
  h.dport_lo = b.dport.lowest(), h.dport_hi = b.dport.highest();
  h.saddr_lo = top(b.saddr.lowest()), h.saddr_hi = top(b.saddr.highest());
  h.daddr_lo = top(b.daddr.lowest()), h.daddr_hi = top(b.daddr.highest());
  return h;
}

bool intersects(const Box& a, const Box& b) {
  return a.family == b.family && (a.atoms & b.atoms).any() && (a.dscp & b.dscp) && a.dport.overlaps(b.dport) &&
         a.saddr.overlaps(b.saddr) && a.daddr.overlaps(b.daddr) && a.sport.overlaps(b.sport);
}

Box intersect(const Box& a, const Box& b) {
  Box r;
  r.family = a.family;
  if (a.family != b.family) return r;  // empty: no atoms
  r.atoms = a.atoms & b.atoms;
  r.dscp = a.dscp & b.dscp;
  r.sport = a.sport.intersect(b.sport);
  r.dport = a.dport.intersect(b.dport);
  r.saddr = a.saddr.intersect(b.saddr);
  r.daddr = a.daddr.intersect(b.daddr);
  return r;
}

void subtract(const Box& a, const Box& b, std::vector<Box>& out) {
  if (!intersects(a, b)) {
    out.push_back(a);
    return;
  }
  // Peel off, one dimension at a time, the part of `a` outside `b` in that
  // dimension (and inside `b` in the ones before): disjoint pieces. The atoms
  // go first so that port-less packets leave with their ports unrestricted.
  Box rest = a;
  if (AtomSet d = rest.atoms & ~b.atoms; d.any()) {
    out.push_back(rest);
    out.back().atoms = d;
    rest.atoms &= b.atoms;
  }
  if (uint64_t d = rest.dscp & ~b.dscp) {
    out.push_back(rest);
    out.back().dscp = d;
    rest.dscp &= b.dscp;
  }
  auto peel = [&](auto Box::*dim) {
    auto d = (rest.*dim).minus(b.*dim);
    if (d.empty()) return;
    out.push_back(rest);
    out.back().*dim = std::move(d);
    rest.*dim = (rest.*dim).intersect(b.*dim);
  };
  peel(&Box::saddr);
  peel(&Box::daddr);
  peel(&Box::dport);
  peel(&Box::sport);
}

bool subset(const Box& a, const Box& b) {
  if (a.empty()) return true;
  return a.family == b.family && (a.atoms & ~b.atoms).none() && (a.dscp & ~b.dscp) == 0 && a.sport.subset_of(b.sport) &&
         a.dport.subset_of(b.dport) && a.saddr.subset_of(b.saddr) && a.daddr.subset_of(b.daddr);
}

Region Region::all_ip() { return Region({Box::universe(Family::V4), Box::universe(Family::V6)}); }

bool Region::intersects(const Box& b) const {
  for (const auto& x : boxes_)
    if (ir::intersects(x, b)) return true;
  return false;
}

Region Region::intersect(const Box& b) const {
  Region r;
  for (const auto& x : boxes_)
    if (ir::intersects(x, b)) r.boxes_.push_back(ir::intersect(x, b));
  return r;
}

void Region::subtract(const Box& b) {
  std::vector<Box> out;
  out.reserve(boxes_.size() + 2);
  for (const auto& x : boxes_) ir::subtract(x, b, out);
  boxes_ = std::move(out);
}

void Region::subtract(const Region& r) {
  for (const auto& b : r.boxes_) {
    if (boxes_.empty()) return;
    subtract(b);
  }
}

bool Region::contains(const PacketFields& pkt) const {
  for (const auto& x : boxes_)
    if (x.contains(pkt)) return true;
  return false;
}

std::vector<Box> rule_boxes(const Rule& r) {
  std::vector<Box> out;
  for (Family fam : {Family::V4, Family::V6}) {
    if (r.family != Family::Any && r.family != fam) continue;
    Box b = Box::universe(fam);
    if (r.protos) {
      AtomSet a;
      for (int p = 0; p < 256; ++p) {
        if (!r.protos->test(size_t(p))) continue;
        a.set(atom_without_ports(p));
        if (p == 6) a.set(kAtomTcpPorts);
        if (p == 17) a.set(kAtomUdpPorts);
      }
      b.atoms &= a;  // an unknown protocol matches no protocol set
    }
    if (r.sport || r.dport) {
      AtomSet with_ports;
      with_ports.set(kAtomTcpPorts).set(kAtomUdpPorts);
      b.atoms &= with_ports;  // a port match needs the TCP/UDP header
    }
    auto ports = [](const PortSet& s) {
      PortValues v;
      for (const auto& iv : s) v = v.unite(PortValues::range(iv.lo, iv.hi));
      return v;
    };
    if (r.sport) b.sport = ports(*r.sport);
    if (r.dport) b.dport = ports(*r.dport);
    if (r.dscp) b.dscp = r.dscp->to_ullong();
    for (const auto& m : r.addrs) {
      if (m.family != fam) {  // an address match (even negated) needs its family
        b.atoms.reset();
        break;
      }
      AddrValues v;
      for (const auto& p : m.prefixes) v = v.unite(prefix_values(p));
      if (m.negated) v = all_addresses(fam).minus(v);
      auto& dim = m.dst ? b.daddr : b.saddr;
      dim = dim.intersect(v);
    }
    if (!b.empty()) out.push_back(std::move(b));
  }
  return out;
}

namespace {

// A box with one dimension blanked, as a key: boxes with equal keys differ in
// that dimension only and merge into one.
template <class Dim>
std::vector<Box> merge_along(std::vector<Box> boxes, Dim dim, bool* changed) {
  if (boxes.size() < 2) return boxes;
  std::vector<Box> out;
  std::vector<bool> used(boxes.size());
  auto blank = [&](const Box& b) {
    Box k = b;
    dim(k, nullptr);
    return k;
  };
  // Sort indices by a cheap fingerprint, then merge equal keys pairwise.
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < boxes.size(); ++i) {
    Box k = blank(boxes[i]);
    std::string key;
    key.reserve(128);
    auto put = [&](const void* p, size_t n) { key.append(static_cast<const char*>(p), n); };
    put(&k.family, sizeof k.family);
    for (size_t w = 0; w < kAtoms; ++w) key.push_back(k.atoms.test(w) ? '1' : '0');
    put(&k.dscp, sizeof k.dscp);
    for (const auto* s : {&k.sport, &k.dport}) {
      for (const auto& iv : s->intervals()) put(&iv, sizeof iv);
      key.push_back('|');
    }
    for (const auto* s : {&k.saddr, &k.daddr}) {
      for (const auto& iv : s->intervals()) put(&iv, sizeof iv);
      key.push_back('|');
    }
    groups[key].push_back(i);
  }
  for (auto& [key, idx] : groups) {
    Box m = boxes[idx[0]];
    for (size_t n = 1; n < idx.size(); ++n) {
      dim(m, &boxes[idx[n]]);
      *changed = true;
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

std::vector<Box> merge_boxes(std::vector<Box> boxes) {
  bool changed = true;
  for (int round = 0; changed && round < 16; ++round) {
    changed = false;
    // dim(b, other): other == nullptr blanks b's dimension; else unites other's into b.
    boxes = merge_along(std::move(boxes), [](Box& b, const Box* o) { if (o) b.atoms |= o->atoms; else b.atoms.reset(); }, &changed);
    boxes = merge_along(std::move(boxes), [](Box& b, const Box* o) { if (o) b.dscp |= o->dscp; else b.dscp = 0; }, &changed);
    boxes = merge_along(std::move(boxes), [](Box& b, const Box* o) { if (o) b.dport = b.dport.unite(o->dport); else b.dport = {}; }, &changed);
    boxes = merge_along(std::move(boxes), [](Box& b, const Box* o) { if (o) b.sport = b.sport.unite(o->sport); else b.sport = {}; }, &changed);
    boxes = merge_along(std::move(boxes), [](Box& b, const Box* o) { if (o) b.saddr = b.saddr.unite(o->saddr); else b.saddr = {}; }, &changed);
    boxes = merge_along(std::move(boxes), [](Box& b, const Box* o) { if (o) b.daddr = b.daddr.unite(o->daddr); else b.daddr = {}; }, &changed);
  }
  return boxes;
}

}  // namespace qosc::ir
