#pragma once
// `qosc diff`: what a policy change does, computed on the rule algebra.
//
//   traffic  every region of packet space whose outcome (class, or drop)
//            changes, exact both ways: each packet whose outcome differs lies
//            in a reported region with that old/new pair, and every packet of
//            a reported region differs (docs/diff.md);
//   classes  added/removed classes and changed settings;
//   reload   what `qosrun reload` would do with the HTB tree and state maps.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qosc/diag_format.hpp"
#include "qosc/ir.hpp"
#include "qosc/region.hpp"
#include "qosc/packet.hpp"

namespace qosc::analysis {

struct TrafficChange {
  std::string match;                    // in the language's match syntax
  std::string from, to;                 // class names or "drop"
  std::optional<PacketFields> example;  // one packet of the region (none for non-IP)
  std::vector<ir::Box> boxes;           // the region (empty for non-IP)
};

struct SettingChange {
  std::string subject;   // "class 'web'", "plan 'basic'", "hosts", "link", "scheduler", "default class", "policy name"
  std::string change;    // "added", "removed", or the field that changed ("rate", "priority", ...)
  std::string from, to;  // values as written in a policy; empty for added/removed
};

struct ReloadPlan {
  std::vector<std::string> added, changed, unchanged, removed;  // HTB leaves: "1:12 'bulk'"
  std::vector<std::string> maps_kept, maps_reset;
  std::vector<std::string> notes;
};

struct PolicyDiff {
  std::vector<TrafficChange> traffic;
  std::vector<SettingChange> classes;
  ReloadPlan reload;
  bool same() const { return traffic.empty() && classes.empty(); }
};

PolicyDiff diff_policies(const ir::Policy& old_policy, const ir::Policy& new_policy);

std::string to_text(const PolicyDiff& d);
nlohmann::json to_json(const PolicyDiff& d);

}  // namespace qosc::analysis

namespace qosc::analysis {

// `qosc diff OLD NEW [--json]`: OLD and NEW are files or REV:PATH (read with
// git from the repository of the current directory). Returns the exit code:
// 0 same meaning, 1 different, 2 errors (reported to `err`).
struct DiffCommand {
  std::string old_spec, new_spec;
  bool json = false;
  bool color = false;
  // How errors in OLD or NEW are reported. Standard output carries the diff,
  // so a JSON or SARIF document of the diagnostics goes to standard error.
  DiagnosticsFormat diagnostics = DiagnosticsFormat::Text;
};
int run_diff_command(const DiffCommand& cmd, std::ostream& out, std::ostream& err);

// A policy's text from a file, "-" (standard input) or REV:PATH (git). On
// failure: nullopt and *error says what to do.
std::optional<std::string> read_policy_spec(const std::string& spec, std::string* error);

}  // namespace qosc::analysis
