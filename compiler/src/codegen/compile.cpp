// compile_policy: generated C -> BPF object. Uses the in-process clang
// library (qosc/clang_build.hpp) when it is built; otherwise runs the
// clang-19 binary (development fallback).
#include <chrono>
#include <cstring>
#include <span>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <unistd.h>

#include "qos_abi.h"
#include "qosc/codegen.hpp"
#include "tables_section.hpp"

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
  const bool in_policy = !source_name.empty() && file == source_name && line > 0;
  if (in_policy) {
    loc.line = line;
    loc.col = 1;
  }
  auto& d = diags.error(loc, in_policy ? fmt::format("the C generated for this rule failed to compile: {}", msg)
                                       : fmt::format("generated BPF C failed to compile: {}", msg));
  if (!in_policy)
    d.notes.push_back({{}, file.empty() ? std::string("in the generated C (use --emit-c DIR to inspect it)")
                                        : fmt::format("at {}:{}:{} of the generated C (use --emit-c DIR to inspect it)",
                                                      file, line, col)});
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


// What the load-time tables hold, for --emit-c.
std::string describe_tables(std::span<const unsigned char> t) {
  std::string out;
  qos_tables_header h;
  if (t.size() < sizeof h) return out;
  std::memcpy(&h, t.data(), sizeof h);
  out += fmt::format("# section {}: {} maps the loader fills after load\n", QOS_TABLES_SECTION, h.nmaps);
  size_t at = sizeof h;
  for (uint32_t i = 0; i < h.nmaps && at + sizeof(qos_table_header) <= t.size(); ++i) {
    qos_table_header th;
    std::memcpy(&th, t.data() + at, sizeof th);
    at += sizeof th;
    size_t bytes = size_t(th.count) * (th.value_size + ((th.flags & QOS_TABLE_DENSE) ? 0 : th.key_size));
    out += fmt::format("{:<16} {:>8} entries  key {:>2} B  value {:>4} B  {}\n", th.name, th.count, th.key_size,
                       th.value_size, (th.flags & QOS_TABLE_DENSE) ? "array (dense)" : "key/value pairs");
    at += (bytes + 7) / 8 * 8;
  }
  return out;
}

bool write_file(const std::filesystem::path& p, std::string_view data, Diagnostics& diags) {
  std::ofstream out(p, std::ios::binary);
  out.write(data.data(), std::streamsize(data.size()));
  if (!out) {
    diags.error({}, fmt::format("cannot write {}", p.string())).hints.push_back("check that the directory is writable");
    return false;
  }
  return true;
}

}  // namespace

std::optional<std::vector<unsigned char>> compile_generated_c(const std::string& c_text, const std::string& source_name,
                                                              Diagnostics& diags) {
#ifdef QOSC_USE_CLANG_LIB
  BpfCompileResult r = compile_bpf_c("qos_gen.c", c_text);
  if (r.ok) return std::move(r.object);
  bool any = false;
  for (const auto& c : r.diags) {
    if (c.level != ClangDiag::Error) continue;
    any = true;
    add_clang_message(diags, source_name, c.file, c.line, c.col, "error", c.message);
  }
  if (!any)
    diags.error({}, fmt::format("the in-process BPF compiler failed without an error message:\n{}", r.diag_text()))
        .hints.push_back("this is a qosc bug; please report it with the policy");
  return std::nullopt;
#else
  return compile_with_binary(c_text, source_name, diags);
#endif
}

std::optional<CompiledPolicy> compile_policy(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags) {
  auto t0 = Clock::now();
  auto gen = generate_c(policy, opts, diags);
  if (!gen) return std::nullopt;
  CompiledPolicy out;
  out.generate_ms = ms_since(t0);
  out.manifest = gen->manifest;
  out.c_source = gen->text;
  out.strategy = gen->strategy;
  if (!opts.emit_c_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(opts.emit_c_dir, ec);
    if (ec) {
      diags.error({}, fmt::format("cannot create --emit-c directory {}: {}", opts.emit_c_dir, ec.message()));
      return std::nullopt;
    }
    if (!write_file(fs::path(opts.emit_c_dir) / "qos_gen.c", gen->text, diags)) return std::nullopt;
    if (!gen->tables.empty() &&
        !write_file(fs::path(opts.emit_c_dir) / "qos_tables.txt", describe_tables(gen->tables), diags))
      return std::nullopt;
    if (opts.verbose) opts.verbose(fmt::format("emit-c: wrote {}/qos_gen.c", opts.emit_c_dir));
  }
  auto t1 = Clock::now();
  auto obj = compile_generated_c(gen->text, gen->manifest.source, diags);
  if (!obj) return std::nullopt;
  out.object = std::move(*obj);
  out.compile_ms = ms_since(t1);
  if (opts.verbose)
    opts.verbose(fmt::format("clang: {:.1f} KiB of C -> {:.1f} KiB BPF object ({:.0f} ms)", double(gen->text.size()) / 1024,
                             double(out.object.size()) / 1024, out.compile_ms));
  if (!gen->tables.empty()) {
    std::string err;
    if (!codegen::append_elf_section(out.object, QOS_TABLES_SECTION, gen->tables, &err)) {
      diags.error({}, fmt::format("cannot add the load-time tables to the object: {}", err))
          .hints.push_back("this is a qosc bug; please report it with the policy");
      return std::nullopt;
    }
    if (opts.verbose)
      opts.verbose(fmt::format("tables: {:.1f} KiB in section {}", double(gen->tables.size()) / 1024, QOS_TABLES_SECTION));
  }
  return out;
}

}  // namespace qosc
