// Fuzz target for the front end: any bytes -> parse, check, lower, print.
// Properties beyond "no crash": every error has a location inside the file
// or none, and a policy that parses prints back to text that parses again
// to the same printed form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "qosc/frontend.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  qosc::SourceFile file("fuzz.qos", text);
  qosc::Diagnostics diags(&file);
  auto ast = qosc::parse_policy(file, diags);
  (void)diags.str();  // rendering must not crash either (carets past line ends, tabs, CR)
  if (!ast) return 0;
  auto ir = qosc::check_and_lower(*ast, file, diags);
  (void)diags.str();
  if (ir) (void)qosc::dump_ir(*ir);
  (void)qosc::dump_ast(*ast);
  std::string printed = qosc::print_policy(*ast);
  qosc::SourceFile again("printed.qos", printed);
  qosc::Diagnostics d2(&again);
  auto ast2 = qosc::parse_policy(again, d2);
  if (!ast2 || qosc::print_policy(*ast2) != printed) {
    // A policy that parsed must print to text that parses to the same thing.
    __builtin_trap();
  }
  return 0;
}
