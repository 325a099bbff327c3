// qosc-bench-classifier: what a packet costs in the classifier qosc
// generates, against the floor (an empty XDP program) and against the
// generic classifier of the dissertation (a bounded loop over an array map of
// rules), all measured in one run with BPF_PROG_TEST_RUN; plus qosc's compile
// and load time for the same policies.
//
//   sudo build/bin/qosc-bench-classifier            # markdown table on stdout
//   sudo build/bin/qosc-bench-classifier --sizes 8,64 --repeat 2000000
//
// Not a test: numbers depend on the machine. Ratios against the floor and the
// loop from the same run are what to compare across machines.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "pipeline.hpp"
#include "qosrun/classify.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/testrun.hpp"

using qosrun::Hook;

namespace {

// The loop classifier's rule layout (bench/baselines/loop_classifier.bpf.c).
struct LoopRule {
  uint32_t src_ip, src_netmask, dst_ip, dst_netmask;
  uint16_t src_port_min, src_port_max, dst_port_min, dst_port_max;
  uint8_t protocol, valid;
  uint16_t class_id;
};

// Rule i: IPv4 source 10.(i/256).(i%256).0/24, UDP destination port 1000 + i%4000.
// Distinct source prefixes: no rule shadows another.
std::string policy_text(size_t n) {
  std::ostringstream os;
  os << "policy bench" << n << " {\n  link 10gbit;\n";
  for (int c = 0; c < 4; ++c) os << "  class c" << c << " { priority " << c << "; }\n";
  os << "  class other { priority 5; default; }\n";
  for (size_t i = 0; i < n; ++i)
    os << fmt::format("  rule ip saddr 10.{}.{}.0/24 udp dport {} -> c{};\n", (i / 256) % 256, i % 256, 1000 + i % 4000,
                      i % 4);
  os << "}\n";
  return os.str();
}

LoopRule loop_rule(size_t i) {
  LoopRule r{};
  r.src_ip = htonl(static_cast<uint32_t>(10u << 24 | ((i / 256) % 256) << 16 | (i % 256) << 8));
  r.src_netmask = htonl(0xffffff00u);
  r.dst_ip = 0;
  r.dst_netmask = 0;
  r.dst_port_min = r.dst_port_max = static_cast<uint16_t>(1000 + i % 4000);
  r.protocol = 17;
  r.valid = 1;
  r.class_id = static_cast<uint16_t>(1 + i % 4);
  return r;
}

// A 64-byte Ethernet frame: IPv4/UDP from `src` to 10.200.0.1, destination port `dport`.
std::vector<uint8_t> udp64(uint32_t src, uint16_t dport) {
  std::vector<uint8_t> f(64, 0);
  f[0] = 0x02, f[6] = 0x02, f[12] = 0x08;
  f[14] = 0x45;
  f[17] = 50;   // total length 64 - 14
  f[22] = 64, f[23] = 17;
  f[26] = static_cast<uint8_t>(src >> 24), f[27] = static_cast<uint8_t>(src >> 16);
  f[28] = static_cast<uint8_t>(src >> 8), f[29] = static_cast<uint8_t>(src);
  f[30] = 10, f[31] = 200, f[33] = 1;
  f[34] = 0x9c, f[35] = 0x40;
  f[36] = static_cast<uint8_t>(dport >> 8), f[37] = static_cast<uint8_t>(dport);
  f[39] = 30;
  return f;
}

struct Cost {
  std::optional<double> ns;   // nullopt: not measured
  std::string note;           // why not ("fails verifier", ...)
};

// Median of three runs of `repeat` repetitions.
Cost measure(int fd, const std::vector<uint8_t>& frame, uint32_t repeat, uint32_t want_retval) {
  std::vector<double> v;
  for (int i = 0; i < 3; ++i) {
    auto r = qosrun::test_run(fd, Hook::Xdp, frame, repeat, false);
    if (!r) return {std::nullopt, r.error().message};
    if (r->retval != want_retval) return {std::nullopt, fmt::format("returned {}, expected {}", r->retval, want_retval)};
    v.push_back(r->duration_ns);
  }
  std::sort(v.begin(), v.end());
  return {v[1], ""};
}

std::string cell(const Cost& c) { return c.ns ? fmt::format("{:.1f}", *c.ns) : c.note; }
std::string ratio(const Cost& a, const Cost& b) {
  if (!a.ns || !b.ns || *b.ns <= 0) return "-";
  return fmt::format("{:.1f}x", *a.ns / *b.ns);
}

qosrun::Result<qosrun::LoadedPolicy> load_baseline(const std::string& file) {
  qosrun::LoadOptions o;
  o.require_manifest = false;
  o.load_tc = false;
  return qosrun::LoadedPolicy::load_file(std::string(QOSC_BENCH_BASELINE_DIR) + "/" + file, o);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qosc-bench-classifier: classifier cost per packet (BPF_PROG_TEST_RUN) and compile time"};
  std::vector<size_t> sizes = {8, 64, 256, 1024, 4096, 16384};
  uint32_t repeat = 1000000;
  int verbosity = 0;
  app.add_option("--sizes", sizes, "rule counts to measure")->delimiter(',');
  app.add_option("--repeat", repeat, "repetitions per measurement (in the kernel)")->check(CLI::Range(1000u, 100000000u));
  app.add_flag("-v", verbosity, "more output");
  CLI11_PARSE(app, argc, argv);
  qosrun::set_libbpf_verbosity(verbosity);
  if (!qosrun::can_load_bpf()) {
    std::cerr << "qosc-bench-classifier: needs root (it loads BPF programs): run it with sudo\n";
    return 1;
  }

  const auto match_first = udp64(0x0a000007u, 1000);    // 10.0.0.7 -> rule 0
  const auto match_none = udp64(0xc0a80101u, 9);        // 192.168.1.1, port 9 -> default
  constexpr uint32_t kXdpPass = 2;

  auto empty = load_baseline("empty.bpf.o");
  if (!empty) {
    qosrun::print_error(empty.error(), verbosity);
    return 1;
  }
  const Cost floor = measure(empty->prog_fd(Hook::Xdp), match_none, repeat, kXdpPass);
  std::cerr << fmt::format("empty XDP program: {} ns/packet\n", cell(floor));

  struct Row {
    size_t n = 0;
    Cost q_first, q_none, l_first, l_none;
    double compile_s = -1, load_s = -1;
    std::string qnote;
  };
  std::vector<Row> rows;
  for (size_t n : sizes) {
    Row row;
    row.n = n;
    // qosc
    std::string error;
    const auto t0 = std::chrono::steady_clock::now();
    auto compiled = qosc::difftest::compile_text(fmt::format("bench{}.qos", n), policy_text(n), &error);
    row.compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!compiled) {
      row.qnote = "does not compile";
      std::cerr << fmt::format("qosc, {} rules: {}\n", n, error);
    } else {
      auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, fmt::format("bench{}.bpf.o", n));
      if (!loaded) {
        row.qnote = "fails verifier";
        std::cerr << fmt::format("qosc, {} rules: {}\n", n, loaded.error().message);
      } else {
        row.load_s = loaded->load_seconds();
        row.q_first = measure(loaded->prog_fd(Hook::Xdp), match_first, repeat, kXdpPass);
        row.q_none = measure(loaded->prog_fd(Hook::Xdp), match_none, repeat, kXdpPass);
      }
    }
    if (!row.qnote.empty()) row.q_first = row.q_none = {std::nullopt, row.qnote};
    // The loop classifier, compiled for n rules.
    auto loop = load_baseline(fmt::format("loop_{}.bpf.o", n));
    if (!loop) {
      const bool verifier = loop.error().message.find("verifier rejected") != std::string::npos;
      row.l_first = row.l_none = {std::nullopt, verifier ? "fails verifier" : "not built"};
      if (verbosity || !verifier) std::cerr << fmt::format("loop, {} rules: {}\n", n, loop.error().message);
    } else {
      bpf_map* m = bpf_object__find_map_by_name(loop->object(), "class_rules");
      int mfd = m ? bpf_map__fd(m) : -1;
      bool filled = mfd >= 0;
      for (uint32_t i = 0; filled && i < n; ++i) {
        LoopRule r = loop_rule(i);
        filled = bpf_map_update_elem(mfd, &i, &r, BPF_ANY) == 0;
      }
      if (!filled) {
        row.l_first = row.l_none = {std::nullopt, "cannot fill rules"};
      } else {
        row.l_first = measure(loop->prog_fd(Hook::Xdp), match_first, repeat, kXdpPass);
        row.l_none = measure(loop->prog_fd(Hook::Xdp), match_none, repeat, kXdpPass);
      }
    }
    std::cerr << fmt::format("{} rules: qosc first {} / none {} ns, loop first {} / none {} ns, compile {:.3f} s\n", n,
                             cell(row.q_first), cell(row.q_none), cell(row.l_first), cell(row.l_none), row.compile_s);
    rows.push_back(std::move(row));
  }

  std::cout << fmt::format("\nClassifier cost per packet, ns (BPF_PROG_TEST_RUN, XDP, repeat {}, 64-byte UDP; "
                           "median of 3). Empty XDP program: {} ns.\n\n",
                           repeat, cell(floor));
  std::cout << "| rules | qosc first match | qosc no match | loop first match | loop no match | qosc no match / "
               "empty | loop / qosc (no match) | qosc compile s | qosc load s |\n";
  std::cout << "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.n, cell(r.q_first), cell(r.q_none),
                             cell(r.l_first), cell(r.l_none), ratio(r.q_none, floor), ratio(r.l_none, r.q_none),
                             r.qnote.empty() || r.qnote == "fails verifier" ? fmt::format("{:.3f}", r.compile_s) : "-",
                             r.load_s >= 0 ? fmt::format("{:.3f}", r.load_s) : "-");
  }
  // Issue 3's targets, judged from this run.
  std::cout << "\nTargets:\n";
  for (const auto& r : rows) {
    if (!r.q_none.ns || !floor.ns) continue;
    const double lim = r.n <= 1024 ? 4.0 : 8.0;
    if (r.n <= 1024 || r.n == 16384)
      std::cout << fmt::format("- {} rules, no match <= {:.0f}x empty: {:.1f}x {}\n", r.n, lim, *r.q_none.ns / *floor.ns,
                               *r.q_none.ns / *floor.ns <= lim ? "met" : "MISSED");
    if (r.n == 256 && r.l_none.ns)
      std::cout << fmt::format("- 256 rules, >= 15x faster than the loop (no match): {:.1f}x {}\n",
                               *r.l_none.ns / *r.q_none.ns, *r.l_none.ns / *r.q_none.ns >= 15 ? "met" : "MISSED");
  }
  for (const auto& r : rows) {
    if (r.load_s < 0) continue;
    const double total = r.compile_s + r.load_s;
    if (r.n == 1024) std::cout << fmt::format("- 1k rules, compile+load < 1 s: {:.2f} s {}\n", total, total < 1 ? "met" : "MISSED");
    if (r.n == 16384)
      std::cout << fmt::format("- 16k rules, compile+load < 15 s: {:.2f} s {}\n", total, total < 15 ? "met" : "MISSED");
  }
  return 0;
}
