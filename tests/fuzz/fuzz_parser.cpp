// Fuzz target for the front end: any bytes -> parse, check, lower, print;
// format (qosc fmt); read as a packet (the packet notation) and as a policy
// test file. Properties beyond "no crash": a policy that parses prints back
// to text that parses again to the same printed form, and formats to text
// that keeps its items and comments and formats to itself; a packet that
// reads prints back to the same fields and its frame parses to them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "qosc/frontend.hpp"
#include "qosc/packet_notation.hpp"

namespace {

std::string comments_of(const std::string& text) {
  std::string r;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '#') continue;
    size_t e = text.find('\n', i);
    if (e == std::string::npos) e = text.size();
    std::string c = text.substr(i, e - i);
    while (!c.empty() && (c.back() == ' ' || c.back() == '\t' || c.back() == '\r' || c.back() == '\v' || c.back() == '\f')) c.pop_back();
    r += c + '\n';
    i = e;
  }
  return r;
}

void check_packet(const qosc::NotatedPacket& p) {
  std::string printed = qosc::format_packet(p);
  qosc::SourceFile f("printed", printed);
  qosc::Diagnostics d(&f);
  auto again = qosc::parse_packet_notation(f, d);
  if (!again || !(again->fields == p.fields)) __builtin_trap();
  if (!(qosc::parse_packet(qosc::build_frame(p)) == p.fields)) __builtin_trap();
}

void fuzz_policy(const std::string& text) {
  qosc::SourceFile file("fuzz.qos", text);
  qosc::Diagnostics diags(&file);
  auto ast = qosc::parse_policy(file, diags);
  (void)diags.str();  // rendering must not crash either (carets past line ends, tabs, CR)
  if (!ast) return;
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
  // qosc fmt: the same items, every comment, a fixed point.
  auto formatted = qosc::format_policy_file(*ast, file);
  if (!formatted) __builtin_trap();
  qosc::SourceFile fmt_file("formatted.qos", *formatted);
  qosc::Diagnostics d3(&fmt_file);
  auto ast3 = qosc::parse_policy(fmt_file, d3);
  if (!ast3 || qosc::print_policy(*ast3) != printed) __builtin_trap();
  if (comments_of(*formatted) != comments_of(text)) __builtin_trap();
  auto twice = qosc::format_policy_file(*ast3, fmt_file);
  if (!twice || *twice != *formatted) __builtin_trap();
}

void fuzz_packet_and_tests(const std::string& text) {
  qosc::SourceFile file("fuzz.txt", text);
  qosc::Diagnostics diags(&file);
  if (auto p = qosc::parse_packet_notation(file, diags)) check_packet(*p);
  (void)diags.str();
  qosc::Diagnostics d2(&file);
  for (const auto& c : qosc::parse_test_file(file, d2)) check_packet(c.packet);
  (void)d2.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  fuzz_policy(text);
  fuzz_packet_and_tests(text);
  return 0;
}
