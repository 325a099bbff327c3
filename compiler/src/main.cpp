// qosc: the policy compiler's command line.
//
//   qosc POLICY [-o OUT.bpf.o] [--link RATE] [--emit-c DIR] [--strategy S] [-v]
//   qosc POLICY --dump ast|ir
//   qosc check [--strict] POLICY...
//   qosc diff OLD NEW [--json]        (OLD/NEW: files or REV:PATH)
//   qosc convert PROFILE.json [-o OUT.qos]
//   qosc fmt [--check] FILE...  |  qosc explain POLICY PACKET  |  qosc test POLICY TESTS...
//     (commands/: the review commands, docs/review.md)
//
// Exit codes: 0 success (warnings allowed), 1 errors in the user's input,
// 2 internal failures (a bug in qosc: please report).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands/cli_io.hpp"
#include "commands/review_commands.hpp"
#include "qosc/codegen.hpp"
#include "qosc/diag_format.hpp"
#include "qosc/diff.hpp"
#include "qosc/frontend.hpp"
#include "qosc/lints.hpp"
#include "qosc/manifest.hpp"
#include "qosc/midend.hpp"
#include "qosc/units.hpp"
#include "qosc/version.hpp"

namespace fs = std::filesystem;

namespace {

using namespace qosc::cli;

struct Options {
  std::string input;
  std::string output;
  std::string emit_c;
  std::string dump;
  std::string strategy = "auto";
  uint32_t flow_table = qosc::CodegenOptions{}.flow_entries;
  uint32_t flow_sample = qosc::CodegenOptions{}.flow_sample;
  std::string link;
  std::string color = "auto";
  bool werror = false;
  bool strict = false;
  int verbose = 0;
  qosc::DiagnosticsReport* report = nullptr;   // check --diagnostics-format json|sarif
};

std::string stem_of(const std::string& input) {
  if (input == "-") return "policy";
  std::string s = fs::path(input).filename().string();
  for (const char* ext : {".qos", ".json"})
    if (s.size() > std::strlen(ext) && s.compare(s.size() - std::strlen(ext), std::strlen(ext), ext) == 0)
      return s.substr(0, s.size() - std::strlen(ext));
  return s;
}

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double ms() const { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }
};

// --link: the link rate this run shapes to, overriding the file's (the
// midend's override_link clamps caps above it).
std::optional<uint64_t> parse_link_option(const std::string& text) {
  std::string err;
  auto bps = qosc::parse_rate_text(text, &err);
  if (!bps || *bps == 0) {
    usage_error(fmt::format("--link {}: {}", text, bps ? "the link rate must be greater than zero" : err));
    return std::nullopt;
  }
  return bps;
}

