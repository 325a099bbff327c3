// The probes of an adaptive link in the kernel (BPF_PROG_TEST_RUN): qosrun's
// ICMP / ICMPv6 echo with identifier QOS_PROBE_ICMP_ID leave the TC program
// in HTB's direct queue (skb->priority = the qdisc's handle 1:0), counted in
// no class; the XDP program passes them even when their class's policer
// drops every other packet. Everything else, and every packet of a policy
// without an adaptive item, is classified as before.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
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

constexpr size_t kXdp = QOS_HOOK_XDP, kTc = QOS_HOOK_TC;   // counter indices
constexpr uint32_t kDirectQueue = QOS_HTB_MAJOR << 16;                          // 1:0
constexpr uint32_t kPingLeaf = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + 0);  // class 'ping' (id 0)

// Ethernet + IPv4 + an 8-byte ICMP-like header (type, code, checksum, then
// `id` at bytes 4-5) + 56 bytes of payload; `proto` 1 for ICMP.
std::vector<uint8_t> ipv4_frame(uint8_t proto, uint8_t type, uint16_t id, bool later_fragment = false) {
  const size_t total = 20 + 8 + 56;
  std::vector<uint8_t> f(14 + total, 0);
  const uint8_t eth[] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  std::copy(std::begin(eth), std::end(eth), f.begin());
  f[14] = 0x45;
  f[16] = uint8_t(total >> 8), f[17] = uint8_t(total);
  if (later_fragment) f[21] = 185;   // fragment offset 185 * 8 bytes
  f[22] = 64, f[23] = proto;
  f[26] = 10, f[27] = 9, f[28] = 0, f[29] = 1;
  f[30] = 10, f[31] = 9, f[32] = 0, f[33] = 2;
  f[34] = type;
  f[38] = uint8_t(id >> 8), f[39] = uint8_t(id);
  f[41] = 7;   // sequence number
  return f;
}

// Ethernet + IPv6 + ICMPv6 of `type` with identifier `id`.
std::vector<uint8_t> icmpv6_frame(uint8_t type, uint16_t id) {
  const size_t payload = 8 + 56;
  std::vector<uint8_t> f(14 + 40 + payload, 0);
  const uint8_t eth[] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd};
  std::copy(std::begin(eth), std::end(eth), f.begin());
  f[14] = 0x60;
  f[18] = uint8_t(payload >> 8), f[19] = uint8_t(payload);
  f[20] = 58, f[21] = 64;
  f[22] = 0x20, f[23] = 0x01, f[24] = 0x0d, f[25] = 0xb8, f[37] = 1;   // 2001:db8::1
  f[38] = 0x20, f[39] = 0x01, f[40] = 0x0d, f[41] = 0xb8, f[53] = 2;   // 2001:db8::2
  f[54] = type;
  f[58] = uint8_t(id >> 8), f[59] = uint8_t(id);
  return f;
}

// Class 'ping' (id 0) takes every ICMP and ICMPv6 packet and polices it to
// 8 kbit/s with a bucket smaller than one frame, so that XDP drops all but
// the first of a burst.
std::optional<qosrun::LoadedPolicy> load(const std::string& link, std::string* error) {
  const std::string text = "policy adaptive_t {\n  " + link +
                           "\n  class ping { priority 1; rate 8kbit; burst 100b; }\n  class bulk { priority 4; default; }\n"
                           "  rule icmp -> ping;\n  rule icmpv6 -> ping;\n}\n";
  auto compiled = qosc::difftest::compile_text("adaptive_t.qos", text, error);
  if (!compiled) return std::nullopt;
  auto loaded = qosrun::LoadedPolicy::load_memory(compiled->object, "adaptive_t.bpf.o", {});
  if (!loaded) {
    *error = loaded.error().message + "\n" + loaded.error().detail.substr(0, 2000);
    return std::nullopt;
  }
  return std::move(*loaded);
}

qosrun::ClassCounters ping_counters(const qosrun::LoadedPolicy& p) {
  auto c = qosrun::read_class_counters(p);
  EXPECT_TRUE(c) << c.error().message;
  return c && !c->empty() ? c->front() : qosrun::ClassCounters{};
}

// skb->priority the TC program left, or 0 with a test failure.
uint32_t tc_priority(const qosrun::LoadedPolicy& p, const std::vector<uint8_t>& frame) {
  auto raw = qosrun::test_run(p.prog_fd(Hook::Tc), Hook::Tc, frame, 1, true);
  EXPECT_TRUE(raw) << raw.error().message;
  if (!raw) return 0;
  EXPECT_EQ(int32_t(raw->retval), TC_ACT_OK);
  __sk_buff ctx{};
  std::memcpy(&ctx, raw->ctx_out.data(), std::min(raw->ctx_out.size(), sizeof ctx));
  return ctx.priority;
}

class AdaptiveProbes : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!qosrun::can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  }
};

TEST_F(AdaptiveProbes, TcSendsProbesToTheDirectQueueUncounted) {
  std::string error;
  auto p = load("link adaptive 10mbit-100mbit;", &error);
  ASSERT_TRUE(p) << error;
  const auto before = ping_counters(*p);
  EXPECT_EQ(tc_priority(*p, ipv4_frame(1, 8, QOS_PROBE_ICMP_ID)), kDirectQueue) << "ICMP echo request";
  EXPECT_EQ(tc_priority(*p, ipv4_frame(1, 0, QOS_PROBE_ICMP_ID)), kDirectQueue) << "ICMP echo reply";
  EXPECT_EQ(tc_priority(*p, icmpv6_frame(129, QOS_PROBE_ICMP_ID)), kDirectQueue) << "ICMPv6 echo reply";
  EXPECT_EQ(tc_priority(*p, icmpv6_frame(128, QOS_PROBE_ICMP_ID)), kDirectQueue) << "ICMPv6 echo request";
  const auto after = ping_counters(*p);
  EXPECT_EQ(after.packets[kTc], before.packets[kTc]) << "a probe was counted in class 'ping'";
  EXPECT_EQ(after.bytes[kTc], before.bytes[kTc]);
}

