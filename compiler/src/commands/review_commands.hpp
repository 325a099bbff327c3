#pragma once
// The review commands of qosc (docs/review.md). Each takes the arguments
// after its name (argv[0] is the command's name) and returns the exit code:
// 0 ok, 1 the input is wrong or a check failed, 2 an internal error.
namespace qosc::cli {

int run_fmt(int argc, char** argv);       // qosc fmt [--check] FILE...
int run_explain(int argc, char** argv);   // qosc explain POLICY PACKET
int run_test(int argc, char** argv);      // qosc test POLICY TESTS... [--junit FILE] [--bpf]

}  // namespace qosc::cli
