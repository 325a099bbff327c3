// qosc-bench-analysis: what the rule algebra costs.
//
//   check: the front end (parse, check, lower) with exact union
//          unreachability, against the same front end with the pairwise
//          single-rule cover test it replaced (kept below as the baseline,
//          measured in the same run): ratio now / before, target <= 1.5 at 16k.
//   diff:  `qosc diff` of a policy and a one-rule edit of it (both front ends
//          and the diff): target < 1 s at 1k rules, < 30 s at 16k.
//
// Two shapes of policy: "distinct" (the classifier benchmark's: rule i has its
// own /24 source and a dport, no rule overlaps another) and "overlapping"
// (nested prefixes, port ranges and DSCP from small pools, so rules shadow
// and partly shadow each other).
//
//   build/bin/qosc-bench-analysis [--quick]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "qosc/diff.hpp"
#include "qosc/frontend.hpp"
#include "qosc/reach.hpp"

using namespace qosc;

namespace qosc::detail {
std::optional<ir::Policy> check_and_lower_keep_dead(const ast::Policy&, const SourceFile&, Diagnostics&);
}

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string distinct_policy(size_t n, long edit) {
  std::string s = fmt::format("policy bench{} {{\n  link 10gbit;\n", n);
  for (int c = 0; c < 8; ++c) s += fmt::format("  class c{} {{ priority {};{} }}\n", c, c, c == 7 ? " default;" : "");
  for (size_t i = 0; i < n; ++i) {
    size_t cls = (long(i) == edit ? i + 1 : i) % 8;
    s += fmt::format("  rule ip saddr 10.{}.{}.0/24 udp dport {} -> c{};\n", (i / 256) % 256, i % 256, 1000 + i % 4000, cls);
  }
  return s + "}\n";
}

std::string overlapping_policy(size_t n, long edit) {
  std::mt19937_64 rng(42);
  auto u = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  std::string s = fmt::format("policy overlap{} {{\n  link 10gbit;\n", n);
  for (int c = 0; c < 8; ++c) s += fmt::format("  class c{} {{ priority {};{} }}\n", c, c, c == 7 ? " default;" : "");
  for (size_t i = 0; i < n; ++i) {
    std::string m;
    switch (u(0, 3)) {
      case 0: m += fmt::format("ip saddr 10.{}.0.0/16 ", u(0, 63)); break;
      case 1: m += fmt::format("ip saddr 10.{}.{}.0/24 ", u(0, 63), u(0, 255)); break;
      case 2: m += fmt::format("ip daddr 192.168.{}.0/24 ", u(0, 255)); break;
      default: break;
    }
    uint64_t lo = u(0, 200) * 100;
    m += fmt::format("{} dport {}-{}", u(0, 1) ? "tcp" : "udp", lo, lo + u(0, 3) * 50);
    if (u(0, 3) == 0) m += fmt::format(" dscp {}", u(0, 63));
    size_t cls = size_t(u(0, 7));
    if (long(i) == edit) cls = (cls + 1) % 8;
    s += fmt::format("  rule {} -> c{};\n", m, cls);
  }
  return s + "}\n";
}

// ---- the baseline: the single-rule cover test the front end used before ----
bool prefix_in(const ir::Prefix& outer, const ir::Prefix& inner) {
  if (outer.family != inner.family || outer.len > inner.len) return false;
  for (unsigned bit = 0; bit < outer.len; ++bit) {
    unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
    if ((outer.addr[byte] & mask) != (inner.addr[byte] & mask)) return false;
  }
  return true;
}
bool ports_in(const ir::PortSet& inner, const ir::PortSet& outer) {
  return std::all_of(inner.begin(), inner.end(), [&](auto x) {
    return std::any_of(outer.begin(), outer.end(), [&](auto y) { return y.lo <= x.lo && x.hi <= y.hi; });
  });
}
bool single_cover(const ir::Rule& outer, const ir::Rule& inner) {
  if (outer.family != ir::Family::Any && outer.family != inner.family) return false;
  if (outer.protos && (!inner.protos || (*inner.protos & ~*outer.protos).any())) return false;
  if (outer.sport && (!inner.sport || !ports_in(*inner.sport, *outer.sport))) return false;
  if (outer.dport && (!inner.dport || !ports_in(*inner.dport, *outer.dport))) return false;
  if (outer.dscp && (!inner.dscp || (*inner.dscp & ~*outer.dscp).any())) return false;
  for (const auto& m : outer.addrs) {
    bool ok = false;
    for (const auto& n : inner.addrs) {
      if (n.dst != m.dst || n.family != m.family || m.negated || n.negated) continue;
      ok = std::all_of(n.prefixes.begin(), n.prefixes.end(), [&](const ir::Prefix& p) {
        return std::any_of(m.prefixes.begin(), m.prefixes.end(), [&](const ir::Prefix& q) { return prefix_in(q, p); });
      });
      if (ok) break;
    }
    if (!ok) return false;
  }
  return true;
}
// As the front end did: each rule against the earlier rules it kept.
size_t single_cover_scan(const ir::Policy& p) {
  std::vector<const ir::Rule*> kept;
  for (const auto& r : p.rules) {
    bool covered = std::any_of(kept.begin(), kept.end(), [&](const ir::Rule* k) { return single_cover(*k, r); });
    if (!covered) kept.push_back(&r);
  }
  return p.rules.size() - kept.size();
}

