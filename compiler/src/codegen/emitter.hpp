#pragma once
// What the emitters share while writing one translation unit: the policy,
// the options, the body being built and how classifier subprograms are
// declared. generate_c (emit.cpp) runs the strategy's emitter (emit_tree.cpp
// or emit_maps.cpp) and the program skeleton (emit_program.cpp) into one
// EmitContext, then puts the head in front.
#include <optional>
#include <string>
#include <vector>

#include "bitvector.hpp"
#include "decision.hpp"
#include "qosc/codegen.hpp"
#include "source_builder.hpp"
#include "target.hpp"

namespace qosc::codegen {

struct EmitContext {
  EmitContext(const ir::Policy& p, const CodegenOptions& o, std::string name)
      : policy(p), opts(o), source_name(std::move(name)) {}
  const ir::Policy& policy;
  const CodegenOptions& opts;
  std::string source_name;   // the policy file named by #line
  SourceBuilder out{"qos_gen.c"};
  // Classifier subprograms inlined into both programs (small trees, the maps
  // code) instead of global (BTF) functions verified once: see emit_tree.cpp.
  bool inline_subprogs = false;
  size_t global_funcs = 0;   // global subprograms declared so far

  // The declaration of classifier subprogram `name(struct qos_pkt *p)`.
  std::string subprog(const std::string& name);
};

// ---- tree strategy (emit_tree.cpp): the decision plan as straight-line C
struct TreeSize {
  size_t checks = 0;           // rule checks emitted
  size_t terms = 0;            // condition terms over all checks (code size)
  size_t max_rule_terms = 0;   // the largest single condition (evaluated linearly per packet)
};
// Emits qos_classify and what it calls.
TreeSize emit_tree_classifier(EmitContext& cx, const DecisionPlan& plan);

// ---- maps strategy (emit_maps.cpp): bit vectors in maps filled at load
void emit_maps_classifier(EmitContext& cx, const BitTables& t);

// ---- program skeleton (emit_program.cpp): what every strategy shares
// Class priority/weight lookups and the policers.
void emit_class_tables(EmitContext& cx);
// One program (XDP or TC): parse, classify, count, police, hand over.
void emit_program(EmitContext& cx, const Target& t);
// qos_steer, for policies with `hosts` (not `nat`): the XDP program that sends
// a listed host's packets to the CPU of its TX queue (qos_hosts.h).
inline constexpr const char* kSteerProgram = "qos_steer";
void emit_steer_program(EmitContext& cx);
// Where each isolated class's slots live (qos_abi.h "isolation"), by class id; nullopt: no isolation.
inline constexpr uint64_t kMinSparseBps = 128000;
std::vector<std::optional<ManifestIsolation>> isolation_layout(const ir::Policy& policy);
// What qosrun needs to know about the object.
Manifest make_manifest(const ir::Policy& policy, const CodegenOptions& opts, const std::string& source_name);
// The translation unit's head: defines, includes, the manifest section.
SourceBuilder program_head(const ir::Policy& policy, const CodegenOptions& opts, const std::string& source_name,
                           size_t dead_rules, const std::string& strategy, const Manifest& manifest);
// head + body, with the body's `#line N "qos_gen.c"` resets renumbered for the lines in front of it.
std::string join_head_and_body(SourceBuilder& head, std::string body);

}  // namespace qosc::codegen
