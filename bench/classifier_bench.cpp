// qosc-bench-classifier: what a packet costs in the classifier qosc
// generates, against the floor (an empty XDP program) and against the
// generic classifier of the dissertation (a bounded loop over an array map of
// rules), all measured in one run with BPF_PROG_TEST_RUN; plus qosc's compile
// and load time for the same policies, and the two strategies (tree, maps)
// side by side to show where the automatic crossover lies.
//
//   sudo build/bin/qosc-bench-classifier            # markdown on stdout
//   sudo build/bin/qosc-bench-classifier --sizes 8,64 --repeat 2000000 --tree-max 1024
//
// Not a test: numbers depend on the machine. Ratios against the floor and the
// loop from the same run are what to compare across machines.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <sys/utsname.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "pipeline.hpp"
#include "qos_abi.h"
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
Cost measure(int fd, const std::vector<uint8_t>& frame, uint32_t repeat, uint32_t want_retval, Hook hook = Hook::Xdp) {
  std::vector<double> v;
  for (int i = 0; i < 3; ++i) {
    auto r = qosrun::test_run(fd, hook, frame, repeat, false);
    if (!r) return {std::nullopt, r.error().message};
    if (r->retval != want_retval) return {std::nullopt, fmt::format("returned {}, expected {}", r->retval, want_retval)};
    v.push_back(r->duration_ns);
  }
  std::sort(v.begin(), v.end());
  return {v[1], ""};
}

std::string cell(const Cost& c) { return c.ns ? fmt::format("{:.0f}", *c.ns) : c.note; }
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

constexpr uint32_t kXdpPass = 2;

// One qosc configuration of one policy: compile, load, measure.
struct QoscRun {
  std::string strategy, note;
  double compile_s = -1, load_s = -1;
  Cost first, none;
};

// Loaded as `qosrun attach` loads it (no XDP metadata) unless xdp_meta.
QoscRun run_qosc(size_t n, const std::string& text, const qosc::difftest::PipelineOptions& po, uint32_t repeat,
                 const std::vector<uint8_t>& match_first, const std::vector<uint8_t>& match_none,
                 bool xdp_meta = false) {
  QoscRun r;
  std::string error;
  const auto t0 = std::chrono::steady_clock::now();
  auto compiled = qosc::difftest::compile_text(fmt::format("bench{}.qos", n), text, &error, po);
  r.compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!compiled) {
    r.note = "does not compile";
    std::cerr << fmt::format("qosc, {} rules: {}\n", n, error);
  } else {
    r.strategy = compiled->strategy;
    qosrun::LoadOptions lo;
    lo.xdp_meta = xdp_meta;
    auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, fmt::format("bench{}.bpf.o", n), lo);
    if (!loaded) {
      r.note = "fails verifier";
      std::cerr << fmt::format("qosc, {} rules: {}\n", n, loaded.error().message);
    } else {
      r.load_s = loaded->load_seconds();
      r.first = measure(loaded->prog_fd(Hook::Xdp), match_first, repeat, kXdpPass);
      r.none = measure(loaded->prog_fd(Hook::Xdp), match_none, repeat, kXdpPass);
    }
  }
  if (!r.note.empty()) r.first = r.none = {std::nullopt, r.note};
  return r;
}

// The policy of policy_text(n) with `set dscp ef;` on class c0 (rule 0's class).
std::string with_set_dscp(std::string text) {
  const std::string c0 = "class c0 { priority 0; }";
  text.replace(text.find(c0), c0.size(), "class c0 { priority 0; set dscp ef; }");
  return text;
}

// policy_text(n) with `rule dscp 46 -> c1;` first; with `marks`, class c0
// sets ef and c1 sets 0. A test run with repeat runs the program on the same
// skb again and again: the match_first frame (DSCP 0) goes to c0 and leaves
// with 46, the next run sees 46, takes the new first rule to c1 and leaves
// with 0, and so on: every run rewrites (and updates the IPv4 checksum).
// Without marks the frame keeps DSCP 0 and always takes rule 0 (one more
// rule checked than in the plain policy, in both).
std::string alternating(std::string text, bool marks) {
  const size_t r = text.find("  rule ");
  text.insert(r, "  rule dscp 46 -> c1;\n");
  if (marks) {
    text = with_set_dscp(std::move(text));
    const std::string c1 = "class c1 { priority 1; }";
    text.replace(text.find(c1), c1.size(), "class c1 { priority 1; set dscp 0; }");
  }
  return text;
}

