// The derived statistics view: counters + rates from two samples, as JSON
// and as the terminal table. See qosrun/stats.hpp.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qos_abi.h"
#include "qosrun/stats.hpp"

namespace qosrun {

namespace {

double per_s(uint64_t now, uint64_t before, double dt) {
  if (dt <= 0 || now < before) return 0;   // no interval, or a counter that went back (reload)
  return static_cast<double>(now - before) / dt;
}

HookView hook_view(const ClassCounters& c, const ClassCounters* p, int h, double dt) {
  HookView v;
  v.packets = c.packets[h];
  v.bytes = c.bytes[h];
  v.drop_policer = c.drop_policer[h];
  v.drop_rule = c.drop_rule[h];
  if (p) {
    v.pps = per_s(c.packets[h], p->packets[h], dt);
    v.bps = 8 * per_s(c.bytes[h], p->bytes[h], dt);
  }
  return v;
}

QueueView queue_view(const std::optional<QdiscSnapshot>& cur, const std::optional<QdiscSnapshot>* prev, uint32_t minor,
                     double dt) {
  QueueView q;
  q.minor = minor;
  if (!cur) return q;
  const QueueCounters* c = cur->find(minor);
  if (!c) return q;
  q.present = true;
  q.bytes = c->bytes;
  q.packets = c->packets;
  q.drops = c->drops;
  q.overlimits = c->overlimits;
  q.backlog_bytes = c->backlog_bytes;
  q.qlen = c->qlen;
  q.rate_bps = c->rate_bps;
  q.ceil_bps = c->ceil_bps;
  const QueueCounters* p = (prev && *prev) ? (*prev)->find(minor) : nullptr;
  if (p) {
    q.bps = 8 * per_s(c->bytes, p->bytes, dt);
    q.pps = per_s(c->packets, p->packets, dt);
    q.drops_ps = per_s(c->drops, p->drops, dt);
  }
  double service = q.bps > 0 ? q.bps : static_cast<double>(q.ceil_bps);
  if (q.backlog_bytes > 0 && service > 0) q.delay_ms = 1000.0 * 8.0 * static_cast<double>(q.backlog_bytes) / service;
  return q;
}

std::string hooks_string(uint32_t mask) {
  std::string s;
  if (mask & (1u << QOS_HOOK_XDP)) s += "xdp";
  if (mask & (1u << QOS_HOOK_TC)) s += s.empty() ? "tc" : "+tc";
  return s.empty() ? "-" : s;
}

std::string endpoint(const std::string& addr, uint8_t family, uint16_t port, uint8_t proto) {
  bool ports = proto == 6 || proto == 17 || proto == 132;
  if (!ports) return addr;
  return family == 6 ? fmt::format("[{}]:{}", addr, port) : fmt::format("{}:{}", addr, port);
}

std::string clock_string(double unix_time) {
  time_t t = static_cast<time_t>(unix_time);
  struct tm tmv{};
  localtime_r(&t, &tmv);
  char buf[32];
  strftime(buf, sizeof buf, "%H:%M:%S", &tmv);
  return buf;
}

std::string fit(const std::string& s, size_t w) {
  if (s.size() <= w) return s;
  return s.substr(0, w - 1) + "~";
}

nlohmann::json hook_json(const HookView& h) {
  return {{"packets", h.packets}, {"bytes", h.bytes}, {"pps", h.pps}, {"bps", h.bps}, {"drops_policer", h.drop_policer}};
}

nlohmann::json queue_json(const QueueView& q) {
  if (!q.present) return nullptr;
  return {{"handle", fmt::format("{:x}:{:x}", QOS_HTB_MAJOR, q.minor)},
          {"sent_bytes", q.bytes},
          {"sent_packets", q.packets},
          {"drops", q.drops},
          {"overlimits", q.overlimits},
          {"backlog_bytes", q.backlog_bytes},
          {"qlen", q.qlen},
          {"rate_bps", q.rate_bps},
          {"ceil_bps", q.ceil_bps},
          {"bps", q.bps},
          {"pps", q.pps},
          {"delay_ms", q.delay_ms}};
}

}  // namespace

std::string human_bps(double bps) {
  if (bps >= 1e9) return fmt::format("{:.2f} Gbit/s", bps / 1e9);
  if (bps >= 1e6) return fmt::format("{:.1f} Mbit/s", bps / 1e6);
  if (bps >= 1e3) return fmt::format("{:.1f} kbit/s", bps / 1e3);
  return fmt::format("{:.0f} bit/s", bps);
}

std::string human_bytes(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.1f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} kB", b / 1e3);
  return fmt::format("{:.0f} B", b);
}

