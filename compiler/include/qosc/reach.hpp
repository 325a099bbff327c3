#pragma once
// First-match semantics over the rule algebra: which packets reach a rule,
// which rules can never match, and the partition of packet space into the
// regions each rule (or the default class) decides.
#include <cstdint>
#include <vector>

#include "qosc/region.hpp"

namespace qosc::ir {

// What reaches one rule past the rules before it.
struct Reach {
  Region reaches;                  // the packets this rule decides
  // Ids of earlier rules that take some of its packets, in order; for a rule
  // that is never reached (and without record_taken), only rules needed to
  // cover it: none can be left out.
  std::vector<uint32_t> taken_by;
  // With `record_taken`: per entry of taken_by, the packets that rule takes
  // from this one (they would reach it if that rule were not there).
  std::vector<Region> taken;
  bool never() const { return reaches.empty(); }
};

// The rules added so far, in first-match order; answers "what of this rule
// is left". Used incrementally by sema (rules arrive one by one) and in one go
// by unreachable_rules.
class FirstMatchIndex {
 public:
  void add(uint32_t id, const Rule& r);  // ids ascending
  Reach reach(const Rule& r, bool record_taken = false) const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<uint32_t> irredundant_cover(const Rule& r, std::vector<uint32_t> ids) const;
  struct Entry {
    uint32_t id;
    Box box;
  };
  std::vector<Entry> entries_;
  std::vector<BoxHull> hulls_;   // per entry: the scan tests these (compact) before the exact sets
};

// Positions (into policy.rules) of the rules no packet reaches: their own
// matches contradict each other, or the union of earlier rules takes every
// packet they match.
std::vector<uint32_t> unreachable_rules(const Policy& policy);

// The policy's decision as a partition of IP packet space: each rule's
// reaching region (in rule order, unreachable rules left out), then the
// default class's region.
struct Decided {
  int rule = -1;         // position in policy.rules, -1 for the default class
  int32_t outcome = 0;   // class id or kDrop
  Region region;
};
// (The default class's region is the complement of every rule: with many
// overlapping rules it fragments into many boxes. Tools that can, such as
// diff, work rule by rule instead.)
std::vector<Decided> decision_regions(const Policy& policy);

// The packets no rule of any of the policies matches.
Region unmatched(const std::vector<const Policy*>& policies);

}  // namespace qosc::ir
