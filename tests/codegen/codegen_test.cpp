// Code generation tests. Pure C++ parts (source builder, optimiser against
// brute force, manifest) always run; compiling needs clang-19 (in-process or
// the binary); loading and test runs need root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <chrono>
#include <cstring>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "bitvector.hpp"
#include "decision.hpp"
#include "qos_abi.h"
#include "qosc/codegen.hpp"
#include "qosc/packet.hpp"
#include "qosc/object_digest.hpp"
#include "qosc/reach.hpp"
#include "qosc/sha256.hpp"
#include "qosrun/loader.hpp"
#include "random_ir.hpp"
#include "source_builder.hpp"

using namespace qosc;
using namespace qosc::codegen;

namespace {

// ---------------------------------------------------------------- builder

TEST(SourceBuilder, IndentsBlocksAndMapsLines) {
  SourceBuilder b{"gen.c"};
  b.line("int x;").open("void f(void)").line("x = 1;").line_directive(7, "p.qos").line("x = 2;").reset_line();
  b.line("x = 3;").close();
  std::string s = b.str();
  EXPECT_EQ(s,
            "int x;\nvoid f(void) {\n\tx = 1;\n#line 7 \"p.qos\"\n\tx = 2;\n#line 7 \"gen.c\"\n\tx = 3;\n}\n");
  // After the reset, the next line is numbered 7 in gen.c and it really is line 7.
  int n = 0;
  size_t pos = 0;
  while (n < 6 && (pos = s.find('\n', pos)) != std::string::npos) { ++n; ++pos; }
  EXPECT_EQ(s.substr(pos, 8), "\tx = 3;\n");
}

TEST(SourceBuilder, EscapesStrings) {
  EXPECT_EQ(c_string_literal("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\001\"");
}

// ---------------------------------------------------------------- optimiser

bool in_set(const ir::PortSet& s, uint16_t v) {
  for (auto iv : s)
    if (iv.lo <= v && v <= iv.hi) return true;
  return false;
}

TEST(Optimiser, PortIntervalsMatchBruteForce) {
  std::mt19937_64 rng(1);
  for (int iter = 0; iter < 200; ++iter) {
    cgtest::RandomIrOptions o;
    o.rules = 1 + rng() % 40;
    o.narrow = iter % 2 == 0;
    auto p = cgtest::random_ir(rng, o);
    std::vector<uint32_t> rules;
    for (uint32_t i = 0; i < p.rules.size(); ++i) rules.push_back(i);
    for (bool dst : {true, false}) {
      auto leaves = port_intervals(p, rules, dst);
      ASSERT_FALSE(leaves.empty());
      EXPECT_EQ(leaves.front().lo, 0u);
      EXPECT_EQ(leaves.back().hi, 65535u);
      for (size_t k = 1; k < leaves.size(); ++k) {
        EXPECT_EQ(leaves[k].lo, leaves[k - 1].hi + 1);
        EXPECT_NE(leaves[k].rules, leaves[k - 1].rules) << "adjacent equal leaves not merged";
      }
      for (int probe = 0; probe < 300; ++probe) {
        uint16_t v = probe < 30 ? uint16_t(probe * 2185) : uint16_t(rng());
        if (probe % 3 == 0 && !leaves.empty()) v = uint16_t(leaves[rng() % leaves.size()].lo);
        const Leaf* leaf = nullptr;
        for (const auto& l : leaves)
          if (l.lo <= v && v <= l.hi) leaf = &l;
        ASSERT_NE(leaf, nullptr);
        std::vector<uint32_t> want;
        for (uint32_t i : rules) {
          const auto& set = dst ? p.rules[i].dport : p.rules[i].sport;
          if (!set || in_set(*set, v)) want.push_back(i);
        }
        EXPECT_EQ(leaf->rules, want) << "port " << v;
      }
    }
  }
}

// Runs the decision plan the way the generated code does.
int plan_first_match(const ir::Policy& p, const DecisionPlan& plan, const PacketFields& f) {
  if (!f.ip) return -1;
  const FamilyPlan& fp = f.family == ir::Family::V4 ? plan.v4 : plan.v6;
  std::optional<uint32_t> part;
  auto it = fp.proto_case.find(f.proto);
  if (it != fp.proto_case.end()) {
    if (it->second != UINT32_MAX) part = it->second;
  } else {
    part = fp.fallback;
  }
  if (!part) return -1;
  const auto& pt = plan.partitions[*part];
  int best = INT32_MAX;
  auto check = [&](const std::vector<uint32_t>& rules) {
    for (uint32_t i : rules) {
      if (int(i) > best) return;
      if (rule_matches(p.rules[i], f)) { best = int(i); return; }
    }
  };
  if (f.l4) {
    for (const auto& l : pt.d_leaves)
      if (l.lo <= f.dport && f.dport <= l.hi) check(l.rules);
    for (const auto& l : pt.s_leaves)
      if (l.lo <= f.sport && f.sport <= l.hi) check(l.rules);
  }
  check(pt.w);
  return best == INT32_MAX ? -1 : best;
}

TEST(Optimiser, DecisionPlanEqualsFirstMatch) {
  std::mt19937_64 rng(2);
  size_t dead_total = 0;
  for (int iter = 0; iter < 300; ++iter) {
    cgtest::RandomIrOptions o;
    o.rules = 1 + rng() % (iter < 250 ? 30 : 200);
    auto p = cgtest::random_ir(rng, o);
    auto plan = plan_decisions(p);
    dead_total += plan.dead_rules.size();
    for (int k = 0; k < 300; ++k) {
      auto f = cgtest::random_fields(rng, p);
      ASSERT_EQ(plan_first_match(p, plan, f), first_match(p, f)) << to_string(f) << " iter " << iter;
    }
  }
  EXPECT_GT(dead_total, 0u) << "random policies should contain shadowed rules";
}

// The maps strategy's bit-vector tables, evaluated the way the generated code
// does (lookups, summary AND, delta words from the pool), equal first match.
TEST(BitTables, EqualFirstMatch) {
  std::mt19937_64 rng(12);
  size_t examined = 0, packets = 0, stored = 0;
  for (int iter = 0; iter < 300; ++iter) {
    cgtest::RandomIrOptions o;
    o.rules = 1 + rng() % (iter < 200 ? 30 : 300);
    o.narrow = iter % 3 != 0;
    auto p = cgtest::random_ir(rng, o);
    // Half of the time keep dead rules in the tables (they must still be right).
    auto dead = iter % 2 ? ir::unreachable_rules(p) : std::vector<uint32_t>{};
    auto t = build_bit_tables(p, dead);
    ASSERT_EQ(t.nrules, p.rules.size() - dead.size());
    stored += t.pool.size();
    for (int k = 0; k < 300; ++k) {
      auto f = cgtest::random_fields(rng, p);
      ASSERT_EQ(t.first_match(f), first_match(p, f)) << to_string(f) << " iter " << iter;
      examined += t.last_words_examined;
      ++packets;
    }
  }
  // The summaries keep the words looked at per packet small.
  EXPECT_LT(double(examined) / double(packets), 3.0);
  EXPECT_GT(stored, 300u);
}

TEST(BitTables, ScaleStaysNearLinear) {
  // 16k specific rules: each class's delta is a word or two, not W words.
  std::mt19937_64 rng(13);
  auto p = cgtest::random_ir(rng, {.rules = 16384, .classes = 8, .narrow = false, .specific = true});
  auto tdead = std::chrono::steady_clock::now();
  auto dead = ir::unreachable_rules(p);
  auto t0 = std::chrono::steady_clock::now();
  std::printf("unreachable_rules: %.0f ms\n", std::chrono::duration<double, std::milli>(t0 - tdead).count());
  auto t = build_bit_tables(p, dead);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("16k rules: %u live, %u words, %zu descriptors, pool %zu words, %.1f MiB, %.0f ms\n", t.nrules, t.words,
              t.descs.size(), t.pool.size(), double(t.bytes()) / (1 << 20), ms);
  EXPECT_LT(t.bytes(), size_t(64) << 20);
  for (int k = 0; k < 2000; ++k) {
    auto f = cgtest::random_fields(rng, p);
    ASSERT_EQ(t.first_match(f), first_match(p, f)) << to_string(f);
  }
}

TEST(Optimiser, CoverageIsSound) {
  // A rule reported dead never is the first match.
  std::mt19937_64 rng(3);
  for (int iter = 0; iter < 300; ++iter) {
    auto p = cgtest::random_ir(rng, {.rules = 20, .classes = 3, .narrow = true});
    auto dead = ir::unreachable_rules(p);
    std::set<int> ds(dead.begin(), dead.end());
    for (int k = 0; k < 500; ++k) {
      auto f = cgtest::random_fields(rng, p);
      EXPECT_FALSE(ds.count(first_match(p, f)));
    }
  }
}

TEST(Optimiser, MergesSiblingPrefixes) {
  ir::Prefix a, b, c;
  a.addr = {10, 0, 0, 0};
  a.len = 25;
  b.addr = {10, 0, 0, 128};
  b.len = 25;
  c.addr = {10, 0, 0, 7};
  c.len = 32;
  auto m = merge_prefixes({a, b, c});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].len, 24);
  EXPECT_EQ(m[0].addr[3], 0);
}

