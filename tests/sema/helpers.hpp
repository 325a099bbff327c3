#pragma once
#include <fstream>
#include <sstream>
#include <string>

#include "qosc/frontend.hpp"

namespace qosc::semtest {

struct Lowered {
  std::optional<ir::Policy> ir;
  std::string diags;
  size_t errors = 0, warnings = 0;
};

inline Lowered lower_text(const std::string& text, const std::string& name = "t.qos") {
  SourceFile file(name, text);
  Diagnostics diags(&file);
  auto res = compile_frontend(file, diags);
  Lowered l;
  l.ir = std::move(res.ir);
  l.diags = diags.str();
  l.errors = diags.error_count();
  l.warnings = diags.warning_count();
  return l;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The IR without source positions and names of origin: what a policy means.
inline ir::Policy strip(ir::Policy p) {
  p.source_name.clear();
  p.name.clear();
  for (auto& c : p.classes) c.loc = {};
  for (size_t i = 0; i < p.rules.size(); ++i) {
    p.rules[i].loc = {};
    p.rules[i].index = 0;
  }
  return p;
}

inline bool same_meaning(const ir::Policy& a0, const ir::Policy& b0, std::string* why) {
  auto a = strip(a0), b = strip(b0);
  if (a.link_bps != b.link_bps || a.link_adaptive != b.link_adaptive) return *why = "link", false;
  if (a.download_bps != b.download_bps || a.download_adaptive != b.download_adaptive) return *why = "download", false;
  if (a.scheduler.kind != b.scheduler.kind || !(a.scheduler.rank == b.scheduler.rank) ||
      a.scheduler.pifo_bands != b.scheduler.pifo_bands)
    return *why = "scheduler", false;
  if (a.default_class != b.default_class) return *why = "default class", false;
  if (a.classes.size() != b.classes.size()) return *why = "class count", false;
  for (size_t i = 0; i < a.classes.size(); ++i) {
    const auto &x = a.classes[i], &y = b.classes[i];
    if (x.name != y.name || x.priority != y.priority || x.weight != y.weight || x.quantum != y.quantum ||
        x.rate_bps != y.rate_bps || x.burst_bytes != y.burst_bytes || x.is_default != y.is_default)
      return *why = "class " + x.name, false;
  }
  if (a.rules.size() != b.rules.size()) return *why = "rule count", false;
  for (size_t i = 0; i < a.rules.size(); ++i)
    if (!(a.rules[i] == b.rules[i])) return *why = "rule " + std::to_string(i), false;
  return true;
}

}  // namespace qosc::semtest
