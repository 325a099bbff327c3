// The midend pass list (qosc/midend.hpp).
#include "qosc/midend.hpp"

#include <fmt/format.h>

#include "qosc/reach.hpp"
#include "qosc/units.hpp"

namespace qosc {


// The policy stays valid for its own link; this run shapes to another one,
// and a cap above that link could never be reached, so it becomes the link.
void override_link(ir::Policy& policy, uint64_t link_bps, Diagnostics& diags) {
  policy.link_bps = link_bps;
  // --link names the one rate to shape to: an adaptive range would contradict
  // it (the controller would move the rate away), so the link becomes fixed.
  if (policy.link_adaptive) {
    auto& d = diags.warning(Loc{}, fmt::format("--link {} replaces the adaptive link {}-{}: the link is shaped to a fixed {}",
                                               units::format_rate(link_bps), units::format_rate(policy.link_adaptive->min_bps),
                                               units::format_rate(policy.link_adaptive->max_bps), units::format_rate(link_bps)));
    d.hints.push_back("leave out --link to keep the adaptive rate");
    policy.link_adaptive.reset();
  }
  for (auto& c : policy.classes) {
    if (c.rate_bps <= link_bps) continue;
    auto& d = diags.warning(c.loc, fmt::format("class '{}' has rate {}, above the link of {} given by --link; "
                                               "its cap becomes the link rate",
                                               c.name, units::format_rate(c.rate_bps), units::format_rate(link_bps)));
    d.hints.push_back("lower the class's rate in the policy to silence this");
    c.rate_bps = link_bps;
  }
}

MidendResult run_midend(ir::Policy& policy, const MidendOptions& options, Diagnostics& diags) {
  MidendResult r;
  if (options.link_bps) override_link(policy, *options.link_bps, diags);
  // The front end already left out (and warned about) every unreachable rule.
  if (options.find_unreachable && !policy.unreachable_removed) r.dead_rules = ir::unreachable_rules(policy);
  return r;
}

}  // namespace qosc
