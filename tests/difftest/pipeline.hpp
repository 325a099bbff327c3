#pragma once
// The compiler pipeline as the differential test drives it: .qos text ->
// parse -> check/lower -> code generation -> BPF object. Kept in one place so
// that the test body reads as the comparison it is.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "qosc/codegen.hpp"
#include "qosc/ir.hpp"

namespace qosc::difftest {

struct CompiledPolicy {
  ir::Policy ir;
  std::vector<unsigned char> object;
  double compile_seconds = 0;   // whole pipeline, text to object
  std::string strategy;         // "tree" or "maps"
};

struct PipelineOptions {
  Strategy strategy = Strategy::Auto;
  uint32_t flow_entries = 16384;   // 0: no flow table
  std::optional<bool> inline_subprograms;   // CodegenOptions::inline_subprograms (nullopt: auto)
  std::string emit_c_dir;          // also write the generated C there (debugging)
};

// Compiles .qos text; on failure returns nullopt with the diagnostics (or the
// exception) in *error.
std::optional<CompiledPolicy> compile_text(const std::string& name, const std::string& text, std::string* error,
                                           const PipelineOptions& opts = {});

// A random valid policy (tests/support's generator); `rules` is a size hint.
// narrow: values from small pools (rules overlap and shadow each other often).
std::string random_policy_text(std::mt19937_64& rng, size_t rules, bool narrow = true);

// A large random policy whose rules are specific (ports, prefixes /16../32 or
// /48../128, some DSCP and negation), so that most of its `rules` rules are
// live: what the maps strategy is for.
std::string large_policy_text(std::mt19937_64& rng, size_t rules);

}  // namespace qosc::difftest
