// See bpf_cases.hpp.
#include "bpf_cases.hpp"

#include <fmt/format.h>

#include "qosc/codegen.hpp"
#include "qosrun/classify.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/testrun.hpp"

namespace qosc::cli {

bool can_run_bpf() { return qosrun::can_load_bpf(); }

std::optional<BpfAnswers> run_in_kernel(const ReviewedPolicy& policy, const std::vector<const Expectation*>& cases,
                                        std::string* error) {
  Diagnostics diags;
  CodegenOptions opts;
  opts.source_name = policy.file_name;
  auto obj = compile_policy(policy.ir, opts, diags);
  if (!obj || diags.has_errors()) {
    *error = "the policy's programs did not compile:\n" + diags.str();
    return std::nullopt;
  }
  qosrun::set_libbpf_verbosity(0);
  qosrun::LoadOptions lo;
  lo.xdp_meta = true;
  auto loaded = qosrun::LoadedPolicy::load_memory(obj->object, policy.file_name, lo);
  if (!loaded) {
    *error = "loading the compiled programs failed: " + loaded.error().message;
    return std::nullopt;
  }
  qosrun::TestRunner runner(*loaded);
  BpfAnswers out;
  for (const Expectation* c : cases) {
    std::vector<uint8_t> frame = build_frame(c->packet);
    std::array<std::string, 2> answer;
    for (int h = 0; h < 2; ++h) {
      auto hook = h == 0 ? qosrun::Hook::Xdp : qosrun::Hook::Tc;
      auto v = runner.run(hook, frame);
      if (!v) {
        *error = fmt::format("the {} test run failed: {}", qosrun::to_string(hook), v.error().message);
        return std::nullopt;
      }
      answer[size_t(h)] = runner.class_name(*v);
    }
    out.outcome.push_back(answer);
  }
  return out;
}

}  // namespace qosc::cli
