#include "decision.hpp"

#include <algorithm>
#include <set>

namespace qosc::codegen {
namespace {

bool set_subset(const ir::PortSet& a, const ir::PortSet& b) {  // a ⊆ b
  for (const auto& iv : a) {
    bool inside = false;
    for (const auto& jv : b)
      if (jv.lo <= iv.lo && iv.hi <= jv.hi) { inside = true; break; }
    if (!inside) return false;
  }
  return true;
}

bool prefix_covers(const ir::Prefix& outer, const ir::Prefix& inner) {
  if (outer.family != inner.family || outer.len > inner.len) return false;
  for (unsigned bit = 0; bit < outer.len; ++bit) {
    unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
    if ((outer.addr[byte] & mask) != (inner.addr[byte] & mask)) return false;
  }
  return true;
}

bool prefixes_subset(const std::vector<ir::Prefix>& a, const std::vector<ir::Prefix>& b) {
  for (const auto& p : a) {
    bool in = std::any_of(b.begin(), b.end(), [&](const ir::Prefix& q) { return prefix_covers(q, p); });
    if (!in) return false;
  }
  return true;
}

// Does AddrMatch `later_m` (holding) imply AddrMatch `m`?
bool addr_implies(const ir::AddrMatch& later_m, const ir::AddrMatch& m) {
  if (later_m.dst != m.dst || later_m.family != m.family) return false;
  if (!m.negated && !later_m.negated) return prefixes_subset(later_m.prefixes, m.prefixes);
  if (m.negated && later_m.negated) return prefixes_subset(m.prefixes, later_m.prefixes);
  return false;
}

int family_num(ir::Family f) { return f == ir::Family::V4 ? 4 : f == ir::Family::V6 ? 6 : 0; }

}  // namespace

bool rule_admits(const ir::Rule& r, int family, int proto) {
  if (r.family != ir::Family::Any && family_num(r.family) != family) return false;
  if (r.protos && (proto < 0 || !r.protos->test(size_t(proto)))) return false;
  for (const auto& m : r.addrs)
    if (family_num(m.family) != family) return false;
  // Ports need a TCP/UDP header.
  if ((r.sport || r.dport) && proto != 6 && proto != 17) return false;
  if (r.sport && r.sport->empty()) return false;
  if (r.dport && r.dport->empty()) return false;
  if (r.dscp && r.dscp->none()) return false;
  return true;
}

bool rule_covers(const ir::Rule& e, const ir::Rule& l) {
  // family
  if (e.family != ir::Family::Any) {
    bool l_fixed = l.family == e.family ||
                   std::any_of(l.addrs.begin(), l.addrs.end(), [&](const ir::AddrMatch& m) { return m.family == e.family; });
    if (!l_fixed) return false;
  }
  if (e.protos) {
    if (!l.protos) return false;
    if ((*l.protos & ~*e.protos).any()) return false;
  }
  if (e.sport && !(l.sport && set_subset(*l.sport, *e.sport))) return false;
  if (e.dport && !(l.dport && set_subset(*l.dport, *e.dport))) return false;
  if (e.dscp) {
    if (!l.dscp) return false;
    if ((*l.dscp & ~*e.dscp).any()) return false;
  }
  for (const auto& m : e.addrs) {
    bool implied = std::any_of(l.addrs.begin(), l.addrs.end(), [&](const ir::AddrMatch& lm) { return addr_implies(lm, m); });
    if (!implied) return false;
  }
  return true;
}

std::vector<uint32_t> dead_rules(const ir::Policy& policy, uint64_t budget) {
  std::vector<uint32_t> dead;
  std::vector<uint32_t> live;
  for (uint32_t i = 0; i < policy.rules.size(); ++i) {
    const auto& r = policy.rules[i];
    bool satisfiable = false;
    for (int fam : {4, 6})
      for (int proto = -1; proto < 256 && !satisfiable; ++proto) satisfiable = rule_admits(r, fam, proto);
    bool covered = false;
    // Pairwise coverage is quadratic: within the budget only (sound either way).
    if (satisfiable && budget >= live.size()) {
      budget -= live.size();
      for (uint32_t j : live)
        if (rule_covers(policy.rules[j], r)) { covered = true; break; }
    }
    if (!satisfiable || covered) dead.push_back(i);
    else live.push_back(i);
  }
  return dead;
}

std::vector<Leaf> port_intervals(const ir::Policy& policy, const std::vector<uint32_t>& rules, bool dst) {
  // Boundaries: every lo and hi+1.
  std::set<uint32_t> cuts{0, 65536};
  for (uint32_t i : rules) {
    const auto& set = dst ? policy.rules[i].dport : policy.rules[i].sport;
    if (!set) continue;
    for (const auto& iv : *set) {
      cuts.insert(iv.lo);
      cuts.insert(uint32_t(iv.hi) + 1);
    }
  }
  std::vector<uint32_t> b(cuts.begin(), cuts.end());
  std::vector<Leaf> leaves;
  // Sweep: for each rule, which elementary intervals it covers; O(rules * intervals per rule * log).
  std::vector<std::vector<uint32_t>> lists(b.size() - 1);
  for (uint32_t i : rules) {
    const auto& set = dst ? policy.rules[i].dport : policy.rules[i].sport;
    if (!set) {
      for (auto& l : lists) l.push_back(i);
      continue;
    }
    for (const auto& iv : *set) {
      auto k = size_t(std::lower_bound(b.begin(), b.end(), uint32_t(iv.lo)) - b.begin());
      for (; k + 1 < b.size() && b[k] <= iv.hi; ++k) lists[k].push_back(i);
    }
  }
  for (size_t k = 0; k + 1 < b.size(); ++k) {
    if (!leaves.empty() && leaves.back().rules == lists[k]) {
      leaves.back().hi = b[k + 1] - 1;
      continue;
    }
    leaves.push_back(Leaf{b[k], b[k + 1] - 1, std::move(lists[k])});
  }
  return leaves;
}

DecisionPlan plan_decisions(const ir::Policy& policy) { return plan_decisions(policy, dead_rules(policy)); }

DecisionPlan plan_decisions(const ir::Policy& policy, std::vector<uint32_t> dead) {
  DecisionPlan plan;
  plan.dead_rules = std::move(dead);
  std::vector<bool> is_dead(policy.rules.size(), false);
  for (uint32_t i : plan.dead_rules) is_dead[i] = true;

  std::map<std::vector<uint32_t>, uint32_t> index;  // candidate list -> partition
  auto partition_of = [&](const std::vector<uint32_t>& rules) -> uint32_t {
    auto it = index.find(rules);
    if (it != index.end()) return it->second;
    Partition p;
    p.rules = rules;
    for (uint32_t i : rules) {
      const auto& r = policy.rules[i];
      if (r.dport) p.d.push_back(i);
      else if (r.sport) p.s.push_back(i);
      else p.w.push_back(i);
    }
    if (!p.d.empty()) p.d_leaves = port_intervals(policy, p.d, true);
    if (!p.s.empty()) p.s_leaves = port_intervals(policy, p.s, false);
    plan.partitions.push_back(std::move(p));
    index.emplace(rules, uint32_t(plan.partitions.size() - 1));
    return uint32_t(plan.partitions.size() - 1);
  };

  for (int fam : {4, 6}) {
    FamilyPlan& fp = fam == 4 ? plan.v4 : plan.v6;
    std::map<std::vector<uint32_t>, std::vector<int>> by_list;
    for (int proto = -1; proto < 256; ++proto) {
      if (fam == 4 && proto < 0) continue;  // IPv4 always knows its protocol
      std::vector<uint32_t> rules;
      for (uint32_t i = 0; i < policy.rules.size(); ++i)
        if (!is_dead[i] && rule_admits(policy.rules[i], fam, proto)) rules.push_back(i);
      by_list[rules].push_back(proto);
    }
    // The most common list becomes the switch's default.
    size_t best = 0;
    const std::vector<uint32_t>* fallback = nullptr;
    for (const auto& [rules, protos] : by_list)
      if (protos.size() > best) { best = protos.size(); fallback = &rules; }
    for (const auto& [rules, protos] : by_list) {
      if (&rules == fallback) continue;
      if (rules.empty()) {
        for (int proto : protos) fp.proto_case[proto] = UINT32_MAX;  // explicit "nothing matches"
        continue;
      }
      uint32_t part = partition_of(rules);
      for (int proto : protos) fp.proto_case[proto] = part;
    }
    if (fallback && !fallback->empty()) fp.fallback = partition_of(*fallback);
  }
  return plan;
}

std::vector<ir::Prefix> merge_prefixes(std::vector<ir::Prefix> ps) {
  // Address order with an ancestor before its descendants; then one sweep
  // with a stack: drop what the last kept prefix covers, and fold a prefix
  // into its parent whenever its sibling is right below it (O(n log n)).
  std::sort(ps.begin(), ps.end(), [](const ir::Prefix& a, const ir::Prefix& b) {
    return std::tie(a.family, a.addr, a.len) < std::tie(b.family, b.addr, b.len);
  });
  std::vector<ir::Prefix> st;
  for (const auto& p : ps) {
    if (!st.empty() && prefix_covers(st.back(), p)) continue;
    st.push_back(p);
    while (st.size() >= 2) {
      const ir::Prefix &a = st[st.size() - 2], &b = st.back();
      if (a.family != b.family || a.len != b.len || a.len == 0) break;
      const unsigned bit = a.len - 1u, byte = bit / 8, mask = 0x80u >> (bit % 8);
      ir::Prefix pa = a, pb = b;
      pa.addr[byte] &= uint8_t(~mask);
      pb.addr[byte] &= uint8_t(~mask);
      if (pa.addr != pb.addr || (a.addr[byte] & mask) || !(b.addr[byte] & mask)) break;
      pa.len = uint8_t(a.len - 1);
      st.pop_back();
      st.back() = pa;
    }
  }
  return st;
}

}  // namespace qosc::codegen