// merge_prefixes keeps exactly the addresses of its input, leaves nothing
// mergeable, and handles large sets (a blocklist of 20k addresses).
TEST(Optimiser, MergedPrefixesCoverTheSameAddresses) {
  std::mt19937_64 rng(14);
  auto covered = [](const std::vector<ir::Prefix>& ps, const std::array<uint8_t, 16>& a) {
    for (const auto& p : ps) {
      bool in = true;
      for (unsigned bit = 0; bit < p.len && in; ++bit)
        in = (p.addr[bit / 8] & (0x80u >> (bit % 8))) == (a[bit / 8] & (0x80u >> (bit % 8)));
      if (in) return true;
    }
    return false;
  };
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<ir::Prefix> in;
    const int n = 1 + int(rng() % 40);
    for (int i = 0; i < n; ++i) {
      ir::Prefix p;
      p.addr = {10, 0, uint8_t(rng() % 4), uint8_t(rng() % 16)};
      p.len = uint8_t(22 + rng() % 11);
      for (unsigned bit = p.len; bit < 32; ++bit) p.addr[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
      in.push_back(p);
    }
    auto out = merge_prefixes(in);
    for (uint32_t a = 0; a < 1024; ++a) {
      std::array<uint8_t, 16> addr{10, 0, uint8_t(a >> 8), uint8_t(a & 0xff)};
      ASSERT_EQ(covered(out, addr), covered(in, addr)) << "iter " << iter << " address 10.0." << (a >> 8) << "." << (a & 255);
    }
    EXPECT_EQ(merge_prefixes(out), out) << "not a fixed point";
  }
  std::vector<ir::Prefix> big;
  for (uint32_t i = 0; i < 20000; ++i) {
    ir::Prefix p;
    uint32_t a = (172u << 24) | (16u << 16) | (i * 3);
    p.addr = {uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)};
    p.len = 32;
    big.push_back(p);
  }
  auto merged = merge_prefixes(big);   // was cubic: this took minutes
  EXPECT_EQ(merged.size(), big.size()) << "every third address: nothing to merge";
}

