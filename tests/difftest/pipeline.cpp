// The compiler pipeline for the differential test and the benchmark.
#include "pipeline.hpp"

#include <chrono>
#include <exception>

#include "qosc/codegen.hpp"
#include "qosc/diag.hpp"
#include "qosc/frontend.hpp"
#include "qosc/source.hpp"
#include "random_policy.hpp"

namespace qosc::difftest {

std::optional<CompiledPolicy> compile_text(const std::string& name, const std::string& text, std::string* error) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    SourceFile file(name, text);
    Diagnostics diags(&file);
    FrontendResult fe = compile_frontend(file, diags);
    if (!fe.ir || diags.has_errors()) {
      if (error) *error = diags.str();
      return std::nullopt;
    }
    CodegenOptions opts;
    opts.source_text = text;
    opts.source_name = name;
    auto obj = compile_policy(*fe.ir, opts, diags);
    if (!obj || diags.has_errors()) {
      if (error) *error = diags.str();
      return std::nullopt;
    }
    CompiledPolicy out;
    out.ir = std::move(*fe.ir);
    out.object = std::move(obj->object);
    out.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  } catch (const std::exception& e) {
    if (error) *error = std::string("exception: ") + e.what();
    return std::nullopt;
  }
}

std::string random_policy_text(std::mt19937_64& rng, size_t rules) {
  testsupport::RandomPolicyOptions o;
  o.min_rules = rules;
  o.max_rules = rules;
  return testsupport::random_policy(rng, o);
}

}  // namespace qosc::difftest
