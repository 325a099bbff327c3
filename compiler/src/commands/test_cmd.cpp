// `qosc test POLICY TESTS...`: policy unit tests (analysis/policy_test.cpp),
// and, as root or with --bpf, the same cases through the compiled programs:
// a program that disagrees with the reference is qosc's bug (exit 2).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <deque>
#include <iostream>

#include "bpf_cases.hpp"
#include "cli_io.hpp"
#include "review_commands.hpp"
#include "qosc/packet_notation.hpp"
#include "qosc/review.hpp"

namespace qosc::cli {

int run_test(int argc, char** argv) {
  CLI::App app{"qosc test: check a policy against test files of `expect PACKET -> CLASS;` lines", "qosc test"};
  std::string policy_path, junit, color = "auto";
  std::vector<std::string> test_paths;
  bool bpf = false, no_bpf = false, verbose = false;
  app.add_option("POLICY", policy_path, "policy file (.qos or .json)")->required();
  app.add_option("TESTS", test_paths, "test files")->required();
  app.add_option("--junit", junit, "also write the results as JUnit XML to this file");
  auto* b = app.add_flag("--bpf", bpf, "also run every case through the compiled XDP and TC programs "
                                       "(BPF_PROG_TEST_RUN; the default as root)");
  app.add_flag("--no-bpf", no_bpf, "only the reference interpreter, even as root")->excludes(b);
  app.add_flag("-v,--verbose", verbose, "print every case, not only failures");
  app.add_option("--color", color, "colour diagnostics: auto, always, never")->check(CLI::IsMember({"auto", "always", "never"}));
  app.footer("Exit codes: 0 every case passed, 1 a case failed or an input is wrong, 2 the compiled programs "
             "disagree with the reference (a bug in qosc).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) ? kUserError : kOk;
  }
  const bool colour = use_color(color);
  auto input = read_reviewed_policy(policy_path, colour);
  if (!input) return kUserError;
  const ReviewedPolicy* policy = &input->policy;
  std::string err;

  // Every file is read and checked before any case runs.
  std::deque<SourceFile> test_files;
  std::deque<std::vector<Expectation>> cases;
  std::vector<TestCaseResult> results;
  bool input_ok = true;
  for (const auto& path : test_paths) {
    auto t = read_input(path, &err);
    if (!t) {
      usage_error(err);
      input_ok = false;
      continue;
    }
    test_files.emplace_back(path, std::move(*t));
    Diagnostics td(&test_files.back());
    cases.push_back(parse_test_file(test_files.back(), td));
    if (auto r = run_policy_tests(*policy, cases.back(), path, td)) results.insert(results.end(), r->begin(), r->end());
    if (td.has_errors()) input_ok = false;
    td.print(std::cerr, colour);
  }
  if (!input_ok) return kUserError;

  size_t passed = 0, failed = 0;
  for (const auto& r : results) {
    if (r.passed) {
      ++passed;
      if (verbose)
        std::cout << fmt::format("{}:{}: ok: {} -> {}\n", r.file, r.expectation->loc.line, r.expectation->packet_text,
                                 r.expectation->target);
    } else {
      ++failed;
      std::cout << failure_line(*policy, r) << "\n";
    }
  }

  int code = failed ? kUserError : kOk;
  const bool want_bpf = !no_bpf && (bpf || can_run_bpf());
  if (want_bpf) {
    if (!can_run_bpf()) {
      usage_error("--bpf loads BPF programs, which needs root (or CAP_BPF): run it with sudo");
      return kUserError;
    }
    std::vector<const Expectation*> run;
    for (const auto& r : results) run.push_back(r.expectation);
    auto answers = run_in_kernel(*policy, run, &err);
    if (!answers) {
      std::cerr << "qosc: internal error: " << err << "\n";
      return kInternal;
    }
    size_t disagree = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const std::string ref = outcome_name(policy->ir, results[i].got);
      for (int h = 0; h < 2; ++h) {
        const std::string& prog = answers->outcome[i][size_t(h)];
        if (prog == ref) continue;
        ++disagree;
        std::cerr << fmt::format("{}:{}: internal error: the reference gives '{}' but the compiled {} program gives "
                                 "'{}' for {}\n",
                                 results[i].file, results[i].expectation->loc.line, ref, h == 0 ? "XDP" : "TC", prog,
                                 format_packet(results[i].expectation->packet));
      }
    }
    if (disagree) {
      std::cerr << "qosc: internal error: the compiled programs disagree with the reference interpreter; this is a "
                   "bug in qosc: please report it with the policy and the test file\n";
      code = kInternal;
    } else if (verbose) {
      std::cout << fmt::format("{} cases agree in the compiled XDP and TC programs\n", results.size());
    }
  }

  std::cout << fmt::format("{} passed, {} failed\n", passed, failed);
  if (!junit.empty()) {
    std::string xml = junit_xml(*policy, results);
    if (!write_file(junit, xml.data(), xml.size(), &err)) {
      usage_error(err);
      return std::max(code, kUserError);
    }
  }
  return code;
}

}  // namespace qosc::cli
