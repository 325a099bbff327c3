// The generator is only useful if it reaches the corners: check, through the
// reference parser, that every kind of packet the contract distinguishes is
// produced, and that policy constants make rules match. No kernel needed.
#include <gtest/gtest.h>

#include <map>

#include "packet_gen.hpp"
#include "qosc/packet.hpp"

using namespace qosc;

namespace {

ir::Policy sample_policy() {
  ir::Policy p;
  p.name = "sample";
  p.classes.resize(3);
  for (uint32_t i = 0; i < 3; ++i) {
    p.classes[i].id = i;
    p.classes[i].name = "c" + std::to_string(i);
  }
  p.classes[2].is_default = true;
  p.default_class = 2;
  ir::Rule r0;   // udp dport 3074-3075 -> c0
  r0.index = 0;
  r0.protos.emplace();
  r0.protos->set(17);
  r0.dport = ir::PortSet{{3074, 3075}};
  r0.target = 0;
  ir::Rule r1;   // ip6 saddr 2001:db8::/32 -> c1
  r1.index = 1;
  r1.family = ir::Family::V6;
  ir::AddrMatch a;
  a.family = ir::Family::V6;
  ir::Prefix pre;
  pre.family = ir::Family::V6;
  pre.addr = {0x20, 0x01, 0x0d, 0xb8};
  pre.len = 32;
  a.prefixes.push_back(pre);
  r1.addrs.push_back(a);
  r1.target = 1;
  ir::Rule r2;   // ip saddr 192.168.1.0/24 tcp dport 22 -> drop
  r2.index = 2;
  r2.family = ir::Family::V4;
  r2.protos.emplace();
  r2.protos->set(6);
  r2.dport = ir::PortSet{{22, 22}};
  ir::AddrMatch b;
  ir::Prefix p4;
  p4.addr = {192, 168, 1, 0};
  p4.len = 24;
  b.prefixes.push_back(p4);
  r2.addrs.push_back(b);
  r2.target = ir::kDrop;
  p.rules = {r0, r1, r2};
  return p;
}

}  // namespace

TEST(PacketGen, ReachesEveryKindOfPacketAndEveryRule) {
  const ir::Policy policy = sample_policy();
  difftest::PacketGen gen(policy, 1);
  std::map<std::string, int> seen;
  std::map<int, int> rule_hits;
  for (int i = 0; i < 20000; ++i) {
    auto f = gen.next();
    ASSERT_GE(f.size(), 14u);
    const PacketFields pf = parse_packet(f);
    const std::string& d = gen.description();
    if (!pf.ip) seen["non-IP"]++;
    if (pf.ip && pf.family == ir::Family::V4) seen["IPv4"]++;
    if (pf.ip && pf.family == ir::Family::V6) seen["IPv6"]++;
    if (pf.ip && pf.proto < 0) seen["IPv6, protocol unknown (long or cut chain)"]++;
    if (pf.ip && (pf.proto == 6 || pf.proto == 17) && pf.l4) seen["TCP/UDP with ports"]++;
    if (pf.ip && (pf.proto == 6 || pf.proto == 17) && !pf.l4) seen["TCP/UDP without ports"]++;
    if (pf.ip && d.find("vlan[") != std::string::npos) seen["IP behind VLAN tags"]++;
    if (pf.ip && d.find("ihl=") != std::string::npos && d.find("ihl=5 ") == std::string::npos) seen["IPv4 options"]++;
    if (pf.ip && d.find("frag off=") != std::string::npos) seen["IPv4 non-first fragment"]++;
    if (pf.ip && d.find("44:off=0") != std::string::npos) seen["IPv6 fragment offset 0"]++;
    if (pf.ip && d.find(",") != std::string::npos && d.find("ext[") != std::string::npos) seen["IPv6 chain of 2+"]++;
    if (d.find("cut ") != std::string::npos) seen["truncated"]++;
    rule_hits[first_match(policy, pf)]++;
  }
  for (const char* k : {"non-IP", "IPv4", "IPv6", "IPv6, protocol unknown (long or cut chain)", "TCP/UDP with ports",
                        "TCP/UDP without ports", "IP behind VLAN tags", "IPv4 options", "IPv4 non-first fragment",
                        "IPv6 fragment offset 0", "IPv6 chain of 2+", "truncated"})
    EXPECT_GE(seen[k], 50) << k;
  // Rules are hit because addresses/ports come from the policy.
  for (int r = 0; r < 3; ++r) EXPECT_GE(rule_hits[r], 100) << "rule " << r;
  EXPECT_GE(rule_hits[-1], 1000) << "most packets match nothing";
}
