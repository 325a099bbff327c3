// Built into clang_build_test ONLY while qosc_front has no Diagnostics
// implementation yet (compiler/src/front/parser.cpp missing), so the
// compile_bpf_for_codegen test can link. CMakeLists.txt drops it after that.
#include <ostream>
#include <sstream>

#include "qosc/diag.hpp"

namespace qosc {
Diagnostic& Diagnostics::error(Loc loc, std::string message) {
  ++errors_;
  diags_.push_back({Severity::Error, loc, std::move(message), {}, {}});
  return diags_.back();
}
void Diagnostics::print(std::ostream& os, bool) const {
  for (const auto& d : diags_) {
    os << (d.loc.valid() ? std::to_string(d.loc.line) + ": " : "") << d.message << "\n";
    for (const auto& n : d.notes) os << "note: " << n.message << "\n";
  }
}
std::string Diagnostics::str() const {
  std::ostringstream os;
  print(os);
  return os.str();
}
}  // namespace qosc
