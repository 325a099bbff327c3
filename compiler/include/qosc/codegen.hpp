#pragma once
// Code generation: ir::Policy -> specialised BPF C (one XDP and one TC
// program in one object) -> object bytes with the manifest embedded.
//
//   auto c = qosc::generate_c(policy, opts, diags);          // C text only
//   auto obj = qosc::compile_policy(policy, opts, diags);     // C -> .bpf.o
//
// The rules are compiled to a decision structure (see decision.hpp in
// compiler/src/codegen): switch on family/protocol, binary search over port
// intervals, short candidate lists checked in rule order.
#include <cstdint>
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
  uint32_t flow_entries = 16384;   // qos_flows max_entries
};

struct GeneratedC {
  std::string text;             // the whole translation unit
  Manifest manifest;            // manifest (also embedded in the C as a section)
  std::string strategy;         // "tree" (only strategy implemented so far)
};

struct CompiledPolicy {
  std::vector<unsigned char> object;   // ELF BPF object
  Manifest manifest;
  std::string c_source;                // the generated C
  double generate_ms = 0, compile_ms = 0;
};

// Generates the C translation unit. Reports unsupported input into diags.
std::optional<GeneratedC> generate_c(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags);

// generate_c + compile (in-process clang when available). Clang errors are
// turned into Diagnostics (mapped to policy lines through #line).
std::optional<CompiledPolicy> compile_policy(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags);

// Lowercase hex SHA-256 of `data` (used for the manifest's source_sha256).
std::string sha256_hex(std::string_view data);

}  // namespace qosc
