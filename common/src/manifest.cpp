// The manifest <-> JSON, and reading it back out of a compiled object.
#include "qosc/manifest.hpp"

#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qos_abi.h"
#include "qosc/elf_sections.hpp"

namespace qosc {

const ManifestClass* Manifest::find_class(std::string_view name) const {
  for (const auto& c : classes)
    if (c.name == name) return &c;
  return nullptr;
}

const ManifestPlan* Manifest::find_plan(std::string_view name) const {
  for (const auto& p : plans)
    if (p.name == name) return &p;
  return nullptr;
}

namespace {
nlohmann::json adaptive_json(const ManifestAdaptive& a) {
  return {{"min_bps", a.min_bps}, {"max_bps", a.max_bps}, {"start_bps", a.start_bps}, {"delay_us", a.delay_us}};
}
}  // namespace

nlohmann::json to_json(const Manifest& m) {
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& c : m.classes) {
    nlohmann::json cj = {{"id", c.id}, {"name", c.name}, {"priority", c.priority}, {"weight", c.weight},
                         {"quantum", c.quantum}, {"rate_bps", c.rate_bps}, {"burst_bytes", c.burst_bytes},
                         {"is_default", c.is_default}, {"htb_minor", c.htb_minor}};
    if (c.isolate) {
      const auto& i = *c.isolate;
      cj["isolate"] = {{"mode", i.mode},           {"nat", i.nat},
                       {"slots", i.slots},         {"per_host", i.per_host},
                       {"slot_base", i.slot_base}, {"index_base", i.index_base},
                       {"index_size", i.index_size}, {"sparse_bps", i.sparse_bps},
                       {"host_major", i.host_major}};
    }
    if (c.set_dscp) cj["set_dscp"] = *c.set_dscp;   // absent: no rewrite (older manifests too)
    classes.push_back(std::move(cj));
  }
  nlohmann::json j = {{"format", m.format},
          {"policy", m.policy},
          {"source", m.source},
          {"source_sha256", m.source_sha256},
          {"compiler_version", m.compiler_version},
          {"link_bps", m.link_bps},
          {"scheduler", m.scheduler},
          {"rank", m.rank},
          {"pifo_bands", m.pifo_bands},
          {"pifo_mapping", m.pifo_mapping},
          {"classes", classes},
          {"default_class", m.default_class},
          {"rule_count", m.rule_count},
          {"strategy", m.strategy},
          {"xdp_prog", m.xdp_prog},
          {"tc_prog", m.tc_prog},
          {"stats_map", m.stats_map},
          {"flows_map", m.flows_map},
          {"tables_section", m.tables_section}};
  // Only when used: a policy without them has the manifest it had before they existed.
  if (m.link_adaptive) j["link_adaptive"] = adaptive_json(*m.link_adaptive);
  if (m.download_bps) j["download_bps"] = m.download_bps;
  if (m.flow_sample > 1) j["flow_sample"] = m.flow_sample;
  if (m.download_adaptive) j["download_adaptive"] = adaptive_json(*m.download_adaptive);
  if (!m.plans.empty()) {
    nlohmann::json plans = nlohmann::json::array();
    for (const auto& p : m.plans)
      plans.push_back({{"name", p.name}, {"rate_bps", p.rate_bps}, {"ceil_bps", p.ceil_bps},
                       {"burst_bytes", p.burst_bytes}, {"classes", p.classes}});
    j["plans"] = std::move(plans);
  }
  if (m.hosts) {
    j["hosts"] = {{"by", m.hosts->by}, {"nat", m.hosts->nat}, {"map", m.hosts->map}};
    if (!m.hosts->steer_prog.empty()) j["hosts"]["steer_prog"] = m.hosts->steer_prog;
  }
  return j;
}

namespace {
template <class T>
void get(const nlohmann::json& j, const char* key, T& out, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) throw std::runtime_error(fmt::format("manifest: missing field \"{}\"", key));
    return;
  }
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(fmt::format("manifest: field \"{}\" has the wrong type", key));
  }
}

