// `qosc test`: expectations from a test file checked against the reference
// interpreter (interp.cpp). Running the same cases through the compiled
// programs is bpf_cases.cpp's.
#include <fmt/format.h>

#include <map>

#include "qosc/frontend.hpp"
#include "qosc/review.hpp"

namespace qosc {

std::optional<std::vector<TestCaseResult>> run_policy_tests(const ReviewedPolicy& policy,
                                                            const std::vector<Expectation>& cases,
                                                            const std::string& test_file, Diagnostics& diags) {
  std::vector<std::string> names;
  for (const auto& c : policy.ir.classes) names.push_back(c.name);
  bool ok = true;
  std::vector<TestCaseResult> out;
  for (const auto& x : cases) {
    TestCaseResult r;
    r.expectation = &x;
    r.file = test_file;
    const ir::Class* want = x.drop ? nullptr : policy.ir.find_class(x.target);
    if (!x.drop && !want) {
      auto& d = diags.error(x.target_loc, fmt::format("unknown class '{}': policy '{}' has no such class", x.target,
                                                      policy.ir.name));
      std::string c = closest_match(x.target, names);
      d.hints.push_back(c.empty() ? fmt::format("its classes are {}", fmt::join(names, ", "))
                                  : fmt::format("did you mean '{}'?", c));
      ok = false;
      continue;
    }
    r.got = classify(policy.ir, x.packet.fields);
    r.deciding_rule = first_match(policy.every_rule, x.packet.fields);
    r.passed = x.drop ? r.got == ir::kDrop : r.got == int32_t(want->id);
    out.push_back(r);
  }
  if (!ok) return std::nullopt;
  return out;
}

namespace {
std::string decided_by(const ReviewedPolicy& p, int rule) {
  if (rule >= 0) return fmt::format("decided by {}:{}", p.file_name, p.ast.rules[size_t(rule)].loc.line);
  return fmt::format("no rule matched; default class at {}:{}", p.file_name, p.ir.classes[p.ir.default_class].loc.line);
}

std::string xml_escape(std::string_view s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&': r += "&amp;"; break;
      case '<': r += "&lt;"; break;
      case '>': r += "&gt;"; break;
      case '"': r += "&quot;"; break;
      case '\'': r += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') r += ' ';
        else r += c;
    }
  }
  return r;
}
}  // namespace

std::string failure_line(const ReviewedPolicy& p, const TestCaseResult& r) {
  return fmt::format("{}:{}: expected '{}', got '{}' ({})", r.file, r.expectation->loc.line, r.expectation->target,
                     outcome_name(p.ir, r.got), decided_by(p, r.deciding_rule));
}

std::string junit_xml(const ReviewedPolicy& p, const std::vector<TestCaseResult>& results) {
  // One testsuite per test file, in the order the files came.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const TestCaseResult*>> by_file;
  size_t failures = 0;
  for (const auto& r : results) {
    if (!by_file.count(r.file)) order.push_back(r.file);
    by_file[r.file].push_back(&r);
    failures += !r.passed;
  }
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += fmt::format("<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\">\n", xml_escape(p.file_name), results.size(),
                   failures);
  for (const auto& f : order) {
    const auto& rs = by_file[f];
    size_t fail = 0;
    for (auto* r : rs) fail += !r->passed;
    s += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n", xml_escape(f), rs.size(), fail);
    for (auto* r : rs) {
      std::string name = fmt::format("line {}: {} -> {}", r->expectation->loc.line, r->expectation->packet_text,
                                     r->expectation->target);
      s += fmt::format("    <testcase classname=\"{}\" name=\"{}\"", xml_escape(p.file_name), xml_escape(name));
      if (r->passed) {
        s += "/>\n";
      } else {
        std::string msg = failure_line(p, *r);
        s += fmt::format(">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n", xml_escape(msg),
                         xml_escape(msg));
      }
    }
    s += "  </testsuite>\n";
  }
  return s + "</testsuites>\n";
}

}  // namespace qosc
