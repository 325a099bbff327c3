// Semantic checks and lowering, through text.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "helpers.hpp"
#include "qosc/packet.hpp"

namespace qosc {
namespace {

using semtest::lower_text;

std::string wrap(const std::string& body) {
  return "policy t {\n    link 100mbit;\n    class a { priority 1; }\n    class b { default; }\n" + body + "}\n";
}

TEST(Lowering, ClassDefaultsAndBurstRule) {
  auto l = lower_text("policy t { link 1gbit; class a { rate 80mbit; } class b { rate 1mbit; default; } rule tcp -> a; }");
  ASSERT_TRUE(l.ir) << l.diags;
  const auto& a = l.ir->classes[0];
  EXPECT_EQ(a.priority, ir::kDefaultPriority);
  EXPECT_EQ(a.weight, ir::kDefaultWeight);
  EXPECT_EQ(a.quantum, ir::kDefaultQuantum);
  EXPECT_EQ(a.rate_bps, 80'000'000u);
  EXPECT_EQ(a.burst_bytes, 100'000u) << "10 ms at 80 Mbit/s";
  EXPECT_EQ(l.ir->classes[1].burst_bytes, 3028u) << "at least two full frames";
  EXPECT_EQ(l.ir->classes[1].id, 1u);
  EXPECT_EQ(l.ir->default_class, 1u);
  EXPECT_EQ(l.ir->scheduler.kind, ir::SchedKind::StrictPriority) << "scheduler is optional";
  EXPECT_EQ(l.ir->link_bps, 1'000'000'000u);
}

// `link adaptive`: link_bps stays the nominal rate (MAX) so every check made
// against the link still holds; the range, start and delay are resolved with
// their defaults; `download` lowers the same way.
TEST(Lowering, AdaptiveLinkAndDownload) {
  auto l = lower_text("policy t { link adaptive 10mbit-100mbit; download adaptive 20mbit-200mbit start 150mbit delay 20ms;"
                      " class a { rate 5mbit; default; } }");
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(l.warnings, 0u) << l.diags;
  EXPECT_EQ(l.ir->link_bps, 100'000'000u);
  ASSERT_TRUE(l.ir->link_adaptive);
  EXPECT_EQ(*l.ir->link_adaptive, (ir::Adaptive{10'000'000, 100'000'000, 100'000'000, ir::kDefaultAdaptiveDelayUs}));
  EXPECT_EQ(l.ir->download_bps, 200'000'000u);
  ASSERT_TRUE(l.ir->download_adaptive);
  EXPECT_EQ(*l.ir->download_adaptive, (ir::Adaptive{20'000'000, 200'000'000, 150'000'000, 20'000}));
  EXPECT_TRUE(l.ir->adaptive());
  const std::string dump = dump_ir(*l.ir);
  EXPECT_NE(dump.find("  link adaptive 10mbit-100mbit start=100mbit delay=5ms (10000000-100000000 bit/s)\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("  download adaptive 20mbit-200mbit start=150mbit delay=20ms"), std::string::npos) << dump;

  auto fixed = lower_text("policy t { link 50mbit; download 80mbit; class a { default; } }");
  ASSERT_TRUE(fixed.ir) << fixed.diags;
  EXPECT_FALSE(fixed.ir->adaptive());
  EXPECT_EQ(fixed.ir->download_bps, 80'000'000u);
  EXPECT_NE(dump_ir(*fixed.ir).find("  download 80mbit (80000000 bit/s)\n"), std::string::npos);
  auto none = lower_text("policy t { link 50mbit; class a { default; } }");
  ASSERT_TRUE(none.ir) << none.diags;
  EXPECT_EQ(none.ir->download_bps, 0u);
  EXPECT_EQ(dump_ir(*none.ir).find("download"), std::string::npos);
}

// `plan` and `hosts`: rates resolved, a plan's classes as ascending ids
// (empty = every class), the hosts line as address and nat; a plan at the
// MAX of an adaptive link is fine. The checks' messages are golden tests
// (tests/frontend/golden/sema_bad_hosts.qos and neighbours).
TEST(Lowering, PlansAndHosts) {
  auto l = lower_text("policy t { link adaptive 10mbit-100mbit;\n class game { priority 0; } class web { }\n"
                      " class bulk { default; }\n rule udp -> game; rule tcp -> web;\n"
                      " plan basic { rate 10mbit; }\n"
                      " plan premium { rate 50mbit; ceil 100mbit; burst 200kb; classes bulk, game; }\n"
                      " hosts saddr nat;\n}\n");
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(l.warnings, 0u) << l.diags;
  ASSERT_EQ(l.ir->plans.size(), 2u);
  const ir::Plan& basic = l.ir->plans[0];
  EXPECT_EQ(basic.name, "basic");
  EXPECT_EQ(basic.rate_bps, 10'000'000u);
  EXPECT_EQ(basic.ceil_bps, 0u) << "0: the rate";
  EXPECT_EQ(basic.burst_bytes, 0u) << "0: HTB's default";
  EXPECT_TRUE(basic.classes.empty()) << "every class";
  const ir::Plan& premium = l.ir->plans[1];
  EXPECT_EQ(premium.ceil_bps, 100'000'000u);
  EXPECT_EQ(premium.burst_bytes, 200u * 1024);
  EXPECT_EQ(premium.classes, (std::vector<uint32_t>{0, 2}));
  ASSERT_TRUE(l.ir->hosts);
  EXPECT_EQ(*l.ir->hosts, (ir::Hosts{false, true}));
  const std::string dump = dump_ir(*l.ir);
  EXPECT_NE(dump.find("  plan premium rate=50mbit ceil=100mbit burst=204800b classes=game,bulk\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("  hosts saddr nat\n"), std::string::npos) << dump;

  auto none = lower_text("policy t { link 50mbit; class a { default; } }");
  ASSERT_TRUE(none.ir) << none.diags;
  EXPECT_TRUE(none.ir->plans.empty());
  EXPECT_FALSE(none.ir->hosts);
}

// Each check of plans and hosts alone, so that one cannot hide another.
TEST(Checks, PlansAndHosts) {
  auto body = [](const std::string& items) {
    return "policy t {\n link 100mbit;\n class a { priority 1; }\n class b { default; }\n rule tcp -> a;\n" + items + "}\n";
  };
  struct Case {
    std::string items, message;
  };
  const Case cases[] = {
      {" plan p { rate 1mbit; }\n plan p { rate 2mbit; }\n hosts daddr;\n", "plan 'p' is declared twice"},
      {" plan p { rate 200mbit; }\n hosts daddr;\n", "rate 200mbit of plan 'p' is above the link rate 100mbit"},
      {" plan p { rate 1mbit; ceil 101mbit; }\n hosts daddr;\n", "ceil 101mbit of plan 'p' is above the link rate"},
      {" plan p { rate 2mbit; ceil 1mbit; }\n hosts daddr;\n", "ceil 1mbit of plan 'p' is below its rate 2mbit"},
      {" plan p { rate 1mbit; classes a, c; }\n hosts daddr;\n", "plan 'p' lists class 'c', which the policy does not declare"},
      {" plan p { rate 1mbit; classes a; }\n hosts daddr;\n", "plan 'p' leaves out the default class 'b'"},
      {" plan p { ceil 1mbit; }\n hosts daddr;\n", "plan 'p' has no rate"},
      {" hosts daddr;\n", "`hosts` without any plan"},
      {" plan p { rate 1mbit; }\n", "the policy declares plans but not which address names a host"},
      {" plan p { rate 1mbit; }\n hosts daddr;\n hosts saddr;\n", "a policy has at most one `hosts` line"},
      {" plan p { rate 1mbit; }\n hosts daddr;\n scheduler pifo;\n", "`hosts` does not work with scheduler pifo"},
      {" plan p { rate 1mbit; }\n hosts addr;\n", "hosts are named by 'saddr' or 'daddr', not 'addr'"},
  };
  for (const auto& c : cases) {
    auto l = lower_text(body(c.items));
    EXPECT_FALSE(l.ir) << c.items;
    EXPECT_EQ(l.errors, 1u) << l.diags;
    EXPECT_NE(l.diags.find(c.message), std::string::npos) << l.diags;
  }
  auto ok = lower_text(body(" plan p { rate 100mbit; ceil 100mbit; classes b; }\n hosts daddr;\n"));
  EXPECT_TRUE(ok.ir) << ok.diags;
}

TEST(Checks, AdaptiveRangesAndClassRates) {
  // A class rate up to MAX is valid; above MIN it is a warning, above MAX the error it always was.
  auto warn = lower_text("policy t { link adaptive 10mbit-100mbit; class a { rate 50mbit; default; } }");
  ASSERT_TRUE(warn.ir) << warn.diags;
  EXPECT_EQ(warn.warnings, 1u) << warn.diags;
  EXPECT_NE(warn.diags.find("rate 50mbit of class 'a' is above the lowest rate 10mbit of the adaptive link"), std::string::npos)
      << warn.diags;
  auto above = lower_text("policy t { link adaptive 10mbit-100mbit; class a { rate 101mbit; default; } }");
  EXPECT_FALSE(above.ir);
  EXPECT_NE(above.diags.find("rate 101mbit of class 'a' is above the link rate 100mbit"), std::string::npos) << above.diags;
  for (const char* bad : {"link adaptive 0bit-1mbit;", "link adaptive 2mbit-1mbit;", "link adaptive 1mbit-1mbit;",
                          "link adaptive 1mbit-2mbit start 3mbit;", "link adaptive 1mbit-2mbit start 999kbit;",
                          "link adaptive 1mbit-2mbit delay 999us;", "link adaptive 1mbit-2mbit delay 1001ms;",
                          "link 1mbit; download adaptive 2mbit-1mbit;", "link 1mbit; download 1mbit; download 2mbit;",
                          "link 1mbit; download 0mbit;"}) {
    auto l = lower_text(fmt::format("policy t {{ {} class a {{ default; }} }}", bad));
    EXPECT_FALSE(l.ir) << bad;
    EXPECT_EQ(l.errors, 1u) << bad << "\n" << l.diags;
  }
  for (const char* good : {"link adaptive 1mbit-2mbit start 1mbit delay 1ms;", "link adaptive 1mbit-2mbit start 2mbit delay 1s;"}) {
    auto l = lower_text(fmt::format("policy t {{ {} class a {{ default; }} }}", good));
    EXPECT_TRUE(l.ir) << good << "\n" << l.diags;
  }
}

TEST(Lowering, SchedulerAliasesAndPifo) {
  for (auto [alias, kind] : {std::pair{"sp", ir::SchedKind::StrictPriority}, {"rr", ir::SchedKind::RoundRobin},
                             {"drr", ir::SchedKind::DeficitRoundRobin}, {"wfq", ir::SchedKind::WeightedFairQueuing}}) {
    auto l = lower_text(wrap(fmt::format("scheduler {};\nrule tcp -> a;\n", alias)));
    ASSERT_TRUE(l.ir) << l.diags;
    EXPECT_EQ(l.ir->scheduler.kind, kind);
  }
  auto p = lower_text(wrap("scheduler pifo;\nrule tcp -> a;\n"));
  ASSERT_TRUE(p.ir) << p.diags;
  EXPECT_EQ(p.ir->scheduler.pifo_bands, 8u);
  EXPECT_EQ(ir::to_string(p.ir->scheduler.rank), "class.priority");
  auto q = lower_text(wrap("scheduler pifo { rank = class.priority * 1000 + min(pkt.len, 1500) / 2; bands 4; }\nrule tcp -> a;\n"));
  ASSERT_TRUE(q.ir) << q.diags;
  EXPECT_EQ(q.ir->scheduler.pifo_bands, 4u);
  EXPECT_EQ(ir::to_string(q.ir->scheduler.rank), "((class.priority * 1000) + (min(pkt.len, 1500) / 2))");
}

TEST(Lowering, PortNegationFoldedIntoIntervals) {
  auto l = lower_text(wrap("rule tcp dport != { 22, 80, 79 } -> a;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  ir::PortSet want{{0, 21}, {23, 78}, {81, 65535}};
  EXPECT_EQ(*l.ir->rules[0].dport, want);
  EXPECT_EQ(l.ir->rules[0].protos->count(), 1u);
  EXPECT_TRUE(l.ir->rules[0].protos->test(6));
  EXPECT_EQ(l.ir->rules[0].family, ir::Family::Any);
}

TEST(Lowering, SetsExpandedAndMerged) {
  auto l = lower_text(wrap("set p = { 1000-2000, 1500-2500, 2501 };\nrule udp sport @p dport { 5, 6, 7 } -> a;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(*l.ir->rules[0].sport, (ir::PortSet{{1000, 2501}}));
  EXPECT_EQ(*l.ir->rules[0].dport, (ir::PortSet{{5, 7}}));
}

TEST(Lowering, PrefixesNormalised) {
  auto l = lower_text(wrap("rule ip saddr { 192.168.0.0/16, 10.1.0.0/16, 10.0.0.0/8, 10.2.3.4 } -> a;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  const auto& m = l.ir->rules[0].addrs.at(0);
  ASSERT_EQ(m.prefixes.size(), 2u);
  EXPECT_EQ(m.prefixes[0].addr[0], 10);
  EXPECT_EQ(m.prefixes[0].len, 8);
  EXPECT_EQ(m.prefixes[1].addr[0], 192);
  EXPECT_EQ(l.ir->rules[0].family, ir::Family::V4);
}

TEST(Lowering, DscpAndProtoSetsWithNegation) {
  auto l = lower_text(wrap("rule dscp != { ef, cs1, 0-7 } proto { gre, 50 } -> a;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  const auto& r = l.ir->rules[0];
  EXPECT_EQ(r.dscp->count(), 64u - 10u) << "ef (46), cs1 (8) and 0-7 excluded";
  EXPECT_FALSE(r.dscp->test(46));
  EXPECT_FALSE(r.dscp->test(8));
  EXPECT_TRUE(r.dscp->test(9));
  EXPECT_EQ(r.protos->count(), 2u);
  EXPECT_TRUE(r.protos->test(47));
  EXPECT_TRUE(r.protos->test(50));
}

TEST(Lowering, IcmpFamilies) {
  auto l = lower_text(wrap("rule icmp -> a;\nrule icmpv6 -> a;\nrule ip6 -> b;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(l.ir->rules[0].family, ir::Family::V4);
  EXPECT_TRUE(l.ir->rules[0].protos->test(1));
  EXPECT_EQ(l.ir->rules[1].family, ir::Family::V6);
  EXPECT_TRUE(l.ir->rules[1].protos->test(58));
  EXPECT_EQ(l.ir->rules[2].family, ir::Family::V6);
}

TEST(Lowering, ContradictoryRuleIsWarnedAndDropped) {
  auto l = lower_text(wrap("rule udp dport 53 tcp dport 53 -> a;\nrule tcp dport 80 tcp dport 443 -> a;\n"
                           "rule ip saddr 10.0.0.0/8 ip6 daddr ::1 -> a;\nrule icmp ip6 -> a;\nrule tcp -> a;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(l.warnings, 4u) << l.diags;
  ASSERT_EQ(l.ir->rules.size(), 1u);
  EXPECT_EQ(l.ir->rules[0].index, 4u) << "index keeps the file position";
}

TEST(Lowering, ShadowedRuleIsWarnedAndDropped) {
  auto l = lower_text(wrap("rule tcp dport 1-1000 -> a;\nrule tcp dport { 22, 80 } -> b;\n"
                           "rule ip saddr 10.0.0.0/8 -> a;\nrule ip saddr 10.1.0.0/16 udp -> b;\n"
                           "rule ip daddr != 192.168.0.0/16 -> a;\nrule ip daddr 10.9.0.0/16 -> b;\n"
                           "rule udp dport 53 -> b;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(l.warnings, 3u) << l.diags;
  EXPECT_NE(l.diags.find("earlier rule at line 5"), std::string::npos) << l.diags;
  ASSERT_EQ(l.ir->rules.size(), 4u);
  EXPECT_EQ(l.ir->rules[3].index, 10u - 4u);
}

TEST(Lowering, NotShadowedWhenCoverIsPartial) {
  auto l = lower_text(wrap("rule tcp dport 1-1000 -> a;\nrule tcp dport { 22, 8080 } -> b;\nrule ip saddr 10.0.0.0/8 -> a;\n"
                           "rule udp -> b;\n"));
  ASSERT_TRUE(l.ir) << l.diags;
  EXPECT_EQ(l.warnings, 0u) << l.diags;
  EXPECT_EQ(l.ir->rules.size(), 4u);
}

TEST(Lowering, DroppingDeadRulesKeepsMeaning) {
  // The IR without the dead rules classifies like the full first-match list.
  auto l = lower_text(wrap("rule tcp -> a;\nrule tcp dport 80 -> b;\nrule udp dport 53 tcp -> b;\n"));
  ASSERT_TRUE(l.ir);
  ASSERT_EQ(l.ir->rules.size(), 1u);
  PacketFields p;
  p.ip = true;
  p.family = ir::Family::V4;
  p.proto = 6;
  p.l4 = true;
  p.dport = 80;
  EXPECT_EQ(classify(*l.ir, p), 0);
}

TEST(Checks, ManyErrorsInOneRun) {
  auto l = lower_text("policy t {\n  class a { priority 9; weight 0; }\n  class a { }\n  rule tcp dport 70000 -> nope;\n}\n");
  EXPECT_FALSE(l.ir);
  EXPECT_GE(l.errors, 5u) << l.diags;  // priority, weight, duplicate, port, unknown class, no link, no default
  EXPECT_NE(l.diags.find("no link rate"), std::string::npos);
  EXPECT_NE(l.diags.find("no default class"), std::string::npos);
}

TEST(Checks, ExamplesCompileClean) {
  for (const char* name : {"gaming", "server", "default"}) {
    auto text = semtest::read_file(std::string(QOSC_SOURCE_DIR) + "/examples/" + name + ".qos");
    ASSERT_FALSE(text.empty()) << name;
    auto l = lower_text(text, std::string(name) + ".qos");
    ASSERT_TRUE(l.ir) << l.diags;
    EXPECT_EQ(l.warnings, 0u) << l.diags;
    auto dump = dump_ir(*l.ir);
    EXPECT_NE(dump.find("default"), std::string::npos);
  }
}

TEST(Checks, GamingExampleClassifies) {
  auto l = lower_text(semtest::read_file(std::string(QOSC_SOURCE_DIR) + "/examples/gaming.qos"), "gaming.qos");
  ASSERT_TRUE(l.ir) << l.diags;
  const auto& pol = *l.ir;
  auto cls = [&](const char* n) { return int32_t(pol.find_class(n)->id); };
  PacketFields p;
  p.ip = true;
  p.family = ir::Family::V4;
  p.proto = 17;
  p.l4 = true;
  p.sport = 27020;
  p.dport = 9999;
  EXPECT_EQ(classify(pol, p), cls("gaming"));
  p.sport = 1;
  EXPECT_EQ(classify(pol, p), cls("bulk"));
  p.dscp = 46;
  EXPECT_EQ(classify(pol, p), cls("voip"));
  p.dscp = 0;
  p.proto = 6;
  p.dport = 23;
  EXPECT_EQ(classify(pol, p), ir::kDrop);
  p.dport = 22;
  EXPECT_EQ(classify(pol, p), cls("bulk"));
  p.saddr = {192, 168, 1, 200};
  EXPECT_EQ(classify(pol, p), cls("control"));
  p.l4 = false;  // fragment: ports never match
  EXPECT_EQ(classify(pol, p), cls("bulk"));
  p.proto = 1;
  EXPECT_EQ(classify(pol, p), cls("control"));
}

TEST(Lowering, IsolationDefaultsAndForms) {
  auto l = lower_text(
      "policy t { link 100mbit; class a { isolate flows; } class b { isolate saddr nat 8 flows 2; default; }"
      " class c { isolate daddr; } rule tcp -> a; rule udp -> c; }");
  ASSERT_TRUE(l.ir) << l.diags;
  const auto& a = l.ir->classes[0].isolate;
  EXPECT_EQ(a.mode, ir::IsolateMode::Flows);
  EXPECT_EQ(a.slots, ir::kDefaultIsolateSlots);
  EXPECT_EQ(a.per_host, 1u) << "flows have no host level";
  const auto& b = l.ir->classes[1].isolate;
  EXPECT_EQ(b.mode, ir::IsolateMode::Saddr);
  EXPECT_TRUE(b.nat);
  EXPECT_EQ(b.slots, 8u);
  EXPECT_EQ(b.per_host, 2u);
  EXPECT_EQ(l.ir->classes[2].isolate.per_host, ir::kDefaultIsolatePerHost);
}

TEST(Lowering, IsolationNeedsAClassQueueSoNotUnderPifo) {
  auto l = lower_text("policy t { link 100mbit; scheduler pifo; class a { isolate flows; default; } }");
  EXPECT_FALSE(l.ir);
  EXPECT_NE(l.diags.find("cannot isolate under the pifo scheduler"), std::string::npos) << l.diags;
}

}  // namespace
}  // namespace qosc