struct Lowered {
  std::optional<ir::Policy> ir;
  double ms = 0;
  size_t warnings = 0;
};
// Every rule kept (unreachable ones too): what the reach pass and the old
// pairwise test each look at inside the front end.
ir::Policy all_rules(const std::string& text) {
  SourceFile f("bench.qos", text);
  Diagnostics d(&f);
  auto ast = parse_policy(f, d);
  return *detail::check_and_lower_keep_dead(*ast, f, d);
}

template <class F>
double best_ms(int runs, F&& f) {
  double best = 1e300;
  for (int i = 0; i < runs; ++i) {
    double t0 = now_ms();
    f();
    best = std::min(best, now_ms() - t0);
  }
  return best;
}

Lowered front(const std::string& text) {
  SourceFile f("bench.qos", text);
  Diagnostics d(&f);
  double t0 = now_ms();
  auto r = compile_frontend(f, d);
  return {std::move(r.ir), now_ms() - t0, d.warning_count()};
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const std::vector<size_t> sizes = quick ? std::vector<size_t>{1000} : std::vector<size_t>{1000, 16384};
  struct Shape {
    const char* name;
    std::string (*make)(size_t, long);
  };
  fmt::print("{:<12} {:>6} {:>10} {:>10} {:>10} {:>10} {:>7} {:>9} {:>10}\n", "shape", "rules", "check ms",
             "reach ms", "pairs ms", "before ms", "ratio", "warnings", "diff ms");
  bool ok = true;
  for (const Shape& shape : {Shape{"distinct", distinct_policy}, Shape{"overlapping", overlapping_policy}}) {
    for (size_t n : sizes) {
      // The edit: the middle rule of "distinct"; an early rule of "overlapping" (most
      // of its later rules are unreachable, and editing one changes nothing).
      const long edit = shape.make == distinct_policy ? long(n / 2) : 10;
      const std::string a = shape.make(n, -1), b = shape.make(n, edit);
      const int runs = n <= 1000 ? 5 : 1;   // small sizes: the best of a few runs
      Lowered la = front(a);
      if (!la.ir) {
        fmt::print("{}: the generated policy does not compile\n", shape.name);
        return 2;
      }
      la.ms = best_ms(runs, [&] { front(a); });
      // The reach part of the front end alone, and the pairwise test it
      // replaced, both over every rule (unreachable ones too, as in the front end).
      const ir::Policy every = all_rules(a);
      std::vector<uint32_t> dead;
      const double reach_ms = best_ms(runs, [&] { dead = ir::unreachable_rules(every); });
      size_t single = 0;
      const double pairs_ms = best_ms(runs, [&] { single = single_cover_scan(every); });
      const double before_ms = la.ms - reach_ms + pairs_ms;
      const double ratio = la.ms / before_ms;
      // diff: both front ends and the diff itself, as `qosc diff` does.
      analysis::PolicyDiff d;
      const double diff_ms = best_ms(runs, [&] {
        Lowered l1 = front(a), l2 = front(b);
        d = analysis::diff_policies(*l1.ir, *l2.ir);
      });
      fmt::print("{:<12} {:>6} {:>10.1f} {:>10.1f} {:>10.1f} {:>10.1f} {:>7.2f} {:>9} {:>10.1f}   ({} traffic lines; unreachable: {} exact, {} pairwise)\n",
                 shape.name, n, la.ms, reach_ms, pairs_ms, before_ms, ratio, la.warnings, diff_ms, d.traffic.size(),
                 dead.size(), single);
      std::fflush(stdout);
      if (n >= 16384 && ratio > 1.5) ok = false;
      if ((n <= 1000 && diff_ms > 1000) || diff_ms > 30000) ok = false;
    }
  }
  fmt::print("check: ratio = now / before, where before = check - reach + pairs (the pairwise single-rule cover\n"
             "test the front end used until the rule algebra); targets: ratio <= 1.5 at 16k, diff < 1 s at 1k,\n"
             "< 30 s at 16k: {}\n",
             ok ? "met" : "NOT met");
  return ok ? 0 : 1;
}
