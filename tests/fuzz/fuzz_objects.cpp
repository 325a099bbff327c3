// fuzz_objects: a mutation fuzzer of compiled objects. It compiles a policy
// with the qosc binary (tree and maps strategies), damages copies of the
// objects in the ways files get damaged or edited (truncations, anywhere and
// at section boundaries; bit flips anywhere, in the manifest's JSON, in the
// programs' code, in the digest, in the section and ELF headers, in the other
// sections; a byte inserted or deleted) and runs each copy through `qosrun
// classify` in the kernel, under timeout(1).
//
// Every copy must end in one of:
//   - a clear refusal, exit 1: "... was damaged or changed after qosc wrote
//     it (...)" or, with the ELF magic gone, "... is not a BPF object";
//   - a clean load with the same classes as the undamaged object: possible
//     only when the change means nothing (padding between sections), since
//     anything else breaks the digest.
// Anything else fails the run: a crash, a hang, exit 2, "bug in qosc", other
// classes than the original's, an error that does not say what happened.
// Deterministic for a seed; failing copies are kept for reproduction.
//
//   fuzz_objects [--count N] [--seed S] [--keep DIR]   (as root; 77 = skipped)
// The suite runs a short run (FuzzObjectsSmoke); scripts/fuzz-objects.sh a long one.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "qosc/object_digest.hpp"
#include "qosc/packet_notation.hpp"
#include "qosrun/pcap.hpp"

namespace fs = std::filesystem;
extern char** environ;

namespace {

using Bytes = std::vector<unsigned char>;

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// ---- running the binaries ---------------------------------------------------------

struct Run {
  int exit_code = -1;   // -1 when a signal ended it
  int signal = 0;
  std::string out, err;
};

// argv under `timeout -k 2 SECONDS`, stdout and stderr to files in `dir`.
Run run(const std::vector<std::string>& argv, int seconds, const fs::path& dir) {
  std::vector<std::string> full = {"timeout", "-k", "2", std::to_string(seconds)};
  full.insert(full.end(), argv.begin(), argv.end());
  std::vector<char*> args;
  for (auto& a : full) args.push_back(a.data());
  args.push_back(nullptr);
  const std::string out = (dir / "run.out").string(), err = (dir / "run.err").string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  Run r;
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, "timeout", &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.err = fmt::format("cannot start timeout(1): {}", std::strerror(rc));
    return r;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  // timeout(1) dies of its command's signal when the command died of one.
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// ---- mutations ----------------------------------------------------------------------------

enum class Kind {
  TruncateRandom, TruncateAtBoundary, FlipAnywhere, FlipManifest, FlipProgram, FlipDigest,
  FlipSectionHeader, FlipElfHeader, FlipOtherSection, InsertOrDeleteByte
};
constexpr Kind kKinds[] = {Kind::TruncateRandom,    Kind::TruncateAtBoundary, Kind::FlipAnywhere,
                           Kind::FlipManifest,      Kind::FlipProgram,        Kind::FlipDigest,
                           Kind::FlipSectionHeader, Kind::FlipElfHeader,      Kind::FlipOtherSection,
                           Kind::InsertOrDeleteByte};

const char* name_of(Kind k) {
  switch (k) {
    case Kind::TruncateRandom: return "truncate anywhere";
    case Kind::TruncateAtBoundary: return "truncate at a section boundary";
    case Kind::FlipAnywhere: return "flip 1-4 bytes anywhere";
    case Kind::FlipManifest: return "flip in the manifest JSON";
    case Kind::FlipProgram: return "flip in program code";
    case Kind::FlipDigest: return "flip in the digest";
    case Kind::FlipSectionHeader: return "flip in a section header";
    case Kind::FlipElfHeader: return "flip in the ELF header";
    case Kind::FlipOtherSection: return "flip in another section";
    case Kind::InsertOrDeleteByte: return "insert or delete a byte";
  }
  return "?";
}

struct Original {
  std::string name;                          // "tree", "maps"
  fs::path path;
  Bytes bytes;
  std::vector<qosc::ObjectSection> sections;
  std::string reference[2];                  // classify's output, xdp and tc hooks
};

struct Mutant {
  Bytes bytes;
  std::string what;   // for people: what was changed where
};

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  Mutant make(const Original& o, Kind k) {
    Mutant m{o.bytes, {}};
    Bytes& b = m.bytes;
    switch (k) {
      case Kind::TruncateRandom: {
        size_t n = below(b.size());
        b.resize(n);
        m.what = fmt::format("cut to {} bytes", n);
        break;
      }
      case Kind::TruncateAtBoundary: {
        // Where a section, a section header or the header table starts or ends, give or take a byte.
        std::vector<uint64_t> cuts = {0, 4, 16, 63, 64};
        for (const auto& s : o.sections) {
          cuts.push_back(s.header_offset);
          cuts.push_back(s.header_offset + 64);
          if (s.size) cuts.insert(cuts.end(), {s.offset, s.offset + s.size});
        }
        uint64_t at = cuts[below(cuts.size())];
        int nudge = int(below(3)) - 1;
        if (at + uint64_t(nudge) < b.size()) at += uint64_t(nudge);
        at = std::min<uint64_t>(at, b.size() - 1);
        b.resize(at);
        m.what = fmt::format("cut to {} bytes (a boundary{})", at, nudge ? fmt::format(" {:+}", nudge) : "");
        break;
      }
      case Kind::FlipAnywhere: {
        size_t n = 1 + below(4);
        for (size_t i = 0; i < n; ++i) flip(b, below(b.size()), &m.what);
        break;
      }
      case Kind::FlipManifest: in_section(o, m, [](const auto& s) { return s.name == ".qosc.manifest"; }, true); break;
      case Kind::FlipProgram:
        in_section(o, m, [](const auto& s) { return (s.flags & 0x4 /* SHF_EXECINSTR */) != 0 && s.size > 0; }, false);
        break;
      case Kind::FlipDigest: in_section(o, m, [](const auto& s) { return s.name == qosc::kDigestSection; }, true); break;
      case Kind::FlipSectionHeader: {
        const auto& s = o.sections[below(o.sections.size())];
        size_t field = below(64);
        flip(b, s.header_offset + field, &m.what);
        m.what += fmt::format(" (byte {} of the header of section {} {})", field, s.index, s.name);
        break;
      }
      case Kind::FlipElfHeader: flip(b, below(64), &m.what); break;
      case Kind::FlipOtherSection:
        in_section(o, m, [](const auto& s) {
          return s.size > 0 && s.name != ".qosc.manifest" && s.name != qosc::kDigestSection && !(s.flags & 0x4);
        }, false);
        break;
      case Kind::InsertOrDeleteByte: {
        size_t at = below(b.size());
        if (below(2)) {
          b.erase(b.begin() + long(at));
          m.what = fmt::format("byte {} deleted", at);
        } else {
          b.insert(b.begin() + long(at), static_cast<unsigned char>(below(256)));
          m.what = fmt::format("a byte inserted at {}", at);
        }
        break;
      }
    }
    return m;
  }

 private:
  size_t below(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng_) : 0; }

