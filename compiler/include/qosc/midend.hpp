#pragma once
// The midend: a flat list of passes over the checked IR, run by the driver
// between the front end and code generation (compiler/src/mid/midend.cpp):
//
//   1. override_link      --link: the link rate this run shapes to; class
//                         caps above it are clamped with a warning
//   2. unreachable rules  rules no packet reaches (rule algebra, exact), so
//                         that code generation leaves them out
//
// The strategy choice (tree or maps) stays in code generation: it needs the
// size of the emitted tree (docs/codegen.md).
#include <cstdint>
#include <optional>
#include <vector>

#include "qosc/diag.hpp"
#include "qosc/ir.hpp"

namespace qosc {

struct MidendOptions {
  std::optional<uint64_t> link_bps;  // --link, already parsed (> 0)
  bool find_unreachable = true;      // false for `qosc check` (nothing consumes them)
};

struct MidendResult {
  std::vector<uint32_t> dead_rules;  // positions in policy.rules, ascending
};

void override_link(ir::Policy& policy, uint64_t link_bps, Diagnostics& diags);
MidendResult run_midend(ir::Policy& policy, const MidendOptions& options, Diagnostics& diags);

}  // namespace qosc
