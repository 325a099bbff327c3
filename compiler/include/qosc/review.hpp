#pragma once
// What `qosc explain` and `qosc test` know about a policy: the IR the
// compiler uses, plus each rule and each match of the source lowered on its
// own by the same checks (sema), so that "which match failed" is the
// compiler's meaning, not a second reading of the language.
#include <optional>
#include <string>
#include <vector>

#include "qosc/ast.hpp"
#include "qosc/diag.hpp"
#include "qosc/ir.hpp"
#include "qosc/packet.hpp"
#include "qosc/packet_notation.hpp"

namespace qosc {

struct ReviewedPolicy {
  std::string file_name;
  ast::Policy ast;
  ir::Policy ir;                 // what the compiler generates code from
  ir::Policy every_rule;         // rule i is the file's rule i (never-matching ones match nothing)
  // match_alone[i][j]: rule i's match j as a rule of its own (a port match
  // together with its tcp/udp); empty when that lowering failed.
  std::vector<std::vector<ir::Rule>> match_alone;
};

// Parses and checks `file` (errors and warnings into diags); nullopt on errors.
std::optional<ReviewedPolicy> review_policy(const SourceFile& file, Diagnostics& diags);

struct Explanation {
  int32_t outcome = 0;                 // class id or ir::kDrop
  int deciding_rule = -1;              // index in the file, -1: the default class
  struct Miss {
    size_t rule = 0;                   // an earlier rule (index in the file)
    std::vector<size_t> failed;        // its matches the packet fails, in written order
  };
  std::vector<Miss> earlier;           // every rule before the deciding one
};
Explanation explain(const ReviewedPolicy& policy, const PacketFields& packet);

// The human form: outcome, deciding rule (file:line and text) or the default
// class, one line per earlier rule with its first failed match (verbose: the
// rule's text and every failed match).
std::string render_explanation(const ReviewedPolicy& policy, const NotatedPacket& packet, const Explanation& e,
                               bool verbose);

// "gaming", "drop"
std::string outcome_name(const ir::Policy& policy, int32_t outcome);
// What the packet has where a match looks, e.g. "the source port is 50000".
std::string packet_side_of(const ast::Match& match, const PacketFields& packet);

// ---- policy tests ---------------------------------------------------------------
struct TestCaseResult {
  const Expectation* expectation = nullptr;
  std::string file;              // the test file
  int32_t got = 0;               // class id or kDrop
  int deciding_rule = -1;
  bool passed = false;
};
// Checks that every expected class exists (errors into diags, the test
// file's); nullopt when one does not.
std::optional<std::vector<TestCaseResult>> run_policy_tests(const ReviewedPolicy& policy,
                                                            const std::vector<Expectation>& cases,
                                                            const std::string& test_file, Diagnostics& diags);
// "TESTS:LINE: expected 'gaming', got 'bulk' (decided by POLICY:LINE)"
std::string failure_line(const ReviewedPolicy& policy, const TestCaseResult& r);
// JUnit XML for CI systems: one testsuite per test file.
std::string junit_xml(const ReviewedPolicy& policy, const std::vector<TestCaseResult>& results);

}  // namespace qosc
