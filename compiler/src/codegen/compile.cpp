// compile_policy: generated C -> BPF object. Uses the in-process clang
// library (qosc/clang_build.hpp) when it is built; otherwise runs the
// clang-19 binary (development fallback).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <unistd.h>

#include "qosc/codegen.hpp"

#if __has_include("qosc/clang_build.hpp") && defined(QOSC_HAVE_CLANG_LIB)
#include "qosc/clang_build.hpp"
#define QOSC_USE_CLANG_LIB 1
#endif

namespace qosc {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// One clang message "file:line:col: error: msg" -> a Diagnostic. Lines in the
// policy file (mapped with #line) keep their location; lines in generated
// code are an internal error.
void add_clang_message(Diagnostics& diags, const std::string& source_name, const std::string& file, uint32_t line,
                       uint32_t col, const std::string& severity, const std::string& msg) {
  if (severity != "error") return;
  Loc loc;
  if (file == source_name) {
    loc.line = line;
    loc.col = 1;
  }
  auto& d = diags.error(loc, fmt::format("generated BPF C failed to compile: {}", msg));
  if (file != source_name)
    d.notes.push_back({{}, fmt::format("at {}:{}:{} of the generated C (use --emit-c DIR to inspect it)", file, line, col)});
  d.hints.push_back("this is a qosc bug; please report it with the policy");
}

#ifndef QOSC_USE_CLANG_LIB
std::optional<std::vector<unsigned char>> compile_with_binary(const std::string& c_text, const std::string& source_name,
                                                              Diagnostics& diags) {
  namespace fs = std::filesystem;
  const char* tdir = std::getenv("QOSC_TEMPLATES_DIR");
  std::string templates = tdir ? tdir : QOSC_TEMPLATES_DIR;
  fs::path dir = fs::temp_directory_path() / fmt::format("qosc-{}-{}", getpid(), std::rand());
  fs::create_directories(dir);
  fs::path src = dir / "qos_gen.c", obj = dir / "qos_gen.o", err = dir / "err.txt";
  std::ofstream(src) << c_text;
  std::string cmd = fmt::format(
      "cd '{}' && clang-19 -target bpfel -mcpu=v4 -O2 -g -Wno-unused-function -I '{}' -I /usr/include/$(gcc "
      "-print-multiarch 2>/dev/null || echo x86_64-linux-gnu) -c qos_gen.c -o qos_gen.o 2> err.txt",
      dir.string(), templates);
  int rc = std::system(cmd.c_str());
  std::stringstream es;
  es << std::ifstream(err).rdbuf();
  std::optional<std::vector<unsigned char>> result;
  if (rc != 0) {
    std::regex re(R"(^(.*?):(\d+):(\d+): (error|warning|note): (.*)$)");
    std::string l;
    bool any = false;
    while (std::getline(es, l)) {
      std::smatch m;
      if (std::regex_match(l, m, re)) {
        add_clang_message(diags, source_name, m[1], uint32_t(std::stoul(m[2])), uint32_t(std::stoul(m[3])), m[4], m[5]);
        any = any || m[4] == "error";
      }
    }
    if (!any) diags.error({}, fmt::format("clang-19 failed (exit {}): {}", rc, es.str()));
  } else {
    std::ifstream in(obj, std::ios::binary);
    result.emplace(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return result;
}
#endif

}  // namespace

std::optional<CompiledPolicy> compile_policy(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags) {
  auto t0 = Clock::now();
  auto gen = generate_c(policy, opts, diags);
  if (!gen) return std::nullopt;
  CompiledPolicy out;
  out.generate_ms = ms_since(t0);
  out.manifest = gen->manifest;
  out.c_source = gen->text;
  auto t1 = Clock::now();
  std::string source_name = gen->manifest.source;
#ifdef QOSC_USE_CLANG_LIB
  auto obj = compile_bpf_for_codegen(gen->text, source_name, diags);
#else
  auto obj = compile_with_binary(gen->text, source_name, diags);
#endif
  if (!obj) return std::nullopt;
  out.object = std::move(*obj);
  out.compile_ms = ms_since(t1);
  return out;
}

}  // namespace qosc