// "link_adaptive" / "download_adaptive": absent = fixed; present, it must be a
// range qosc could have written for a nominal rate of `max` (the link's or the
// download's rate).
std::optional<ManifestAdaptive> adaptive_from_json(const nlohmann::json& j, const char* key, uint64_t max) {
  auto it = j.find(key);
  if (it == j.end()) return std::nullopt;
  if (!it->is_object()) throw std::runtime_error(fmt::format("manifest: \"{}\" is not an object", key));
  ManifestAdaptive a;
  get(*it, "min_bps", a.min_bps, true);
  get(*it, "max_bps", a.max_bps, true);
  get(*it, "start_bps", a.start_bps, true);
  get(*it, "delay_us", a.delay_us, true);
  if (a.min_bps == 0 || a.min_bps >= a.max_bps || a.start_bps < a.min_bps || a.start_bps > a.max_bps ||
      a.delay_us == 0 || a.max_bps != max)
    throw std::runtime_error(fmt::format("manifest: \"{}\" is malformed: range {}-{} bit/s, start {}, delay {} us, "
                                         "for a nominal rate of {} bit/s",
                                         key, a.min_bps, a.max_bps, a.start_bps, a.delay_us, max));
  return a;
}
}  // namespace

Manifest manifest_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::runtime_error("manifest: not a JSON object");
  Manifest m;
  get(j, "format", m.format, true);
  if (m.format < kOldestManifestFormat || m.format > kManifestFormat)
    throw std::runtime_error(fmt::format("manifest: format {} is not supported (expected {}-{}); recompile the policy "
                                         "with this qosc",
                                         m.format, kOldestManifestFormat, kManifestFormat));
  get(j, "policy", m.policy, true);
  get(j, "source", m.source, false);
  get(j, "source_sha256", m.source_sha256, false);
  get(j, "compiler_version", m.compiler_version, false);
  get(j, "link_bps", m.link_bps, false);
  m.link_adaptive = adaptive_from_json(j, "link_adaptive", m.link_bps);
  get(j, "download_bps", m.download_bps, false);
  m.download_adaptive = adaptive_from_json(j, "download_adaptive", m.download_bps);
  get(j, "scheduler", m.scheduler, true);
  get(j, "rank", m.rank, false);
  get(j, "pifo_bands", m.pifo_bands, false);
  get(j, "pifo_mapping", m.pifo_mapping, false);
  get(j, "default_class", m.default_class, true);
  get(j, "rule_count", m.rule_count, false);
  get(j, "strategy", m.strategy, false);
  get(j, "xdp_prog", m.xdp_prog, false);
  get(j, "tc_prog", m.tc_prog, false);
  get(j, "stats_map", m.stats_map, false);
  get(j, "flows_map", m.flows_map, false);
  get(j, "flow_sample", m.flow_sample, false);
  if (m.flow_sample == 0) throw std::runtime_error("manifest: \"flow_sample\" is 0 (expected 1 or more)");
  get(j, "tables_section", m.tables_section, false);
  auto it = j.find("classes");
  if (it == j.end() || !it->is_array()) throw std::runtime_error("manifest: missing array \"classes\"");
  for (const auto& cj : *it) {
    if (!cj.is_object()) throw std::runtime_error("manifest: a class entry is not an object");
    ManifestClass c;
    get(cj, "id", c.id, true);
    get(cj, "name", c.name, true);
    get(cj, "priority", c.priority, false);
    get(cj, "weight", c.weight, false);
    get(cj, "quantum", c.quantum, false);
    get(cj, "rate_bps", c.rate_bps, false);
    get(cj, "burst_bytes", c.burst_bytes, false);
    get(cj, "is_default", c.is_default, false);
    get(cj, "htb_minor", c.htb_minor, false);
    if (auto ij = cj.find("isolate"); ij != cj.end()) {
      if (!ij->is_object()) throw std::runtime_error("manifest: a class's \"isolate\" is not an object");
      ManifestIsolation i;
      get(*ij, "mode", i.mode, true);
      get(*ij, "nat", i.nat, false);
      get(*ij, "slots", i.slots, true);
      get(*ij, "per_host", i.per_host, false);
      get(*ij, "slot_base", i.slot_base, true);
      get(*ij, "index_base", i.index_base, true);
      get(*ij, "index_size", i.index_size, true);
      get(*ij, "sparse_bps", i.sparse_bps, true);
      get(*ij, "host_major", i.host_major, false);
      if (i.mode != "flows" && i.mode != "saddr" && i.mode != "daddr")
        throw std::runtime_error(fmt::format("manifest: class \"{}\" isolates '{}', which this qosrun does not know; "
                                             "use a qosrun as new as the qosc that compiled it",
                                             c.name, i.mode));
      if (i.slots == 0 || i.per_host == 0 || i.sparse_bps == 0 || i.slots > 65536 || i.per_host > 64 ||
          (i.per_host > 1 && (i.host_major == 0 || i.host_major + i.slots > 0xffff)))
        throw std::runtime_error(fmt::format("manifest: class \"{}\" has a malformed isolation", c.name));
      c.isolate = i;
    }
    if (auto d = cj.find("set_dscp"); d != cj.end()) {
      if (!d->is_number_unsigned() || d->get<uint64_t>() > 63)
        throw std::runtime_error(fmt::format("manifest: class \"{}\" has set_dscp {}, expected 0-63", c.name, d->dump()));
      c.set_dscp = d->get<uint8_t>();
    }
    if (c.id != m.classes.size())
      throw std::runtime_error(fmt::format("manifest: class \"{}\" has id {}, expected {}", c.name, c.id,
                                           m.classes.size()));
    m.classes.push_back(std::move(c));
  }
  if (m.classes.empty()) throw std::runtime_error("manifest: no classes");
  if (auto pj = j.find("plans"); pj != j.end()) {
    if (!pj->is_array()) throw std::runtime_error("manifest: \"plans\" is not an array");
    for (const auto& e : *pj) {
      if (!e.is_object()) throw std::runtime_error("manifest: a plan entry is not an object");
      ManifestPlan p;
      get(e, "name", p.name, true);
      get(e, "rate_bps", p.rate_bps, true);
      get(e, "ceil_bps", p.ceil_bps, false);
      get(e, "burst_bytes", p.burst_bytes, false);
      get(e, "classes", p.classes, false);
      bool bad_class = false;
      for (uint32_t c : p.classes) bad_class |= c >= m.classes.size();
      if (p.name.empty() || p.rate_bps == 0 || (p.ceil_bps && p.ceil_bps < p.rate_bps) || bad_class ||
          m.find_plan(p.name))
        throw std::runtime_error(fmt::format("manifest: plan \"{}\" is malformed", p.name));
      m.plans.push_back(std::move(p));
    }
  }
  if (auto hj = j.find("hosts"); hj != j.end()) {
    if (!hj->is_object()) throw std::runtime_error("manifest: \"hosts\" is not an object");
    ManifestHosts h;
    get(*hj, "by", h.by, true);
    get(*hj, "nat", h.nat, false);
    get(*hj, "map", h.map, false);
    get(*hj, "steer_prog", h.steer_prog, false);
    if (h.by != "saddr" && h.by != "daddr")
      throw std::runtime_error(fmt::format("manifest: hosts by '{}', which this qosrun does not know; use a qosrun "
                                           "as new as the qosc that compiled it",
                                           h.by));
    if (m.plans.empty()) throw std::runtime_error("manifest: \"hosts\" without any plan");
    m.hosts = std::move(h);
  }
  if (m.default_class >= m.classes.size())
    throw std::runtime_error(fmt::format("manifest: default_class {} out of range", m.default_class));
  return m;
}

std::optional<Manifest> read_manifest(std::span<const unsigned char> elf_bytes, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Manifest> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  std::string err;
  bool absent = false;
  auto section = read_elf_section(elf_bytes, kManifestSection, &err, &absent);
  if (!section && absent)
    return fail(fmt::format("no {} section", kManifestSection));
  if (!section) return fail(err);
  if (section->empty()) return fail("manifest section is empty");
  std::string text(section->begin(), section->end());
  while (!text.empty() && text.back() == '\0') text.pop_back();
  try {
    return manifest_from_json(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception& ex) {
    return fail(fmt::format("manifest section is not valid JSON: {}", ex.what()));
  } catch (const std::runtime_error& ex) {
    return fail(ex.what());
  }
}

}  // namespace qosc