// ---------------------------------------------------------------- manifest

TEST(Manifest, JsonRoundTrip) {
  std::mt19937_64 rng(4);
  auto p = cgtest::random_ir(rng);
  Diagnostics d;
  CodegenOptions o;
  o.source_text = "x";
  auto g = generate_c(p, o, d);
  ASSERT_TRUE(g) << d.str();
  auto m2 = manifest_from_json(to_json(g->manifest));
  EXPECT_EQ(to_json(m2), to_json(g->manifest));
  EXPECT_EQ(m2.classes.size(), p.classes.size());
  EXPECT_EQ(m2.classes[1].htb_minor, QOS_HTB_MINOR_BASE + 1);
  EXPECT_THROW(manifest_from_json(nlohmann::json::parse(R"({"format":1})")), std::runtime_error);
}

// An adaptive link or download: the IR's range in the manifest (link_bps the
// MAX), through JSON and back; a policy without one has none of the keys.
TEST(Manifest, AdaptiveRatesFromTheIr) {
  std::mt19937_64 rng(8);
  auto p = cgtest::random_ir(rng);
  p.link_bps = 100'000'000;
  p.link_adaptive = ir::Adaptive{10'000'000, 100'000'000, 60'000'000, 8000};
  p.download_bps = 200'000'000;
  p.download_adaptive = ir::Adaptive{20'000'000, 200'000'000, 200'000'000, 5000};
  Diagnostics d;
  CodegenOptions o;
  o.source_text = "x";
  auto g = generate_c(p, o, d);
  ASSERT_TRUE(g) << d.str();
  const Manifest& m = g->manifest;
  EXPECT_EQ(m.link_bps, 100'000'000u);
  EXPECT_EQ(m.link_adaptive, (ManifestAdaptive{10'000'000, 100'000'000, 60'000'000, 8000}));
  EXPECT_EQ(m.download_bps, 200'000'000u);
  EXPECT_EQ(m.ifb_link_bps(), 200'000'000u);
  EXPECT_EQ(m.download_adaptive, (ManifestAdaptive{20'000'000, 200'000'000, 200'000'000, 5000}));
  const nlohmann::json j = to_json(m);
  EXPECT_EQ(j["link_adaptive"], nlohmann::json::parse(
      R"({"min_bps":10000000,"max_bps":100000000,"start_bps":60000000,"delay_us":8000})"));
  auto back = manifest_from_json(j);
  EXPECT_EQ(back.link_adaptive, m.link_adaptive);
  EXPECT_EQ(back.download_adaptive, m.download_adaptive);
  EXPECT_EQ(back.download_bps, m.download_bps);

  p.link_adaptive.reset();
  p.download_adaptive.reset();
  p.download_bps = 0;
  auto plain = generate_c(p, o, d);
  ASSERT_TRUE(plain) << d.str();
  const nlohmann::json pj = to_json(plain->manifest);
  for (const char* key : {"link_adaptive", "download_bps", "download_adaptive"}) EXPECT_FALSE(pj.contains(key)) << key;
  EXPECT_EQ(plain->manifest.ifb_link_bps(), 100'000'000u);
}

// ---------------------------------------------------------------- compile + load

bool have_clang() { return std::system("command -v clang-19 >/dev/null 2>&1") == 0; }

std::optional<CompiledPolicy> build(const ir::Policy& p, Diagnostics& d, Strategy s = Strategy::Auto) {
  CodegenOptions o;
  o.source_text = "text of " + p.name;
  o.strategy = s;
  return compile_policy(p, o, d);
}