namespace {
// The nested HTB classes of a sample by classid (isolation's sub-queues).
std::unordered_map<uint32_t, const QueueCounters*> nested_by_classid(const std::optional<QdiscSnapshot>& q) {
  std::unordered_map<uint32_t, const QueueCounters*> m;
  if (q)
    for (const auto& c : q->nested) m.emplace(c.handle, &c);
  return m;
}

// The flows or hosts of an isolated class that sent within the last second
// (QOS_ISO_IDLE_NS: after that their slot may go to someone else), with the
// bytes their sub-queue sent and its rate since the previous sample.
IsolationView isolation_view(const qosc::ManifestIsolation& iso, uint32_t class_id, const Sample& cur,
                             const Sample* prev, double dt) {
  IsolationView v;
  v.mode = iso.mode;
  v.nat = iso.nat;
  v.slots = iso.slots;
  v.per_host = iso.per_host;
  if (class_id < cur.iso_counters.size()) v.counters = cur.iso_counters[class_id];
  const bool hosts = iso.mode != "flows";
  const auto now_q = nested_by_classid(cur.qdisc);
  const auto before_q = prev ? nested_by_classid(prev->qdisc) : decltype(now_q){};
  for (const auto& e : cur.iso_slots) {
    if (e.class_id != class_id || e.host != hosts) continue;
    const double idle = cur.coarse_ns > e.last_ns ? static_cast<double>(cur.coarse_ns - e.last_ns) / 1e9 : 0;
    if (idle * 1e9 > static_cast<double>(QOS_ISO_IDLE_NS)) continue;
    IsoMemberView m;
    m.who = e.host ? e.src
                   : fmt::format("{} {} > {}", proto_name(e.proto), endpoint(e.src, e.family, e.sport, e.proto),
                                 endpoint(e.dst, e.family, e.dport, e.proto));
    m.queue = fmt::format("{:x}:{:x}", e.subqueue >> 16, e.subqueue & 0xffffu);
    m.idle_s = idle;
    if (auto q = now_q.find(e.subqueue); q != now_q.end()) {
      m.bytes = q->second->bytes;
      if (auto p = before_q.find(e.subqueue); p != before_q.end())
        m.bps = 8 * per_s(q->second->bytes, p->second->bytes, dt);
    }
    v.active.push_back(std::move(m));
  }
  std::sort(v.active.begin(), v.active.end(), [](const auto& a, const auto& b) {
    return a.bps != b.bps ? a.bps > b.bps : a.bytes > b.bytes;
  });
  return v;
}
}  // namespace

