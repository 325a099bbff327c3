#pragma once
// The review commands of qosc (docs/review.md). Each takes the arguments
// after its name (argv[0] is the command's name) and returns the exit code:
// 0 ok, 1 the input is wrong or a check failed, 2 an internal error.
#include <memory>
#include <optional>
#include <string>

#include "qosc/review.hpp"
#include "qosc/source.hpp"

namespace qosc::cli {

int run_fmt(int argc, char** argv);       // qosc fmt [--check] FILE...
int run_explain(int argc, char** argv);   // qosc explain POLICY PACKET
int run_test(int argc, char** argv);      // qosc test POLICY TESTS... [--junit FILE] [--bpf]

// The policy explain and test work on: `path` ("-": standard input) read and
// checked, with the file its diagnostics point into. On errors they are
// printed (and a file that cannot be read is reported) and the result is
// nullopt: the command exits 1.
struct ReviewInput {
  std::unique_ptr<SourceFile> file;
  ReviewedPolicy policy;
};
std::optional<ReviewInput> read_reviewed_policy(const std::string& path, bool color);

}  // namespace qosc::cli