// Loads through qosrun's loader, which also fills the maps strategy's tables.
std::optional<qosrun::LoadedPolicy> load(const CompiledPolicy& c, std::string* err) {
  auto r = qosrun::LoadedPolicy::load_memory(c.object, "test.bpf.o");
  if (!r) {
    *err = r.error().message + "\n" + r.error().detail.substr(0, 2000);
    return std::nullopt;
  }
  return std::move(r).value();
}

TEST(Compile, RandomPoliciesCompileAndCarryManifest) {
  if (!have_clang()) GTEST_SKIP() << "needs clang-19";
  std::mt19937_64 rng(5);
  for (int iter = 0; iter < 6; ++iter) {
    auto p = cgtest::random_ir(rng, {.rules = size_t(1 + iter * 7), .classes = 3, .narrow = iter % 2 == 0});
    if (iter == 3) p.scheduler.kind = ir::SchedKind::Pifo;
    Diagnostics d;
    auto c = build(p, d);
    ASSERT_TRUE(c) << d.str();
    std::string err;
    auto m = read_manifest(c->object, &err);
    ASSERT_TRUE(m) << err;
    EXPECT_EQ(to_json(*m), to_json(c->manifest));
    EXPECT_EQ(m->source_sha256, sha256_hex("text of random"));
    EXPECT_EQ(m->rule_count, p.rules.size());
  }
}

// Every object compile_policy returns is sealed, the maps strategy's tables
// under the seal: the digest is the last thing written.
TEST(Compile, ObjectsAreSealedWithTheirDigestLast) {
  if (!have_clang()) GTEST_SKIP() << "needs clang-19";
  std::mt19937_64 rng(6);
  auto p = cgtest::random_ir(rng, {.rules = 12, .classes = 3});
  for (Strategy strat : {Strategy::Tree, Strategy::Maps}) {
    Diagnostics d;
    auto c = build(p, d, strat);
    ASSERT_TRUE(c) << d.str();
    EXPECT_EQ(check_object_digest(c->object).verdict, DigestVerdict::Intact) << to_string(strat);
    std::string err;
    auto sections = object_sections(c->object, &err);
    ASSERT_TRUE(sections) << err;
    EXPECT_EQ(sections->back().name, kDigestSection);
    if (strat != Strategy::Maps) continue;
    auto tables = std::find_if(sections->begin(), sections->end(), [](const auto& s) { return s.name == QOS_TABLES_SECTION; });
    ASSERT_NE(tables, sections->end());
    auto damaged = c->object;
    damaged[tables->offset + tables->size / 2] ^= 0x04;
    EXPECT_EQ(check_object_digest(damaged).verdict, DigestVerdict::Mismatch);
  }
}

// Clang's messages map back to the policy: an error inside a rule's
// condition (emitted under #line) is reported on that rule's line; one in
// other generated code names the generated file and line.
// Small trees and the maps code are inlined into both programs (a BPF call
// costs more than the classification); large trees keep global subprograms.
TEST(Compile, SmallClassifiersAreInlinedLargeTreesAreNot) {
  std::mt19937_64 rng(12);
  auto small = cgtest::random_ir(rng, {.rules = 10, .classes = 3, .narrow = true});
  auto large = cgtest::random_ir(rng, {.rules = 600, .classes = 8, .narrow = false, .specific = true});
  auto text = [](const ir::Policy& p, Strategy s, std::optional<bool> inl = std::nullopt) {
    CodegenOptions o;
    o.strategy = s;
    o.inline_subprograms = inl;
    Diagnostics d;
    auto g = generate_c(p, o, d);
    EXPECT_TRUE(g) << d.str();
    return g ? g->text : std::string();
  };
  const std::string global = "__noinline int qos_classify(";
  EXPECT_EQ(text(small, Strategy::Tree).find(global), std::string::npos);
  EXPECT_EQ(text(small, Strategy::Maps).find(global), std::string::npos);
  EXPECT_EQ(text(large, Strategy::Maps).find(global), std::string::npos);
  EXPECT_NE(text(large, Strategy::Tree).find(global), std::string::npos);
  EXPECT_NE(text(small, Strategy::Tree, false).find(global), std::string::npos);
}

// The C generated for `pol` with default options ("" and a test failure when it fails).
std::string generated_c(const ir::Policy& pol) {
  CodegenOptions o;
  o.source_text = "x";
  Diagnostics d;
  auto g = generate_c(pol, o, d);
  EXPECT_TRUE(g) << d.str();
  return g ? g->text : std::string();
}

