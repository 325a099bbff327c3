// Property: random policy -> parse -> lower -> print_policy -> parse -> lower
// gives the same IR; and the reference interpreter agrees on both.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "qosc/packet.hpp"
#include "random_policy.hpp"

namespace qosc {
namespace {

PacketFields random_packet(std::mt19937_64& rng) {
  auto u = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  PacketFields p;
  p.ip = u(0, 9) != 0;
  p.family = u(0, 1) ? ir::Family::V4 : ir::Family::V6;
  static const uint8_t v4[][4] = {{10, 1, 2, 3}, {192, 168, 1, 7}, {172, 16, 5, 5}, {8, 8, 8, 8}, {10, 1, 2, 200}};
  static const uint8_t v6[][6] = {{0x20, 0x01, 0x0d, 0xb8, 0, 1}, {0xfe, 0x80}, {0xfd, 0}, {0, 0}};
  for (auto* a : {&p.saddr, &p.daddr}) {
    if (p.family == ir::Family::V4) {
      const auto& s = v4[u(0, 4)];
      std::copy(s, s + 4, a->begin());
    } else {
      const auto& s = v6[u(0, 3)];
      std::copy(s, s + 6, a->begin());
      (*a)[15] = uint8_t(u(0, 2));
    }
  }
  static const int protos[] = {6, 17, 1, 58, 47, 50, 132, -1};
  p.proto = protos[u(0, 7)];
  p.l4 = (p.proto == 6 || p.proto == 17) && u(0, 5) != 0;
  static const uint16_t ports[] = {0, 1, 22, 53, 80, 443, 1024, 3074, 3075, 5060, 8080, 27015, 65535, 12345};
  p.sport = p.l4 ? ports[u(0, 13)] : 0;
  p.dport = p.l4 ? ports[u(0, 13)] : 0;
  p.dscp = uint8_t(u(0, 1) ? u(0, 63) : 46);
  return p;
}

TEST(Property, PrintParseRoundTripKeepsIr) {
  std::mt19937_64 rng(20261124);
  testsupport::RandomPolicyOptions opts;
  size_t checked = 0;
  for (int i = 0; i < 300; ++i) {
    std::string text = testsupport::random_policy(rng, opts);
    SourceFile f1("r.qos", text);
    Diagnostics d1(&f1);
    auto a1 = parse_policy(f1, d1);
    ASSERT_TRUE(a1) << d1.str() << text;
    auto ir1 = check_and_lower(*a1, f1, d1);
    ASSERT_TRUE(ir1) << "generator produced an invalid policy:\n" << d1.str() << text;
    std::string printed = print_policy(*a1);
    SourceFile f2("r2.qos", printed);
    Diagnostics d2(&f2);
    auto a2 = parse_policy(f2, d2);
    ASSERT_TRUE(a2) << d2.str() << printed;
    auto ir2 = check_and_lower(*a2, f2, d2);
    ASSERT_TRUE(ir2) << d2.str() << printed;
    std::string why;
    ASSERT_TRUE(semtest::same_meaning(*ir1, *ir2, &why)) << why << "\n" << text << "\n----\n" << printed;
    for (int k = 0; k < 50; ++k) {
      auto pkt = random_packet(rng);
      ASSERT_EQ(classify(*ir1, pkt), classify(*ir2, pkt)) << to_string(pkt);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 300u);
}

// The generator covers what it promises across seeds.
TEST(Property, GeneratorCoversTheLanguage) {
  std::mt19937_64 rng(7);
  std::string all;
  for (int i = 0; i < 200; ++i) all += testsupport::random_policy(rng);
  for (const char* s : {"ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr", "tcp", "udp", "icmp", "icmpv6", "sport",
                        "dport", "proto", "dscp", "!=", "@", "{", "set ", "strict_priority", "round_robin",
                        "deficit_round_robin", "weighted_fair_queuing", "pifo", "rank =", "-> drop", "default;"})
    EXPECT_NE(all.find(s), std::string::npos) << s;
}

}  // namespace
}  // namespace qosc

namespace qosc::detail {
std::optional<ir::Policy> check_and_lower_keep_dead(const ast::Policy&, const SourceFile&, Diagnostics&);
}

namespace qosc {
namespace {

// Soundness of the "can never match" analysis: the IR without the dead rules
// decides every packet exactly like the full first-match list.
TEST(Property, DroppingDeadRulesChangesNoDecision) {
  std::mt19937_64 rng(99);
  testsupport::RandomPolicyOptions opts;
  opts.max_rules = 20;
  size_t dead = 0;
  for (int i = 0; i < 300; ++i) {
    std::string text = testsupport::random_policy(rng, opts);
    SourceFile f("r.qos", text);
    Diagnostics d1(&f), d2(&f);
    auto a = parse_policy(f, d1);
    ASSERT_TRUE(a) << d1.str();
    auto pruned = check_and_lower(*a, f, d1);
    auto full = detail::check_and_lower_keep_dead(*a, f, d2);
    ASSERT_TRUE(pruned && full) << d1.str();
    dead += full->rules.size() - pruned->rules.size();
    for (int k = 0; k < 400; ++k) {
      auto pkt = random_packet(rng);
      ASSERT_EQ(classify(*pruned, pkt), classify(*full, pkt)) << to_string(pkt) << "\n" << text << d1.str();
    }
  }
  EXPECT_GT(dead, 50u) << "the generator should produce dead rules often enough for this test to mean something";
}

}  // namespace
}  // namespace qosc
