// Built into codegen_test ONLY while the parser's part of qosc_front
// (parser.cpp, with Diagnostics/SourceFile) does not exist yet, so the
// code generation tests can run before the front end is complete. The
// CMakeLists.txt drops this file as soon as compiler/src/front/parser.cpp exists.
#include <ostream>
#include <sstream>

#include "qosc/diag.hpp"
#include "qosc/frontend.hpp"

namespace qosc {
SourceFile::SourceFile(std::string name, std::string text) : name_(std::move(name)), text_(std::move(text)) {}
Diagnostic& Diagnostics::error(Loc loc, std::string message) {
  ++errors_;
  diags_.push_back({Severity::Error, loc, std::move(message), {}, {}});
  return diags_.back();
}
Diagnostic& Diagnostics::warning(Loc loc, std::string message) {
  ++warnings_;
  diags_.push_back({Severity::Warning, loc, std::move(message), {}, {}});
  return diags_.back();
}
void Diagnostics::print(std::ostream& os, bool) const {
  for (const auto& d : diags_) {
    os << (d.loc.valid() ? std::to_string(d.loc.line) + ": " : "") << d.message << "\n";
    for (const auto& n : d.notes) os << "note: " << n.message << "\n";
    for (const auto& h : d.hints) os << "hint: " << h << "\n";
  }
}
std::string Diagnostics::str() const {
  std::ostringstream os;
  print(os);
  return os.str();
}
std::string closest_match(const std::string&, const std::vector<std::string>&) { return ""; }
std::optional<ast::Policy> parse_policy(const SourceFile&, Diagnostics& d) {
  d.error({}, "parser not built yet");
  return std::nullopt;
}
}  // namespace qosc
