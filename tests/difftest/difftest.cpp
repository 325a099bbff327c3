// The differential test: for random policies and random/adversarial packets,
// the class the compiled program picks in the kernel (BPF_PROG_TEST_RUN, XDP
// and TC) must equal the reference interpreter's answer
// (qosc::classify(policy, qosc::parse_packet(frame))) every time.
//
// Scale with the environment (the CI default runs in about two minutes):
//   QOSC_DIFFTEST_POLICIES  number of random policies       (default 100; every 25th is large)
//   QOSC_DIFFTEST_PACKETS   random packets per policy        (default 400)
//   QOSC_DIFFTEST_SWEEPS    frames per policy cut at every length (default 2)
//   QOSC_DIFFTEST_SEED      base seed                        (default 20261124)
//   QOSC_DIFFTEST_ONLY      run only policy number N (to reproduce a failure)
//   QOSC_DIFFTEST_EMIT_C    write the generated C (policy.bpf.c, ...) into this directory
// The long run (docs/testing.md):
//   QOSC_DIFFTEST_POLICIES=2000 QOSC_DIFFTEST_PACKETS=3000 build/tests/difftest/difftest
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "packet_gen.hpp"
#include "qosc/codegen.hpp"
#include "pipeline.hpp"
#include "qosc/packet.hpp"
#include "qosrun/classify.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/testrun.hpp"

namespace fs = std::filesystem;
using namespace qosc::difftest;
using qosrun::Hook;

namespace {

uint64_t env_u64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  unsigned long long x = std::strtoull(v, &end, 0);
  return (end && *end == '\0') ? x : def;
}

// The end of a long text (a verifier log says why at its end).
std::string tail(const std::string& s, size_t n) { return s.size() <= n ? s : "..." + s.substr(s.size() - n); }

std::string class_label(const qosc::ir::Policy& p, int32_t id) {
  if (id < 0) return "drop";
  if (static_cast<size_t>(id) < p.classes.size()) return fmt::format("{} ({})", p.classes[static_cast<size_t>(id)].name, id);
  return fmt::format("class #{}", id);
}

// Compares one frame on both hooks; prints a full report for a mismatch.
class Checker {
 public:
  Checker(const qosc::ir::Policy& ir, const qosrun::LoadedPolicy& loaded, std::string policy_text, std::string tag)
      : ir_(ir), runner_(loaded), text_(std::move(policy_text)), tag_(std::move(tag)) {}

  void check(const std::vector<uint8_t>& frame, const std::string& desc) {
    const qosc::PacketFields fields = qosc::parse_packet(frame);
    const int32_t want = qosc::classify(ir_, fields);
    for (Hook hook : {Hook::Xdp, Hook::Tc}) {
      if (hook == Hook::Tc && !tc_testable(frame)) {
        ++tc_skipped_;
        continue;
      }
      ++runs_;
      auto v = runner_.run(hook, frame);
      std::string got, why;
      bool ok = false;
      if (!v) {
        got = "error";
        why = v.error().message;
      } else if (!v->attributed) {
        got = "drop (neither a drop rule nor a policer counted it)";
      } else {
        ok = v->class_id == want;
        got = class_label(ir_, v->class_id);
        if (v->policed) got += ", dropped by its policer";
        // TC: the bytes the program sent must be the reference's egress frame
        // (`set dscp` rewritten, everything else as it came).
        if (ok && hook == Hook::Tc && v->pass) {
          const std::vector<uint8_t> expect = qosc::egress_frame(ir_, frame);
          if (v->frame_out != expect) {
            ok = false;
            got += fmt::format(", but the frame it sent differs from the reference's:\n  sent:\n{}\n  expected:\n{}",
                               hex(v->frame_out), hex(expect));
          } else if (expect != frame) {
            ++rewritten_;
          }
        }
      }
      if (ok) continue;
      ++mismatches_;
      if (mismatches_ > kPrintLimit) continue;
      std::ostringstream os;
      os << "MISMATCH " << tag_ << " hook " << qosrun::to_string(hook) << ": compiled program says " << got
         << ", reference says " << class_label(ir_, want);
      if (!why.empty()) os << "\n  error: " << why;
      os << "\n  frame (" << frame.size() << " bytes, " << desc << "):\n" << hex(frame)
         << "\n  reference fields: " << qosc::to_string(fields) << "\n  first matching rule (reference): "
         << qosc::first_match(ir_, fields);
      if (!printed_policy_) {
        os << "\n  policy:\n" << text_;
        printed_policy_ = true;
      }
      ADD_FAILURE() << os.str();
    }
  }
  size_t runs() const { return runs_; }
  size_t rewritten() const { return rewritten_; }
  size_t tc_skipped() const { return tc_skipped_; }