// `set dscp`: a case per class that has it in the TC program only; a policy
// without it generates the same C as if the attribute did not exist (same
// text with the field set and cleared on a copy).
TEST(Compile, SetDscpCodeOnlyForClassesThatHaveIt) {
  std::mt19937_64 rng(21);
  auto p = cgtest::random_ir(rng, {.rules = 10, .classes = 3, .narrow = true});
  const std::string plain = generated_c(p);
  EXPECT_EQ(plain.find("qos_set_dscp"), std::string::npos);
  EXPECT_EQ(plain.find("QOS_SET_DSCP"), std::string::npos);
  EXPECT_EQ(plain.find("qos_dscp.h"), std::string::npos);
  ir::Policy q = p;
  q.classes[1].set_dscp = 46;
  const std::string marked = generated_c(q);
  EXPECT_NE(marked.find("#define QOS_SET_DSCP 1"), std::string::npos);
  EXPECT_NE(marked.find("#include \"qos_dscp.h\""), std::string::npos);
  EXPECT_NE(marked.find("case 1: qos_set_dscp(ctx, p, 46);"), std::string::npos) << marked;
  // Once, in the TC program (XDP never rewrites).
  const size_t at = marked.find("qos_set_dscp(ctx");
  EXPECT_EQ(marked.find("qos_set_dscp(ctx", at + 1), std::string::npos);
  EXPECT_GT(at, marked.find("int qos_tc("));
  q.classes[1].set_dscp.reset();
  EXPECT_EQ(generated_c(q), plain);
}

// The probe bypass is generated only for an adaptive policy (link or
// download), in both programs, before classification; without one the C is
// exactly what it was (same text with the fields set and cleared on a copy).
// The flow table takes one sample per 16 x 2 KB by default (QOS_FLOW_SAMPLE,
// the manifest's flow_sample); 1 (every packet) when asked, without a flow table, or when a PIFO rank reads
// the flow's counters (it needs every packet counted).
TEST(Manifest, FlowSampleFromOptionsAndRank) {
  std::mt19937_64 rng(31);
  auto p = cgtest::random_ir(rng, {.rules = 10, .classes = 3, .narrow = true});
  p.scheduler = ir::Scheduler{};
  p.scheduler.kind = ir::SchedKind::StrictPriority;
  auto sample = [&](const ir::Policy& pol, const CodegenOptions& o, std::string* c) {
    Diagnostics d;
    auto g = generate_c(pol, o, d);
    EXPECT_TRUE(g) << d.str();
    if (!g) return 0u;
    *c = g->text;
    return g->manifest.flow_sample;
  };
  CodegenOptions o;
  o.source_text = "x";
  std::string c;
  EXPECT_EQ(sample(p, o, &c), 16u);
  EXPECT_NE(c.find("#define QOS_FLOW_SAMPLE 16"), std::string::npos);
  EXPECT_NE(c.find("f = qos_flow_sampled(pkt.len, &fw) ? qos_flow_update(p, cls, QOS_HOOK_XDP, qos_coarse_now(), "
                   "&fw) : 0;  /* one sample per 32768 bytes */"),
            std::string::npos);
  o.flow_sample = 1;
  EXPECT_EQ(sample(p, o, &c), 1u);
  EXPECT_EQ(c.find("QOS_FLOW_SAMPLE"), std::string::npos);
  EXPECT_NE(c.find("f = qos_flow_sampled(pkt.len, &fw) ? qos_flow_update(p, cls, QOS_HOOK_XDP, now, &fw) : 0;"),
            std::string::npos);
  o.flow_sample = 16;
  o.flow_entries = 0;
  EXPECT_EQ(sample(p, o, &c), 1u);
  o.flow_entries = 16384;
  p.scheduler.kind = ir::SchedKind::Pifo;
  p.scheduler.rank = ir::RankExpr{};
  p.scheduler.rank.op = ir::RankExpr::Op::Field;
  p.scheduler.rank.field = ir::RankField::FlowBytes;
  EXPECT_EQ(sample(p, o, &c), 1u) << "a rank on flow.bytes needs exact counts";
  p.scheduler.rank.field = ir::RankField::PktLen;
  EXPECT_EQ(sample(p, o, &c), 16u);
}

TEST(Compile, ProbeBypassOnlyForAdaptivePolicies) {
  std::mt19937_64 rng(22);
  auto p = cgtest::random_ir(rng, {.rules = 10, .classes = 3, .narrow = true});
  const std::string plain = generated_c(p);
  for (const char* s : {"QOS_PROBES", "qos_probe.h", "qos_is_probe"}) EXPECT_EQ(plain.find(s), std::string::npos) << s;
  for (bool download : {false, true}) {
    ir::Policy q = p;
    (download ? q.download_adaptive : q.link_adaptive) = ir::Adaptive{1000, q.link_bps, q.link_bps, 5000};
    if (download) q.download_bps = q.link_bps;
    const std::string c = generated_c(q);
    EXPECT_NE(c.find("#define QOS_PROBES 1"), std::string::npos);
    EXPECT_NE(c.find("#include \"qos_probe.h\""), std::string::npos);
    const size_t xdp = c.find("int qos_xdp("), tc = c.find("int qos_tc(");
    ASSERT_NE(xdp, std::string::npos);
    ASSERT_NE(tc, std::string::npos);
    const size_t in_xdp = c.find("if (qos_is_probe(data, data_end, p))", xdp);
    const size_t in_tc = c.find("if (qos_is_probe((void *)(long)ctx->data, (void *)(long)ctx->data_end, p))", tc);
    ASSERT_NE(in_xdp, std::string::npos) << c.substr(xdp, 800);
    ASSERT_NE(in_tc, std::string::npos) << c.substr(tc, 800);
    EXPECT_LT(in_xdp, c.find("qos_classify(p);", xdp)) << "probes pass before classification";
    EXPECT_LT(in_tc, c.find("qos_classify(p);", tc));
    EXPECT_NE(c.find("ctx->priority = QOS_HTB_MAJOR << 16;  /* 1:0", tc), std::string::npos) << "the direct queue";
  }
}

