// compile_policy: generated C -> BPF object through the in-process clang
// library (qosc/clang_build.hpp), the load-time tables appended as a section,
// the object sealed with its digest (qosc/object_digest.hpp), and --emit-c's
// files.
#include <chrono>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "qos_abi.h"
#include "qosc/clang_build.hpp"
#include "qosc/codegen.hpp"
#include "qosc/elf_sections.hpp"
#include "qosc/load_tables.hpp"
#include "qosc/object_digest.hpp"

namespace qosc {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// One clang message "file:line:col: error: msg" -> a Diagnostic. Lines in the
// policy file (mapped with #line) keep their location; lines in generated
// code are an internal error.
void add_clang_message(Diagnostics& diags, const std::string& source_name, const std::string& file, uint32_t line,
                       uint32_t col, const std::string& msg) {
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

bool write_file(const std::filesystem::path& p, std::string_view data, std::string* error) {
  std::ofstream out(p, std::ios::binary);
  out.write(data.data(), std::streamsize(data.size()));
  if (!out) *error = fmt::format("cannot write {}", p.string());
  return bool(out);
}

}  // namespace

bool write_emitted_c(const GeneratedC& gen, const std::string& dir, const std::string& stem, std::string* error,
                     std::vector<std::string>* written) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    *error = fmt::format("cannot create --emit-c directory {}: {}", dir, ec.message());
    return false;
  }
  auto put = [&](const std::string& suffix, std::string_view data) {
    fs::path p = fs::path(dir) / (stem + suffix);
    if (!write_file(p, data, error)) return false;
    if (written) written->push_back(p.string());
    return true;
  };
  if (!put(".bpf.c", gen.text) || !put(".manifest.json", to_json(gen.manifest).dump(2) + "\n")) return false;
  if (gen.tables.empty()) return true;
  auto tables = decode_load_tables(gen.tables, error);
  return tables && put(".tables.txt", describe_load_tables(*tables));
}

std::optional<std::vector<unsigned char>> compile_generated_c(const std::string& c_text, const std::string& source_name,
                                                              Diagnostics& diags) {
  BpfCompileResult r = compile_bpf_c("qos_gen.c", c_text);
  if (r.ok) return std::move(r.object);
  bool any = false;
  for (const auto& c : r.diags) {
    if (c.level != ClangDiag::Error) continue;
    any = true;
    add_clang_message(diags, source_name, c.file, c.line, c.col, c.message);
  }
  if (!any)
    diags.error({}, fmt::format("the in-process BPF compiler failed without an error message:\n{}", r.diag_text()))
        .hints.push_back("this is a qosc bug; please report it with the policy");
  return std::nullopt;
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
  // Written before clang runs: when it fails, the C is there to look at.
  if (!opts.emit_c_dir.empty()) {
    std::string err;
    std::vector<std::string> written;
    if (!write_emitted_c(*gen, opts.emit_c_dir, opts.emit_c_stem, &err, &written)) {
      diags.error({}, err).hints.push_back("check that the directory is writable");
      return std::nullopt;
    }
    if (opts.verbose) opts.verbose(fmt::format("emit-c: wrote {}", fmt::join(written, ", ")));
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
    if (!append_elf_section(out.object, QOS_TABLES_SECTION, gen->tables, &err)) {
      diags.error({}, fmt::format("cannot add the load-time tables to the object: {}", err))
          .hints.push_back("this is a qosc bug; please report it with the policy");
      return std::nullopt;
    }
    if (opts.verbose)
      opts.verbose(fmt::format("tables: {:.1f} KiB in section {}", double(gen->tables.size()) / 1024, QOS_TABLES_SECTION));
  }
  // Last: the digest covers every section above; qosrun checks it before
  // anything reads the object.
  if (std::string err; !add_object_digest(out.object, &err)) {
    diags.error({}, fmt::format("cannot add the digest to the object: {}", err))
        .hints.push_back("this is a qosc bug; please report it with the policy");
    return std::nullopt;
  }
  if (opts.verbose) opts.verbose(fmt::format("digest: SHA-256 of the object in section {}", kDigestSection));
  return out;
}

}  // namespace qosc
