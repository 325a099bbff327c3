#pragma once
// sema's checks and lowering of `plan` and `hosts` (sema_hosts.cpp).
#include "qosc/ast.hpp"
#include "qosc/diag.hpp"
#include "qosc/ir.hpp"

namespace qosc {

// Checks the policy's plans and its `hosts` line against the classes, the
// scheduler and the link already in `out`, and fills out.plans and out.hosts.
void check_plans_and_hosts(const ast::Policy& ast, ir::Policy& out, Diagnostics& diags);

}  // namespace qosc
