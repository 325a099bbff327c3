#pragma once
// The compiler pipeline as the differential test drives it: .qos text ->
// parse -> check/lower -> code generation -> BPF object. Kept in one place so
// that the test body reads as the comparison it is.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "qosc/ir.hpp"

namespace qosc::difftest {

struct CompiledPolicy {
  ir::Policy ir;
  std::vector<unsigned char> object;
  double compile_seconds = 0;   // whole pipeline, text to object
};

// Compiles .qos text; on failure returns nullopt with the diagnostics (or the
// exception) in *error.
std::optional<CompiledPolicy> compile_text(const std::string& name, const std::string& text, std::string* error);

// A random valid policy (tests/support's generator); `rules` is a size hint.
std::string random_policy_text(std::mt19937_64& rng, size_t rules);

}  // namespace qosc::difftest