View make_view(const qosc::Manifest& m, const std::string& ifname, const Sample& cur, const Sample* prev,
               size_t top_flows) {
  View v;
  v.ifname = ifname;
  v.policy = m.policy;
  v.scheduler = m.scheduler;
  v.link_bps = m.link_bps;
  v.adaptive_expected = m.adaptive();
  v.unix_time = cur.unix_time;
  const double dt = prev && cur.mono_ns > prev->mono_ns ? static_cast<double>(cur.mono_ns - prev->mono_ns) / 1e9 : 0;
  if (prev && (dt <= 0 || prev->map.size() != cur.map.size())) prev = nullptr;   // not comparable
  v.interval_s = prev ? dt : 0;
  const bool pifo = m.pifo_mapping == "sp-pifo" || m.scheduler == "pifo";
  for (size_t i = 0; i < m.classes.size() && i < cur.map.size(); ++i) {
    const auto& mc = m.classes[i];
    ClassView c;
    c.id = mc.id;
    c.name = mc.name;
    c.priority = mc.priority;
    c.weight = mc.weight;
    c.quantum = mc.quantum;
    c.cap_bps = mc.rate_bps;
    c.is_default = mc.is_default;
    const ClassCounters* p = prev ? &prev->map[i] : nullptr;
    c.xdp = hook_view(cur.map[i], p, QOS_HOOK_XDP, dt);
    c.tc = hook_view(cur.map[i], p, QOS_HOOK_TC, dt);
    const uint32_t minor = mc.leaf_minor();
    if (!pifo) {
      c.queue = queue_view(cur.qdisc, prev ? &prev->qdisc : nullptr, minor, dt);
      c.ingress_queue = queue_view(cur.ifb_qdisc, prev ? &prev->ifb_qdisc : nullptr, minor, dt);
    }
    if (mc.isolate) c.iso = isolation_view(*mc.isolate, mc.id, cur, prev, dt);
    v.classes.push_back(std::move(c));
  }
  if (cur.map.size() == m.classes.size() + 1) {
    const ClassCounters* p = prev ? &prev->map.back() : nullptr;
    v.rule_xdp = hook_view(cur.map.back(), p, QOS_HOOK_XDP, dt);
    v.rule_tc = hook_view(cur.map.back(), p, QOS_HOOK_TC, dt);
  }
  if (pifo) {
    for (uint32_t b = 0; b < std::max<uint32_t>(m.pifo_bands, 1); ++b) {
      v.bands.push_back(queue_view(cur.qdisc, prev ? &prev->qdisc : nullptr, QOS_HTB_MINOR_BASE + b, dt));
      if (cur.ifb_qdisc)
        v.ifb_bands.push_back(queue_view(cur.ifb_qdisc, prev ? &prev->ifb_qdisc : nullptr, QOS_HTB_MINOR_BASE + b, dt));
    }
  }
  v.pifo_inversions = cur.pifo_inversions;
  v.ifb = cur.ifb;
  if (cur.ifb_qdisc) {
    v.ifb_link = cur.ifb_qdisc->root;
    if (prev && prev->ifb_qdisc) v.ifb_link_bps_now = 8 * per_s(cur.ifb_qdisc->root.bytes, prev->ifb_qdisc->root.bytes, dt);
  }
  if (cur.qdisc) {
    v.link = cur.qdisc->root;
    if (prev && prev->qdisc) v.link_bps_now = 8 * per_s(cur.qdisc->root.bytes, prev->qdisc->root.bytes, dt);
  }
  v.qdisc_error = cur.qdisc_error;
  v.adaptive = cur.adaptive;

  v.show_members = top_flows > 0;
  v.flow_count = cur.flows.size();
  v.has_flow_table = !m.flows_map.empty();
  v.flow_sample = m.flow_sample;
  if (top_flows > 0 && !cur.flows.empty()) {
    std::unordered_map<std::string, uint64_t> before;
    if (prev)
      for (const auto& f : prev->flows) before.emplace(f.key, f.bytes);
    std::vector<FlowView> fv;
    fv.reserve(cur.flows.size());
    for (const auto& f : cur.flows) {
      FlowView x;
      x.flow = f;
      x.cls = f.class_id < m.classes.size() ? m.classes[f.class_id].name : fmt::format("class#{}", f.class_id);
      x.duration_s = f.last_ns > f.first_ns ? static_cast<double>(f.last_ns - f.first_ns) / 1e9 : 0;
      x.idle_s = cur.mono_ns > f.last_ns ? static_cast<double>(cur.mono_ns - f.last_ns) / 1e9 : 0;
      if (prev && dt > 0) {
        auto it = before.find(f.key);
        uint64_t b0 = it == before.end() ? 0 : it->second;
        // A flow new since the last sample: count only what it sent inside the interval.
        if (it == before.end() && f.first_ns < prev->mono_ns) b0 = f.bytes;
        x.bps = 8 * per_s(f.bytes, b0, dt);
      }
      fv.push_back(std::move(x));
    }
    const bool by_rate = prev != nullptr && dt > 0;
    auto order = [by_rate](const FlowView& a, const FlowView& b) {
      if (by_rate && a.bps != b.bps) return a.bps > b.bps;
      if (a.flow.bytes != b.flow.bytes) return a.flow.bytes > b.flow.bytes;
      return a.flow.key < b.flow.key;
    };
    size_t n = std::min(top_flows, fv.size());
    std::partial_sort(fv.begin(), fv.begin() + static_cast<std::ptrdiff_t>(n), fv.end(), order);
    fv.resize(n);
    v.flows = std::move(fv);
  }
  return v;
}

