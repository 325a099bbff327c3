// The reference packet parser and interpreter against hand-computed
// expectations: every match kind, negation, VLAN, IPv4 options/fragments,
// IPv6 extension headers and fragments, truncation at every byte.
#include <gtest/gtest.h>

#include <vector>

#include "qosc/packet.hpp"

namespace qosc {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) { b.push_back(uint8_t(v >> 8)); b.push_back(uint8_t(v)); }

Bytes eth(uint16_t type, int vlans = 0, uint16_t tpid = 0x8100) {
  Bytes b = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  for (int i = 0; i < vlans; ++i) { put16(b, i == 0 ? tpid : 0x8100); put16(b, uint16_t(100 + i)); }
  put16(b, type);
  return b;
}

Bytes l4hdr(int proto, uint16_t sport, uint16_t dport) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  size_t n = proto == 6 ? 20 : proto == 17 ? 8 : 8;
  b.resize(n, 0);
  if (proto == 6) b[12] = 0x50;
  return b;
}

struct V4 {
  uint8_t src[4] = {10, 1, 2, 3}, dst[4] = {192, 168, 1, 7};
  uint8_t tos = 0, proto = 6;
  int ihl = 5;
  uint16_t frag = 0;  // offset in 8-byte units
  bool mf = false;
};

