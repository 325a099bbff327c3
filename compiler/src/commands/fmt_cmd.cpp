// `qosc fmt [--check] FILE...`: rewrite policy files in the canonical
// layout (front/format.cpp), or with --check show what would change.
//
// Before anything is written the result is checked: it parses, it formats to
// itself, and it means what the file meant (the same AST, printed without
// comments, and the same IR). A failure there is qosc's bug: nothing is
// written and the exit code is 2.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include "cli_io.hpp"
#include "review_commands.hpp"
#include "qosc/diag_format.hpp"
#include "qosc/frontend.hpp"
#include "unified_diff.hpp"

namespace qosc::cli {
namespace {

bool same_classes(const ir::Class& a, const ir::Class& b) {
  return a.id == b.id && a.name == b.name && a.priority == b.priority && a.weight == b.weight && a.quantum == b.quantum &&
         a.rate_bps == b.rate_bps && a.burst_bytes == b.burst_bytes && a.is_default == b.is_default &&
         a.set_dscp == b.set_dscp;
}

// Equal up to source locations.
bool same_ir(const ir::Policy& a, const ir::Policy& b) {
  if (a.name != b.name || a.link_bps != b.link_bps || a.link_adaptive != b.link_adaptive ||
      a.download_bps != b.download_bps || a.download_adaptive != b.download_adaptive || a.default_class != b.default_class ||
      a.scheduler.kind != b.scheduler.kind || !(a.scheduler.rank == b.scheduler.rank) ||
      a.scheduler.pifo_bands != b.scheduler.pifo_bands || a.classes.size() != b.classes.size() ||
      a.rules.size() != b.rules.size() || a.plans != b.plans || a.hosts != b.hosts)
    return false;
  for (size_t i = 0; i < a.classes.size(); ++i)
    if (!same_classes(a.classes[i], b.classes[i])) return false;
  for (size_t i = 0; i < a.rules.size(); ++i) {
    ir::Rule x = a.rules[i], y = b.rules[i];
    x.loc = y.loc = {};
    if (!(x == y)) return false;
  }
  return true;
}

struct Formatted {
  std::string text;
  int code = kOk;
};

// The formatted text of `file`, verified; diagnostics of a file that does not parse go to `report`.
Formatted format_checked(const SourceFile& file, DiagnosticsReport& report) {
  Diagnostics diags(&file);
  auto ast = parse_policy(file, diags);
  if (!ast) {
    report.add(diags);
    return {"", kUserError};
  }
  auto internal = [&](const std::string& why) {
    std::cerr << fmt::format("qosc: internal error: formatting {} {}; the file is left as it is. This is a bug in "
                             "qosc: please report it with the file\n",
                             file.name(), why);
    return Formatted{"", kInternal};
  };
  auto out = format_policy_file(*ast, file);
  if (!out) return internal("failed (its items could not be matched with the text)");
  SourceFile again(file.name(), *out);
  Diagnostics d2(&again);
  auto ast2 = parse_policy(again, d2);
  if (!ast2) return internal("gives text that does not parse:\n" + d2.str());
  if (print_policy(*ast2) != print_policy(*ast)) return internal("would change its items");
  auto twice = format_policy_file(*ast2, again);
  if (!twice || *twice != *out) return internal("is not stable (formatting the result changes it again)");
  Diagnostics q1(&file), q2(&again);
  auto ir1 = check_and_lower(*ast, file, q1);
  auto ir2 = check_and_lower(*ast2, again, q2);
  if (bool(ir1) != bool(ir2) || (ir1 && !same_ir(*ir1, *ir2))) return internal("would change what it means");
  return {*out, kOk};
}

}  // namespace

int run_fmt(int argc, char** argv) {
  CLI::App app{"qosc fmt: write policy files in the one canonical layout (comments kept)", "qosc fmt"};
  std::vector<std::string> files;
  bool check = false;
  std::string color = "auto", format = "text";
  app.add_option("FILE", files, "policy files to rewrite in place; - reads standard input and writes standard output")
      ->required();
  app.add_flag("--check", check, "change nothing: print a unified diff of what would change, exit 1 if any");
  app.add_option("--diagnostics-format", format, "text, json or sarif (with --check: one diagnostic per file)")
      ->check(CLI::IsMember({"text", "json", "sarif"}));
  app.add_option("--color", color, "colour diagnostics: auto, always, never")->check(CLI::IsMember({"auto", "always", "never"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) ? kUserError : kOk;
  }
  DiagnosticsReport report(*diagnostics_format_from(format), std::cerr, use_color(color));
  int worst = kOk;
  for (const auto& path : files) {
    std::string err;
    auto text = read_input(path, &err);
    if (!text) {
      usage_error(err);
      worst = std::max(worst, kUserError);
      continue;
    }
    SourceFile file(path == "-" ? "<stdin>" : path, std::move(*text));
    Formatted f = format_checked(file, report);
    if (f.code != kOk) {
      worst = std::max(worst, f.code);
      continue;
    }
    if (check) {
      if (f.text == file.text()) continue;
      std::cout << unified_diff(file.text(), f.text, file.name(), file.name() + " (formatted)");
      Diagnostic d;
      d.severity = Severity::Error;
      d.loc = Loc{first_different_line(file.text(), f.text), 1, 1};
      d.message = "this file is not in the canonical layout";
      d.hints.push_back(fmt::format("run `qosc fmt {}`", path));
      report.add(file, d);
      worst = std::max(worst, kUserError);
      continue;
    }
    if (path == "-") {
      std::cout << f.text;
      continue;
    }
    if (f.text == file.text()) continue;
    if (!write_file(path, f.text.data(), f.text.size(), &err)) {
      usage_error(err);
      worst = std::max(worst, kUserError);
    }
  }
  // With --check the diff is on standard output, so structured diagnostics go to standard error.
  report.finish(check ? std::cerr : std::cout);
  return worst;
}

}  // namespace qosc::cli
