// Semantic checks and lowering of `plan` and `hosts` (docs/language.md "Hosts
// and plans"): the part of sema that describes hosts of a host table rather
// than packets, so it lives apart from the rule checks.
#include "sema_hosts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "qosc/units.hpp"

namespace qosc {
namespace {

// The policy's class names, for "did you mean" and for listing what exists.
std::vector<std::string> class_names(const ir::Policy& p) {
  std::vector<std::string> v;
  for (const auto& c : p.classes) v.push_back(c.name);
  return v;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

// One plan: its attributes checked against the link and the classes.
std::optional<ir::Plan> lower_plan(const ast::PlanDecl& d, const ast::Policy& ast, const ir::Policy& out,
                                   Diagnostics& diags) {
  ir::Plan p;
  p.name = d.name;
  p.loc = d.name_loc;
  bool ok = true;
  std::map<ast::PlanAttrKind, Loc> seen;
  const ast::PlanAttr *rate = nullptr, *ceil = nullptr;
  for (const auto& a : d.attrs) {
    if (auto [pos, fresh] = seen.emplace(a.kind, a.loc); !fresh) {
      auto& e = diags.error(a.loc, fmt::format("'{}' is given twice in plan '{}'", ast::to_string(a.kind), d.name));
      e.notes.push_back({pos->second, "first given here"});
      ok = false;
      continue;
    }
    switch (a.kind) {
      case ast::PlanAttrKind::Rate:
        rate = &a;
        p.rate_bps = a.rate.bps;
        break;
      case ast::PlanAttrKind::Ceil:
        ceil = &a;
        p.ceil_bps = a.rate.bps;
        break;
      case ast::PlanAttrKind::Burst:
        if (a.size.bytes == 0) {
          auto& e = diags.error(a.size.loc, fmt::format("burst of plan '{}' must be greater than zero", d.name));
          e.hints.push_back("leave `burst` out for HTB's default at the plan's rate");
          ok = false;
        }
        p.burst_bytes = a.size.bytes;
        break;
      case ast::PlanAttrKind::Classes: {
        std::map<std::string, Loc> listed;
        for (const auto& [name, loc] : a.classes) {
          if (auto [pos, fresh] = listed.emplace(name, loc); !fresh) {
            auto& e = diags.error(loc, fmt::format("class '{}' is listed twice in plan '{}'", name, d.name));
            e.notes.push_back({pos->second, "first listed here"});
            ok = false;
            continue;
          }
          const ir::Class* c = out.find_class(name);
          if (!c) {
            auto& e = diags.error(loc, fmt::format("plan '{}' lists class '{}', which the policy does not declare",
                                                   d.name, name));
            std::string near = closest_match(name, class_names(out));
            if (!near.empty()) e.hints.push_back(fmt::format("did you mean '{}'?", near));
            else e.notes.push_back({Loc{}, fmt::format("the classes are: {}", joined(class_names(out)))});
            ok = false;
            continue;
          }
          p.classes.push_back(c->id);
        }
        std::sort(p.classes.begin(), p.classes.end());
        // Packets of a class the plan lacks go to the default class's leaf
        // inside the host (qos_abi.h "hosts": default_leaf), so it must be there.
        if (ok && out.default_class < out.classes.size() &&
            !std::binary_search(p.classes.begin(), p.classes.end(), out.default_class)) {
          const std::string& def = out.classes[out.default_class].name;
          auto& e = diags.error(a.loc, fmt::format("plan '{}' leaves out the default class '{}'", d.name, def));
          e.notes.push_back({Loc{}, "a host's packets of a class its plan lacks go to the default class's queue inside "
                                    "the host, so every plan needs it"});
          e.hints.push_back(fmt::format("add it: `classes {}, {};`", [&] {
            std::string s;
            for (size_t i = 0; i < a.classes.size(); ++i) s += (i ? ", " : "") + a.classes[i].first;
            return s;
          }(), def));
          ok = false;
        }
        break;
      }
    }
  }
  if (!rate) {
    auto& e = diags.error(d.name_loc, fmt::format("plan '{}' has no rate", d.name));
    e.hints.push_back(fmt::format("give the rate every host of the plan gets, e.g. `plan {} {{ rate 10mbit; }}`", d.name));
    return std::nullopt;
  }
  if (rate->rate.bps == 0) {
    diags.error(rate->rate.loc, fmt::format("rate of plan '{}' must be greater than zero", d.name));
    ok = false;
  }
  // Against the link's nominal rate (MAX of an adaptive link): a host can
  // never get more than the interface is shaped to.
  if (!ast.links.empty() && out.link_bps) {
    const ast::Rate& link = ast.links[0].nominal();
    for (const ast::PlanAttr* a : {rate, ceil}) {
      if (!a || a->rate.bps <= out.link_bps) continue;
      auto& e = diags.error(a->rate.loc, fmt::format("{} {} of plan '{}' is above the link rate {}",
                                                     ast::to_string(a->kind), a->rate.text, d.name, link.text));
      e.notes.push_back({link.loc, ast.links[0].adaptive ? "the adaptive link's highest rate is given here"
                                                         : "link rate given here"});
      e.hints.push_back("no host can get more than the link; lower it, or raise the link if it is faster");
      ok = false;
    }
  }
  if (ceil && ceil->rate.bps < rate->rate.bps) {
    auto& e = diags.error(ceil->rate.loc, fmt::format("ceil {} of plan '{}' is below its rate {}", ceil->rate.text,
                                                      d.name, rate->rate.text));
    e.notes.push_back({rate->rate.loc, "rate given here"});
    e.hints.push_back("the ceiling is what a host may borrow up to when the link is idle: at least the rate; leave it "
                      "out for a host that never borrows");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return p;
}

}  // namespace

void check_plans_and_hosts(const ast::Policy& ast, ir::Policy& out, Diagnostics& diags) {
  std::map<std::string, Loc> names;
  for (const auto& d : ast.plans) {
    if (auto [pos, fresh] = names.emplace(d.name, d.name_loc); !fresh) {
      auto& e = diags.error(d.name_loc, fmt::format("plan '{}' is declared twice", d.name));
      e.notes.push_back({pos->second, "first declared here"});
      e.hints.push_back("give each plan its own name");
      continue;
    }
    if (auto p = lower_plan(d, ast, out, diags)) out.plans.push_back(std::move(*p));
  }

  for (size_t i = 1; i < ast.hosts.size(); ++i) {
    auto& e = diags.error(ast.hosts[i].loc, "a policy has at most one `hosts` line");
    e.notes.push_back({ast.hosts[0].loc, "first given here"});
    e.hints.push_back("a host is named by one address on an interface: keep one of them");
  }
  if (ast.hosts.empty()) {
    if (!ast.plans.empty()) {
      auto& e = diags.error(ast.plans[0].loc, "the policy declares plans but not which address names a host");
      e.hints.push_back("add `hosts daddr;` to shape what hosts download (on the interface towards them), or "
                        "`hosts saddr;` for what they upload");
    }
    return;
  }
  const ast::HostsDecl& h = ast.hosts[0];
  ir::Hosts hosts;
  bool ok = true;
  if (h.by == "saddr" || h.by == "daddr") {
    hosts.dst = h.by == "daddr";
  } else {
    auto& e = diags.error(h.by_loc, fmt::format("hosts are named by 'saddr' or 'daddr', not '{}'", h.by));
    std::string near = closest_match(h.by, {"saddr", "daddr"});
    if (!near.empty()) e.hints.push_back(fmt::format("did you mean '{}'?", near));
    ok = false;
  }
  hosts.nat = h.nat.has_value();
  if (ast.plans.empty()) {
    auto& e = diags.error(h.loc, "`hosts` without any plan: a host of the host table must get a plan");
    e.hints.push_back("declare what a host gets, e.g. `plan basic { rate 10mbit; }`");
    ok = false;
  }
  if (out.scheduler.kind == ir::SchedKind::Pifo) {
    auto& e = diags.error(h.loc, "`hosts` does not work with scheduler pifo: hosts are HTB classes, and pifo's bands "
                                 "have no per-host tree");
    if (!ast.schedulers.empty()) e.notes.push_back({ast.schedulers[0].kind_loc, "scheduler pifo given here"});
    e.hints.push_back("use strict_priority, round_robin, deficit_round_robin or weighted_fair_queuing with hosts");
    ok = false;
  }
  if (ok) out.hosts = hosts;
}

}  // namespace qosc