// `hosts`: the qos_hosts map and one lookup in the TC program only, after
// the class is chosen, around the root-leaf choice; the manifest carries the
// plans and the hosts line. Without hosts the C is exactly what it was (same
// text with the fields set and cleared on a copy).
TEST(Compile, HostLookupOnlyForPoliciesWithHosts) {
  std::mt19937_64 rng(23);
  auto p = cgtest::random_ir(rng, {.rules = 10, .classes = 3, .narrow = true});
  const std::string plain = generated_c(p);
  for (const char* s : {"QOS_HOSTS", "qos_hosts", "qos_host_choose", "\"plans\"", "\\\"plans\\\""})
    EXPECT_EQ(plain.find(s), std::string::npos) << s;
  for (bool dst : {false, true})
    for (bool nat : {false, true}) {
      ir::Policy q = p;
      q.plans.push_back({"basic", 10'000'000, 0, 0, {}, {}});
      q.plans.push_back({"premium", 50'000'000, 100'000'000, 200 * 1024, {q.default_class}, {}});
      q.hosts = ir::Hosts{dst, nat};
      const std::string c = generated_c(q);
      EXPECT_NE(c.find("#define QOS_HOSTS 1"), std::string::npos);
      EXPECT_EQ(c.find("#define QOS_HOSTS_DADDR 1") != std::string::npos, dst);
      EXPECT_EQ(c.find("#define QOS_HOSTS_NAT 1") != std::string::npos, nat);
      EXPECT_NE(c.find("#include \"qos_hosts.h\""), std::string::npos);
      const size_t tc = c.find("int qos_tc(");
      const size_t at = c.find("if (!qos_host_choose(ctx, p, cls)) {");
      ASSERT_NE(at, std::string::npos) << c.substr(tc);
      EXPECT_GT(at, tc) << "TC only";
      EXPECT_EQ(c.find("qos_host_choose(", at + 8), std::string::npos) << "one lookup";
      EXPECT_LT(c.find("cls = pkt.best", tc), at) << "after the class is chosen";
      EXPECT_LT(at, c.find("ctx->priority = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + cls);", tc));
      EXPECT_LT(at, c.find("ctx->cb[QOS_CB_CLASS]", tc));
      CodegenOptions o;
      o.source_text = "x";
      Diagnostics d;
      auto g = generate_c(q, o, d);
      ASSERT_TRUE(g) << d.str();
      const Manifest& m = g->manifest;
      ASSERT_EQ(m.plans.size(), 2u);
      EXPECT_EQ(m.plans[1], (ManifestPlan{"premium", 50'000'000, 100'000'000, 200 * 1024, {q.default_class}}));
      ASSERT_TRUE(m.hosts);
      // The steering program (qosrun attach --steer-from): only without nat, whose host XDP cannot see.
      EXPECT_EQ(*m.hosts, (ManifestHosts{dst ? "daddr" : "saddr", nat, "qos_hosts", nat ? "" : "qos_steer"}));
      EXPECT_EQ(c.find("int qos_steer(struct xdp_md *ctx)") != std::string::npos, !nat) << c;
      const Manifest back = manifest_from_json(to_json(m));   // what qosrun reads
      EXPECT_EQ(back.plans, m.plans);
      EXPECT_EQ(back.hosts, m.hosts);
    }
  ir::Policy q = p;
  q.plans.push_back({"basic", 10'000'000, 0, 0, {}, {}});
  q.hosts = ir::Hosts{true, false};
  ASSERT_NE(generated_c(q), plain);
  q.plans.clear();
  q.hosts.reset();
  EXPECT_EQ(generated_c(q), plain);
}