nlohmann::json to_json(const View& v) {
  nlohmann::json j;
  j["time"] = v.unix_time;
  j["interval_s"] = v.interval_s;
  j["iface"] = v.ifname;
  j["policy"] = v.policy;
  j["scheduler"] = v.scheduler;
  j["link_bps"] = v.link_bps;
  auto classes = nlohmann::json::array();
  for (const auto& c : v.classes) {
    nlohmann::json cj = {{"id", c.id},
                         {"name", c.name},
                         {"priority", c.priority},
                         {"weight", c.weight},
                         {"quantum", c.quantum},
                         {"cap_bps", c.cap_bps},
                         {"default", c.is_default},
                         {"xdp", hook_json(c.xdp)},
                         {"tc", hook_json(c.tc)},
                         {"drops",
                          {{"policer", c.xdp.drop_policer + c.tc.drop_policer},
                           {"queue", c.queue.present ? c.queue.drops : 0}}},
                         {"queue", queue_json(c.queue)}};
    if (!v.ifb.empty()) {
      cj["ingress_queue"] = queue_json(c.ingress_queue);
      cj["drops"]["ingress_queue"] = c.ingress_queue.present ? c.ingress_queue.drops : 0;
    }
    if (c.iso) {
      auto active = nlohmann::json::array();
      for (const auto& a : c.iso->active)
        active.push_back({{"who", a.who}, {"queue", a.queue}, {"bytes", a.bytes}, {"bps", a.bps}, {"idle_s", a.idle_s}});
      cj["isolate"] = {{"mode", c.iso->mode},
                       {"nat", c.iso->nat},
                       {"slots", c.iso->slots},
                       {"per_host", c.iso->per_host},
                       {"claims", c.iso->counters.claims},
                       {"overflows", c.iso->counters.overflows},
                       {"sparse_packets", c.iso->counters.sparse},
                       {"nat_found", c.iso->counters.nat_found},
                       {"active", std::move(active)}};
    }
    classes.push_back(std::move(cj));
  }
  j["classes"] = std::move(classes);
  j["drop_rule"] = {{"xdp", {{"packets", v.rule_xdp.drop_rule}, {"bytes", v.rule_xdp.bytes}, {"pps", v.rule_xdp.pps}}},
                    {"tc", {{"packets", v.rule_tc.drop_rule}, {"bytes", v.rule_tc.bytes}, {"pps", v.rule_tc.pps}}}};
  if (!v.bands.empty()) {
    auto bands = nlohmann::json::array();
    for (size_t b = 0; b < v.bands.size(); ++b) {
      nlohmann::json bj = queue_json(v.bands[b]);
      if (!bj.is_null()) bj["band"] = b;
      bands.push_back(std::move(bj));
    }
    j["bands"] = std::move(bands);
  }
  if (v.link.present) {
    j["link"] = {{"kind", v.link.kind},
                 {"sent_bytes", v.link.bytes},
                 {"sent_packets", v.link.packets},
                 {"drops", v.link.drops},
                 {"overlimits", v.link.overlimits},
                 {"backlog_bytes", v.link.backlog_bytes},
                 {"qlen", v.link.qlen},
                 {"bps", v.link_bps_now}};
  } else {
    j["link"] = nullptr;
  }
  if (!v.qdisc_error.empty()) j["qdisc_error"] = v.qdisc_error;
  if (!v.ifb.empty()) {
    nlohmann::json in = {{"ifb", v.ifb}};
    if (v.ifb_link.present)
      in["link"] = {{"sent_bytes", v.ifb_link.bytes}, {"sent_packets", v.ifb_link.packets}, {"drops", v.ifb_link.drops},
                    {"backlog_bytes", v.ifb_link.backlog_bytes}, {"qlen", v.ifb_link.qlen}, {"bps", v.ifb_link_bps_now}};
    else
      in["link"] = nullptr;
    if (!v.ifb_bands.empty()) {
      auto bands = nlohmann::json::array();
      for (size_t b = 0; b < v.ifb_bands.size(); ++b) {
        nlohmann::json bj = queue_json(v.ifb_bands[b]);
        if (!bj.is_null()) bj["band"] = b;
        bands.push_back(std::move(bj));
      }
      in["bands"] = std::move(bands);
    }
    j["ingress"] = std::move(in);
  }
  if (v.pifo_inversions) j["pifo_inversions"] = *v.pifo_inversions;
  if (v.adaptive) j["adaptive"] = adaptive::to_json(*v.adaptive);
  j["flow_count"] = v.flow_count;
  j["flow_table"] = v.has_flow_table;
  j["flow_sample"] = v.flow_sample;
  if (v.flow_sample > 1) j["flow_sample_bytes"] = uint64_t{v.flow_sample} * QOS_FLOW_SAMPLE_UNIT;
  auto flows = nlohmann::json::array();
  for (const auto& f : v.flows) {
    flows.push_back({{"src", f.flow.src},
                     {"dst", f.flow.dst},
                     {"sport", f.flow.sport},
                     {"dport", f.flow.dport},
                     {"proto", proto_name(f.flow.proto)},
                     {"family", f.flow.family},
                     {"class", f.cls},
                     {"bytes", f.flow.bytes},
                     {"packets", f.flow.packets},
                     {"duration_s", f.duration_s},
                     {"idle_s", f.idle_s},
                     {"bps", f.bps},
                     {"hooks", hooks_string(f.flow.hook_mask)}});
  }
  j["flows"] = std::move(flows);
  return j;
}

