// The compiler pipeline for the differential test and the benchmark.
#include "pipeline.hpp"

#include <chrono>
#include <exception>

#include <fmt/format.h>

#include "qosc/codegen.hpp"
#include "qosc/diag.hpp"
#include "qosc/frontend.hpp"
#include "qosc/source.hpp"
#include "random_policy.hpp"

namespace qosc::difftest {

std::optional<CompiledPolicy> compile_text(const std::string& name, const std::string& text, std::string* error,
                                           const PipelineOptions& popts) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    SourceFile file(name, text);
    Diagnostics diags(&file);
    FrontendResult fe = compile_frontend(file, diags);
    if (!fe.ir || diags.has_errors()) {
      if (error) *error = diags.str();
      return std::nullopt;
    }
    CodegenOptions opts;
    opts.source_text = text;
    opts.source_name = name;
    opts.strategy = popts.strategy;
    opts.flow_entries = popts.flow_entries;
    opts.inline_subprograms = popts.inline_subprograms;
    opts.emit_c_dir = popts.emit_c_dir;
    auto obj = compile_policy(*fe.ir, opts, diags);
    if (!obj || diags.has_errors()) {
      if (error) *error = diags.str();
      return std::nullopt;
    }
    CompiledPolicy out;
    out.ir = std::move(*fe.ir);
    out.object = std::move(obj->object);
    out.strategy = obj->strategy;
    out.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  } catch (const std::exception& e) {
    if (error) *error = std::string("exception: ") + e.what();
    return std::nullopt;
  }
}

std::string random_policy_text(std::mt19937_64& rng, size_t rules, bool narrow) {
  testsupport::RandomPolicyOptions o;
  o.narrow_values = narrow;
  o.min_rules = rules;
  o.max_rules = rules;
  o.set_dscp_percent = 30;   // the TC program's output frames are compared too (egress_frame)
  return testsupport::random_policy(rng, o);
}

std::string large_policy_text(std::mt19937_64& rng, size_t rules) {
  auto u = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  auto coin = [&](int percent) { return u(0, 99) < uint64_t(percent); };
  const size_t nclasses = 2 + u(0, 6);
  std::string out = fmt::format("policy large{} {{\n    link 10gbit;\n", rules);
  for (size_t c = 0; c < nclasses; ++c)
    out += fmt::format("    class c{} {{ priority {};{} }}\n", c, c % 8, c + 1 == nclasses ? " default;" : "");
  // Half of the policies use two prefix lengths only (the generated code
  // then looks addresses up in hash maps, one lookup per length; else in LPM
  // tries).
  const bool few_lengths = coin(50);
  auto v4 = [&] {
    static const unsigned lens[] = {16, 20, 24, 28, 32};
    unsigned len = few_lengths ? (coin(50) ? 24 : 32) : lens[u(0, 4)];
    uint32_t a = 10u << 24 | uint32_t(u(0, 63)) << 16 | uint32_t(u(0, 255)) << 8 | uint32_t(u(0, 255));
    a &= ~((len == 32 ? 0u : (1u << (32 - len))) - 1);
    if (len == 32) a = 10u << 24 | (a & 0x00ffffffu);
    return fmt::format("{}.{}.{}.{}/{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, len);
  };
  auto v6 = [&] {
    static const unsigned lens[] = {48, 56, 64, 128};
    unsigned len = few_lengths ? (coin(50) ? 64 : 128) : lens[u(0, 3)];
    unsigned x = unsigned(u(0, 255)), y = unsigned(u(0, 65535)), z = unsigned(u(1, 65535));
    if (len == 48) return fmt::format("2001:db8:{:x}::/48", x);
    if (len == 56) return fmt::format("2001:db8:{:x}:{:x}::/56", x, y & 0xff00);
    if (len == 64) return fmt::format("2001:db8:{:x}:{:x}::/64", x, y);
    return fmt::format("2001:db8:{:x}:{:x}::{:x}", x, y, z);
  };
  auto port = [&] {
    if (coin(60)) return fmt::format("{}", u(1, 65535));
    if (coin(60)) {
      uint64_t a = u(1, 65000);
      return fmt::format("{}-{}", a, a + u(1, 500));
    }
    return fmt::format("{{ {}, {}, {}-{} }}", u(1, 20000), u(20001, 40000), 40001 + u(0, 1000), 42000 + u(0, 1000));
  };
  for (size_t r = 0; r < rules; ++r) {
    const bool six = coin(30);
    std::string m;
    // Every rule has a positive address match (else it would shadow most of
    // what follows), some a second, maybe negated one.
    const bool src = coin(70);
    m += fmt::format(" {} {} {}", six ? "ip6" : "ip", src ? "saddr" : "daddr", six ? v6() : v4());
    if (coin(25))
      m += fmt::format(" {} {} {}{}", six ? "ip6" : "ip", src ? "daddr" : "saddr", coin(30) ? "!= " : "", six ? v6() : v4());
    if (coin(85)) {
      m += coin(50) ? " tcp" : " udp";
      if (coin(85)) m += fmt::format(" dport {}{}", coin(5) ? "!= " : "", port());
      if (coin(20)) m += fmt::format(" sport {}", port());
    } else {
      m += coin(50) ? (six ? " icmpv6" : " icmp") : " proto gre";
    }
    if (coin(15)) m += coin(50) ? fmt::format(" dscp {}", u(0, 63)) : " dscp 10-22";
    const std::string target = coin(5) ? "drop" : fmt::format("c{}", u(0, nclasses - 1));
    out += fmt::format("    rule{} -> {};\n", m, target);
  }
  out += "}\n";
  return out;
}

}  // namespace qosc::difftest