TEST(Compile, ClangErrorsMapToThePolicyLine) {
  if (!have_clang()) GTEST_SKIP() << "needs clang-19";
  std::mt19937_64 rng(8);
  auto p = cgtest::random_ir(rng, {.rules = 6, .classes = 3, .narrow = true});
  for (size_t i = 0; i < p.rules.size(); ++i) p.rules[i].loc = {uint32_t(10 + i), 5};
  Diagnostics d;
  CodegenOptions o;
  o.source_name = "mine.qos";
  o.strategy = Strategy::Tree;
  auto g = generate_c(p, o, d);
  ASSERT_TRUE(g) << d.str();
  // Break the first rule condition that carries a #line into the policy.
  std::string text = g->text;
  size_t at = text.find("#line ");
  while (at != std::string::npos && text.compare(text.find('"', at), 10, "\"mine.qos\"") != 0) at = text.find("#line ", at + 1);
  ASSERT_NE(at, std::string::npos) << "no rule condition under #line";
  const uint32_t line = uint32_t(std::stoul(text.substr(at + 6)));
  size_t cond = text.find('\n', at) + 1;
  text.insert(text.find("if (", cond) + 4, "undeclared_thing + ");
  Diagnostics d1;
  EXPECT_FALSE(compile_generated_c(text, "mine.qos", d1));
  ASSERT_TRUE(d1.has_errors());
  EXPECT_EQ(d1.all().front().loc.line, line) << d1.str();
  EXPECT_NE(d1.all().front().message.find("generated for this rule"), std::string::npos) << d1.str();
  EXPECT_NE(d1.all().front().message.find("undeclared_thing"), std::string::npos) << d1.str();
  // An error outside any rule: reported with the generated location.
  std::string text2 = g->text + "\nint broken(void) { return nope; }\n";
  Diagnostics d2;
  EXPECT_FALSE(compile_generated_c(text2, "mine.qos", d2));
  ASSERT_TRUE(d2.has_errors());
  EXPECT_FALSE(d2.all().front().loc.valid()) << d2.str();
  ASSERT_FALSE(d2.all().front().notes.empty());
  EXPECT_NE(d2.all().front().notes.front().message.find("qos_gen.c:"), std::string::npos) << d2.str();
}

// Test-run one frame through both programs; returns {xdp class or -1 drop, tc class or -1 drop}.
struct RunResult { int xdp = -2, tc = -2; int xdp_meta = -2; };

RunResult run_frame(bpf_object* obj, const std::vector<uint8_t>& frame, uint32_t nclasses, bool pifo) {
  RunResult r;
  auto* xdp = bpf_object__find_program_by_name(obj, "qos_xdp");
  auto* tc = bpf_object__find_program_by_name(obj, "qos_tc");
  std::vector<uint8_t> out(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, xo, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(out.size()), .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(xdp), &xo) != 0) {
    ADD_FAILURE() << "xdp test run failed: " << std::strerror(errno);
    return r;
  }
  if (xo.retval == 1 /*XDP_DROP*/) r.xdp = -1;
  else if (xo.retval == 2 /*XDP_PASS*/) {
    r.xdp = 0;
    qos_meta m;
    if (xo.data_size_out >= frame.size() + sizeof(m)) {
      std::memcpy(&m, out.data(), sizeof(m));
      if (m.magic == QOS_META_MAGIC) r.xdp_meta = m.class_id;
    }
  }
  __sk_buff skb{};

  __sk_buff skb_out{};
  LIBBPF_OPTS(bpf_test_run_opts, to, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(out.size()), .ctx_in = &skb,
              .ctx_out = &skb_out, .ctx_size_in = sizeof(skb), .ctx_size_out = sizeof(skb_out), .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(tc), &to) != 0) {
    ADD_FAILURE() << "tc test run failed: " << std::strerror(errno);
    return r;
  }
  if (to.retval == 2 /*TC_ACT_SHOT*/) r.tc = -1;
  else if (to.retval == 0) {
    uint32_t minor = skb_out.priority & 0xffff;
    if ((skb_out.priority >> 16) == QOS_HTB_MAJOR && minor >= QOS_HTB_MINOR_BASE &&
        (pifo || minor < QOS_HTB_MINOR_BASE + nclasses))
      r.tc = int(minor - QOS_HTB_MINOR_BASE);
  }
  return r;
}

TEST(Kernel, RandomPoliciesLoadAndAgreeWithInterpreter) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: loads BPF programs";
  if (!have_clang()) GTEST_SKIP() << "needs clang-19";
  std::mt19937_64 rng(6);
  for (int iter = 0; iter < 8; ++iter) {
    auto p = cgtest::random_ir(rng, {.rules = size_t(2 + iter * 9), .classes = 4, .narrow = true});
    for (auto& c : p.classes) c.rate_bps = 0;  // no policing here: classes only
    for (Strategy strat : {Strategy::Tree, Strategy::Maps}) {
      Diagnostics d;
      auto c = build(p, d, strat);
      ASSERT_TRUE(c) << d.str();
      EXPECT_EQ(c->strategy, to_string(strat));
      EXPECT_EQ(c->manifest.tables_section.empty(), strat == Strategy::Tree);
      std::string err;
      auto l = load(*c, &err);
      ASSERT_TRUE(l) << "iteration " << iter << " " << to_string(strat) << ": " << err;
      for (int k = 0; k < 60; ++k) {
        auto f = cgtest::random_fields(rng, p);
        auto frame = cgtest::build_frame(f, k % 7 == 0);
        auto ref = parse_packet(frame);
        int want = classify(p, ref);
        auto got = run_frame(l->object(), frame, uint32_t(p.classes.size()), false);
        ASSERT_EQ(got.tc, want) << to_string(ref) << " iter " << iter << " " << to_string(strat);
        if (want == ir::kDrop) {
          EXPECT_EQ(got.xdp, -1);
        } else {
          EXPECT_EQ(got.xdp, 0);
          EXPECT_EQ(got.xdp_meta, want) << to_string(ref);
        }
      }
    }
  }
}

