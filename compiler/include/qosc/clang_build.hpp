#pragma once
// In-process BPF C compiler: clang-19 libraries, no clang binary and no header
// on disk at run time. Every header a program can include is embedded in the
// binary at build time (cmake/BpfHeaders.cmake) and served from an in-memory
// file system:
//   <linux/*.h>, <asm/*.h>, <asm-generic/*.h>   kernel UAPI headers
//   <bpf/bpf_helpers.h>, <bpf/bpf_endian.h>     libbpf
//   <stddef.h>, <stdbool.h>, <stdint.h>, <stdarg.h>  clang's freestanding headers
//   "qos_parse.h" ... (templates/*.h)            also as <templates/qos_parse.h>
// Host include directories are never searched (<stdio.h> is an error).
//
// Code generation: -target bpfel -mcpu=v4 -O<opt_level> -g (so the object has
// .BTF/.BTF.ext), -ffreestanding. Diagnostics are collected, never printed.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qosc/embedded.hpp"

namespace qosc {


// One message from clang. file/line/col follow #line directives, so lines of
// generated code mapped to a policy file report the policy file.
struct ClangDiag {
  std::string file;  // "" when the message has no location
  unsigned line = 0, col = 0;
  enum Level { Note, Warning, Error } level = Error;
  std::string message;
};

struct BpfCompileOptions {
  // Extra files in the in-memory file system: virtual path -> contents.
  // Relative paths are relative to the main file's directory, so a file
  // "gen.h" can be included as "gen.h" from a main file "prog.c".
  std::vector<std::pair<std::string, std::string>> extra_files;
  std::vector<std::string> defines;  // "NAME" or "NAME=VALUE" (as -D)
  int opt_level = 2;                 // 0..3
  bool verbose = false;              // print the cc1 arguments and the time to stderr
};

struct BpfCompileResult {
  bool ok = false;
  std::vector<unsigned char> object;  // ELF relocatable (EM_BPF) when ok
  std::vector<ClangDiag> diags;       // every message, in order
  double millis = 0;                  // wall time of the whole call
  // "file:line:col: error: message" lines, one per diagnostic.
  std::string diag_text() const;
};

// Compile one C translation unit. main_path names the source in messages and
// in debug info (e.g. "qos_gen.c"); it is also its path in the in-memory file
// system (relative paths live in a virtual working directory). Can be called
// any number of times in one process; not thread-safe.
BpfCompileResult compile_bpf_c(std::string_view main_path, std::string_view source,
                               const BpfCompileOptions& opts = {});

// Every embedded file: system headers under their include-relative path
// ("linux/bpf.h"), templates under "templates/<name>".
std::span<const EmbeddedFile> embedded_bpf_files();

// The contents of templates/<name> as embedded at build time.
std::optional<std::string_view> embedded_template(std::string_view name);


}  // namespace qosc