  // This kernel (6.18) refuses skb test runs whose EtherType is IPv4 / IPv6
  // but whose frame is too short for the minimal IP header (EINVAL); such
  // frames are checked on the XDP hook only. (TC egress never sees them: the
  // stack builds its packets.)
  static bool tc_testable(const std::vector<uint8_t>& f) {
    if (f.size() < 14) return false;
    const unsigned type = unsigned(f[12]) << 8 | f[13];
    if (type == 0x0800) return f.size() >= 14 + 20;
    if (type == 0x86dd) return f.size() >= 14 + 40;
    return true;
  }
  size_t mismatches() const { return mismatches_; }

 private:
  static constexpr size_t kPrintLimit = 4;
  const qosc::ir::Policy& ir_;
  qosrun::TestRunner runner_;
  std::string text_, tag_;
  size_t runs_ = 0, mismatches_ = 0, tc_skipped_ = 0, rewritten_ = 0;
  bool printed_policy_ = false;
};

#define NEED_BPF()                                                                                  \
  do {                                                                                              \
    if (!qosrun::can_load_bpf()) GTEST_SKIP() << "needs root: loads compiled policies into the kernel"; \
  } while (0)

}  // namespace

TEST(Difftest, RandomPoliciesAgreeWithTheReference) {
  NEED_BPF();
  const uint64_t policies = env_u64("QOSC_DIFFTEST_POLICIES", 100);
  const uint64_t packets = env_u64("QOSC_DIFFTEST_PACKETS", 400);
  const uint64_t sweeps = env_u64("QOSC_DIFFTEST_SWEEPS", 2);
  const uint64_t seed = env_u64("QOSC_DIFFTEST_SEED", 20261124);
  const uint64_t only = env_u64("QOSC_DIFFTEST_ONLY", UINT64_MAX);
  const auto t0 = std::chrono::steady_clock::now();
  size_t runs = 0, mismatches = 0, bad_policies = 0, checked = 0, tc_skipped = 0, rewritten = 0;
  for (uint64_t i = 0; i < policies; ++i) {
    if (only != UINT64_MAX && i != only) continue;
    const uint64_t pseed = seed * 1000003u + i;
    std::mt19937_64 prng(pseed);
    // Mostly small policies, sometimes larger ones (other code paths), and
    // every 25th a large one of specific rules (thousands of live rules: the
    // maps strategy with several summary words; the tree would take too long
    // to compile, so it runs with maps only).
    const bool large = i % 25 == 24;
    const size_t rules = large ? 1000 + prng() % 7000 : (i % 10 == 9) ? 40 + prng() % 200 : 1 + prng() % 24;
    const std::string text = large ? large_policy_text(prng, rules) : random_policy_text(prng, rules);
    const std::string tag = fmt::format("policy {} (QOSC_DIFFTEST_SEED={} QOSC_DIFFTEST_ONLY={})", i, seed, i);
    // Every policy under both strategies: the decision tree and the maps
    // (bit vectors filled at load), with the same packets. Every other policy
    // keeps its classifier in global subprograms (what large trees get)
    // instead of the default, inlined into both programs.
    const bool globals = i % 2 == 1;
    for (qosc::Strategy strat : {qosc::Strategy::Tree, qosc::Strategy::Maps}) {
      if (large && strat == qosc::Strategy::Tree) continue;
      const std::string stag = fmt::format("{} [{}{}]", tag, qosc::to_string(strat), globals ? ", subprograms" : "");
      std::string error;
      PipelineOptions popts;
      popts.strategy = strat;
      if (globals) popts.inline_subprograms = false;
      if (const char* dir = std::getenv("QOSC_DIFFTEST_EMIT_C")) popts.emit_c_dir = dir;
      auto compiled = compile_text(fmt::format("random{}.qos", i), text, &error, popts);
      if (!compiled) {
        ++bad_policies;
        ADD_FAILURE() << stag << ": the generated policy does not compile:\n" << error << "\npolicy:\n" << text;
        continue;
      }
      auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, fmt::format("random{}.bpf.o", i));
      if (!loaded) {
        ++bad_policies;
        ADD_FAILURE() << stag << ": the kernel refused the compiled policy: " << loaded.error().message << "\npolicy:\n"
                      << (text.size() > 20000 ? text.substr(0, 20000) + "...\n" : text) << "\n"
                      << tail(loaded.error().detail, 4000);
        continue;
      }
      ++checked;
      if (large)
        std::cerr << fmt::format("{}: {} rules, {} ({:.2f} s to compile)\n", stag, compiled->ir.rules.size(),
                                 compiled->strategy, compiled->compile_seconds);
      Checker checker(compiled->ir, *loaded, text, stag);
      PacketGen gen(compiled->ir, pseed ^ 0x9e3779b97f4a7c15ull);
      for (uint64_t k = 0; k < packets; ++k) {
        auto f = gen.next();
        checker.check(f, gen.description());
      }
      // Every truncation length of a few frames.
      for (uint64_t s = 0; s < sweeps; ++s) {
        auto f = gen.next();
        const std::string desc = gen.description();
        for (size_t len = qosrun::kMinTestFrame; len <= f.size(); ++len)
          checker.check(std::vector<uint8_t>(f.begin(), f.begin() + static_cast<long>(len)),
                        fmt::format("{} | swept to {}/{}", desc, len, f.size()));
      }
      runs += checker.runs();
      tc_skipped += checker.tc_skipped();
      rewritten += checker.rewritten();
      mismatches += checker.mismatches();
      if (checker.mismatches())
        std::cerr << fmt::format("{}: {} mismatches in {} runs\n", stag, checker.mismatches(), checker.runs());
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << fmt::format(
      "difftest: {} objects (policies x strategies) compiled and loaded ({} failed), {} packet runs (XDP + TC), "
      "{} mismatches, {} short frames XDP only, {} frames rewritten by set dscp (TC output = reference), seed {}, {:.1f} s\n",
      checked, bad_policies, runs, mismatches, tc_skipped, rewritten, seed, secs);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(bad_policies, 0u);
}

// `set dscp`: on random frames whose IPv4 header checksums are made valid
// first, the TC program's output is the reference's egress frame, has the set
// DSCP, keeps the ECN bits, and its IPv4 header checksum (options included)
// still verifies. IPv4 with and without options, IPv6, VLAN tags all seen.
TEST(Difftest, SetDscpRewritesDscpKeepsEcnAndChecksums) {
  NEED_BPF();
  const std::string text = R"(policy d {
    link 1gbit;
    class voice { set dscp ef; }
    class wash  { set dscp 0; }
    class video { set dscp af41; }
    class keep  { default; }
    rule udp dport 1-2000 -> voice;
    rule tcp -> wash;
    rule ip6 -> video;
    rule ip saddr 10.0.0.0/8 -> video;
}
)";
  for (qosc::Strategy strat : {qosc::Strategy::Tree, qosc::Strategy::Maps}) {
    std::string error;
    PipelineOptions popts;
    popts.strategy = strat;
    auto compiled = compile_text("dscp.qos", text, &error, popts);
    ASSERT_TRUE(compiled) << error;
    auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, "dscp.bpf.o");
    ASSERT_TRUE(loaded) << loaded.error().message << "\n" << tail(loaded.error().detail, 4000);
    qosrun::TestRunner runner(*loaded);
    PacketGen gen(compiled->ir, 77);
    size_t v4 = 0, v4_options = 0, v6 = 0, vlan = 0, washed = 0, ecn_set = 0, unchanged = 0;
    for (int k = 0; k < 6000; ++k) {
      std::vector<uint8_t> f = gen.next();
      if (!Checker::tc_testable(f)) continue;
      // Make the IPv4 header checksum valid (the generator's is random).
      const qosc::PacketFields pf = qosc::parse_packet(f);
      size_t l3 = 14;
      while (pf.ip && (f[l3 - 2] << 8 | f[l3 - 1]) != 0x0800 && (f[l3 - 2] << 8 | f[l3 - 1]) != 0x86dd) l3 += 4;
      if (pf.ip && pf.family == qosc::ir::Family::V4) {
        f[l3 + 10] = f[l3 + 11] = 0;
        uint32_t sum = 0;
        for (size_t i = 0; i < size_t(f[l3] & 0x0f) * 4; i += 2) sum += uint32_t(f[l3 + i] << 8 | f[l3 + i + 1]);
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        f[l3 + 10] = uint8_t(~sum >> 8);
        f[l3 + 11] = uint8_t(~sum);
        ASSERT_TRUE(qosc::ipv4_checksum_ok(f));
      }
      auto v = runner.run(Hook::Tc, f);
      ASSERT_TRUE(v) << v.error().message;
      ASSERT_TRUE(v->pass);
      const int32_t cls = qosc::classify(compiled->ir, pf);
      ASSERT_EQ(v->class_id, cls) << hex(f);
      ASSERT_EQ(v->frame_out, qosc::egress_frame(compiled->ir, f)) << gen.description() << "\n" << hex(f);
      const auto& c = compiled->ir.classes[size_t(cls)];
      if (!pf.ip || !c.set_dscp) {
        EXPECT_EQ(v->frame_out, f);
        ++unchanged;
        continue;
      }
      EXPECT_EQ(qosrun::frame_dscp(v->frame_out), *c.set_dscp) << hex(f);
      const auto ecn = [&](const std::vector<uint8_t>& b) {
        return pf.family == qosc::ir::Family::V4 ? b[l3 + 1] & 3 : (b[l3 + 1] >> 4) & 3;
      };
      EXPECT_EQ(ecn(v->frame_out), ecn(f)) << hex(f);
      ecn_set += ecn(f) != 0;
      EXPECT_TRUE(qosc::ipv4_checksum_ok(v->frame_out)) << hex(f) << "\n" << hex(v->frame_out);
      if (pf.family == qosc::ir::Family::V4) {
        ++v4;
        v4_options += (f[l3] & 0x0f) > 5;
      } else {
        ++v6;
      }
      vlan += l3 > 14;
      washed += *c.set_dscp == 0 && pf.dscp != 0;
    }
    std::cerr << fmt::format("set dscp [{}]: rewritten IPv4 {} ({} with options), IPv6 {}, VLAN-tagged {}, washed {}, "
                             "ECN set {}; left unchanged {}\n",
                             qosc::to_string(strat), v4, v4_options, v6, vlan, washed, ecn_set, unchanged);
    EXPECT_GT(v4_options, 20u);
    EXPECT_GT(v4 - v4_options, 20u);
    EXPECT_GT(v6, 20u);
    EXPECT_GT(vlan, 20u);
    EXPECT_GT(washed, 20u);
    EXPECT_GT(ecn_set, 20u);
  }
}

