// --strict lints (qosc/lints.hpp).
#include "qosc/lints.hpp"

#include <fmt/format.h>

#include "qosc/match_text.hpp"
#include "qosc/reach.hpp"

namespace qosc::analysis {
namespace {

// "tcp dport 80", or "tcp dport 80, or udp dport 53", at most kShown.
std::string region_text(const ir::Region& r) {
  constexpr size_t kShown = 3;
  std::vector<std::string> texts;
  for (auto& l : ir::match_lines(r.boxes())) texts.push_back(std::move(l.text));
  std::string s;
  for (size_t i = 0; i < texts.size() && i < kShown; ++i) s += (i ? ", or " : "") + texts[i];
  if (texts.size() > kShown) s += fmt::format(" (and {} more)", texts.size() - kShown);
  return s;
}

}  // namespace

void warn_class_overlaps(const ir::Policy& policy, Diagnostics& diags) {
  ir::FirstMatchIndex index;
  for (uint32_t i = 0; i < policy.rules.size(); ++i) {
    const ir::Rule& r = policy.rules[i];
    ir::Reach reach = index.reach(r, true);
    if (reach.never()) continue;  // unreachable: reported by the front end
    index.add(i, r);
    for (size_t k = 0; k < reach.taken_by.size(); ++k) {
      const ir::Rule& e = policy.rules[reach.taken_by[k]];
      if (e.target == r.target) continue;
      auto cls = [&](int32_t t) { return policy.classes[size_t(t)].name; };
      std::string what = region_text(reach.taken[k]);
      std::string earlier = e.target == ir::kDrop ? fmt::format("drops {}", what)
                                                  : fmt::format("sends {} to '{}'", what, cls(e.target));
      std::string mine = r.target == ir::kDrop ? "drop it" : fmt::format("send it to '{}'", cls(r.target));
      auto& d = diags.warning(r.loc, fmt::format("rule at line {} {} before this rule can {}", e.loc.line, earlier, mine));
      d.notes.push_back({e.loc, "the earlier rule is here"});
    }
  }
}

}  // namespace qosc::analysis
