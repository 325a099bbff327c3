// What the TC program of an isolated class decides, in the kernel
// (BPF_PROG_TEST_RUN): which sub-queue each flow or host gets (skb->cb,
// qos_abi.h "isolation"), that two active flows never share one while
// there is room, that a newcomer past the slot count shares and is counted,
// and that a flow's first packets are sparse and its bulk is not. The wire
// tests (tests/wire/isolation_wire_test.cpp) measure what the queues then do.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pipeline.hpp"
#include "qos_abi.h"
#include "qosrun/classify.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/testrun.hpp"

namespace {

using qosrun::Hook;

// Ethernet + IPv4 + UDP from 10.9.(src >> 8).(src & 255):sport to 10.0.0.2:5000, `payload` bytes.
std::vector<uint8_t> udp_frame(uint16_t src, uint16_t sport, size_t payload) {
  const size_t total = 20 + 8 + payload;
  std::vector<uint8_t> f(14 + total, 0);
  const uint8_t head[] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  std::copy(std::begin(head), std::end(head), f.begin());
  f[14] = 0x45;
  f[16] = static_cast<uint8_t>(total >> 8), f[17] = static_cast<uint8_t>(total);
  f[22] = 64, f[23] = 17;
  f[26] = 10, f[27] = 9, f[28] = static_cast<uint8_t>(src >> 8), f[29] = static_cast<uint8_t>(src);
  f[30] = 10, f[31] = 0, f[32] = 0, f[33] = 2;
  f[34] = static_cast<uint8_t>(sport >> 8), f[35] = static_cast<uint8_t>(sport);
  f[36] = 0x13, f[37] = 0x88;
  f[38] = static_cast<uint8_t>((8 + payload) >> 8), f[39] = static_cast<uint8_t>(8 + payload);
  return f;
}

struct Loaded {
  std::optional<qosrun::LoadedPolicy> policy;
  std::string error;
};

Loaded load(const std::string& attr) {
  Loaded l;
  const std::string text = "policy iso_t {\n  link 100mbit;\n  class game { priority 0; }\n  class bulk { priority 4; " +
                           attr + " default; }\n  rule udp dport 27015 -> game;\n}\n";
  auto compiled = qosc::difftest::compile_text("iso_t.qos", text, &l.error);
  if (!compiled) return l;
  auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, "iso_t.bpf.o", {});
  if (!loaded) {
    l.error = loaded.error().message;
    return l;
  }
  l.policy = std::move(*loaded);
  return l;
}

qos_iso_counters counters(const qosrun::LoadedPolicy& p, uint32_t cls) {
  qos_iso_counters sum{};
  bpf_map* m = bpf_object__find_map_by_name(p.object(), "qos_iso_stats");
  if (!m) return sum;
  std::vector<qos_iso_counters> per(static_cast<size_t>(libbpf_num_possible_cpus()));
  if (bpf_map_lookup_elem(bpf_map__fd(m), &cls, per.data()) != 0) return sum;
  for (const auto& c : per) {
    sum.claims += c.claims;
    sum.overflows += c.overflows;
    sum.sparse += c.sparse;
  }
  return sum;
}

constexpr uint32_t kBulkLeaf = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + 1);
constexpr uint32_t kBulkSparse = (QOS_HTB_MAJOR << 16) | (QOS_HTB_SPARSE_BASE + 1);

class Isolation : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!qosrun::can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  }
};

// Eight flows in a class of eight slots: eight different sub-queues, each
// flow always the same one; its first packets are sparse, its bulk is not.
TEST_F(Isolation, EveryActiveFlowHasASubQueueOfItsOwn) {
  Loaded l = load("isolate flows 8;");
  ASSERT_TRUE(l.policy) << l.error;
  qosrun::TestRunner run(*l.policy);
  std::map<uint16_t, std::set<uint32_t>> queues;   // sport -> sub-queues seen (bulk packets)
  std::map<uint16_t, int> sparse;
  for (int round = 0; round < 12; ++round) {
    for (uint16_t f = 0; f < 8; ++f) {
      auto v = run.run(Hook::Tc, udp_frame(1, static_cast<uint16_t>(1000 + f), 1400));
      ASSERT_TRUE(v) << v.error().message;
      ASSERT_EQ(v->class_id, 1);
      EXPECT_EQ(v->subqueue >> 16, QOS_HTB_MINOR_BASE + 1u) << "the bulk class's nested HTB";
      if (v->priority == kBulkSparse) {
        ++sparse[f];
        continue;
      }
      EXPECT_EQ(v->priority, kBulkLeaf);
      queues[f].insert(v->subqueue);
    }
  }
  std::set<uint32_t> all;
  for (uint16_t f = 0; f < 8; ++f) {
    ASSERT_EQ(queues[f].size(), 1u) << "flow " << f << " moved between sub-queues";
    all.insert(*queues[f].begin());
    EXPECT_GE(sparse[f], 1) << "a flow's first packet is sparse";
    EXPECT_LE(sparse[f], 4) << "a flow of full frames back to back is bulk after its tolerance";
  }
  EXPECT_EQ(all.size(), 8u) << "two active flows share a sub-queue";
  auto c = counters(*l.policy, 1);
  EXPECT_EQ(c.claims, 8u);
  EXPECT_EQ(c.overflows, 0u);
}

