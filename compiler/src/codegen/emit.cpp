// generate_c: dead rules, the strategy (tree or maps), then one C translation
// unit: the head and program skeleton (emit_program.cpp) around the chosen
// strategy's classifier (emit_tree.cpp, emit_maps.cpp).
#include <chrono>
#include <memory>

#include <fmt/format.h>

#include "emitter.hpp"
#include "qosc/reach.hpp"
#include "qos_abi.h"
#include "tables_section.hpp"

namespace qosc {

const char* to_string(Strategy s) {
  switch (s) {
    case Strategy::Auto: return "auto";
    case Strategy::Tree: return "tree";
    case Strategy::Maps: return "maps";
  }
  return "?";
}

std::optional<Strategy> strategy_from_string(std::string_view s) {
  if (s == "auto") return Strategy::Auto;
  if (s == "tree") return Strategy::Tree;
  if (s == "maps") return Strategy::Maps;
  return std::nullopt;
}

namespace codegen {
namespace {

// Measured (kernel 6.18, clang-19 binary, random policies where every rule is
// live: tcp/udp + one dport + an IPv4 /24; tests/codegen Kernel.LargePolicies),
// tree strategy:
//   rules   C      generate+compile  verify(load)  object
//   64      30K    0.34 s            17 ms         97K
//   256     105K   0.47 s            24 ms         222K
//   1024    450K   2.95 s            50 ms         820K
//   4096    2.3M   39.9 s            295 ms        4.2M
// The verifier is not the limit up to 4k; clang time is (superlinear), so
// large policies take the maps strategy (below).
//
// Trees up to this many rule checks (and kInlineMaxTerms condition terms) are
// inlined whole into both programs: a BPF-to-BPF call costs ~9 ns on the
// machines measured (call and return go through retpoline and SRSO return
// thunks), more than deciding 256 rules does. Above it clang's time grows
// (inlined twice, into one huge function: 0.29 -> 0.67 s at 256 rules,
// 0.9 -> 2.4 s at 1k, clang binary), so larger trees stay global functions.
// The maps code is the same size for every policy and is always inlined.
constexpr size_t kInlineMaxChecks = 256;
constexpr size_t kInlineMaxTerms = 768;
// The kernel allows 256 subprograms per program (BPF_MAX_SUBPROGS).
constexpr size_t kMaxGlobalFuncs = 240;
// Auto strategy: the tree for policies up to this many live rules whose tree
// needs at most this many emitted rule checks; maps above (measured, see
// docs/codegen.md).
constexpr size_t kTreeMaxRules = 1000;
constexpr size_t kTreeMaxChecks = 768;
// ... and whose conditions have at most this many terms (port intervals and
// prefixes after merging; a rule with a set of 500 prefixes is one check but
// 500 terms), at most kTreeMaxRuleTerms in one rule: the tree tests a rule's
// set element by element (~0.25 ns each), the maps look it up.
constexpr size_t kTreeMaxTerms = 2048;
constexpr size_t kTreeMaxRuleTerms = 64;

}  // namespace
}  // namespace codegen

std::optional<GeneratedC> generate_c(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags) {
  using namespace codegen;
  using Clock = std::chrono::steady_clock;
  auto stage = [&](const std::string& msg) {
    if (opts.verbose) opts.verbose(msg);
  };
  if (policy.classes.empty() || policy.classes.size() > QOS_MAX_CLASSES) {
    diags.error({}, fmt::format("policy has {} classes; qosc supports 1 to 64 (QOS_MAX_CLASSES)", policy.classes.size()));
    return std::nullopt;
  }
  if (policy.scheduler.kind == ir::SchedKind::Pifo &&
      (policy.scheduler.pifo_bands == 0 || policy.scheduler.pifo_bands > QOS_PIFO_MAX_BANDS)) {
    diags.error({}, fmt::format("pifo uses {} bands; qosc supports 1 to 16", policy.scheduler.pifo_bands));
    return std::nullopt;
  }
  std::string source_name = opts.source_name.empty() ? policy.source_name : opts.source_name;
  if (source_name.empty()) source_name = "policy.qos";

  auto t0 = Clock::now();
  // Unreachable rules: from the midend, or none when the front end already
  // left them out; only IR built by hand (tests) is searched here.
  const std::vector<uint32_t> dead = opts.dead_rules            ? *opts.dead_rules
                                     : policy.unreachable_removed ? std::vector<uint32_t>{}
                                                                  : ir::unreachable_rules(policy);
  const size_t live = policy.rules.size() - dead.size();
  stage(fmt::format("optimise: {} rules, {} proven dead, {} live ({:.1f} ms)", policy.rules.size(), dead.size(), live,
                    std::chrono::duration<double, std::milli>(Clock::now() - t0).count()));

  // Strategy: the tree while its code stays small enough to compile fast
  // (docs/codegen.md has the measured crossover), maps above.
  Strategy chosen = opts.strategy;
  std::string why;
  const size_t tree_max_rules = opts.tree_max_rules ? opts.tree_max_rules : kTreeMaxRules;
  const size_t tree_max_checks = opts.tree_max_checks ? opts.tree_max_checks : kTreeMaxChecks;
  if (chosen == Strategy::Auto && live > tree_max_rules) {
    chosen = Strategy::Maps;
    why = fmt::format("{} live rules > {}", live, tree_max_rules);
  }
  std::unique_ptr<EmitContext> cx;
  if (chosen != Strategy::Maps) {
    auto t1 = Clock::now();
    const DecisionPlan plan = plan_decisions(policy, dead);
    TreeSize size;
    auto emit_tree = [&](bool inline_all) {
      auto c = std::make_unique<EmitContext>(policy, opts, source_name);
      c->inline_subprogs = inline_all;
      emit_class_tables(*c);
      size = emit_tree_classifier(*c, plan);
      return c;
    };
    // Auto: the first emission counts the rule checks and terms; a small
    // tree is emitted again, inlined.
    cx = emit_tree(opts.inline_subprograms.value_or(false));
    if (!opts.inline_subprograms && size.checks <= kInlineMaxChecks && size.terms <= kInlineMaxTerms)
      cx = emit_tree(true);
    stage(fmt::format("tree: {} partitions, {} rule checks ({} terms), {} ({:.1f} ms)", plan.partitions.size(),
                      size.checks, size.terms,
                      cx->inline_subprogs ? std::string("inlined into both programs")
                                          : fmt::format("{} subprograms", cx->global_funcs),
                      std::chrono::duration<double, std::milli>(Clock::now() - t1).count()));
    if (chosen == Strategy::Auto) {
      if (size.checks > tree_max_checks)
        why = fmt::format("the tree needs {} rule checks > {}", size.checks, tree_max_checks);
      else if (size.terms > kTreeMaxTerms)
        why = fmt::format("the tree's conditions have {} terms > {}", size.terms, kTreeMaxTerms);
      else if (size.max_rule_terms > kTreeMaxRuleTerms)
        why = fmt::format("a rule's condition has {} terms > {} (sets are tested one by one in the tree)",
                          size.max_rule_terms, kTreeMaxRuleTerms);
      else if (cx->global_funcs > kMaxGlobalFuncs)
        why = fmt::format("the tree needs {} subprograms > {}", cx->global_funcs, kMaxGlobalFuncs);
      chosen = why.empty() ? Strategy::Tree : Strategy::Maps;
    } else if (cx->global_funcs > kMaxGlobalFuncs) {
      diags.error({}, fmt::format("policy needs {} BPF subprograms with the tree strategy (limit {})", cx->global_funcs,
                                  kMaxGlobalFuncs))
          .hints.push_back("use --strategy maps (or auto) for this policy");
      return std::nullopt;
    }
  }
  GeneratedC g;
  if (chosen == Strategy::Maps) {
    auto t1 = Clock::now();
    cx = std::make_unique<EmitContext>(policy, opts, source_name);
    cx->inline_subprogs = opts.inline_subprograms.value_or(true);
    BitTables t;
    try {
      t = build_bit_tables(policy, dead);
    } catch (const std::length_error& ex) {
      diags.error({}, fmt::format("policy is too large for qosc: {}", ex.what()))
          .hints.push_back("split the policy, or merge rules that share a class into sets");
      return std::nullopt;
    }
    emit_class_tables(*cx);
    emit_maps_classifier(*cx, t);
    if (t.nrules) g.tables = serialize_tables(t);
    stage(fmt::format("maps: {} live rules, {} words, {} classes, pool {} words, tables {:.1f} KiB ({:.1f} ms){}",
                      t.nrules, t.words, t.descs.size(), t.pool.size(), double(g.tables.size()) / 1024,
                      std::chrono::duration<double, std::milli>(Clock::now() - t1).count(),
                      why.empty() ? "" : " [auto: " + why + "]"));
  }
  g.strategy = chosen == Strategy::Maps ? "maps" : "tree";
  g.manifest = make_manifest(policy, opts, source_name);
  g.manifest.strategy = g.strategy;
  if (!g.tables.empty()) g.manifest.tables_section = QOS_TABLES_SECTION;
  if (!opts.flow_entries) g.manifest.flows_map = "";

  emit_program(*cx, kXdpTarget);
  emit_program(*cx, kTcTarget);
  if (g.manifest.hosts && !g.manifest.hosts->steer_prog.empty()) emit_steer_program(*cx);
  SourceBuilder head = program_head(policy, opts, source_name, dead.size(), g.strategy, g.manifest);
  g.text = join_head_and_body(head, cx->out.take());
  return g;
}

}  // namespace qosc
