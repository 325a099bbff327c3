#pragma once
// Lints over the checked IR that need the rule algebra and are not errors in
// the language: enabled by `qosc check --strict` (and `qosc --strict`).
#include "qosc/diag.hpp"
#include "qosc/ir.hpp"

namespace qosc::analysis {

// A rule that an earlier rule of another outcome takes *part* of: the overlap
// is named as a match expression. (A rule taken whole is never reached; the
// front end reports and removes it.)
//   rule at line 12 sends tcp dport 80 ip saddr 10.0.0.0/8 to 'bulk' before
//   this rule can send it to 'web'
void warn_class_overlaps(const ir::Policy& policy, Diagnostics& diags);

}  // namespace qosc::analysis