  void flip(Bytes& b, size_t at, std::string* what) {
    auto mask = static_cast<unsigned char>(1 + below(255));
    b[at] ^= mask;
    *what += fmt::format("{}byte {} ^= 0x{:02x}", what->empty() ? "" : ", ", at, mask);
  }

  // A byte of a section chosen by `pick`. `plausible`: half the time, a
  // change that keeps text looking right (a digit for a digit, a hex digit
  // for a hex digit): valid JSON that means something else, a digest that
  // reads as one.
  template <class Pick>
  void in_section(const Original& o, Mutant& m, Pick pick, bool plausible) {
    std::vector<const qosc::ObjectSection*> candidates;
    for (const auto& s : o.sections)
      if (s.size > 0 && pick(s)) candidates.push_back(&s);
    if (candidates.empty()) {   // (an object without such a section: anywhere)
      flip(m.bytes, below(m.bytes.size()), &m.what);
      return;
    }
    const auto& s = *candidates[below(candidates.size())];
    size_t at = s.offset + below(s.size);
    unsigned char& c = m.bytes[at];
    if (plausible && below(2) && std::isxdigit(c)) {
      const char* digits = std::isdigit(c) ? "0123456789" : "0123456789abcdef";
      const size_t n = std::strlen(digits);
      unsigned char to = c;
      while (to == c) to = static_cast<unsigned char>(digits[below(n)]);
      m.what = fmt::format("byte {} '{}' -> '{}'", at, char(c), char(to));
      c = to;
    } else {
      flip(m.bytes, at, &m.what);
    }
    m.what += fmt::format(" (in section {} {})", s.index, s.name);
  }

  std::mt19937_64 rng_;
};

// ---- outcomes -----------------------------------------------------------------------------

struct Outcome {
  bool failure = false;
  std::string label;   // the column of the summary
  std::string reason;  // refusals: why, without numbers ("digest mismatch", ...)
};

