// What the TC program of a policy with `plan`s and `hosts` does, in the
// kernel (BPF_PROG_TEST_RUN): with qos_hosts filled as qosrun fills it
// (qos_abi.h "hosts and plans": IPv4 prefixes IPv4-mapped), a packet of a
// listed host gets the host's leaf (skb->priority, skb->cb[QOS_CB_HOST]), the
// default class's leaf for a class its plan lacks, and skips `isolate`; a
// packet of no listed host is classified as without hosts, with
// cb[QOS_CB_HOST] = 0. The HTB tree the leaves name is qosrun's (docs/hosts.md).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
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

constexpr uint32_t kGame = 0, kWeb = 1, kBulk = 2;   // class ids, declaration order

// Ethernet + IPv4 or IPv6 + UDP or TCP (`proto` 17 or 6) from src to dst:dport.
std::vector<uint8_t> frame(const std::string& src, const std::string& dst, uint8_t proto, uint16_t dport) {
  const bool v6 = src.find(':') != std::string::npos;
  const size_t l4 = proto == 6 ? 20 : 8, l3 = v6 ? 40 : 20, payload = 32;
  std::vector<uint8_t> f(14 + l3 + l4 + payload, 0);
  const uint8_t eth[] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, uint8_t(v6 ? 0x86 : 0x08), uint8_t(v6 ? 0xdd : 0x00)};
  std::copy(std::begin(eth), std::end(eth), f.begin());
  uint8_t* ip = f.data() + 14;
  if (v6) {
    ip[0] = 0x60;
    ip[4] = uint8_t((l4 + payload) >> 8), ip[5] = uint8_t(l4 + payload);
    ip[6] = proto, ip[7] = 64;
    inet_pton(AF_INET6, src.c_str(), ip + 8);
    inet_pton(AF_INET6, dst.c_str(), ip + 24);
  } else {
    ip[0] = 0x45;
    ip[2] = uint8_t((l3 + l4 + payload) >> 8), ip[3] = uint8_t(l3 + l4 + payload);
    ip[8] = 64, ip[9] = proto;
    inet_pton(AF_INET, src.c_str(), ip + 12);
    inet_pton(AF_INET, dst.c_str(), ip + 16);
  }
  uint8_t* t = ip + l3;
  t[0] = 0xc3, t[1] = 0x50;   // sport 50000
  t[2] = uint8_t(dport >> 8), t[3] = uint8_t(dport);
  if (proto == 6) t[12] = 5 << 4;
  else t[4] = uint8_t((l4 + payload) >> 8), t[5] = uint8_t(l4 + payload);
  return f;
}

// A prefix as qosrun stores it: IPv4 as ::ffff:a.b.c.d with 96 + len.
qos_host_key host_key(const std::string& prefix) {
  qos_host_key k{};
  const std::string addr = prefix.substr(0, prefix.find('/'));
  const uint32_t len = uint32_t(std::stoul(prefix.substr(prefix.find('/') + 1)));
  if (addr.find(':') != std::string::npos) {
    inet_pton(AF_INET6, addr.c_str(), k.addr);
    k.prefixlen = len;
  } else {
    k.addr[10] = k.addr[11] = 0xff;
    inet_pton(AF_INET, addr.c_str(), k.addr + 12);
    k.prefixlen = 96 + len;
  }
  return k;
}

struct Host {
  std::string prefix;
  qos_host_val val;
};

// Host n's leaves live in group HTB 0x2000 + n at minors 0x100 * (n + 1) + class.
qos_host_val host_val(uint32_t n, uint64_t class_mask, uint16_t queue) {
  qos_host_val v{};
  v.outer_classid = (QOS_HTB_MAJOR << 16) | (0x8000 + n);
  v.group_major = uint16_t(0x2000 + n);
  v.minor_base = uint16_t(0x100 * (n + 1));
  v.class_mask = class_mask;
  v.default_leaf = kBulk;
  v.queue = queue;
  v.host_id = 100 + n;
  return v;
}

