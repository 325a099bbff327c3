#pragma once
// The rule algebra: exact sets of packets.
//
// Packet space is what the reference interpreter (qosc/packet.hpp,
// front/interp.cpp) decides on. A non-IP packet matches no rule, so only IP
// packets are modelled; one IP packet is a point
//   (family, atom, dscp, sport, dport, saddr, daddr)
// where the *atom* folds together the final protocol and whether the TCP/UDP
// header (ports) is present:
//   - atom 0: protocol unknown (IPv6 only: chain too long or cut), no ports;
//   - atom 1+p: protocol p, no ports (every protocol but TCP/UDP, and TCP/UDP
//     fragments or short headers);
//   - kAtomTcpPorts / kAtomUdpPorts: TCP / UDP with ports.
// A packet without ports still has port coordinates (the interpreter ignores
// them), so every set below is a plain product and a rule is a Box. Rules
// never restrict the ports of a port-less packet, so no outcome depends on
// them; printers drop them (match_text.cpp).
//
// A Box is one set per dimension; a Region a union of disjoint boxes. Every
// operation is exact: no sampling, no "unsure".
#include <bitset>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "qosc/ir.hpp"
#include "qosc/packet.hpp"

namespace qosc::ir {

__extension__ typedef unsigned __int128 u128;  // __extension__: not ISO C++, GCC and clang have it

// Sorted, disjoint, non-adjacent closed intervals of T.
template <class T>
class IntervalSet {
 public:
  struct Interval {
    T lo, hi;
    friend bool operator==(const Interval&, const Interval&) = default;
  };
  IntervalSet() = default;
  static IntervalSet range(T lo, T hi) {
    IntervalSet s;
    s.iv_.push_back({lo, hi});
    return s;
  }
  const std::vector<Interval>& intervals() const { return iv_; }
  bool empty() const { return iv_.empty(); }
  T lowest() const { return iv_.front().lo; }
  T highest() const { return iv_.back().hi; }

  // Appends [lo, hi]; lo must lie above every value already in the set.
  void append(T lo, T hi) {
    if (!iv_.empty() && iv_.back().hi != std::numeric_limits<T>::max() && iv_.back().hi + 1 == lo)
      iv_.back().hi = hi;
    else
      iv_.push_back({lo, hi});
  }
  bool contains(T v) const {
    size_t a = 0, b = iv_.size();
    while (a < b) {
      size_t m = (a + b) / 2;
      if (iv_[m].hi < v) a = m + 1;
      else b = m;
    }
    return a < iv_.size() && iv_[a].lo <= v;
  }
  bool overlaps(const IntervalSet& o) const {
    if (empty() || o.empty() || highest() < o.lowest() || o.highest() < lowest()) return false;
    size_t i = 0, j = 0;
    while (i < iv_.size() && j < o.iv_.size()) {
      if (iv_[i].hi < o.iv_[j].lo) ++i;
      else if (o.iv_[j].hi < iv_[i].lo) ++j;
      else return true;
    }
    return false;
  }
  IntervalSet intersect(const IntervalSet& o) const {
    IntervalSet r;
    size_t i = 0, j = 0;
    while (i < iv_.size() && j < o.iv_.size()) {
      T lo = std::max(iv_[i].lo, o.iv_[j].lo), hi = std::min(iv_[i].hi, o.iv_[j].hi);
      if (lo <= hi) r.iv_.push_back({lo, hi});
      if (iv_[i].hi < o.iv_[j].hi) ++i;
      else ++j;
    }
    return r;
  }
  IntervalSet minus(const IntervalSet& o) const {
    IntervalSet r;
    size_t j = 0;
    for (const auto& a : iv_) {
      T lo = a.lo;
      bool open = true;  // [lo, a.hi] still to place
      while (j < o.iv_.size() && o.iv_[j].hi < lo) ++j;
      size_t k = j;
      while (open && k < o.iv_.size() && o.iv_[k].lo <= a.hi) {
        if (o.iv_[k].lo > lo) r.iv_.push_back({lo, T(o.iv_[k].lo - 1)});
        if (o.iv_[k].hi >= a.hi) open = false;
        else lo = T(o.iv_[k].hi + 1);
        ++k;
      }
      if (open) r.iv_.push_back({lo, a.hi});
    }
    return r;
  }
  IntervalSet unite(const IntervalSet& o) const {
    IntervalSet r;
    size_t i = 0, j = 0;
    auto push = [&](const Interval& x) {
      if (!r.iv_.empty() && (r.iv_.back().hi == std::numeric_limits<T>::max() || r.iv_.back().hi + 1 >= x.lo)) {
        if (x.hi > r.iv_.back().hi) r.iv_.back().hi = x.hi;
      } else {
        r.iv_.push_back(x);
      }
    };
    while (i < iv_.size() || j < o.iv_.size()) {
      if (j == o.iv_.size() || (i < iv_.size() && iv_[i].lo <= o.iv_[j].lo)) push(iv_[i++]);
      else push(o.iv_[j++]);
    }
    return r;
  }
  bool subset_of(const IntervalSet& o) const { return minus(o).empty(); }
  friend bool operator==(const IntervalSet&, const IntervalSet&) = default;

