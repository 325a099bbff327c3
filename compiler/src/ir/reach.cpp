// First-match semantics over regions (qosc/reach.hpp).
#include "qosc/reach.hpp"

#include <algorithm>

namespace qosc::ir {

void FirstMatchIndex::add(uint32_t id, const Rule& r) {
  for (auto& b : rule_boxes(r)) {
    hulls_.push_back(BoxHull::of(b));
    entries_.push_back({id, std::move(b)});
  }
}

Reach FirstMatchIndex::reach(const Rule& r, bool record_taken) const {
  Reach out;
  out.reaches = Region(rule_boxes(r));
  std::vector<BoxHull> mine;
  for (const auto& b : out.reaches.boxes()) mine.push_back(BoxHull::of(b));
  for (size_t k = 0; k < entries_.size(); ++k) {
    if (out.reaches.empty()) break;
    const BoxHull& h = hulls_[k];
    if (std::none_of(mine.begin(), mine.end(), [&](const BoxHull& m) { return m.meets(h); })) continue;
    const Entry& e = entries_[k];
    if (!out.reaches.intersects(e.box)) continue;
    if (record_taken) {
      Region t = out.reaches.intersect(e.box);
      if (!out.taken_by.empty() && out.taken_by.back() == e.id) {
        for (const auto& b : t.boxes()) out.taken.back().add_disjoint(b);
      } else {
        out.taken.push_back(std::move(t));
      }
    }
    if (out.taken_by.empty() || out.taken_by.back() != e.id) out.taken_by.push_back(e.id);
    out.reaches.subtract(e.box);
  }
  if (out.never() && out.taken_by.size() > 1 && !record_taken) out.taken_by = irredundant_cover(r, out.taken_by);
  return out;
}

// Every rule that takes some packets of an unreachable rule is listed in
// taken_by; a reader wants the few that cover it. Drop, first to last, each
// rule the others still cover it without. (Bounded: beyond kMaxCover rules
// the list stays as it is, still true, only longer.)
std::vector<uint32_t> FirstMatchIndex::irredundant_cover(const Rule& r, std::vector<uint32_t> ids) const {
  constexpr size_t kMaxCover = 64;
  if (ids.size() > kMaxCover) return ids;
  const std::vector<Box> mine = rule_boxes(r);
  std::vector<std::vector<const Box*>> boxes;
  for (uint32_t id : ids) {
    boxes.emplace_back();
    for (const auto& e : entries_)
      if (e.id == id) boxes.back().push_back(&e.box);
  }
  std::vector<bool> keep(ids.size(), true);
  for (size_t drop = 0; drop < ids.size(); ++drop) {
    keep[drop] = false;
    Region rest(mine);
    for (size_t k = 0; k < ids.size() && !rest.empty(); ++k)
      if (keep[k])
        for (const Box* b : boxes[k]) rest.subtract(*b);
    if (!rest.empty()) keep[drop] = true;
  }
  std::vector<uint32_t> out;
  for (size_t k = 0; k < ids.size(); ++k)
    if (keep[k]) out.push_back(ids[k]);
  return out;
}

std::vector<uint32_t> unreachable_rules(const Policy& policy) {
  std::vector<uint32_t> dead;
  FirstMatchIndex index;
  for (uint32_t i = 0; i < policy.rules.size(); ++i) {
    if (index.reach(policy.rules[i]).never()) dead.push_back(i);
    else index.add(i, policy.rules[i]);
  }
  return dead;
}

std::vector<Decided> decision_regions(const Policy& policy) {
  // `rest`: the packets no rule so far has taken, as boxes with their hulls.
  // A rule decides what of its boxes is still in it.
  std::vector<Decided> out;
  std::vector<Box> rest = Region::all_ip().boxes();
  std::vector<BoxHull> hulls;
  for (const auto& b : rest) hulls.push_back(BoxHull::of(b));
  std::vector<Box> next;
  std::vector<BoxHull> next_hulls;
  for (uint32_t i = 0; i < policy.rules.size(); ++i) {
    const Rule& r = policy.rules[i];
    Region mine;
    for (const auto& b : rule_boxes(r)) {
      const BoxHull h = BoxHull::of(b);
      next.clear();
      next_hulls.clear();
      for (size_t k = 0; k < rest.size(); ++k) {
        if (!hulls[k].meets(h) || !intersects(rest[k], b)) {
          next.push_back(std::move(rest[k]));
          next_hulls.push_back(hulls[k]);
          continue;
        }
        mine.add_disjoint(intersect(rest[k], b));
        const size_t from = next.size();
        subtract(rest[k], b, next);
        for (size_t n = from; n < next.size(); ++n) next_hulls.push_back(BoxHull::of(next[n]));
      }
      std::swap(rest, next);
      std::swap(hulls, next_hulls);
    }
    if (!mine.empty()) out.push_back({int(i), r.target, std::move(mine)});
  }
  out.push_back({-1, int32_t(policy.default_class), Region(std::move(rest))});
  return out;
}

}  // namespace qosc::ir
