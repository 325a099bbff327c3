// The semantic diff of two policies (qosc/diff.hpp).
#include "qosc/diff.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "qosc/literals.hpp"
#include "qosc/match_text.hpp"
#include "qosc/reach.hpp"
#include "qosc/units.hpp"

namespace qosc {
}

namespace qosc::analysis {
namespace {

// Outcomes are compared by name: class ids are positions and shift when a
// class is inserted, a name is what the user sees.
std::string outcome_name(const ir::Policy& p, int32_t outcome) {
  return outcome == ir::kDrop ? "drop" : p.classes[size_t(outcome)].name;
}

struct Changes {
  std::vector<std::pair<std::string, std::string>> order;   // (from, to) by first appearance
  std::map<std::pair<std::string, std::string>, std::vector<ir::Box>> boxes;
  void add(const std::string& from, const std::string& to, const ir::Box& b) {
    auto key = std::make_pair(from, to);
    auto [it, fresh] = boxes.try_emplace(key);
    if (fresh) order.push_back(key);
    it->second.push_back(b);
  }
};

struct RuleBox {
  std::string outcome;
  ir::Box box;
  ir::BoxHull hull;
};

std::vector<RuleBox> rule_boxes_of(const ir::Policy& p) {
  std::vector<RuleBox> v;
  for (const auto& r : p.rules)
    for (auto& x : ir::rule_boxes(r)) {
      ir::BoxHull h = ir::BoxHull::of(x);
      v.push_back({outcome_name(p, r.target), std::move(x), h});
    }
  return v;
}

// Packet space splits by which old rule (or the default) and which new rule
// (or the default) decides. Each part is found from the rules' side, so that
// the work stays local to rules that overlap; only when the default class
// itself changes is the complement of all rules needed.
//   1. what an old rule decides, run through the new rules in order;
//   2. what a new rule decides that no old rule matched (old: default);
//   3. what no rule of either matches, when the two defaults differ.
Changes changed_regions(const ir::Policy& a, const ir::Policy& b) {
  const std::vector<RuleBox> old_rules = rule_boxes_of(a), new_rules = rule_boxes_of(b);
  const std::string old_default = outcome_name(a, int32_t(a.default_class));
  const std::string new_default = outcome_name(b, int32_t(b.default_class));
  Changes out;

  ir::FirstMatchIndex old_index;
  for (uint32_t i = 0; i < a.rules.size(); ++i) {
    ir::Reach reach = old_index.reach(a.rules[i]);
    if (reach.never()) continue;
    old_index.add(i, a.rules[i]);
    const std::string from = outcome_name(a, a.rules[i].target);
    for (const auto& box : reach.reaches.boxes()) {
      const ir::BoxHull h = ir::BoxHull::of(box);  // what is left of `box` stays inside it
      ir::Region rest({box});
      for (const auto& e : new_rules) {
        if (!h.meets(e.hull) || !rest.intersects(e.box)) continue;
        if (e.outcome != from) {
          ir::Region taken = rest.intersect(e.box);
          for (const auto& x : taken.boxes()) out.add(from, e.outcome, x);
        }
        rest.subtract(e.box);
        if (rest.empty()) break;
      }
      if (new_default != from)
        for (const auto& x : rest.boxes()) out.add(from, new_default, x);
    }
  }

  ir::FirstMatchIndex new_index;
  for (uint32_t j = 0; j < b.rules.size(); ++j) {
    ir::Reach reach = new_index.reach(b.rules[j]);
    if (reach.never()) continue;
    new_index.add(j, b.rules[j]);
    const std::string to = outcome_name(b, b.rules[j].target);
    if (to == old_default) continue;
    for (const auto& box : reach.reaches.boxes()) {
      const ir::BoxHull h = ir::BoxHull::of(box);
      ir::Region rest({box});
      for (const auto& e : old_rules) {
        if (!h.meets(e.hull)) continue;
        rest.subtract(e.box);
        if (rest.empty()) break;
      }
      for (const auto& x : rest.boxes()) out.add(old_default, to, x);
    }
  }

  if (old_default != new_default) {
    const ir::Region neither = ir::unmatched({&a, &b});
    for (const auto& x : neither.boxes()) out.add(old_default, new_default, x);
  }
  return out;
}

void add_traffic_lines(const std::string& from, const std::string& to, std::vector<ir::Box> boxes,
                       std::vector<TrafficChange>& out) {
  for (auto& l : ir::match_lines(std::move(boxes)))
    out.push_back({std::move(l.text), from, to, ir::example_packet(l.boxes.front()), std::move(l.boxes)});
}

// As a policy writes sizes (powers of 1024).
std::string size_text(uint64_t bytes) {
  if (bytes && bytes % (1u << 20) == 0) return fmt::format("{}mb", bytes >> 20);
  if (bytes && bytes % 1024 == 0) return fmt::format("{}kb", bytes >> 10);
  return fmt::format("{}b", bytes);
}

// `set dscp` as a policy writes it ("ef", "13"); "none" when the class has none.
std::string dscp_rewrite_text(const std::optional<uint8_t>& d) {
  if (!d) return "none";
  if (*d == 0) return "0";   // a wash reads as the policy writes it, not as cs0
  std::string n = literals::dscp_name(*d);
  return n.empty() ? std::to_string(*d) : n;
}

std::string scheduler_text(const ir::Scheduler& s) {
  if (s.kind != ir::SchedKind::Pifo) return ir::to_string(s.kind);
  return fmt::format("pifo rank {} bands {}", ir::to_string(s.rank), s.pifo_bands);
}

// `isolate` as the canonical attribute text (defaults spelled out), "none" without.
std::string isolation_text(const ir::Isolation& i) {
  if (!i.on()) return "none";
  std::string s = fmt::format("{}{} {}", ir::to_string(i.mode), i.nat ? " nat" : "", i.slots);
  if (i.mode != ir::IsolateMode::Flows) s += fmt::format(" flows {}", i.per_host);
  return s;
}

// A link or download rate as a policy writes it, every knob spelled out
// ("100mbit", "adaptive 10mbit-100mbit start 100mbit delay 5ms"): a change of
// the range, the start or the delay shows as a change of the rate.
std::string rate_text(uint64_t bps, const std::optional<ir::Adaptive>& a) {
  if (!a) return units::format_rate(bps);
  return fmt::format("adaptive {}-{} start {} delay {}", units::format_rate(a->min_bps), units::format_rate(a->max_bps),
                     units::format_rate(a->start_bps), units::format_duration(a->delay_us));
}

// `hosts` as a policy writes it, "none" without.
std::string hosts_text(const std::optional<ir::Hosts>& h) {
  if (!h) return "none";
  return fmt::format("{}{}", h->dst ? "daddr" : "saddr", h->nat ? " nat" : "");
}

// A plan's classes as a policy writes them, "all" when it lists none.
std::string plan_classes_text(const ir::Policy& p, const ir::Plan& plan) {
  if (plan.classes.empty()) return "all";
  std::string s;
  for (uint32_t c : plan.classes) s += (s.empty() ? "" : ", ") + p.classes[c].name;
  return s;
}

// Plans by name, and the `hosts` line: what qosrun gives each host of the table.
void compare_plans(const ir::Policy& a, const ir::Policy& b, std::vector<SettingChange>& out) {
  auto find = [](const ir::Policy& p, const std::string& name) -> const ir::Plan* {
    for (const auto& x : p.plans)
      if (x.name == name) return &x;
    return nullptr;
  };
  if (hosts_text(a.hosts) != hosts_text(b.hosts)) out.push_back({"hosts", "by", hosts_text(a.hosts), hosts_text(b.hosts)});
  for (const auto& p : a.plans)
    if (!find(b, p.name)) out.push_back({fmt::format("plan '{}'", p.name), "removed", "", ""});
  for (const auto& p : b.plans) {
    const ir::Plan* o = find(a, p.name);
    const std::string subject = fmt::format("plan '{}'", p.name);
    if (!o) {
      out.push_back({subject, "added", "", ""});
      continue;
    }
    auto changed = [&](const char* field, std::string from, std::string to) {
      if (from != to) out.push_back({subject, field, std::move(from), std::move(to)});
    };
    changed("rate", units::format_rate(o->rate_bps), units::format_rate(p.rate_bps));
    changed("ceil", o->ceil_bps ? units::format_rate(o->ceil_bps) : "the rate",
            p.ceil_bps ? units::format_rate(p.ceil_bps) : "the rate");
    changed("burst", o->burst_bytes ? size_text(o->burst_bytes) : "default", p.burst_bytes ? size_text(p.burst_bytes) : "default");
    changed("classes", plan_classes_text(a, *o), plan_classes_text(b, p));
  }
}

void compare_settings(const ir::Policy& a, const ir::Policy& b, std::vector<SettingChange>& out) {
  auto changed = [&](std::string subject, std::string field, std::string from, std::string to) {
    if (from != to) out.push_back({std::move(subject), std::move(field), std::move(from), std::move(to)});
  };
  changed("policy name", "name", a.name, b.name);
  changed("link", "rate", rate_text(a.link_bps, a.link_adaptive), rate_text(b.link_bps, b.link_adaptive));
  changed("download", "rate", a.download_bps ? rate_text(a.download_bps, a.download_adaptive) : "none (the link's)",
          b.download_bps ? rate_text(b.download_bps, b.download_adaptive) : "none (the link's)");
  changed("scheduler", "kind", scheduler_text(a.scheduler), scheduler_text(b.scheduler));
  changed("default class", "class", a.classes[a.default_class].name, b.classes[b.default_class].name);
  for (const auto& c : a.classes)
    if (!b.find_class(c.name)) out.push_back({fmt::format("class '{}'", c.name), "removed", "", ""});
  for (const auto& c : b.classes) {
    const ir::Class* o = a.find_class(c.name);
    const std::string subject = fmt::format("class '{}'", c.name);
    if (!o) {
      out.push_back({subject, "added", "", ""});
      continue;
    }
    changed(subject, "priority", std::to_string(o->priority), std::to_string(c.priority));
    changed(subject, "rate", o->rate_bps ? units::format_rate(o->rate_bps) : "none", c.rate_bps ? units::format_rate(c.rate_bps) : "none");
    changed(subject, "burst", o->rate_bps ? size_text(o->burst_bytes) : "none", c.rate_bps ? size_text(c.burst_bytes) : "none");
    changed(subject, "weight", std::to_string(o->weight), std::to_string(c.weight));
    changed(subject, "quantum", std::to_string(o->quantum), std::to_string(c.quantum));
    changed(subject, "isolate", isolation_text(o->isolate), isolation_text(c.isolate));
    changed(subject, "set dscp", dscp_rewrite_text(o->set_dscp), dscp_rewrite_text(c.set_dscp));
  }
  compare_plans(a, b, out);
}

// qosrun reload keys HTB leaves by minor: 0x10 + class id, or 0x10 + band for
// pifo (qosrun/htb.hpp); a leaf whose minor persists is changed in place.
// The state maps continue when their layout is the same (runtime/src/attach.cpp).
ReloadPlan plan_reload(const ir::Policy& a, const ir::Policy& b) {
  constexpr uint32_t kMinorBase = 0x10;
  struct Leaf {
    std::string label;
    std::string params;
  };
  auto leaves = [&](const ir::Policy& p) {
    std::map<uint32_t, Leaf> m;
    if (p.scheduler.kind == ir::SchedKind::Pifo) {
      for (uint32_t band = 0; band < p.scheduler.pifo_bands; ++band)
        m[kMinorBase + band] = {fmt::format("band {}", band), fmt::format("{}", p.link_bps)};
      return m;
    }
    for (const auto& c : p.classes)
      m[kMinorBase + c.id] = {fmt::format("'{}'", c.name),
                              fmt::format("{} {} {} {} {} {} {} {}", p.link_bps, ir::to_string(p.scheduler.kind),
                                          c.priority, c.rate_bps, c.burst_bytes, c.weight, c.quantum,
                                          isolation_text(c.isolate))};
    return m;
  };
  auto la = leaves(a), lb = leaves(b);
  ReloadPlan r;
  auto name = [](uint32_t minor, const std::string& label) { return fmt::format("1:{:x} {}", minor, label); };
  for (const auto& [minor, leaf] : lb) {
    auto it = la.find(minor);
    if (it == la.end()) r.added.push_back(name(minor, leaf.label));
    else if (it->second.label != leaf.label) r.changed.push_back(fmt::format("{} (was {})", name(minor, leaf.label), it->second.label));
    else if (it->second.params != leaf.params) r.changed.push_back(name(minor, leaf.label));
    else r.unchanged.push_back(name(minor, leaf.label));
  }
  for (const auto& [minor, leaf] : la)
    if (!lb.count(minor)) r.removed.push_back(name(minor, leaf.label));

  // qos_stats (classes + 1 slots) and qos_buckets (one per class) are sized by
  // the class count; qos_flows by --flow-table; qos_pifo has one entry.
  const bool same_count = a.classes.size() == b.classes.size();
  for (const char* m : {"qos_stats", "qos_buckets"}) (same_count ? r.maps_kept : r.maps_reset).push_back(m);
  r.maps_kept.push_back("qos_flows (with the same --flow-table)");
  r.maps_kept.push_back("qos_pifo");
  if (same_count)
    for (size_t i = 0; i < a.classes.size(); ++i)
      if (a.classes[i].name != b.classes[i].name)
        r.notes.push_back(fmt::format("counters of class id {} continue under '{}' (were '{}')", i, b.classes[i].name,
                                      a.classes[i].name));
  if (a.scheduler.kind != ir::SchedKind::Pifo && b.scheduler.kind != ir::SchedKind::Pifo &&
      a.default_class != b.default_class)
    r.notes.push_back(fmt::format("the HTB default stays 1:{:x} (HTB cannot change it in place); the TC program "
                                  "classifies every packet, so it is only a fallback",
                                  kMinorBase + a.default_class));
  return r;
}

}  // namespace

PolicyDiff diff_policies(const ir::Policy& a, const ir::Policy& b) {
  PolicyDiff d;
  Changes ch = changed_regions(a, b);
  for (const auto& key : ch.order) add_traffic_lines(key.first, key.second, std::move(ch.boxes[key]), d.traffic);
  const std::string da = outcome_name(a, int32_t(a.default_class)), db = outcome_name(b, int32_t(b.default_class));
  if (da != db) d.traffic.push_back({"(every non-IP packet)", da, db, std::nullopt, {}});
  compare_settings(a, b, d.classes);
  d.reload = plan_reload(a, b);
  return d;
}

std::string to_text(const PolicyDiff& d) {
  std::string s;
  auto plural = [](size_t n, const char* one) { return fmt::format("{} {}{}", n, one, n == 1 ? "" : "s"); };
  if (d.traffic.empty()) {
    s += "traffic: no packet changes class\n";
  } else {
    s += fmt::format("traffic: {} that change{} class\n", plural(d.traffic.size(), "region"), d.traffic.size() == 1 ? "s" : "");
    for (const auto& t : d.traffic) {
      s += fmt::format("  {}: {} -> {}\n", t.match, t.from, t.to);
      if (t.example) s += fmt::format("      e.g. {}\n", ir::format_packet_example(*t.example));
    }
  }
  if (d.classes.empty()) {
    s += "classes: no change\n";
  } else {
    s += fmt::format("classes: {}\n", plural(d.classes.size(), "change"));
    for (const auto& c : d.classes) {
      if (c.change == "added" || c.change == "removed") s += fmt::format("  {} {}\n", c.subject, c.change);
      else if (c.subject.rfind("class '", 0) == 0 || c.subject.rfind("plan '", 0) == 0) s += fmt::format("  {}: {} {} -> {}\n", c.subject, c.change, c.from, c.to);
      else s += fmt::format("  {}: {} -> {}\n", c.subject, c.from, c.to);
    }
  }
  const auto& r = d.reload;
  auto list = [](const std::vector<std::string>& v) {
    std::string x;
    for (const auto& e : v) x += (x.empty() ? "" : ", ") + e;
    return x.empty() ? std::string("none") : x;
  };
  s += "reload: qosrun reload would\n";
  s += fmt::format("  add HTB classes:        {}\n", list(r.added));
  s += fmt::format("  change in place:        {}\n", list(r.changed));
  s += fmt::format("  remove:                 {}\n", list(r.removed));
  s += fmt::format("  leave as they are:      {}\n", list(r.unchanged));
  s += fmt::format("  keep state maps:        {}\n", list(r.maps_kept));
  s += fmt::format("  reset state maps:       {}\n", list(r.maps_reset));
  for (const auto& n : r.notes) s += fmt::format("  note: {}\n", n);
  return s;
}

nlohmann::json to_json(const PolicyDiff& d) {
  nlohmann::json j;
  j["traffic"] = nlohmann::json::array();
  for (const auto& t : d.traffic)
    j["traffic"].push_back({{"match", t.match},
                            {"from", t.from},
                            {"to", t.to},
                            {"example", t.example ? nlohmann::json(ir::format_packet_example(*t.example)) : nlohmann::json()}});
  j["classes"] = nlohmann::json::array();
  for (const auto& c : d.classes) {
    nlohmann::json e = {{"subject", c.subject}, {"change", c.change}};
    if (c.change != "added" && c.change != "removed") {
      e["from"] = c.from;
      e["to"] = c.to;
    }
    j["classes"].push_back(e);
  }
  const auto& r = d.reload;
  j["reload"] = {{"added", r.added},         {"changed", r.changed},       {"removed", r.removed},
                 {"unchanged", r.unchanged}, {"maps_kept", r.maps_kept},   {"maps_reset", r.maps_reset},
                 {"notes", r.notes}};
  j["same"] = d.same();
  return j;
}

}  // namespace qosc::analysis
