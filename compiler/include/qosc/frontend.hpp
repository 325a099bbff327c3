#pragma once
// The front end driver: text -> AST -> checks -> IR. Each stage reports into
// a Diagnostics and the driver stops after the first stage with errors.
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>

#include "qosc/ast.hpp"
#include "qosc/diag.hpp"
#include "qosc/ir.hpp"

namespace qosc {

// Parse a .qos text. Returns nullopt on syntax errors (reported to diags).
std::optional<ast::Policy> parse_policy(const SourceFile& file, Diagnostics& diags);

// A rate as written in a policy ("100mbit", "2.5gbit") in bit/s; nullopt with
// *error set (message and hint) when it is not one. Used for `qosc --link`.
std::optional<uint64_t> parse_rate_text(std::string_view text, std::string* error);

// Semantic checks and lowering. Reports errors and warnings; returns the IR
// when there were no errors.
std::optional<ir::Policy> check_and_lower(const ast::Policy& policy, const SourceFile& file, Diagnostics& diags);

// Import one of the dissertation's JSON profiles as .qos text (for
// `qosc convert` and for compiling a .json input). Errors name the JSON path.
std::optional<std::string> json_profile_to_qos(const SourceFile& file, Diagnostics& diags);

// Whole pipeline from a file's text; .json inputs go through the importer.
struct FrontendResult {
  std::optional<ast::Policy> ast;
  std::optional<ir::Policy> ir;
};
FrontendResult compile_frontend(const SourceFile& file, Diagnostics& diags);

// Print an AST back to canonical .qos text (round-trips through parse_policy).
std::string print_policy(const ast::Policy& policy);
// One rule / one match / one class as the canonical text prints it
// ("rule tcp dport 80 -> web;", "tcp dport 80", "class web { priority 3; }").
std::string print_rule(const ast::RuleDecl& rule);
std::string print_match(const ast::Match& match);

// Canonical layout of a policy file with every comment kept (`qosc fmt`).
// `file` must be the text `policy` was parsed from; nullopt when the two
// disagree (a bug: the caller reports it).
std::optional<std::string> format_policy_file(const ast::Policy& policy, const SourceFile& file);
// Human-readable IR dump (`qosc --dump ir`).
std::string dump_ir(const ir::Policy& policy);
std::string dump_ast(const ast::Policy& policy);

namespace detail {
// The same lowering as check_and_lower, but rules that can never match stay
// in the IR (a contradictory one as a rule that matches nothing): rule i of
// the IR is rule i of the file. For tests and for `qosc explain`.
std::optional<ir::Policy> check_and_lower_keep_dead(const ast::Policy& policy, const SourceFile& file, Diagnostics& diags);
}  // namespace detail

}  // namespace qosc