// A ninth flow in a class of eight slots shares one, and the class counts it.
TEST_F(Isolation, PastTheSlotCountANewcomerSharesAndIsCounted) {
  Loaded l = load("isolate flows 8;");
  ASSERT_TRUE(l.policy) << l.error;
  qosrun::TestRunner run(*l.policy);
  std::set<uint32_t> first8;
  for (uint16_t f = 0; f < 8; ++f) {
    for (int i = 0; i < 6; ++i) {
      auto v = run.run(Hook::Tc, udp_frame(1, static_cast<uint16_t>(1000 + f), 1400));
      ASSERT_TRUE(v) << v.error().message;
      first8.insert(v->subqueue);
    }
  }
  ASSERT_EQ(first8.size(), 8u);
  auto v = run.run(Hook::Tc, udp_frame(1, 2000, 1400));
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_TRUE(first8.count(v->subqueue)) << "the newcomer got a queue that does not exist";
  auto c = counters(*l.policy, 1);
  EXPECT_EQ(c.claims, 8u);
  EXPECT_EQ(c.overflows, 1u);
}

// isolate saddr with 2 flows per host: a host's flows share its host
// sub-queue in the class's HTB and get their own in the host's HTB
// (cb[QOS_CB_SUBQ + 1]); different hosts get different host sub-queues.
TEST_F(Isolation, HostsAndTheirFlowsGetTheirOwnSubQueues) {
  Loaded l = load("isolate saddr 4 flows 2;");
  ASSERT_TRUE(l.policy) << l.error;
  const auto& iso = l.policy->manifest().classes.at(1).isolate;
  ASSERT_TRUE(iso);
  qosrun::TestRunner run(*l.policy);
  std::map<std::pair<uint16_t, uint16_t>, uint32_t> host_q;   // (host, flow) -> class-level sub-queue
  for (int round = 0; round < 6; ++round)
    for (uint16_t h = 0; h < 3; ++h)
      for (uint16_t f = 0; f < 2; ++f) {
        auto v = run.run(Hook::Tc, udp_frame(h, static_cast<uint16_t>(3000 + f), 1400));
        ASSERT_TRUE(v) << v.error().message;
        if (v->priority == kBulkSparse) continue;
        host_q[std::make_pair(h, f)] = v->subqueue;
      }
  ASSERT_EQ(host_q.size(), 6u);
  auto q = [&](uint16_t h, uint16_t f) { return host_q[std::make_pair(h, f)]; };
  for (uint16_t h = 0; h < 3; ++h) EXPECT_EQ(q(h, 0), q(h, 1)) << "host " << h << "'s flows";
  EXPECT_NE(q(0, 0), q(1, 0));
  EXPECT_NE(q(1, 0), q(2, 0));
  EXPECT_NE(q(0, 0), q(2, 0));
  // The flow level: ask the kernel for cb[2] of one more bulk packet per flow.
  for (uint16_t h = 0; h < 3; ++h) {
    std::set<uint32_t> flow_q;
    for (uint16_t f = 0; f < 2; ++f) {
      auto raw = qosrun::test_run(l.policy->prog_fd(Hook::Tc), Hook::Tc, udp_frame(h, static_cast<uint16_t>(3000 + f), 1400), 1, true);
      ASSERT_TRUE(raw) << raw.error().message;
      __sk_buff ctx{};
      std::memcpy(&ctx, raw->ctx_out.data(), std::min(raw->ctx_out.size(), sizeof ctx));
      const uint32_t host_slot = (ctx.cb[QOS_CB_SUBQ] & 0xffffu) - QOS_ISO_MINOR_BASE;
      EXPECT_EQ(ctx.cb[QOS_CB_SUBQ + 1] >> 16, iso->host_major + host_slot) << "the host's own HTB";
      flow_q.insert(ctx.cb[QOS_CB_SUBQ + 1]);
    }
    EXPECT_EQ(flow_q.size(), 2u) << "host " << h << "'s two flows share a flow queue";
  }
}

}  // namespace

namespace {

// clang 19 crashed (in the BPF backend) when one process compiled a policy
// with `isolate ... nat` twice while the template read nf_conn's fields with
// CO-RE; the read now goes through qos_cfg.ct_src_off (qos_abi.h). qosc test
// and the differential test compile many policies in one process.
TEST(IsolationCompile, NatPolicyCompilesTwiceInOneProcess) {
  const std::string text =
      "policy t { link 40mbit; class a { priority 0; } class b { isolate saddr nat; default; } "
      "rule udp dport 5 -> a; }";
  for (int k = 0; k < 3; ++k) {
    std::string err;
    EXPECT_TRUE(qosc::difftest::compile_text("t.qos", text, &err)) << err;
  }
}

// The loader finds where nf_conn keeps a connection's original source.
TEST(IsolationCompile, ConntrackSourceOffsetFromTheKernelsBtf) {
  auto off = qosrun::conntrack_source_offset();
  if (!off && off.error().message.find("no struct nf_conn") != std::string::npos)
    GTEST_SKIP() << off.error().message;
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_GT(*off, 0u);
  EXPECT_LT(*off, 4096u);
}

}  // namespace