// The XDP metadata is a load-time switch: on for test runs (classify, the
// tests), off as qosrun attach loads it, and then the verifier removes the
// helper call instead of skipping it per packet.
TEST(Kernel, XdpMetadataIsALoadTimeSwitch) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: loads BPF programs";
  std::mt19937_64 rng(11);
  auto p = cgtest::random_ir(rng, {.rules = 12, .classes = 4, .narrow = true});
  for (auto& c : p.classes) c.rate_bps = 0;
  Diagnostics d;
  auto c = build(p, d);
  ASSERT_TRUE(c) << d.str();
  uint32_t xlated[2] = {0, 0};
  for (bool meta : {true, false}) {
    qosrun::LoadOptions lo;
    lo.xdp_meta = meta;
    auto l = qosrun::LoadedPolicy::load_memory(c->object, "meta.bpf.o", lo);
    ASSERT_TRUE(l) << l.error().message;
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(l->prog_fd(qosrun::Hook::Xdp), &info, &len), 0);
    xlated[meta] = info.xlated_prog_len;
    int passed = 0;
    for (int k = 0; k < 40; ++k) {
      auto frame = cgtest::build_frame(cgtest::random_fields(rng, p), false);
      const int want = classify(p, parse_packet(frame));
      auto got = run_frame(l->object(), frame, uint32_t(p.classes.size()), false);
      ASSERT_EQ(got.tc, want);
      if (want == ir::kDrop) continue;
      ++passed;
      EXPECT_EQ(got.xdp, 0);
      EXPECT_EQ(got.xdp_meta, meta ? want : -2) << "meta " << meta;
    }
    EXPECT_GT(passed, 0);
  }
  EXPECT_LT(xlated[false], xlated[true]) << "with the switch off the metadata code should be gone";
}

}  // namespace

namespace {
// Larger policies verify and still agree. QOSC_SCALE_RULES=n1,n2,... overrides
// the sizes and QOSC_SCALE_STRATEGY=tree|maps|auto the strategy (measurements).
TEST(Kernel, LargePoliciesVerifyAndAgree) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: loads BPF programs";
  if (!have_clang()) GTEST_SKIP() << "needs clang-19";
  struct Case { size_t n; Strategy s; };
  std::vector<Case> cases = {{256, Strategy::Tree}, {700, Strategy::Tree}, {1024, Strategy::Auto}, {4096, Strategy::Maps},
                             {16384, Strategy::Maps}};
  if (const char* e = std::getenv("QOSC_SCALE_RULES")) {
    Strategy s = Strategy::Auto;
    if (const char* st = std::getenv("QOSC_SCALE_STRATEGY")) s = strategy_from_string(st).value_or(Strategy::Auto);
    cases.clear();
    for (std::string str = e; !str.empty();) {
      size_t c = str.find(',');
      cases.push_back({std::stoul(str.substr(0, c)), s});
      str = c == std::string::npos ? "" : str.substr(c + 1);
    }
  }
  std::mt19937_64 rng(7);
  for (auto [n, strat] : cases) {
    auto p = cgtest::random_ir(rng, {.rules = n, .classes = 8, .narrow = false, .specific = true});
    for (auto& c : p.classes) c.rate_bps = 0;
    Diagnostics d;
    auto t0 = std::chrono::steady_clock::now();
    auto c = build(p, d, strat);
    ASSERT_TRUE(c) << d.str();
    auto t1 = std::chrono::steady_clock::now();
    std::string err;
    auto l = load(*c, &err);
    ASSERT_TRUE(l) << n << " rules (" << c->strategy << "): " << err;
    auto t2 = std::chrono::steady_clock::now();
    std::printf("rules=%zu strategy=%s C=%zu KiB generate=%.0f ms compile=%.0f ms load=%.0f ms object=%zu KiB\n", n,
                c->strategy.c_str(), c->c_source.size() / 1024, c->generate_ms, c->compile_ms,
                std::chrono::duration<double, std::milli>(t2 - t1).count(), c->object.size() / 1024);
    (void)t0;
    for (int k = 0; k < 300; ++k) {
      auto f = cgtest::random_fields(rng, p);
      auto frame = cgtest::build_frame(f, false);
      auto ref = parse_packet(frame);
      auto got = run_frame(l->object(), frame, uint32_t(p.classes.size()), false);
      ASSERT_EQ(got.tc, classify(p, ref)) << to_string(ref) << " rules " << n << " " << c->strategy;
    }
  }
}
}  // namespace