constexpr uint64_t kEvery = 0b111, kPremium = (1u << kGame) | (1u << kBulk);   // premium lacks web

struct Outcome {
  // (skb->queue_mapping is not here: a test run does not return it.)
  uint32_t retval = 0, priority = 0, host = 0, cls = 0;
};

class Hosts : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!qosrun::can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  }

  // Compiles and loads the policy with `hosts_line` (and `bulk_attr` in class
  // bulk), and fills qos_hosts with `hosts`.
  void load(const std::string& hosts_line, const std::vector<Host>& hosts, const std::string& bulk_attr = "") {
    const std::string text = "policy hosts_t {\n  link 1gbit;\n  class game { priority 0; }\n  class web { priority 2; }\n"
                             "  class bulk { priority 4; " + bulk_attr + " default; }\n"
                             "  rule udp dport 27015 -> game;\n  rule tcp dport 443 -> web;\n"
                             "  plan basic { rate 10mbit; }\n  plan premium { rate 50mbit; classes game, bulk; }\n  " +
                             hosts_line + "\n}\n";
    std::string error;
    auto compiled = qosc::difftest::compile_text("hosts_t.qos", text, &error);
    ASSERT_TRUE(compiled) << error;
    auto opened = qosrun::LoadedPolicy::open_memory(compiled->object, "hosts_t.bpf.o", {});
    ASSERT_TRUE(opened) << opened.error().message;
    policy_.emplace(std::move(*opened));
    if (hosts_line.find(" nat") != std::string::npos) {
      ASSERT_NO_FATAL_FAILURE(set_conntrack_offset());
    }
    auto loaded = policy_->load();
    ASSERT_TRUE(loaded) << loaded.error().message << "\n" << loaded.error().detail.substr(0, 3000);
    bpf_map* m = bpf_object__find_map_by_name(policy_->object(), "qos_hosts");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(bpf_map__type(m), BPF_MAP_TYPE_LPM_TRIE);
    EXPECT_EQ(bpf_map__max_entries(m), uint32_t(QOS_HOST_PREFIXES));
    EXPECT_EQ(bpf_map__map_flags(m) & BPF_F_NO_PREALLOC, uint32_t(BPF_F_NO_PREALLOC));
    for (const auto& h : hosts) {
      qos_host_key k = host_key(h.prefix);
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(m), &k, &h.val, BPF_ANY), 0) << h.prefix << ": " << std::strerror(errno);
    }
  }

  // `hosts ... nat` reads conntrack's original source at qos_cfg.ct_src_off,
  // which the loader must set from the kernel's BTF as it does for `isolate
  // ... nat` (qos_ct.h); set here the way it does, so that this test checks
  // the program whatever the loader's state.
  void set_conntrack_offset() {
    bpf_map* cfg = bpf_object__find_map_by_name(policy_->object(), QOS_CFG_SECTION);
    ASSERT_NE(cfg, nullptr);
    size_t size = 0;
    const void* init = bpf_map__initial_value(cfg, &size);
    ASSERT_TRUE(init && size == sizeof(qos_cfg));
    qos_cfg c;
    std::memcpy(&c, init, sizeof c);
    auto off = qosrun::conntrack_source_offset();
    ASSERT_TRUE(off) << off.error().message;
    c.ct_src_off = *off;
    ASSERT_EQ(bpf_map__set_initial_value(cfg, &c, sizeof c), 0);
  }

  Outcome run(const std::vector<uint8_t>& f) {
    Outcome o;
    auto r = qosrun::test_run(policy_->prog_fd(Hook::Tc), Hook::Tc, f);
    EXPECT_TRUE(r) << r.error().message;
    if (!r) return o;
    __sk_buff ctx{};
    std::memcpy(&ctx, r->ctx_out.data(), std::min(r->ctx_out.size(), sizeof ctx));
    o.retval = r->retval;
    o.priority = ctx.priority;
    o.host = ctx.cb[QOS_CB_HOST];
    o.cls = ctx.cb[QOS_CB_CLASS] & 0xffff;
    return o;
  }

  std::optional<qosrun::LoadedPolicy> policy_;
};