int run_compile(const Options& o, bool check_only) {
  std::string err;
  auto text = read_input(o.input, &err);
  if (!text) {
    usage_error(err);
    return kUserError;
  }
  const bool color = use_color(o.color);
  qosc::SourceFile file(o.input == "-" ? "<stdin>" : o.input, std::move(*text));
  qosc::Diagnostics diags(&file);
  auto finish = [&](int code) {
    if (o.report && o.report->structured()) {
      o.report->add(diags);
      return code;
    }
    // Into one buffer first: std::cerr is unbuffered, and a policy with
    // thousands of warnings would otherwise cost a write per fragment.
    std::ostringstream printed;
    diags.print(printed, color);
    std::cerr << printed.str();
    if (diags.error_count() || diags.warning_count())
      std::cerr << fmt::format("{} error{} and {} warning{} in {}\n", diags.error_count(), diags.error_count() == 1 ? "" : "s",
                               diags.warning_count(), diags.warning_count() == 1 ? "" : "s", file.name());
    return code;
  };

  Timer t;
  qosc::FrontendResult fe = qosc::compile_frontend(file, diags);
  if (o.verbose) std::cerr << fmt::format("qosc: front end (parse, check, lower): {:.2f} ms\n", t.ms());
  if (o.dump == "ast") {
    if (fe.ast) std::cout << qosc::dump_ast(*fe.ast);
    return finish(fe.ast && !diags.has_errors() ? kOk : kUserError);
  }
  if (!fe.ir || diags.has_errors()) return finish(kUserError);
  qosc::MidendOptions mopts;
  if (!o.link.empty()) {
    mopts.link_bps = parse_link_option(o.link);
    if (!mopts.link_bps) return finish(kUserError);
  }
  mopts.find_unreachable = !check_only;
  Timer tm;
  qosc::MidendResult mid = qosc::run_midend(*fe.ir, mopts, diags);
  if (o.strict) qosc::analysis::warn_class_overlaps(*fe.ir, diags);
  if (o.verbose) std::cerr << fmt::format("qosc: midend{}: {:.2f} ms\n", o.strict ? " and --strict lints" : "", tm.ms());
  if (o.werror && diags.warning_count()) {
    std::cerr << "qosc: warnings are errors (--werror)\n";
    return finish(kUserError);
  }
  if (o.dump == "ir") {
    std::cout << qosc::dump_ir(*fe.ir);
    return finish(kOk);
  }
  if (check_only) return finish(kOk);

  qosc::CodegenOptions copts;
  auto strat = qosc::strategy_from_string(o.strategy);
  if (!strat) {
    usage_error(fmt::format("--strategy {}: expected auto, tree or maps", o.strategy));
    return finish(kUserError);
  }
  copts.strategy = *strat;
  copts.flow_entries = o.flow_table;
  if (o.flow_sample & (o.flow_sample - 1)) {
    usage_error(fmt::format("--flow-sample {}: expected a power of two (1, 2, 4, ... 65536)", o.flow_sample));
    return finish(kUserError);
  }
  copts.flow_sample = o.flow_sample;
  copts.dead_rules = std::move(mid.dead_rules);
  copts.source_text = file.text();
  copts.source_name = file.name();
  copts.emit_c_dir = o.emit_c;
  copts.emit_c_stem = stem_of(o.input);
  if (o.verbose) copts.verbose = [](const std::string& line) { std::cerr << "qosc: " << line << "\n"; };
  Timer tc;
  if (!o.emit_c.empty()) {
    // compile_policy writes there before clang runs; a directory it cannot
    // write is the user's to fix, not an internal error.
    std::error_code ec;
    fs::create_directories(o.emit_c, ec);
    if (ec || ::access(o.emit_c.c_str(), W_OK) != 0) {
      usage_error(fmt::format("--emit-c {}: {}", o.emit_c, ec ? ec.message() : std::strerror(errno)));
      return finish(kUserError);
    }
  }
  auto obj = qosc::compile_policy(*fe.ir, copts, diags);
  if (!obj || diags.has_errors()) {
    std::cerr << "qosc: internal error: the generated program did not compile; this is a bug in qosc, please report it "
                 "with the policy file (run with -v for details)\n";
    return finish(kInternal);
  }
  if (o.verbose)
    std::cerr << fmt::format("qosc: code generation ({} strategy): {:.2f} ms, clang: {:.2f} ms, total {:.2f} ms\n",
                             obj->manifest.strategy, obj->generate_ms, obj->compile_ms, tc.ms());

  std::string out = o.output.empty() ? stem_of(o.input) + ".bpf.o" : o.output;
  if (!write_file(out, obj->object.data(), obj->object.size(), &err)) {
    usage_error(err);
    return finish(kUserError);
  }
  int code = finish(kOk);
  if (o.verbose)
    std::cerr << fmt::format("qosc: wrote {} ({} bytes, {} classes, {} rules, scheduler {})\n", out, obj->object.size(),
                             obj->manifest.classes.size(), obj->manifest.rule_count, obj->manifest.scheduler);
  return code;
}

int run_convert(const std::string& input, const std::string& output, const std::string& color_mode) {
  std::string err;
  auto text = read_input(input, &err);
  if (!text) {
    usage_error(err);
    return kUserError;
  }
  qosc::SourceFile file(input, std::move(*text));
  qosc::Diagnostics diags(&file);
  auto qos = qosc::json_profile_to_qos(file, diags);
  diags.print(std::cerr, use_color(color_mode));
  if (!qos || diags.has_errors()) return kUserError;
  if (output.empty() || output == "-") {
    std::cout << *qos;
    return kOk;
  }
  if (!write_file(output, qos->data(), qos->size(), &err)) {
    usage_error(err);
    return kUserError;
  }
  return kOk;
}