// Only the probes: another identifier, another ICMP type, a UDP packet with
// the identifier's bytes, a later fragment: classified (class 'ping', 1:10).
TEST_F(AdaptiveProbes, TcClassifiesEverythingElse) {
  std::string error;
  auto p = load("link adaptive 10mbit-100mbit;", &error);
  ASSERT_TRUE(p) << error;
  const auto before = ping_counters(*p);
  EXPECT_EQ(tc_priority(*p, ipv4_frame(1, 8, 0x1234)), kPingLeaf) << "echo request, another identifier";
  EXPECT_EQ(tc_priority(*p, ipv4_frame(1, 3, QOS_PROBE_ICMP_ID)), kPingLeaf) << "destination unreachable";
  EXPECT_EQ(tc_priority(*p, ipv4_frame(1, 8, QOS_PROBE_ICMP_ID, true)), kPingLeaf) << "a later fragment has no header";
  EXPECT_EQ(tc_priority(*p, icmpv6_frame(129, 0x51c1)), kPingLeaf) << "ICMPv6 echo reply, another identifier";
  EXPECT_EQ(tc_priority(*p, icmpv6_frame(8, QOS_PROBE_ICMP_ID)), kPingLeaf) << "type 8 is not an ICMPv6 echo";
  EXPECT_EQ(tc_priority(*p, ipv4_frame(17, 8, QOS_PROBE_ICMP_ID)), kDirectQueue + QOS_HTB_MINOR_BASE + 1)
      << "UDP (class 'bulk') with the identifier's bytes at the same place";
  EXPECT_EQ(ping_counters(*p).packets[kTc], before.packets[kTc] + 5);
}

// XDP: the class's policer drops the second echo of a burst; a probe right
// after it passes, and is neither counted nor charged to the bucket.
TEST_F(AdaptiveProbes, XdpPassesProbesTheirClassWouldPolice) {
  std::string error;
  auto p = load("link 100mbit;\n  download adaptive 20mbit-200mbit;", &error);
  ASSERT_TRUE(p) << error;
  qosrun::TestRunner run(*p);
  bool policed = false;
  for (int i = 0; i < 5 && !policed; ++i) {
    auto v = run.run(Hook::Xdp, ipv4_frame(1, 8, 0x1234));
    ASSERT_TRUE(v) << v.error().message;
    ASSERT_EQ(v->class_id, 0);
    policed = v->policed;
  }
  ASSERT_TRUE(policed) << "the policer of class 'ping' never dropped";
  const auto before = ping_counters(*p);
  for (const auto& probe : {ipv4_frame(1, 8, QOS_PROBE_ICMP_ID), icmpv6_frame(129, QOS_PROBE_ICMP_ID)}) {
    auto raw = qosrun::test_run(p->prog_fd(Hook::Xdp), Hook::Xdp, probe, 1, false);
    ASSERT_TRUE(raw) << raw.error().message;
    EXPECT_EQ(raw->retval, uint32_t(XDP_PASS));
  }
  const auto after = ping_counters(*p);
  EXPECT_EQ(after.packets[kXdp], before.packets[kXdp]);
  EXPECT_EQ(after.drop_policer[kXdp], before.drop_policer[kXdp]);
  auto v = run.run(Hook::Xdp, ipv4_frame(1, 8, 0x1234));
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_TRUE(v->policed) << "the probes must not have refilled or drained the bucket";
}

// What `qosrun classify` and `qosc test` read back: a probe is a pass without
// a class on both hooks, named "(probe)"; any other ping has its class.
TEST_F(AdaptiveProbes, TestRunnerNamesProbesWithoutAClass) {
  std::string error;
  auto p = load("link adaptive 10mbit-100mbit;", &error);
  ASSERT_TRUE(p) << error;
  qosrun::TestRunner run(*p);
  for (Hook hook : {Hook::Xdp, Hook::Tc}) {
    for (const auto& probe : {ipv4_frame(1, 8, QOS_PROBE_ICMP_ID), icmpv6_frame(129, QOS_PROBE_ICMP_ID)}) {
      auto v = run.run(hook, probe);
      ASSERT_TRUE(v) << qosrun::to_string(hook) << ": " << v.error().message;
      EXPECT_TRUE(v->pass && v->probe) << qosrun::to_string(hook);
      EXPECT_EQ(run.class_name(*v), "(probe)");
    }
    auto v = run.run(hook, ipv4_frame(1, 8, 0x1234));
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_FALSE(v->probe);
    EXPECT_EQ(run.class_name(*v), "ping") << qosrun::to_string(hook);
  }
}

// Without an adaptive item nothing changes: a probe is an ICMP packet like
// any other (the programs do not even look for it).
TEST_F(AdaptiveProbes, FixedLinkClassifiesProbesLikeAnyPing) {
  std::string error;
  auto p = load("link 100mbit;", &error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(tc_priority(*p, ipv4_frame(1, 8, QOS_PROBE_ICMP_ID)), kPingLeaf);
  EXPECT_EQ(tc_priority(*p, icmpv6_frame(129, QOS_PROBE_ICMP_ID)), kPingLeaf);
}

}  // namespace