std::string render_text(const View& v, bool color) {
  const char* B = color ? "\x1b[1m" : "";
  const char* D = color ? "\x1b[2m" : "";
  const char* R = color ? "\x1b[31m" : "";
  const char* N = color ? "\x1b[0m" : "";
  std::string o;
  o += fmt::format("{}qosrun stats {}{}  policy {} ({}, link {})  {}{}\n", B, v.ifname, N, v.policy, v.scheduler,
                   human_bps(static_cast<double>(v.link_bps)), clock_string(v.unix_time),
                   v.interval_s > 0 ? fmt::format("  rates over {:.1f} s", v.interval_s) : std::string("  (no rates yet)"));
  o += fmt::format("{}{:<12} {:>4} {:>12} | {:>10} {:>12} | {:>10} {:>12} | {:>12} {:>9} {:>8} | {:>8} {:>8}{}\n", B,
                   "class", "prio", "cap", "egress pkt", "egress rate", "ingr. pkt", "ingr. rate", "queue rate",
                   "backlog", "delay", "policed", "q.drops", N);
  auto drop_cell = [&](uint64_t total, bool moving) {
    std::string s = fmt::format("{:>8}", total);
    return moving ? std::string(R) + s + N : s;
  };
  for (const auto& c : v.classes) {
    std::string cap = c.cap_bps ? human_bps(static_cast<double>(c.cap_bps)) : "-";
    std::string qrate = c.queue.present ? human_bps(c.queue.bps) : "-";
    std::string backlog = c.queue.present ? human_bytes(static_cast<double>(c.queue.backlog_bytes)) : "-";
    std::string delay = c.queue.present ? fmt::format("{:.2f} ms", c.queue.delay_ms) : "-";
    uint64_t pol = c.xdp.drop_policer + c.tc.drop_policer;
    std::string name = fit(c.name, 11) + (c.is_default ? "*" : "");
    o += fmt::format("{:<12} {:>4} {:>12} | {:>10} {:>12} | {:>10} {:>12} | {:>12} {:>9} {:>8} | {} {}\n", name,
                     c.priority, cap, c.tc.packets, human_bps(c.tc.bps), c.xdp.packets, human_bps(c.xdp.bps), qrate,
                     backlog, delay, drop_cell(pol, false),
                     c.queue.present ? drop_cell(c.queue.drops, c.queue.drops_ps > 0) : fmt::format("{:>8}", "-"));
  }
  o += fmt::format("{}drop rules: {} packets at XDP, {} at TC{}\n", D, v.rule_xdp.drop_rule, v.rule_tc.drop_rule, N);
  for (const auto& c : v.classes) {
    if (!c.iso) continue;
    const auto& iso = *c.iso;
    const char* what = iso.mode == "flows" ? "flows" : "hosts";
    o += fmt::format("{}{}: isolate {}{}: {} active {} of {}, {} sparse packets, {} packets found every slot busy{}{}\n", B, c.name,
                     iso.mode, iso.nat ? " nat" : "", iso.active.size(), what, iso.slots, iso.counters.sparse,
                     iso.counters.overflows,
                     iso.nat ? fmt::format(", {} hosts from conntrack", iso.counters.nat_found) : std::string(), N);
    if (!v.show_members) continue;
    for (const auto& a : iso.active)
      o += fmt::format("  {:<48} {:<9} {:>10} {:>12} idle {:>4.1f}s\n", fit(a.who, 48), a.queue,
                       human_bytes(static_cast<double>(a.bytes)), human_bps(a.bps), a.idle_s);
  }
  if (!v.bands.empty()) {
    o += fmt::format("{}pifo bands (SP-PIFO, band 0 served first){}\n", B, N);
    for (size_t b = 0; b < v.bands.size(); ++b) {
      const auto& q = v.bands[b];
      if (!q.present) {
        o += fmt::format("  band {:>2}: no HTB class 1:{:x}\n", b, q.minor);
        continue;
      }
      o += fmt::format("  band {:>2}: sent {:>10} pkt  {:>12}  backlog {:>9}  delay {:>7.2f} ms  drops {}\n", b,
                       q.packets, human_bps(q.bps), human_bytes(static_cast<double>(q.backlog_bytes)), q.delay_ms,
                       q.drops);
    }
  }
  if (v.pifo_inversions)
    o += fmt::format("{}SP-PIFO push-downs (rank below every band's bound): {}{}\n", D, *v.pifo_inversions, N);
  if (v.link.present) {
    o += fmt::format("link ({} {:x}:): sent {} ({} pkt), {}, backlog {}, drops {}, overlimits {}\n", v.link.kind,
                     v.link.handle >> 16, human_bytes(static_cast<double>(v.link.bytes)), v.link.packets,
                     human_bps(v.link_bps_now), human_bytes(static_cast<double>(v.link.backlog_bytes)), v.link.drops,
                     v.link.overlimits);
  } else if (!v.qdisc_error.empty()) {
    o += fmt::format("{}queues: {}{}\n", D, v.qdisc_error, N);
  }
  if (!v.ifb.empty()) {
    o += fmt::format("{}ingress shaping on {}{}", B, v.ifb, N);
    if (!v.ifb_link.present) {
      o += ": no HTB tree\n";
    } else {
      o += fmt::format(": sent {} ({} pkt), {}, backlog {}, drops {}\n", human_bytes(static_cast<double>(v.ifb_link.bytes)),
                       v.ifb_link.packets, human_bps(v.ifb_link_bps_now),
                       human_bytes(static_cast<double>(v.ifb_link.backlog_bytes)), v.ifb_link.drops);
      auto row = [&](const std::string& label, const QueueView& q) {
        if (!q.present) return;
        o += fmt::format("  {:<12} {:>12}  backlog {:>9}  delay {:>7.2f} ms  drops {}\n", fit(label, 12),
                         human_bps(q.bps), human_bytes(static_cast<double>(q.backlog_bytes)), q.delay_ms, q.drops);
      };
      for (const auto& c : v.classes) row(c.name, c.ingress_queue);
      for (size_t b = 0; b < v.ifb_bands.size(); ++b) row("band " + std::to_string(b), v.ifb_bands[b]);
    }
  }
  if (v.adaptive) {
    const adaptive::Snapshot& a = *v.adaptive;
    for (const auto* d : {&a.upload, &a.download}) {
      if (!*d) continue;
      const adaptive::DirectionView& x = **d;
      o += fmt::format("{}adaptive {}{}: rate {} (range {} - {}), achieved {} ({:.0f} % loaded), {} cuts\n", B,
                       x.config.name, N, human_bps(static_cast<double>(x.rate_bps)),
                       human_bps(static_cast<double>(x.config.min_bps)), human_bps(static_cast<double>(x.config.max_bps)),
                       human_bps(static_cast<double>(x.achieved_bps)), x.load * 100, x.cuts);
      if (!x.last_decision.empty()) o += fmt::format("  {}last: {}{}\n", D, x.last_decision, N);
    }
    for (const auto& r : a.reflectors)
      o += fmt::format("  reflector {:<24} {}  baseline {:.2f} ms  delay {:+.2f} ms  answered {}/{}{}\n", r.addr,
                       r.alive ? "up  " : "DOWN", r.baseline_ms, r.delay_ms, r.received, r.sent,
                       r.note.empty() ? "" : "  (" + r.note + ")");
    if (!a.holding.empty()) o += fmt::format("  {}{}{}\n", B, a.holding, N);
  } else if (v.adaptive_expected) {
    o += fmt::format("{}adaptive rate: no controller runs (qosrun status {} says why){}\n", D, v.ifname, N);
  }
  if (!v.has_flow_table)
    o += "no flow table: the policy was compiled with qosc --flow-table 0\n";
  if (!v.flows.empty()) {
    // Sampled (qos_maps.h, qos_flow_sampled): a flow's counts are estimates, and a flow
    // of less than ~N x 2 KB may be missing; the class counters above count every packet.
    std::string sampled =
        v.flow_sample > 1
            ? fmt::format(", sampled once per {} KB: counts are estimates", v.flow_sample * QOS_FLOW_SAMPLE_UNIT / 1024)
            : "";
    o += fmt::format("{}top flows ({} of {}{}){}\n", B, v.flows.size(), v.flow_count, sampled, N);
    o += fmt::format("{}{:<6} {:<44} {:<11} {:>10} {:>9} {:>12} {:>8} {:>7} {:<6}{}\n", B, "proto", "flow", "class",
                     "bytes", "packets", "rate", "age", "idle", "hook", N);
    for (const auto& f : v.flows) {
      std::string flow = endpoint(f.flow.src, f.flow.family, f.flow.sport, f.flow.proto) + " > " +
                         endpoint(f.flow.dst, f.flow.family, f.flow.dport, f.flow.proto);
      o += fmt::format("{:<6} {:<44} {:<11} {:>10} {:>9} {:>12} {:>7.1f}s {:>6.1f}s {:<6}\n",
                       proto_name(f.flow.proto), fit(flow, 44), fit(f.cls, 11),
                       human_bytes(static_cast<double>(f.flow.bytes)), f.flow.packets, human_bps(f.bps), f.duration_s,
                       f.idle_s, hooks_string(f.flow.hook_mask));
    }
  }
  return o;
}

}  // namespace qosrun