Bytes ipv4(const V4& v, const Bytes& payload) {
  Bytes b;
  b.push_back(uint8_t(0x40 | v.ihl));
  b.push_back(v.tos);
  put16(b, uint16_t(v.ihl * 4 + payload.size()));
  put16(b, 1);
  put16(b, uint16_t((v.mf ? 0x2000 : 0) | v.frag));
  b.push_back(64);
  b.push_back(v.proto);
  put16(b, 0);
  b.insert(b.end(), v.src, v.src + 4);
  b.insert(b.end(), v.dst, v.dst + 4);
  for (int i = 5; i < v.ihl; ++i) { b.push_back(1); b.push_back(1); b.push_back(1); b.push_back(1); }  // NOP options
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes ipv6(uint8_t nh, uint8_t tclass, const Bytes& payload, uint8_t last = 1) {
  Bytes b;
  b.push_back(uint8_t(0x60 | tclass >> 4));
  b.push_back(uint8_t(tclass << 4));
  put16(b, 0);
  put16(b, uint16_t(payload.size()));
  b.push_back(nh);
  b.push_back(64);
  uint8_t s[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
  uint8_t d[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2};
  s[15] = 1;
  d[15] = last;
  b.insert(b.end(), s, s + 16);
  b.insert(b.end(), d, d + 16);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// An IPv6 extension header of `kind` followed by next header `nh`.
Bytes ext(uint8_t kind, uint8_t nh, uint16_t frag_off = 0) {
  Bytes b = {nh, 0, 0, 0, 0, 0, 0, 0};
  if (kind == 44) {  // offset in 8-byte units, in the top 13 bits of bytes 2-3
    b[2] = uint8_t(frag_off >> 5);
    b[3] = uint8_t((frag_off << 3) & 0xf8);
  }
  if (kind == 43 || kind == 0 || kind == 60) { b[1] = 1; b.resize(16, 0); }  // 16 bytes: hdr ext len 1
  return b;
}

Bytes cat(Bytes a, const Bytes& b) { a.insert(a.end(), b.begin(), b.end()); return a; }

PacketFields parse(const Bytes& b) { return parse_packet(std::span<const uint8_t>(b.data(), b.size())); }

TEST(PacketParser, Ipv4TcpPlain) {
  auto p = parse(cat(eth(0x0800), ipv4({.tos = 46 << 2}, l4hdr(6, 1234, 80))));
  EXPECT_TRUE(p.ip);
  EXPECT_EQ(p.family, ir::Family::V4);
  EXPECT_EQ(p.proto, 6);
  EXPECT_TRUE(p.l4);
  EXPECT_EQ(p.sport, 1234);
  EXPECT_EQ(p.dport, 80);
  EXPECT_EQ(p.dscp, 46);
  EXPECT_EQ(p.saddr[0], 10);
  EXPECT_EQ(p.daddr[3], 7);
  EXPECT_EQ(p.len, 14u + 20u + 20u);
}

TEST(PacketParser, VlanTags) {
  for (int tags = 0; tags <= 3; ++tags) {
    for (uint16_t tpid : {0x8100, 0x88a8}) {
      auto p = parse(cat(eth(0x0800, tags, tpid), ipv4({.proto = 17}, l4hdr(17, 53, 5353))));
      if (tags <= 2) {
        EXPECT_TRUE(p.ip) << tags;
        EXPECT_TRUE(p.l4) << tags;
        EXPECT_EQ(p.dport, 5353) << tags;
      } else {
        EXPECT_FALSE(p.ip) << "three tags are non-IP";
      }
    }
  }
}

TEST(PacketParser, UnknownEthertypeIsNonIp) {
  auto p = parse(cat(eth(0x0806), Bytes(28, 0)));
  EXPECT_FALSE(p.ip);
  EXPECT_EQ(p.proto, -1);
}

TEST(PacketParser, Ipv4IhlBelowFiveIsNonIp) {
  for (int ihl = 0; ihl < 5; ++ihl) {
    auto b = cat(eth(0x0800), ipv4({}, l4hdr(6, 1, 2)));
    b[14] = uint8_t(0x40 | ihl);
    EXPECT_FALSE(parse(b).ip) << ihl;
  }
}

TEST(PacketParser, Ipv4OptionsHonoured) {
  auto p = parse(cat(eth(0x0800), ipv4({.ihl = 15}, l4hdr(6, 4000, 443))));
  EXPECT_TRUE(p.l4);
  EXPECT_EQ(p.sport, 4000);
  EXPECT_EQ(p.dport, 443);
  // Options cut by the end of the frame: the IP header is incomplete -> non-IP.
  auto b = cat(eth(0x0800), ipv4({.ihl = 15}, {}));
  b.resize(14 + 59);
  EXPECT_FALSE(parse(b).ip);
}

TEST(PacketParser, Ipv4Fragments) {
  auto first = parse(cat(eth(0x0800), ipv4({.mf = true}, l4hdr(6, 1, 22))));
  EXPECT_TRUE(first.l4);
  EXPECT_EQ(first.dport, 22);
  auto later = parse(cat(eth(0x0800), ipv4({.frag = 185}, l4hdr(6, 1, 22))));
  EXPECT_TRUE(later.ip);
  EXPECT_EQ(later.proto, 6);
  EXPECT_FALSE(later.l4);
}

TEST(PacketParser, ShortL4Headers) {
  auto tcp = cat(eth(0x0800), ipv4({}, l4hdr(6, 1, 2)));
  tcp.pop_back();  // 19-byte TCP header
  auto p = parse(tcp);
  EXPECT_TRUE(p.ip);
  EXPECT_EQ(p.proto, 6);
  EXPECT_FALSE(p.l4);
  auto udp = cat(eth(0x0800), ipv4({.proto = 17}, l4hdr(17, 1, 2)));
  udp.pop_back();
  p = parse(udp);
  EXPECT_EQ(p.proto, 17);
  EXPECT_FALSE(p.l4);
}

TEST(PacketParser, TruncationAtEveryByte) {
  auto v4 = cat(eth(0x0800, 1), ipv4({}, l4hdr(6, 1000, 2000)));
  for (size_t n = 0; n <= v4.size(); ++n) {
    Bytes b(v4.begin(), v4.begin() + long(n));
    auto p = parse(b);
    EXPECT_EQ(p.len, n);
    bool ip = n >= 18 + 20;
    EXPECT_EQ(p.ip, ip) << n;
    EXPECT_EQ(p.l4, n >= 18 + 20 + 20) << n;
    if (ip) {
      EXPECT_EQ(p.proto, 6);
    }
  }
  auto v6 = cat(eth(0x86dd), ipv6(60, 0, cat(ext(60, 17), l4hdr(17, 7, 8))));
  for (size_t n = 0; n <= v6.size(); ++n) {
    Bytes b(v6.begin(), v6.begin() + long(n));
    auto p = parse(b);
    EXPECT_EQ(p.ip, n >= 54) << n;
    if (n >= 54 && n < 54 + 16) {
      EXPECT_EQ(p.proto, -1) << "cut extension header: unknown, " << n;
    }
    if (n >= 54 + 16) {
      EXPECT_EQ(p.proto, 17) << n;
    }
    EXPECT_EQ(p.l4, n >= 54 + 16 + 8) << n;
  }
}

TEST(PacketParser, Ipv6ExtensionHeaders) {
  for (uint8_t kind : {0, 43, 44, 60}) {
    auto p = parse(cat(eth(0x86dd), ipv6(kind, 0xb8, cat(ext(kind, 6), l4hdr(6, 5, 443)))));
    EXPECT_TRUE(p.ip);
    EXPECT_EQ(p.family, ir::Family::V6);
    EXPECT_EQ(p.dscp, 46);
    EXPECT_EQ(p.proto, 6) << int(kind);
    EXPECT_TRUE(p.l4) << int(kind);
    EXPECT_EQ(p.dport, 443);
  }
}

Bytes chain(int n, uint8_t last) {
  // n extension headers (cycling through the four kinds), then `last`.
  static const uint8_t kinds[] = {0, 60, 43, 60, 44, 60, 43, 60};
  Bytes b;
  for (int i = n - 1; i >= 0; --i) {
    uint8_t nh = i == n - 1 ? last : kinds[i + 1];
    b = cat(ext(kinds[i], nh), b);
  }
  return b;
}

TEST(PacketParser, Ipv6ChainLength) {
  auto six = parse(cat(eth(0x86dd), ipv6(0, 0, cat(chain(6, 17), l4hdr(17, 1, 2)))));
  EXPECT_EQ(six.proto, 17);
  EXPECT_TRUE(six.l4);
  auto seven = parse(cat(eth(0x86dd), ipv6(0, 0, cat(chain(7, 17), l4hdr(17, 1, 2)))));
  EXPECT_TRUE(seven.ip);
  EXPECT_EQ(seven.proto, -1);
  EXPECT_FALSE(seven.l4);
}

TEST(PacketParser, Ipv6Fragments) {
  auto first = parse(cat(eth(0x86dd), ipv6(44, 0, cat(ext(44, 17, 0), l4hdr(17, 9, 10)))));
  EXPECT_EQ(first.proto, 17);
  EXPECT_TRUE(first.l4);
  auto later = parse(cat(eth(0x86dd), ipv6(44, 0, cat(ext(44, 17, 100), l4hdr(17, 9, 10)))));
  EXPECT_EQ(later.proto, 17);
  EXPECT_FALSE(later.l4);
}

// ---- interpreter -------------------------------------------------------------

ir::Prefix v4p(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t len) {
  ir::Prefix p;
  p.family = ir::Family::V4;
  p.addr[0] = a, p.addr[1] = b, p.addr[2] = c, p.addr[3] = d;
  p.len = len;
  return p;
}

PacketFields v4pkt(int proto, uint16_t sp, uint16_t dp, uint8_t dscp = 0) {
  return parse(cat(eth(0x0800), ipv4({.tos = uint8_t(dscp << 2), .proto = uint8_t(proto)}, l4hdr(proto, sp, dp))));
}

std::bitset<256> protos(std::initializer_list<int> l) {
  std::bitset<256> b;
  for (int p : l) b.set(size_t(p));
  return b;
}

TEST(Interpreter, EachMatchKind) {
  ir::Rule r;
  EXPECT_TRUE(rule_matches(r, v4pkt(6, 1, 2))) << "empty rule matches every IP packet";
  r.protos = protos({17});
  EXPECT_FALSE(rule_matches(r, v4pkt(6, 1, 2)));
  EXPECT_TRUE(rule_matches(r, v4pkt(17, 1, 2)));
  r.dport = ir::PortSet{{53, 53}, {5000, 5010}};
  EXPECT_TRUE(rule_matches(r, v4pkt(17, 1, 5005)));
  EXPECT_FALSE(rule_matches(r, v4pkt(17, 1, 5011)));
  r.sport = ir::PortSet{{1, 1}};
  EXPECT_FALSE(rule_matches(r, v4pkt(17, 2, 53)));
  EXPECT_TRUE(rule_matches(r, v4pkt(17, 1, 53)));
  r.dscp = std::bitset<64>().set(46);
  EXPECT_FALSE(rule_matches(r, v4pkt(17, 1, 53, 0)));
  EXPECT_TRUE(rule_matches(r, v4pkt(17, 1, 53, 46)));
  r.family = ir::Family::V6;
  EXPECT_FALSE(rule_matches(r, v4pkt(17, 1, 53, 46)));
}

TEST(Interpreter, AddressesAndNegation) {
  ir::Rule r;
  r.family = ir::Family::V4;
  r.addrs.push_back({.dst = false, .family = ir::Family::V4, .negated = false, .prefixes = {v4p(10, 0, 0, 0, 8)}});
  auto pkt = v4pkt(6, 1, 2);  // 10.1.2.3 -> 192.168.1.7
  EXPECT_TRUE(rule_matches(r, pkt));
  r.addrs[0].negated = true;
  EXPECT_FALSE(rule_matches(r, pkt));
  r.addrs[0].dst = true;  // daddr != 10/8: 192.168.1.7 is not covered
  EXPECT_TRUE(rule_matches(r, pkt));
  // A negated IPv4 match never holds for an IPv6 packet.
  ir::Rule n;
  n.addrs.push_back({.dst = true, .family = ir::Family::V4, .negated = true, .prefixes = {v4p(10, 0, 0, 0, 8)}});
  auto v6 = parse(cat(eth(0x86dd), ipv6(6, 0, l4hdr(6, 1, 2))));
  EXPECT_FALSE(rule_matches(n, v6));
  // /32 and /0 edges
  ir::Rule e;
  e.addrs.push_back({.dst = true, .family = ir::Family::V4, .negated = false, .prefixes = {v4p(192, 168, 1, 7, 32)}});
  EXPECT_TRUE(rule_matches(e, pkt));
  e.addrs[0].prefixes = {v4p(192, 168, 1, 6, 32)};
  EXPECT_FALSE(rule_matches(e, pkt));
  e.addrs[0].prefixes = {v4p(0, 0, 0, 0, 0)};
  EXPECT_TRUE(rule_matches(e, pkt));
}

TEST(Interpreter, Ipv6Prefix) {
  ir::Rule r;
  ir::Prefix p;
  p.family = ir::Family::V6;
  p.addr = {0x20, 0x01, 0x0d, 0xb8, 0, 2};
  p.len = 48;
  r.addrs.push_back({.dst = true, .family = ir::Family::V6, .negated = false, .prefixes = {p}});
  EXPECT_TRUE(rule_matches(r, parse(cat(eth(0x86dd), ipv6(17, 0, l4hdr(17, 1, 2))))));
  r.addrs[0].dst = false;  // source is 2001:db8:1::1
  EXPECT_FALSE(rule_matches(r, parse(cat(eth(0x86dd), ipv6(17, 0, l4hdr(17, 1, 2))))));
}

TEST(Interpreter, PortsNeedL4AndUnknownProtoMatchesNoSet) {
  ir::Rule ports;
  ports.protos = protos({6});
  ports.dport = ir::PortSet{{0, 65535}};
  auto frag = parse(cat(eth(0x0800), ipv4({.frag = 3}, l4hdr(6, 1, 2))));
  EXPECT_FALSE(rule_matches(ports, frag)) << "non-first fragment has no ports";
  ir::Rule bare;
  bare.protos = protos({6});
  EXPECT_TRUE(rule_matches(bare, frag)) << "bare tcp still applies to fragments";
  auto unknown = parse(cat(eth(0x86dd), ipv6(0, 0, cat(chain(7, 6), l4hdr(6, 1, 2)))));
  std::bitset<256> all;
  all.set();
  ir::Rule any_proto;
  any_proto.protos = all;
  EXPECT_FALSE(rule_matches(any_proto, unknown)) << "unknown proto matches no protocol set";
  EXPECT_TRUE(rule_matches(ir::Rule{}, unknown));
}

TEST(Interpreter, FirstMatchAndDefault) {
  ir::Policy pol;
  pol.classes.resize(3);
  for (uint32_t i = 0; i < 3; ++i) pol.classes[i].id = i;
  pol.default_class = 2;
  ir::Rule a;
  a.protos = protos({6});
  a.dport = ir::PortSet{{22, 22}};
  a.target = ir::kDrop;
  ir::Rule b;
  b.protos = protos({6});
  b.target = 1;
  pol.rules = {a, b};
  EXPECT_EQ(classify(pol, v4pkt(6, 1, 22)), ir::kDrop);
  EXPECT_EQ(first_match(pol, v4pkt(6, 1, 22)), 0);
  EXPECT_EQ(classify(pol, v4pkt(6, 1, 80)), 1);
  EXPECT_EQ(classify(pol, v4pkt(17, 1, 22)), 2);
  EXPECT_EQ(first_match(pol, v4pkt(17, 1, 22)), -1);
  auto arp = parse(cat(eth(0x0806), Bytes(28, 0)));
  pol.rules = {ir::Rule{}};  // matches every IP packet, never a non-IP one
  EXPECT_EQ(classify(pol, arp), 2);
}

}  // namespace
}  // namespace qosc
