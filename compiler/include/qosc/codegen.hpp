#pragma once
// Code generation: ir::Policy -> specialised BPF C (one XDP and one TC
// program in one object) -> object bytes with the manifest embedded, sealed
// with a digest of the whole (qosc/object_digest.hpp).
//
//   auto c = qosc::generate_c(policy, opts, diags);          // C text only
//   auto obj = qosc::compile_policy(policy, opts, diags);     // C -> .bpf.o
//
// Two strategies (docs/codegen.md):
// - "tree": the rules are compiled to a decision structure in straight-line C
//   (compiler/src/codegen/decision.hpp): switch on family/protocol, binary
//   search over port intervals, short candidate lists checked in rule order;
// - "maps": for large policies, rules become bit vectors in maps that the
//   loader fills from the object's ".qosc.tables" section (bitvector.hpp).
// Strategy::Auto picks the tree while its code stays small, maps above.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qosc/diag.hpp"
#include "qosc/ir.hpp"
#include "qosc/manifest.hpp"

namespace qosc {

enum class Strategy : uint8_t { Auto, Tree, Maps };
const char* to_string(Strategy s);
std::optional<Strategy> strategy_from_string(std::string_view s);

struct CodegenOptions {
  Strategy strategy = Strategy::Auto;
  std::string source_text;      // policy source, hashed into the manifest (sha256)
  std::string source_name;      // file name used in #line and the manifest ("" = policy.source_name)
  bool line_directives = true;  // emit #line N "source" so clang messages map to the policy
  uint32_t flow_entries = 16384;   // qos_flows max_entries; 0 = no flow table (manifest flows_map "")
  // 1 in how many packets (a power of two) update the flow table, with counts scaled by it
  // (docs/wire-cost.md); 1 = every packet. A PIFO rank on flow_bytes/flow_packets forces 1.
  uint32_t flow_sample = 16;
  // --emit-c: when not empty, compile_policy writes the generated C, the
  // manifest and (maps strategy) a listing of the load-time tables there
  // before clang runs (write_emitted_c).
  std::string emit_c_dir;
  std::string emit_c_stem = "policy";   // file names: STEM.bpf.c, STEM.manifest.json, STEM.tables.txt
  // Stage messages for -v ("optimise: ...", "maps: ...", "clang: ..."); null = quiet.
  std::function<void(const std::string&)> verbose;
  // Auto strategy thresholds (0 = built-in defaults, see docs/codegen.md).
  size_t tree_max_rules = 0;    // more live rules than this -> maps
  size_t tree_max_checks = 0;   // a tree needing more rule checks than this -> maps
  // Classifier subprograms: inlined into both programs, or global (BTF)
  // functions verified once. nullopt = auto (inline the maps code and trees of
  // at most kInlineMaxChecks rule checks, docs/codegen.md); tests force both.
  std::optional<bool> inline_subprograms;
  // Rules no packet reaches (positions in policy.rules), from the midend
  // (run_midend); nullopt: generate_c asks the rule algebra itself.
  std::optional<std::vector<uint32_t>> dead_rules;
};

struct GeneratedC {
  std::string text;             // the whole translation unit
  Manifest manifest;            // manifest (also embedded in the C as a section)
  std::string strategy;         // "tree" or "maps"
  // maps strategy: contents of the load-time tables section (manifest
  // tables_section), appended to the object by compile_policy. Empty for tree.
  std::vector<unsigned char> tables;
};

// Writes gen's files into dir (created when missing): STEM.bpf.c,
// STEM.manifest.json and, for the maps strategy, STEM.tables.txt. The paths
// written are appended to *written when given.
bool write_emitted_c(const GeneratedC& gen, const std::string& dir, const std::string& stem, std::string* error,
                     std::vector<std::string>* written = nullptr);

struct CompiledPolicy {
  std::vector<unsigned char> object;   // ELF BPF object, sealed with its digest (qosc/object_digest.hpp)
  Manifest manifest;
  std::string c_source;                // the generated C
  double generate_ms = 0, compile_ms = 0;
  std::string strategy;                // "tree" or "maps" (also manifest.strategy)
};

// Generates the C translation unit. Reports unsupported input into diags.
std::optional<GeneratedC> generate_c(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags);

// generate_c + compile (in-process clang) + the load-time tables + the
// digest. Clang errors are turned into Diagnostics (mapped to policy lines
// through #line).
std::optional<CompiledPolicy> compile_policy(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags);

// The clang step of compile_policy on its own: compiles generated
// C (qos_gen.c) and maps clang's errors to diagnostics — on the policy line
// when the error lies in code emitted under `#line N "source_name"` (a rule's
// condition), else naming the generated line. Used by tests.
std::optional<std::vector<unsigned char>> compile_generated_c(const std::string& c_text, const std::string& source_name,
                                                              Diagnostics& diags);

}  // namespace qosc
