// compile_bpf_for_codegen: compile_bpf_c + translation of clang's messages
// into qosc Diagnostics for compile_policy. Kept in its own file so users of
// compile_bpf_c alone do not need qosc_front.
#include <fmt/format.h>

#include "qosc/clang_build.hpp"
#include "qosc/diag.hpp"

namespace qosc {

std::optional<std::vector<unsigned char>> compile_bpf_for_codegen(const std::string& c_text,
                                                                  const std::string& source_name,
                                                                  Diagnostics& diags) {
  BpfCompileResult r = compile_bpf_c("qos_gen.c", c_text);
  if (r.ok) return std::move(r.object);
  bool any = false;
  for (const auto& c : r.diags) {
    if (c.level != ClangDiag::Error) continue;
    any = true;
    Loc loc;
    bool in_policy = !source_name.empty() && c.file == source_name;
    if (in_policy) {
      loc.line = c.line;
      loc.col = 1;
    }
    auto& d = diags.error(loc, fmt::format("generated BPF C failed to compile: {}", c.message));
    if (!in_policy)
      d.notes.push_back({{}, c.file.empty() ? std::string("in the generated C (use --emit-c DIR to inspect it)")
                                            : fmt::format("at {}:{}:{} of the generated C (use --emit-c DIR to inspect it)",
                                                          c.file, c.line, c.col)});
    d.hints.push_back("this is a qosc bug; please report it with the policy");
  }
  if (!any) diags.error({}, fmt::format("the in-process BPF compiler failed without an error message:\n{}", r.diag_text()));
  return std::nullopt;
}

}  // namespace qosc
