#include "decision.hpp"

#include <algorithm>
#include <set>

#include "qosc/reach.hpp"

namespace qosc::codegen {
namespace {

// The (family, protocol) pairs a rule's packets can have: a projection of
// its boxes in the rule algebra.
bool admits(const std::vector<ir::Box>& boxes, int family, int proto) {
  for (const auto& b : boxes) {
    if ((family == 4) != (b.family == ir::Family::V4)) continue;
    if (proto < 0 ? b.atoms.test(ir::kAtomUnknown) : b.atoms.test(ir::atom_without_ports(proto))) return true;
    if ((proto == 6 && b.atoms.test(ir::kAtomTcpPorts)) || (proto == 17 && b.atoms.test(ir::kAtomUdpPorts))) return true;
  }
  return false;
}

}  // namespace

std::vector<Leaf> port_intervals(const ir::Policy& policy, const std::vector<uint32_t>& rules, bool dst) {
  const std::vector<uint32_t> b = ir::port_cut_points(policy, rules, dst);
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

DecisionPlan plan_decisions(const ir::Policy& policy) { return plan_decisions(policy, ir::unreachable_rules(policy)); }

DecisionPlan plan_decisions(const ir::Policy& policy, std::vector<uint32_t> dead) {
  DecisionPlan plan;
  plan.dead_rules = std::move(dead);
  std::vector<bool> is_dead(policy.rules.size(), false);
  for (uint32_t i : plan.dead_rules) is_dead[i] = true;
  std::vector<std::vector<ir::Box>> boxes(policy.rules.size());
  for (uint32_t i = 0; i < policy.rules.size(); ++i)
    if (!is_dead[i]) boxes[i] = ir::rule_boxes(policy.rules[i]);

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
        if (!is_dead[i] && admits(boxes[i], fam, proto)) rules.push_back(i);
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
    if (!st.empty() && ir::prefix_contains(st.back(), p)) continue;
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