std::string ratio2(const Cost& a, const Cost& b) {
  if (!a.ns || !b.ns || *b.ns <= 0) return "-";
  return fmt::format("{:.2f}x", *a.ns / *b.ns);
}

std::string seconds(double s) { return s >= 0 ? fmt::format("{:.2f}", s) : "-"; }

std::string machine() {
  std::string cpu = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string l; std::getline(in, l);)
    if (l.rfind("model name", 0) == 0) {
      cpu = l.substr(l.find(':') + 2);
      break;
    }
  utsname u{};
  uname(&u);
  return fmt::format("{}, {} CPUs, Linux {}", cpu, sysconf(_SC_NPROCESSORS_ONLN), u.release);
}

// Isolation (issue 10): what choosing a sub-queue adds to the TC program, for
// a packet of the isolated class (after its first packet claimed a slot:
// the steady state of a flow). Same policy without `isolate` as the baseline.
void isolation_cost(uint32_t repeat, const Cost& floor, const std::vector<uint8_t>& frame) {
  struct Variant {
    const char* label;
    const char* attr;
  };
  const Variant variants[] = {{"no isolation", ""},
                              {"isolate flows", "isolate flows;"},
                              {"isolate saddr (4 flows each)", "isolate saddr;"},
                              {"isolate saddr flows 1", "isolate saddr flows 1;"},
                              {"isolate saddr nat (conntrack lookup)", "isolate saddr nat;"}};
  std::vector<Cost> costs;
  for (const auto& v : variants) {
    std::string text = fmt::format(
        "policy iso_bench {{\n  link 100mbit;\n  class game {{ priority 0; }}\n"
        "  class bulk {{ priority 4; {} default; }}\n  rule udp dport 27015 -> game;\n}}\n",
        v.attr);
    std::string error;
    auto compiled = qosc::difftest::compile_text("iso_bench.qos", text, &error, {});
    if (!compiled) {
      costs.push_back({std::nullopt, "does not compile"});
      std::cerr << error;
      continue;
    }
    auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, "iso_bench.bpf.o", {});
    if (!loaded) {
      costs.push_back({std::nullopt, "fails verifier"});
      std::cerr << loaded.error().message << "\n";
      continue;
    }
    std::vector<double> runs;
    std::string note;
    for (int i = 0; i < 3 && note.empty(); ++i) {
      auto r = qosrun::test_run(loaded->prog_fd(Hook::Tc), Hook::Tc, frame, repeat, false);
      if (!r) note = r.error().message;
      else runs.push_back(r->duration_ns);
    }
    if (!note.empty()) {
      costs.push_back({std::nullopt, note});
      continue;
    }
    std::sort(runs.begin(), runs.end());
    costs.push_back({runs[1], ""});
  }
  std::cout << "\nIsolation inside a class (TC program as attached, flow table on, 64-byte IPv4/UDP frame of the "
               "isolated class, its slot already claimed; median of 3 runs):\n\n";
  std::cout << "| policy | TC ns | vs no isolation |\n|:--|---:|---:|\n";
  for (size_t i = 0; i < costs.size(); ++i)
    std::cout << fmt::format("| {} | {} | {} |\n", variants[i].label, cell(costs[i]),
                             costs[i].ns && costs[0].ns ? fmt::format("{:+.0f} ns", *costs[i].ns - *costs[0].ns) : "-");
  if (floor.ns) std::cout << fmt::format("\n(The empty XDP program of this run: {} ns.)\n", cell(floor));
}