uint32_t root_leaf(uint32_t cls) { return (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + cls); }
uint32_t host_leaf(const qos_host_val& v, uint32_t leaf) { return (uint32_t(v.group_major) << 16) | (v.minor_base + leaf); }

// IPv4 and IPv6 hosts of several prefix lengths, `hosts daddr`: each packet
// to a host goes to the host's leaf of its class; a class the plan lacks
// goes to the default class's leaf; every other packet (just outside a
// prefix, non-IP, or from a host rather than to it) goes to its class as
// without hosts, with cb[QOS_CB_HOST] = 0.
TEST_F(Hosts, DaddrPicksTheHostsLeafAndMissesClassifyAsWithoutHosts) {
  const std::vector<Host> hosts = {
      {"10.1.0.0/16", host_val(0, kEvery, 3)},
      {"10.2.3.4/32", host_val(1, kPremium, QOS_HOST_ANY_QUEUE)},
      {"2001:db8:1::/48", host_val(2, kEvery, 1)},
      {"2001:db8:2::5/128", host_val(3, kPremium, 0)},
  };
  ASSERT_NO_FATAL_FAILURE(load("hosts daddr;", hosts));
  struct Case {
    std::string src, dst;
    uint8_t proto;
    uint16_t dport;
    int host;        // index into hosts, -1: no listed host
    uint32_t cls, leaf;
  };
  const Case cases[] = {
      {"192.0.2.1", "10.1.200.7", 17, 27015, 0, kGame, kGame},
      {"192.0.2.1", "10.1.0.1", 6, 443, 0, kWeb, kWeb},
      {"192.0.2.1", "10.1.255.255", 6, 80, 0, kBulk, kBulk},
      {"192.0.2.1", "10.2.3.4", 17, 27015, 1, kGame, kGame},
      {"192.0.2.1", "10.2.3.4", 6, 443, 1, kWeb, kBulk},   // premium lacks web: the default class's leaf
      {"192.0.2.1", "10.2.3.5", 6, 443, -1, kWeb, 0},      // next to the /32
      {"192.0.2.1", "10.0.255.255", 17, 27015, -1, kGame, 0},   // next to the /16
      {"10.1.0.1", "192.0.2.1", 17, 27015, -1, kGame, 0},  // from a host, not to it
      {"2001:db8::9", "2001:db8:1:ffff::1", 6, 443, 2, kWeb, kWeb},
      {"2001:db8::9", "2001:db8:2::5", 6, 443, 3, kWeb, kBulk},
      {"2001:db8::9", "2001:db8:2::6", 17, 27015, -1, kGame, 0},
      {"2001:db8::9", "2001:db8:3::1", 6, 443, -1, kWeb, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.src + " > " + c.dst + ":" + std::to_string(c.dport));
    Outcome o = run(frame(c.src, c.dst, c.proto, c.dport));
    EXPECT_EQ(o.retval, uint32_t(TC_ACT_OK));
    EXPECT_EQ(o.cls, c.cls) << "cb[QOS_CB_CLASS] keeps the packet's class either way";
    if (c.host < 0) {
      EXPECT_EQ(o.priority, root_leaf(c.cls));
      EXPECT_EQ(o.host, 0u);
      continue;
    }
    const qos_host_val& v = hosts[size_t(c.host)].val;
    EXPECT_EQ(o.priority, v.outer_classid);
    EXPECT_EQ(o.host, host_leaf(v, c.leaf));
  }
  // A non-IP frame (ARP) is no host's.
  std::vector<uint8_t> arp(60, 0);
  arp[0] = 0xff, arp[12] = 0x08, arp[13] = 0x06;
  Outcome o = run(arp);
  EXPECT_EQ(o.priority, root_leaf(kBulk));
  EXPECT_EQ(o.host, 0u);
}