// Every example policy compiles, passes the verifier on both hooks, and
// classifies generated packets as the reference does.
TEST(Difftest, ExamplesLoadAndClassify) {
  NEED_BPF();
  const fs::path dir = QOSC_EXAMPLES_DIR;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && (e.path().extension() == ".qos" || e.path().extension() == ".json"))
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) GTEST_SKIP() << "no example policies in " << dir;
  for (const auto& path : files) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    for (qosc::Strategy strat : {qosc::Strategy::Auto, qosc::Strategy::Tree, qosc::Strategy::Maps}) {
      const std::string tag = fmt::format("{} [{}]", path.filename().string(), qosc::to_string(strat));
      std::string error;
      PipelineOptions popts;
      popts.strategy = strat;
      auto compiled = compile_text(path.filename().string(), ss.str(), &error, popts);
      if (!compiled) {
        ADD_FAILURE() << tag << " does not compile:\n" << error;
        continue;
      }
      auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, path.filename().string() + ".bpf.o");
      if (!loaded) {
        ADD_FAILURE() << tag << ": " << loaded.error().message;
        continue;
      }
      EXPECT_GE(loaded->prog_fd(Hook::Xdp), 0);
      EXPECT_GE(loaded->prog_fd(Hook::Tc), 0);
      Checker checker(compiled->ir, *loaded, ss.str(), tag);
      PacketGen gen(compiled->ir, 7);
      for (int k = 0; k < 300; ++k) {
        auto f = gen.next();
        checker.check(f, gen.description());
      }
      EXPECT_EQ(checker.mismatches(), 0u) << tag;
    }
  }
}