void add_common(CLI::App& app, Options& o) {
  app.add_option("--color", o.color, "colour diagnostics: auto, always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  app.add_flag("--werror", o.werror, "treat warnings as errors");
  app.add_flag("--strict", o.strict,
               "also warn when an earlier rule of another class takes part of a rule's traffic (the overlap is named)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o;
    std::string sub = argc > 1 ? argv[1] : "";
    if (sub == "check") {
      CLI::App app{"qosc check: diagnose policy files without compiling them", "qosc check"};
      std::vector<std::string> files;
      app.add_option("POLICY", files, "policy files (.qos or .json)")->required();
      add_common(app, o);
      app.add_flag("-v,--verbose", o.verbose, "show the stages");
      std::string format = "text";
      app.add_option("--diagnostics-format", format, "text, json or sarif (SARIF 2.1.0 for code review systems), "
                                                     "on standard output")
          ->check(CLI::IsMember({"text", "json", "sarif"}));
      try {
        app.parse(argc - 1, argv + 1);
      } catch (const CLI::ParseError& e) {
        return app.exit(e) ? kUserError : kOk;
      }
      qosc::DiagnosticsReport report(*qosc::diagnostics_format_from(format), std::cerr, use_color(o.color));
      o.report = &report;
      int worst = kOk;
      for (const auto& f : files) {
        o.input = f;
        worst = std::max(worst, run_compile(o, true));
      }
      report.finish(std::cout);
      return worst;
    }
    if (sub == "fmt") return qosc::cli::run_fmt(argc - 1, argv + 1);
    if (sub == "explain") return qosc::cli::run_explain(argc - 1, argv + 1);
    if (sub == "test") return qosc::cli::run_test(argc - 1, argv + 1);
    if (sub == "diff") {
      CLI::App app{"qosc diff: which traffic changes class between two versions of a policy, what changes in its "
                   "classes, and what `qosrun reload` would do",
                   "qosc diff"};
      qosc::analysis::DiffCommand cmd;
      app.add_option("OLD", cmd.old_spec, "the old policy: a file, - for standard input, or REV:PATH from git")->required();
      app.add_option("NEW", cmd.new_spec, "the new policy: a file, - for standard input, or REV:PATH from git")->required();
      app.add_flag("--json", cmd.json, "print JSON: {\"traffic\":[...], \"classes\":[...], \"reload\":{...}}");
      std::string format = "text";
      app.add_option("--diagnostics-format", format,
                     "errors in OLD or NEW as text, json or sarif (SARIF 2.1.0), on standard error")
          ->check(CLI::IsMember({"text", "json", "sarif"}));
      app.add_option("--color", o.color, "colour diagnostics: auto, always, never")
          ->check(CLI::IsMember({"auto", "always", "never"}));
      app.footer("Exit codes: 0 the two mean the same, 1 they differ, 2 errors.");
      try {
        app.parse(argc - 1, argv + 1);
      } catch (const CLI::ParseError& e) {
        return app.exit(e) ? kInternal : kOk;
      }
      cmd.color = use_color(o.color);
      cmd.diagnostics = *qosc::diagnostics_format_from(format);
      return qosc::analysis::run_diff_command(cmd, std::cout, std::cerr);
    }
    if (sub == "convert") {
      CLI::App app{"qosc convert: print a dissertation JSON profile as a .qos policy", "qosc convert"};
      std::string input, output;
      app.add_option("PROFILE", input, "the JSON profile")->required();
      app.add_option("-o,--output", output, "write the .qos here instead of standard output");
      add_common(app, o);
      try {
        app.parse(argc - 1, argv + 1);
      } catch (const CLI::ParseError& e) {
        return app.exit(e) ? kUserError : kOk;
      }
      return run_convert(input, output, o.color);
    }

    CLI::App app{"qosc: compile a QoS policy (.qos, or a dissertation .json profile) into XDP and TC programs", "qosc"};
    app.footer(
        "Commands:\n"
        "  qosc check POLICY...          diagnose only (--strict: also class overlaps)\n"
        "  qosc diff OLD NEW             which traffic changes class (files or REV:PATH)\n"
        "  qosc convert PROFILE.json     print a JSON profile as .qos\n"
        "  qosc fmt [--check] FILE...    the canonical layout, comments kept\n"
        "  qosc explain POLICY PACKET    the class a packet gets, and why\n"
        "  qosc test POLICY TESTS...     check `expect PACKET -> CLASS;` files\n"
        "Examples:\n"
        "  qosc examples/gaming.qos -o gaming.bpf.o\n"
        "  qosc examples/gaming.qos --link 100mbit -o gaming.bpf.o\n"
        "  qosc --dump ir examples/server.qos\n"
        "Exit codes: 0 ok, 1 errors in the input, 2 internal error.");
    app.set_version_flag("--version", std::string("qosc ") + qosc::kVersion);
    app.add_option("POLICY", o.input, "policy file (.qos or .json; - for standard input)")->required();
    app.add_option("-o,--output", o.output, "object file to write (default: POLICY's name with .bpf.o)");
    app.add_option("--link", o.link, "shape to this link rate instead of the file's (e.g. 100mbit); caps above it are clamped");
    app.add_option("--emit-c", o.emit_c,
                 "also write the generated C, the manifest and (maps strategy) the load-time tables into this "
                 "directory as POLICY.bpf.c, POLICY.manifest.json, POLICY.tables.txt");
    app.add_option("--strategy", o.strategy, "rule compilation: auto, tree (decision code) or maps (tables filled at load)")
        ->check(CLI::IsMember({"auto", "tree", "maps"}));
    app.add_option("--flow-table", o.flow_table,
                   fmt::format("flows the flow table holds for `qosrun stats --flows` (LRU, default {}); 0: no flow "
                               "table (sampled by default, it costs a few ns per packet on the wire: docs/wire-cost.md)",
                               o.flow_table))
        ->check(CLI::Range(0u, 1u << 22));
    app.add_option("--flow-sample", o.flow_sample,
                   fmt::format("N (a power of two): the flow table takes one sample per N x 2 KB of traffic, a "
                               "packet with probability its length / (N x 2 KB), so top flows are estimates "
                               "(default {}: full frames 1 in 22, 64-byte packets 1 in 512); 1: count every packet "
                               "exactly, at ~100-400 ns per packet on the wire (docs/wire-cost.md)",
                               o.flow_sample))
        ->check(CLI::Range(1u, 1u << 16));
    app.add_option("--dump", o.dump, "print the AST or the IR instead of compiling")->check(CLI::IsMember({"ast", "ir"}));
    app.add_flag("-v,--verbose", o.verbose, "show the stages and their times");
    add_common(app, o);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) ? kUserError : kOk;
    }
    return run_compile(o, false);
  } catch (const std::exception& e) {
    std::cerr << "qosc: internal error: " << e.what() << "\n";
    return kInternal;
  }
}