// `hosts saddr`: the source names the host; the same packets the other way
// round miss.
TEST_F(Hosts, SaddrLooksUpTheSource) {
  const std::vector<Host> hosts = {{"10.1.0.0/16", host_val(0, kPremium, 2)}, {"2001:db8:1::/48", host_val(1, kEvery, 0)}};
  ASSERT_NO_FATAL_FAILURE(load("hosts saddr;", hosts));
  Outcome o = run(frame("10.1.2.3", "192.0.2.1", 6, 443));
  EXPECT_EQ(o.priority, hosts[0].val.outer_classid);
  EXPECT_EQ(o.host, host_leaf(hosts[0].val, kBulk)) << "premium lacks web";
  o = run(frame("10.1.2.3", "192.0.2.1", 17, 27015));
  EXPECT_EQ(o.host, host_leaf(hosts[0].val, kGame));
  o = run(frame("2001:db8:1::7", "2001:db8::9", 6, 443));
  EXPECT_EQ(o.priority, hosts[1].val.outer_classid);
  EXPECT_EQ(o.host, host_leaf(hosts[1].val, kWeb));
  o = run(frame("192.0.2.1", "10.1.2.3", 6, 443));
  EXPECT_EQ(o.priority, root_leaf(kWeb));
  EXPECT_EQ(o.host, 0u);
}

// The host's leaf replaces `isolate`'s sub-queue choice: a host's packet of
// an isolated class goes to the host's leaf, and leaves cb[QOS_CB_SUBQ] alone;
// a packet of no listed host is isolated as before.
TEST_F(Hosts, AHostsPacketSkipsIsolation) {
  const std::vector<Host> hosts = {{"10.1.0.0/16", host_val(0, kEvery, QOS_HOST_ANY_QUEUE)}};
  ASSERT_NO_FATAL_FAILURE(load("hosts daddr;", hosts, "isolate flows 8;"));
  auto r = qosrun::test_run(policy_->prog_fd(Hook::Tc), Hook::Tc, frame("192.0.2.1", "10.1.0.9", 6, 80));
  ASSERT_TRUE(r) << r.error().message;
  __sk_buff ctx{};
  std::memcpy(&ctx, r->ctx_out.data(), std::min(r->ctx_out.size(), sizeof ctx));
  EXPECT_EQ(ctx.priority, hosts[0].val.outer_classid);
  EXPECT_EQ(ctx.cb[QOS_CB_HOST], host_leaf(hosts[0].val, kBulk));
  EXPECT_EQ(ctx.cb[QOS_CB_SUBQ], 0u) << "no sub-queue chosen";
  Outcome o = run(frame("192.0.2.1", "10.9.0.9", 6, 80));
  EXPECT_EQ(o.host, 0u);
  EXPECT_TRUE(o.priority == root_leaf(kBulk) || o.priority == ((QOS_HTB_MAJOR << 16) | (QOS_HTB_SPARSE_BASE + kBulk)))
      << std::hex << o.priority;
}

// `hosts daddr nat` verifies and loads (conntrack's kfuncs); a packet
// conntrack has no entry for is looked up by its own address.
TEST_F(Hosts, NatWithoutAConntrackEntryUsesThePacketsAddress) {
  const std::vector<Host> hosts = {{"10.1.0.0/16", host_val(0, kEvery, QOS_HOST_ANY_QUEUE)}};
  ASSERT_NO_FATAL_FAILURE(load("hosts daddr nat;", hosts));
  Outcome o = run(frame("192.0.2.1", "10.1.0.9", 17, 27015));
  EXPECT_EQ(o.priority, hosts[0].val.outer_classid);
  EXPECT_EQ(o.host, host_leaf(hosts[0].val, kGame));
  o = run(frame("192.0.2.1", "10.3.0.9", 17, 27015));
  EXPECT_EQ(o.host, 0u);
}

}  // namespace
