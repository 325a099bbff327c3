#pragma once
// `qosc test --bpf`: the cases through the compiled XDP and TC programs with
// BPF_PROG_TEST_RUN. The policy is compiled in-process and loaded with
// qosrun's loader and test runner (runtime/: qosrun_core), the one place
// that runs programs and reads their answer; qosc links it for this only.
#include <optional>
#include <string>
#include <vector>

#include "qosc/review.hpp"

namespace qosc::cli {

// Whether this process may load BPF programs (root, CAP_BPF or CAP_SYS_ADMIN).
bool can_run_bpf();

struct BpfAnswers {
  // Per case, per hook (0: XDP, 1: TC): the class the program chose, or "drop".
  std::vector<std::array<std::string, 2>> outcome;
};
// nullopt with *error when compiling, loading or a run failed.
std::optional<BpfAnswers> run_in_kernel(const ReviewedPolicy& policy, const std::vector<const Expectation*>& cases,
                                        std::string* error);

}  // namespace qosc::cli
