#pragma once
// The optimiser: ir rules -> a decision structure.
//
//   family (4/6) -> switch on protocol (protocols with identical candidate
//   rules share a case) -> partition:
//     D: rules constraining dport: elementary dport intervals, binary search
//     S: rules constraining sport only: elementary sport intervals
//     W: the rest, checked in rule order
//   Each interval leaf holds the (sorted) candidate rules whose port set
//   contains the interval; candidates are checked in rule order against the
//   remaining fields and the first match wins. D, S and W each record their
//   first match as the running minimum in memory (qos_pkt.best), so the
//   overall answer is the minimum rule index, i.e. first-match semantics.
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "qosc/ir.hpp"

namespace qosc::codegen {

// An interval [lo, hi] of port values and the rules (indices into
// Policy::rules, ascending) that it selects.
struct Leaf {
  uint32_t lo = 0, hi = 0;
  std::vector<uint32_t> rules;
};

// Elementary intervals of the given rules' port sets along one dimension
// (dport when `dst`, else sport): a partition of [0, 65535] into intervals,
// adjacent intervals with equal candidate lists merged.
std::vector<Leaf> port_intervals(const ir::Policy& policy, const std::vector<uint32_t>& rules, bool dst);

struct Partition {
  std::vector<uint32_t> rules;   // all candidates, ascending
  std::vector<uint32_t> d, s, w; // split as described above
  std::vector<Leaf> d_leaves, s_leaves;
};

struct FamilyPlan {
  // proto value (-1..255) -> partition index; protocols missing map to `fallback`.
  std::map<int, uint32_t> proto_case;
  std::optional<uint32_t> fallback;  // partition for every other protocol
};

struct DecisionPlan {
  std::vector<Partition> partitions;
  FamilyPlan v4, v6;
  std::vector<uint32_t> dead_rules;   // proven unreachable, not compiled
};

DecisionPlan plan_decisions(const ir::Policy& policy);  // dead rules: ir::unreachable_rules
DecisionPlan plan_decisions(const ir::Policy& policy, std::vector<uint32_t> dead);  // dead: from the midend

// Merge sibling prefixes (a/n+1 and its sibling -> a/n) and drop covered ones.
std::vector<ir::Prefix> merge_prefixes(std::vector<ir::Prefix> prefixes);

}  // namespace qosc::codegen