// Hosts and plans (issue 11): what the host lookup adds to the TC program
// (one LPM trie lookup of the source address, `hosts saddr`), with the trie
// holding 1 and 10,000 /32 prefixes as qosrun stores them (IPv4-mapped),
// for a packet of a listed host and one of no listed host. Same policy
// without plans and hosts as the baseline, measured in the same run.
void hosts_cost(uint32_t repeat, const Cost& floor) {
  const std::string base =
      "policy hosts_bench {\n  link 1gbit;\n  class game { priority 0; }\n  class bulk { priority 4; default; }\n"
      "  rule udp dport 27015 -> game;\n";
  const auto listed = udp64(0xc0a80101u, 9);   // 192.168.1.1: the first host of the table
  const auto unlisted = udp64(0xc0a90909u, 9);  // 192.169.9.9: no host's
  auto load = [&](const std::string& text) -> std::optional<qosrun::LoadedPolicy> {
    std::string error;
    auto compiled = qosc::difftest::compile_text("hosts_bench.qos", text, &error, {});
    if (!compiled) {
      std::cerr << error;
      return std::nullopt;
    }
    auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, "hosts_bench.bpf.o", {});
    if (!loaded) {
      std::cerr << loaded.error().message << "\n";
      return std::nullopt;
    }
    return std::move(*loaded);
  };
  // Host i: 192.168.0.0 + 257 + i (192.168.1.1 first), a /32 each; into the
  // exact-match map as qosrun writes them (exact), or all into the trie (what
  // qosrun did before the exact-match map, and still the path of any prefix
  // shorter than an address).
  auto fill = [](const qosrun::LoadedPolicy& p, uint32_t from, uint32_t to, bool exact) {
    bpf_map* m = bpf_object__find_map_by_name(p.object(), exact ? QOS_HOSTS_EXACT_MAP : "qos_hosts");
    if (!m) return false;
    qos_host_val v{};
    v.outer_classid = (QOS_HTB_MAJOR << 16) | 0x8000;
    v.group_major = 0x2000;
    v.minor_base = 0x100;
    v.class_mask = ~0ull;
    v.queue = QOS_HOST_ANY_QUEUE;
    for (uint32_t i = from; i < to; ++i) {
      const uint32_t a = 0xc0a80000u + 257 + i;
      qos_host_key k{};
      k.prefixlen = 128;
      k.addr[10] = k.addr[11] = 0xff;
      k.addr[12] = uint8_t(a >> 24), k.addr[13] = uint8_t(a >> 16), k.addr[14] = uint8_t(a >> 8), k.addr[15] = uint8_t(a);
      v.host_id = i;
      if (bpf_map_update_elem(bpf_map__fd(m), exact ? static_cast<const void*>(k.addr) : &k, &v, BPF_ANY) != 0)
        return false;
    }
    return true;
  };
  struct Cell {
    std::string label;
    Cost cost;
  };
  std::vector<Cell> cells;
  auto plain = load(base + "}\n");
  cells.push_back({"no hosts (the same policy without plans and hosts)",
                   plain ? measure(plain->prog_fd(Hook::Tc), listed, repeat, TC_ACT_OK, Hook::Tc) : Cost{std::nullopt, "fails"}});
  // cells[1 + 4 * exact + 2 * (n == 10000) + !hit]
  for (bool exact : {false, true}) {
    auto hosts = load(base + "  plan basic { rate 10mbit; }\n  hosts saddr;\n}\n");
    for (uint32_t n : {1u, 10000u}) {
      const bool ok = hosts && fill(*hosts, n == 1 ? 0 : 1, n, exact);
      for (bool hit : {true, false}) {
        Cost c = ok ? measure(hosts->prog_fd(Hook::Tc), hit ? listed : unlisted, repeat, TC_ACT_OK, Hook::Tc)
                    : Cost{std::nullopt, "fails"};
        cells.push_back({fmt::format("hosts saddr, {} /32 prefix{} in {}, packet of {}", n, n == 1 ? "" : "es",
                                     exact ? "the exact-match map" : "the trie", hit ? "a listed host" : "no listed host"),
                         c});
      }
    }
  }
  std::cout << fmt::format("\nHosts and plans (TC program as attached, flow table on, 64-byte IPv4/UDP frame, repeat {}, "
                           "median of 3):\n\n",
                           repeat);
  std::cout << "| program | TC ns | vs no hosts |\n|:--|---:|---:|\n";
  for (const auto& c : cells)
    std::cout << fmt::format("| {} | {} | {} |\n", c.label, cell(c.cost),
                             c.cost.ns && cells[0].cost.ns ? fmt::format("{:+.0f} ns", *c.cost.ns - *cells[0].cost.ns) : "-");
  for (int exact : {0, 1}) {
    const auto& one_hit = cells[1 + 4 * exact].cost;
    const auto& one_miss = cells[2 + 4 * exact].cost;
    const auto& many_hit = cells[3 + 4 * exact].cost;
    const auto& many_miss = cells[4 + 4 * exact].cost;
    if (one_hit.ns && many_hit.ns)
      std::cout << fmt::format("\n{}: 10,000 prefixes / 1 prefix, listed host: {}; no listed host: {}\n",
                               exact ? "exact-match map (as qosrun fills it)" : "trie only",
                               ratio2(many_hit, one_hit), ratio2(many_miss, one_miss));
  }
  if (floor.ns) std::cout << fmt::format("(The empty XDP program of this run: {} ns.)\n", cell(floor));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qosc-bench-classifier: classifier cost per packet (BPF_PROG_TEST_RUN) and compile time"};
  std::vector<size_t> sizes = {8, 64, 256, 1024, 4096, 16384};
  uint32_t repeat = 1000000;
  size_t tree_max = 16384;
  std::vector<size_t> dscp_sizes = {8, 256};
  int verbosity = 0;
  bool hosts_only = false;
  app.add_flag("--hosts-only", hosts_only, "only the cost of the host lookup (plans and hosts), next to the empty program");
  app.add_option("--sizes", sizes, "rule counts to measure")->delimiter(',');
  app.add_option("--repeat", repeat, "repetitions per measurement (in the kernel)")->check(CLI::Range(1000u, 100000000u));
  app.add_option("--tree-max", tree_max, "largest size compiled with the tree strategy forced (slow to compile)");
  app.add_option("--dscp-sizes", dscp_sizes, "rule counts for the `set dscp` comparison (TC hook)")->delimiter(',');
  app.add_flag("-v", verbosity, "more output");
  CLI11_PARSE(app, argc, argv);
  qosrun::set_libbpf_verbosity(verbosity);
  if (!qosrun::can_load_bpf()) {
    std::cerr << "qosc-bench-classifier: needs root (it loads BPF programs): run it with sudo\n";
    return 1;
  }

  const auto match_first = udp64(0x0a000007u, 1000);    // 10.0.0.7 -> rule 0
  const auto match_none = udp64(0xc0a80101u, 9);        // 192.168.1.1, port 9 -> default

  auto empty = load_baseline("empty.bpf.o");
  if (!empty) {
    qosrun::print_error(empty.error(), verbosity);
    return 1;
  }
  const Cost floor = measure(empty->prog_fd(Hook::Xdp), match_none, repeat, kXdpPass);
  std::cerr << fmt::format("empty XDP program: {} ns/packet\n", cell(floor));
  if (hosts_only) {
    hosts_cost(repeat, floor);
    return 0;
  }

  struct Row {
    size_t n = 0;
    QoscRun full, lean, tree, maps, meta;
    Cost l_first, l_none;
  };
  std::vector<Row> rows;
  for (size_t n : sizes) {
    Row row;
    row.n = n;
    const std::string text = policy_text(n);
    qosc::difftest::PipelineOptions po;
    row.full = run_qosc(n, text, po, repeat, match_first, match_none);     // as shipped (auto, flow table)
    po.flow_entries = 0;
    row.lean = run_qosc(n, text, po, repeat, match_first, match_none);     // classifier only (auto, no flow table)
    row.meta = run_qosc(n, text, po, repeat, match_first, match_none, true);   // ... writing the XDP metadata
    po.strategy = qosc::Strategy::Maps;
    row.maps = run_qosc(n, text, po, repeat, match_first, match_none);
    if (n <= tree_max) {
      po.strategy = qosc::Strategy::Tree;
      row.tree = run_qosc(n, text, po, repeat, match_first, match_none);
    } else {
      row.tree.note = "not run (--tree-max)";
      row.tree.first = row.tree.none = {std::nullopt, row.tree.note};
    }
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
    std::cerr << fmt::format(
        "{} rules: qosc {} first {} / none {} ns (no flow table: {} / {}), loop {} / {} ns, compile {:.2f} s, "
        "load {:.2f} s; tree {}+{} s, maps {}+{} s\n",
        n, row.full.strategy, cell(row.full.first), cell(row.full.none), cell(row.lean.first), cell(row.lean.none),
        cell(row.l_first), cell(row.l_none), row.full.compile_s, row.full.load_s, seconds(row.tree.compile_s),
        seconds(row.tree.load_s), seconds(row.maps.compile_s), seconds(row.maps.load_s));
    rows.push_back(std::move(row));
  }

  std::cout << fmt::format(
      "Classifier cost per packet in ns (BPF_PROG_TEST_RUN, XDP, repeat {}, 64-byte IPv4/UDP frame, median of 3 "
      "runs). Empty XDP program (the floor): {} ns. Machine: {}.\n\n",
      repeat, cell(floor), machine());
  std::cout << "qosc *as shipped* runs the whole XDP program as `qosrun attach` loads it: parse, classify, "
               "per-class counters, flow table update, policer. *Classifier* is the same program compiled without "
               "the flow table (`qosc --flow-table 0`), which does what the loop does (parse, classify, count). "
               "The loop is the dissertation's generic classifier (bounded loop over an array map of rules).\n\n";
  std::cout << "| rules | strategy | qosc first | qosc none | classifier first | classifier none | loop first | "
               "loop none | classifier none / empty | as shipped none / empty | loop / classifier (none) | compile s "
               "| load s |\n";
  std::cout << "|---:|:--|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows)
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.n,
                             r.full.strategy.empty() ? "-" : r.full.strategy, cell(r.full.first), cell(r.full.none),
                             cell(r.lean.first), cell(r.lean.none), cell(r.l_first), cell(r.l_none),
                             ratio(r.lean.none, floor), ratio(r.full.none, floor), ratio(r.l_none, r.lean.none),
                             seconds(r.full.compile_s), seconds(r.full.load_s));

  std::cout << "\nThe two strategies forced (classifier, no flow table): compile and load seconds, ns per packet.\n\n";
  std::cout << "| rules | tree compile+load s | tree first | tree none | maps compile+load s | maps first | maps none "
               "|\n|---:|---:|---:|---:|---:|---:|---:|\n";
  auto total = [](const QoscRun& q) {
    return q.compile_s >= 0 && q.load_s >= 0 ? fmt::format("{:.2f} ({:.2f}+{:.2f})", q.compile_s + q.load_s, q.compile_s,
                                                           q.load_s)
                                             : (q.note.empty() ? std::string("-") : q.note);
  };
  for (const auto& r : rows)
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", r.n, total(r.tree), cell(r.tree.first),
                             cell(r.tree.none), total(r.maps), cell(r.maps.first), cell(r.maps.none));

  std::cout << "\nWriting the class into the packet's metadata (`qosrun attach --xdp-meta`; `qosrun classify` and "
               "the tests load it so), classifier, no match:";
  for (const auto& r : rows)
    if (r.meta.none.ns && r.lean.none.ns)
      std::cout << fmt::format(" {} rules {} ns (+{:.0f});", r.n, cell(r.meta.none), *r.meta.none.ns - *r.lean.none.ns);
  std::cout << "\n";

  // `set dscp`: the TC program of the same policy with and without it, as
  // `qosrun attach` loads it (flow table on).
  std::cout << fmt::format(
      "\n`set dscp` on the TC hook (program as shipped, flow table on), ns per packet, repeat {}, median of 3; "
      "the same policy without `set dscp` measured in the same run.\n"
      "*steady*: `set dscp ef;` on class c0; *first* = the frame matches rule 0 (class c0): the first run rewrites "
      "DSCP 0 -> 46, every later run on the same skb finds 46 already (the cost for a packet that needs no change); "
      "*none* = the default class (no `set dscp`). *every run rewrites*: `rule dscp 46 -> c1;` first, c0 sets ef "
      "and c1 sets 0, so the frame alternates between the two classes and every run rewrites the DSCP and updates "
      "the IPv4 checksum; without: the same rules, no `set dscp`.\n\n",
      repeat);
  std::cout << "| rules | case | frame | without | with set dscp | with / without |\n|---:|:--|:--|---:|---:|---:|\n";
  for (size_t n : dscp_sizes) {
    const std::string plain = policy_text(n);
    struct Pair {
      const char* name;
      std::string without, with;
    };
    const Pair pairs[] = {{"steady", plain, with_set_dscp(plain)},
                          {"every run rewrites", alternating(plain, false), alternating(plain, true)}};
    for (const auto& pr : pairs) {
      qosc::difftest::PipelineOptions po;
      std::string error;
      auto cb = qosc::difftest::compile_text(fmt::format("bench{}.qos", n), pr.without, &error, po);
      auto cd = cb ? qosc::difftest::compile_text(fmt::format("bench{}_dscp.qos", n), pr.with, &error, po) : cb;
      if (!cb || !cd) {
        std::cerr << fmt::format("set dscp, {} rules: {}\n", n, error);
        continue;
      }
      auto lb = qosrun::LoadedPolicy::load_memory(cb->object, "base.bpf.o");
      auto ld = qosrun::LoadedPolicy::load_memory(cd->object, "dscp.bpf.o");
      if (!lb || !ld) {
        std::cerr << fmt::format("set dscp, {} rules: {}\n", n, !lb ? lb.error().message : ld.error().message);
        continue;
      }
      constexpr uint32_t kTcOk = 0;
      for (const auto& [label, frame] : {std::pair<const char*, const std::vector<uint8_t>*>{"first", &match_first},
                                         {"none", &match_none}}) {
        if (std::string(pr.name) != "steady" && std::string(label) == "none") continue;
        const Cost b = measure(lb->prog_fd(Hook::Tc), *frame, repeat, kTcOk, Hook::Tc);
        const Cost d = measure(ld->prog_fd(Hook::Tc), *frame, repeat, kTcOk, Hook::Tc);
        std::cout << fmt::format("| {} | {} | {} | {} | {} | {} |\n", n, pr.name, label, cell(b), cell(d), ratio2(d, b));
        std::cerr << fmt::format("set dscp, {} rules, {}, {}: {} -> {} ns\n", n, pr.name, label, cell(b), cell(d));
      }
    }
  }

  // Issue 3's targets, judged from this run.
  std::cout << "\nTargets (issue 3), from this run:\n";
  auto judge = [](bool ok) { return ok ? "met" : "MISSED"; };
  for (const auto& r : rows) {
    if (!floor.ns) break;
    const double lim = r.n <= 1024 ? 4.0 : 8.0;
    if (r.n > 1024 && r.n != 16384) continue;
    for (const auto* q : {&r.lean, &r.full}) {
      if (!q->none.ns) continue;
      const double x = *q->none.ns / *floor.ns;
      std::cout << fmt::format("- {} rules, no match <= {:.0f}x empty ({}): {:.1f}x {}\n", r.n, lim,
                               q == &r.lean ? "classifier" : "as shipped", x, judge(x <= lim));
    }
  }
  for (const auto& r : rows) {
    if (r.n != 256 || !r.l_none.ns || !floor.ns) continue;
    for (const auto* q : {&r.lean, &r.full}) {
      if (!q->none.ns) continue;
      const double x = *r.l_none.ns / *q->none.ns;
      const double above = (*r.l_none.ns - *floor.ns) / std::max(1.0, *q->none.ns - *floor.ns);
      std::cout << fmt::format(
          "- 256 rules, >= 15x faster than the loop, no match ({}): {:.1f}x {} (above the floor: {:.1f}x)\n",
          q == &r.lean ? "classifier" : "as shipped", x, judge(x >= 15), above);
    }
    std::cout << fmt::format(
        "  (no XDP program can be more than loop / empty = {:.1f}x faster than the loop on this machine)\n",
        *r.l_none.ns / *floor.ns);
  }
  isolation_cost(repeat, floor, match_none);
  hosts_cost(repeat, floor);

  for (const auto& r : rows) {
    if (r.full.load_s < 0) continue;
    const double t = r.full.compile_s + r.full.load_s;
    if (r.n == 1024) std::cout << fmt::format("- 1k rules, compile+load < 1 s: {:.2f} s {}\n", t, judge(t < 1));
    if (r.n == 16384) std::cout << fmt::format("- 16k rules, compile+load < 15 s: {:.2f} s {}\n", t, judge(t < 15));
  }
  return 0;
}
