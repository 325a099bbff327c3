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
  constexpr size_t kMaxCover = 16;
  const std::vector<Box> mine = rule_boxes(r);
  std::vector<std::vector<const Box*>> boxes;
  for (uint32_t id : ids) {  // entries are in ascending id order (add)
    boxes.emplace_back();
    auto it = std::lower_bound(entries_.begin(), entries_.end(), id, [](const Entry& e, uint32_t v) { return e.id < v; });
    for (; it != entries_.end() && it->id == id; ++it) boxes.back().push_back(&it->box);
  }
  // One rule alone often does (cheap to see): then it is the answer.
  for (size_t k = 0; k < ids.size(); ++k) {
    bool all = true;
    for (const Box& m : mine) {
      Region rest({m});
      for (const Box* b : boxes[k]) rest.subtract(*b);
      all = all && rest.empty();
    }
    if (all) return {ids[k]};
  }
  if (ids.size() > kMaxCover) return ids;
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

namespace {

// A union of disjoint boxes with their hulls, for subtracting many boxes from
// it: a box's hull rules most of the pieces out before the exact test.
struct HulledBoxes {
  std::vector<Box> boxes;
  std::vector<BoxHull> hulls;
  std::vector<Box> next;
  std::vector<BoxHull> next_hulls;

  explicit HulledBoxes(std::vector<Box> b) : boxes(std::move(b)) {
    for (const auto& x : boxes) hulls.push_back(BoxHull::of(x));
  }
  // Removes `b`; what it removed goes into *taken (when given).
  void subtract(const Box& b, Region* taken) {
    const BoxHull h = BoxHull::of(b);
    next.clear();
    next_hulls.clear();
    for (size_t k = 0; k < boxes.size(); ++k) {
      if (!hulls[k].meets(h) || !intersects(boxes[k], b)) {
        next.push_back(std::move(boxes[k]));
        next_hulls.push_back(hulls[k]);
        continue;
      }
      if (taken) taken->add_disjoint(intersect(boxes[k], b));
      const size_t from = next.size();
      ir::subtract(boxes[k], b, next);
      for (size_t n = from; n < next.size(); ++n) next_hulls.push_back(BoxHull::of(next[n]));
    }
    std::swap(boxes, next);
    std::swap(hulls, next_hulls);
  }
};

}  // namespace

std::vector<Decided> decision_regions(const Policy& policy) {
  // `rest`: the packets no rule so far has taken. A rule decides what of its
  // boxes is still in it.
  std::vector<Decided> out;
  HulledBoxes rest(Region::all_ip().boxes());
  for (uint32_t i = 0; i < policy.rules.size(); ++i) {
    const Rule& r = policy.rules[i];
    Region mine;
    for (const auto& b : rule_boxes(r)) rest.subtract(b, &mine);
    if (!mine.empty()) out.push_back({int(i), r.target, std::move(mine)});
  }
  out.push_back({-1, int32_t(policy.default_class), Region(std::move(rest.boxes))});
  return out;
}

Region unmatched(const std::vector<const Policy*>& policies) {
  HulledBoxes rest(Region::all_ip().boxes());
  for (const Policy* p : policies)
    for (const auto& r : p->rules)
      for (const auto& b : rule_boxes(r)) rest.subtract(b, nullptr);
  return Region(std::move(rest.boxes));
}

}  // namespace qosc::ir