 private:
  std::vector<Interval> iv_;
};

using PortValues = IntervalSet<uint32_t>;   // within 0..65535
using AddrValues = IntervalSet<u128>;       // v4: 0..2^32-1, v6: 0..2^128-1

inline constexpr size_t kAtomUnknown = 0;
inline constexpr size_t kAtomTcpPorts = 257;
inline constexpr size_t kAtomUdpPorts = 258;
inline constexpr size_t kAtoms = 259;
inline constexpr size_t atom_without_ports(int proto) { return size_t(1 + proto); }
using AtomSet = std::bitset<kAtoms>;

// The atoms a packet of `family` can have (no unknown protocol for IPv4).
const AtomSet& atom_universe(Family family);
PortValues all_ports();
AddrValues all_addresses(Family family);
u128 address_value(Family family, const std::array<uint8_t, 16>& bytes);
std::array<uint8_t, 16> address_bytes(Family family, u128 value);
AddrValues prefix_values(const Prefix& p);
bool prefix_contains(const Prefix& outer, const Prefix& inner);  // same family, inner's addresses ⊆ outer's

// The boundaries of the elementary port intervals of the given rules' sport
// (or dport, `dst`) sets: 0, every interval's lo and hi+1, and 65536, sorted
// and unique. Between two neighbours no rule's port set changes.
std::vector<uint32_t> port_cut_points(const Policy& policy, const std::vector<uint32_t>& rules, bool dst);

struct Box {
  Family family = Family::V4;   // V4 or V6, never Any
  AtomSet atoms;
  uint64_t dscp = 0;            // bit i: DSCP value i
  PortValues sport, dport;
  AddrValues saddr, daddr;

  static Box universe(Family family);
  bool empty() const {
    return atoms.none() || dscp == 0 || sport.empty() || dport.empty() || saddr.empty() || daddr.empty();
  }
  bool contains(const PacketFields& pkt) const;
  friend bool operator==(const Box&, const Box&) = default;
};

// A box's bounds per dimension in a few machine words: two boxes whose hulls
// do not meet cannot intersect. Loops over many boxes test these (compact,
// cache-friendly) before the exact sets.
struct BoxHull {
  uint64_t saddr_lo, saddr_hi, daddr_lo, daddr_hi;  // v6: the top 64 bits of the bounds
  uint64_t dscp;
  uint32_t sport_lo, sport_hi, dport_lo, dport_hi;
  Family family;
  static BoxHull of(const Box& b);
  bool meets(const BoxHull& o) const {
    return family == o.family && (dscp & o.dscp) && dport_lo <= o.dport_hi && o.dport_lo <= dport_hi &&
           saddr_lo <= o.saddr_hi && o.saddr_lo <= saddr_hi && daddr_lo <= o.daddr_hi && o.daddr_lo <= daddr_hi &&
           sport_lo <= o.sport_hi && o.sport_lo <= sport_hi;
  }
};

bool intersects(const Box& a, const Box& b);
Box intersect(const Box& a, const Box& b);           // may be empty()
void subtract(const Box& a, const Box& b, std::vector<Box>& out);  // appends a \ b as disjoint boxes
bool subset(const Box& a, const Box& b);             // a ⊆ b

// A union of disjoint, non-empty boxes.
class Region {
 public:
  Region() = default;
  explicit Region(std::vector<Box> disjoint) : boxes_(std::move(disjoint)) {}
  static Region all_ip();                            // every IP packet of both families
  const std::vector<Box>& boxes() const { return boxes_; }
  bool empty() const { return boxes_.empty(); }
  bool intersects(const Box& b) const;
  Region intersect(const Box& b) const;
  void subtract(const Box& b);
  void subtract(const Region& r);
  void add_disjoint(Box b) { if (!b.empty()) boxes_.push_back(std::move(b)); }
  bool contains(const PacketFields& pkt) const;

 private:
  std::vector<Box> boxes_;
};

// The packets rule `r` matches, as disjoint boxes (one per family it admits;
// none when its matches contradict each other).
std::vector<Box> rule_boxes(const Rule& r);

// Merge boxes that differ in one dimension only, until none do (the union is
// unchanged; fewer, larger boxes read better).
std::vector<Box> merge_boxes(std::vector<Box> boxes);

}  // namespace qosc::ir