// The parenthesised reason of a "damaged" message, with numbers and
// section names left out so that like counts with like.
std::string reason_of(const std::string& err) {
  static const std::pair<const char*, const char*> kReasons[] = {
      {"digest mismatch", "digest mismatch"},
      {"section is missing", "no digest section"},
      {"no SHA-256", "digest section damaged"},
      {"section header is damaged", "digest section damaged"},
      {"shorter than an ELF header", "shorter than an ELF header"},
      {"the section header table", "section header table outside the file"},
      {"lies past the end", "section outside the file"},
      {"no usable qosc manifest", "no manifest, no digest"},
  };
  for (const auto& [needle, reason] : kReasons)
    if (err.find(needle) != std::string::npos) return reason;
  return "malformed headers";
}

Outcome judge(const Run& r, const std::string& reference) {
  if (r.signal) return {true, fmt::format("CRASH (signal {}, {})", r.signal, strsignal(r.signal)), {}};
  if (r.exit_code == 124 || r.exit_code == 137) return {true, "HANG (timeout)", {}};
  if (r.err.find("bug in qosc") != std::string::npos) return {true, "\"bug in qosc\"", {}};
  if (r.exit_code == 0)
    return r.out == reference ? Outcome{false, "loaded, same classes", {}}
                              : Outcome{true, "LOADED WITH OTHER RESULTS", {}};
  if (r.exit_code == 1 && r.err.find("damaged or changed after qosc wrote it") != std::string::npos)
    return {false, "refused: damaged", reason_of(r.err)};
  if (r.exit_code == 1 && r.err.find("is not a BPF object (no ELF header)") != std::string::npos)
    return {false, "refused: not ELF", "no ELF magic"};
  return {true, fmt::format("UNCLEAR ERROR (exit {})", r.exit_code), {}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fuzz_objects: damaged copies of compiled objects through `qosrun classify` (needs root)"};
  size_t count = 300;
  uint64_t seed = 1;
  int timeout_s = 20;
  std::string qosc = QOSC_BIN, qosrun = QOSRUN_BIN;
  std::string policy = std::string(QOSC_EXAMPLES_DIR) + "/gaming.qos";
  std::string tests = std::string(QOSC_EXAMPLES_DIR) + "/gaming.tests";
  std::string keep;
  bool verbose = false;
  app.add_option("--count", count, "damaged copies to try (default 300)");
  app.add_option("--seed", seed, "seed of the mutations (default 1)");
  app.add_option("--timeout", timeout_s, "seconds each qosrun may take (default 20)");
  app.add_option("--qosc", qosc, "the qosc binary that compiles the originals");
  app.add_option("--qosrun", qosrun, "the qosrun binary under test");
  app.add_option("--policy", policy, "the policy to compile (default examples/gaming.qos)");
  app.add_option("--tests", tests, "its test file: the packets classified (default examples/gaming.tests)");
  app.add_option("--keep", keep, "where failing copies are kept (default: a directory in /tmp, named at the end)");
  app.add_flag("-v,--verbose", verbose, "one line per copy");
  CLI11_PARSE(app, argc, argv);

  if (geteuid() != 0) {
    std::puts("SKIP: fuzz_objects loads BPF programs into the kernel (qosrun classify), which needs root");
    return 77;
  }
  // A crash is an outcome here, not a core file.
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);

  char tmpl[] = "/tmp/qosc-fuzz-objects-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 2;
  }
  const fs::path dir = tmpl;
  auto setup_error = [&](const std::string& msg) {
    std::fprintf(stderr, "fuzz_objects: %s\n", msg.c_str());
    std::error_code ec;
    fs::remove_all(dir, ec);
    return 2;
  };

  // The packets: the test file's cases as a capture.
  qosc::SourceFile test_file(tests, read_text(tests));
  qosc::Diagnostics diags(&test_file);
  std::vector<std::vector<uint8_t>> frames;
  for (const auto& e : qosc::parse_test_file(test_file, diags)) frames.push_back(qosc::build_frame(e.packet));
  if (frames.empty() || diags.has_errors()) return setup_error("no packets in " + tests);
  const std::string pcap = (dir / "packets.pcap").string();
  if (auto s = qosrun::write_pcap(pcap, frames); !s) return setup_error(s.error().message);

  // The originals and what classify makes of them.
  std::vector<Original> originals;
  for (const char* strategy : {"tree", "maps"}) {
    Original o;
    o.name = strategy;
    o.path = dir / fmt::format("{}.bpf.o", strategy);
    Run c = run({qosc, policy, "--strategy", strategy, "-o", o.path.string()}, 120, dir);
    if (c.exit_code != 0) return setup_error(fmt::format("qosc cannot compile {}:\n{}", policy, c.err));
    o.bytes = read_bytes(o.path);
    std::string err;
    auto sections = qosc::object_sections(o.bytes, &err);
    if (!sections) return setup_error(fmt::format("the {} object does not read: {}", strategy, err));
    o.sections = std::move(*sections);
    for (int hook = 0; hook < 2; ++hook) {
      Run r = run({qosrun, "classify", o.path.string(), "--pcap", pcap, "--hook", hook ? "tc" : "xdp", "--json"},
                  timeout_s, dir);
      if (r.exit_code != 0 || r.out.empty())
        return setup_error(fmt::format("qosrun classify fails on the undamaged {} object:\n{}", strategy, r.err));
      o.reference[hook] = r.out;
    }
    originals.push_back(std::move(o));
  }

  // The copies: kinds in turn, objects and hooks alternating, the rest from the seed.
  Mutator mutator(seed);
  std::map<std::string, std::map<std::string, size_t>> by_kind;   // kind -> outcome -> count
  std::map<std::string, size_t> reasons, outcomes;
  std::vector<std::string> failures;
  const fs::path failed_dir = keep.empty() ? dir / "failures" : fs::path(keep);
  const fs::path mutant_path = dir / "damaged.bpf.o";
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < count; ++i) {
    const Kind kind = kKinds[i % std::size(kKinds)];
    const Original& o = originals[(i / std::size(kKinds)) % originals.size()];
    const int hook = int((i / (std::size(kKinds) * originals.size())) % 2);
    Mutant m = mutator.make(o, kind);
    write_bytes(mutant_path, m.bytes);
    Run r = run({qosrun, "classify", mutant_path.string(), "--pcap", pcap, "--hook", hook ? "tc" : "xdp", "--json"},
                timeout_s, dir);
    Outcome out = judge(r, o.reference[hook]);
    ++by_kind[name_of(kind)][out.label];
    ++outcomes[out.label];
    if (!out.reason.empty()) ++reasons[out.reason];
    if (verbose)
      std::printf("%5zu %-4s %-3s %-32s %s: %s\n", i, o.name.c_str(), hook ? "tc" : "xdp", name_of(kind),
                  out.label.c_str(), m.what.c_str());
    if (out.failure) {
      fs::create_directories(failed_dir);
      const fs::path kept = failed_dir / fmt::format("failure-{}-{}.bpf.o", seed, i);
      write_bytes(kept, m.bytes);
      std::string first_line = r.err.substr(0, r.err.find('\n'));
      failures.push_back(fmt::format("#{} {} object, {}: {} ({})\n    {}\n    rerun: {} classify {} --pcap PCAP --hook {} --json",
                                     i, o.name, name_of(kind), out.label, m.what, first_line, qosrun, kept.string(),
                                     hook ? "tc" : "xdp"));
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The summary: kinds by outcome, then why copies were refused.
  std::vector<std::string> columns;
  for (const auto& [label, n] : outcomes) columns.push_back(label);
  std::printf("fuzz_objects: %zu damaged copies of %s (tree and maps objects), seed %llu, through `qosrun classify` "
              "(xdp and tc) in %.1f s\n\n",
              count, fs::path(policy).filename().c_str(), static_cast<unsigned long long>(seed), secs);
  std::printf("%-32s %6s", "mutation", "tried");
  for (const auto& c : columns) std::printf("  %s", c.c_str());
  std::printf("\n");
  for (Kind k : kKinds) {
    const auto& row = by_kind[name_of(k)];
    size_t tried = 0;
    for (const auto& [label, n] : row) tried += n;
    std::printf("%-32s %6zu", name_of(k), tried);
    for (const auto& c : columns) std::printf("  %*zu", int(c.size()), row.count(c) ? row.at(c) : 0);
    std::printf("\n");
  }
  std::printf("\nrefused because:");
  for (const auto& [reason, n] : reasons) std::printf(" %s %zu;", reason.c_str(), n);
  std::printf("\n");
  if (failures.empty()) {
    std::printf("no crash, hang, \"bug in qosc\", changed result or unclear error\n");
    std::error_code ec;
    fs::remove_all(dir, ec);
    return 0;
  }
  std::printf("\n%zu FAILURES (copies kept in %s; PCAP: %s):\n", failures.size(), failed_dir.c_str(), pcap.c_str());
  for (const auto& f : failures) std::printf("  %s\n", f.c_str());
  return 1;
}
