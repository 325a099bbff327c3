// Parser unit tests: the AST for each construct, locations, recovery.
#include <gtest/gtest.h>

#include "qosc/frontend.hpp"

namespace qosc {
namespace {

struct Parsed {
  std::optional<ast::Policy> ast;
  std::string diags;
  size_t errors = 0;
};

Parsed parse(const std::string& text) {
  SourceFile f("t.qos", text);
  Diagnostics d(&f);
  Parsed p;
  p.ast = parse_policy(f, d);
  p.diags = d.str();
  p.errors = d.error_count();
  return p;
}

TEST(Parser, SetDscpIsAClassAttribute) {
  auto p = parse("policy p {\n  link 1mbit;\n  class a { set dscp ef; default; }\n  class b { set   dscp 46; }\n}\n");
  ASSERT_TRUE(p.ast) << p.diags;
  const auto& a = p.ast->classes[0].attrs;
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].kind, ast::ClassAttrKind::SetDscp);
  EXPECT_EQ(a[0].word, "ef");
  EXPECT_EQ(a[0].loc, (Loc{3, 13, 3}));
  EXPECT_EQ(a[0].value_loc, (Loc{3, 22, 2}));
  const auto& b = p.ast->classes[1].attrs;
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].kind, ast::ClassAttrKind::SetDscp);
  EXPECT_EQ(b[0].word, "");
  EXPECT_EQ(b[0].number, 46u);
  // A broken `set` is skipped to its ';': the class's other attributes still count.
  auto q = parse("policy p {\n  link 1mbit;\n  class a { set dsp ef; default; }\n}\n");
  EXPECT_EQ(q.errors, 1u) << q.diags;
  EXPECT_NE(q.diags.find("expected 'dscp' after 'set' in a class"), std::string::npos) << q.diags;
  EXPECT_NE(q.diags.find("did you mean 'dscp'?"), std::string::npos) << q.diags;
}

// `plan NAME { ... }` and `hosts ...;`: attributes in written order with their
// locations; the words are keywords only where an item or plan attribute
// starts, so classes, sets and targets may still be called plan, hosts, ceil
// or classes.
TEST(Parser, PlansAndHosts) {
  auto p = parse("policy p {\n  link 1gbit;\n  class plan { default; }\n  class hosts { }\n"
                 "  plan premium { rate 50mbit; ceil 100mbit; burst 200kb; classes plan, hosts; }\n"
                 "  hosts daddr nat;\n  rule tcp dport 22 -> hosts;\n}\n");
  ASSERT_TRUE(p.ast) << p.diags;
  ASSERT_EQ(p.ast->plans.size(), 1u);
  const auto& pl = p.ast->plans[0];
  EXPECT_EQ(pl.name, "premium");
  EXPECT_EQ(pl.name_loc, (Loc{5, 8, 7}));
  ASSERT_EQ(pl.attrs.size(), 4u);
  EXPECT_EQ(pl.attrs[0].kind, ast::PlanAttrKind::Rate);
  EXPECT_EQ(pl.attrs[0].rate.bps, 50'000'000u);
  EXPECT_EQ(pl.attrs[1].kind, ast::PlanAttrKind::Ceil);
  EXPECT_EQ(pl.attrs[1].rate.bps, 100'000'000u);
  EXPECT_EQ(pl.attrs[1].loc, (Loc{5, 31, 4}));
  EXPECT_EQ(pl.attrs[2].size.bytes, 200u * 1024);
  ASSERT_EQ(pl.attrs[3].classes.size(), 2u);
  EXPECT_EQ(pl.attrs[3].classes[1].first, "hosts");
  EXPECT_EQ(pl.attrs[3].classes[1].second, (Loc{5, 72, 5}));
  ASSERT_EQ(p.ast->hosts.size(), 1u);
  EXPECT_EQ(p.ast->hosts[0].by, "daddr");
  EXPECT_EQ(p.ast->hosts[0].loc, (Loc{6, 3, 5}));
  EXPECT_TRUE(p.ast->hosts[0].nat);
  EXPECT_EQ(p.ast->rules[0].target, "hosts");
  EXPECT_EQ(print_policy(*p.ast), "policy p {\n    link 1gbit;\n    class plan { default; }\n    class hosts { }\n"
                                  "    rule tcp dport 22 -> hosts;\n"
                                  "    plan premium { rate 50mbit; ceil 100mbit; burst 200kb; classes plan, hosts; }\n"
                                  "    hosts daddr nat;\n}\n");
  // A broken plan attribute is skipped to its ';' and the next item still parses.
  auto q = parse("policy p {\n  link 1mbit;\n  plan a { rate 1mbit; cei 2mbit; }\n  hosts saddr;\n  class b { default; }\n}\n");
  EXPECT_EQ(q.errors, 1u) << q.diags;
  EXPECT_NE(q.diags.find("did you mean 'ceil'?"), std::string::npos) << q.diags;
}

TEST(Parser, ItemsAndLocations) {
  auto p = parse("policy web {\n  link 2.5mbit;\n  class a { priority 3; rate 1kbit; burst 2kb; default; }\n"
                 "  rule ip saddr 10.0.0.0/8 tcp sport 1-2 dport != { 80, 443 } -> a;\n}\n");
  ASSERT_TRUE(p.ast) << p.diags;
  EXPECT_EQ(p.ast->name, "web");
  ASSERT_EQ(p.ast->links.size(), 1u);
  EXPECT_EQ(p.ast->links[0].rate.bps, 2'500'000u);
  EXPECT_EQ(p.ast->links[0].rate.loc, (Loc{2, 8, 7}));
  ASSERT_EQ(p.ast->classes.size(), 1u);
  const auto& c = p.ast->classes[0];
  ASSERT_EQ(c.attrs.size(), 4u);
  EXPECT_EQ(c.attrs[0].number, 3u);
  EXPECT_EQ(c.attrs[1].rate.bps, 1000u);
  EXPECT_EQ(c.attrs[2].size.bytes, 2048u);
  EXPECT_EQ(c.attrs[3].kind, ast::ClassAttrKind::Default);
  ASSERT_EQ(p.ast->rules.size(), 1u);
  const auto& r = p.ast->rules[0];
  EXPECT_EQ(r.target, "a");
  ASSERT_EQ(r.matches.size(), 4u);
  EXPECT_EQ(r.matches[0].kind, ast::MatchKind::IpSaddr);
  EXPECT_EQ(r.matches[0].loc, (Loc{4, 8, 8}));
  auto& v4 = std::get<ast::Ipv4>(r.matches[0].value->elements.at(0));
  EXPECT_EQ(v4.addr, 0x0a000000u);
  EXPECT_EQ(v4.len, 8u);
  EXPECT_EQ(r.matches[1].kind, ast::MatchKind::Tcp);
  EXPECT_EQ(r.matches[2].kind, ast::MatchKind::Sport);
  EXPECT_EQ(r.matches[2].l4, ast::MatchKind::Tcp);
  auto& rg = std::get<ast::Range>(r.matches[2].value->elements.at(0));
  EXPECT_EQ(rg.lo, 1u);
  EXPECT_EQ(rg.hi, 2u);
  EXPECT_EQ(r.matches[3].kind, ast::MatchKind::Dport);
  EXPECT_TRUE(r.matches[3].value->negated);
  EXPECT_TRUE(r.matches[3].value->inline_set);
  EXPECT_EQ(r.matches[3].value->elements.size(), 2u);
}

// `link adaptive MIN-MAX [start R] [delay D];` and `download ...`: the range,
// the knobs in any order, each value with its own location; printed back
// with the knobs in canonical order.
TEST(Parser, AdaptiveLinkAndDownload) {
  auto p = parse("policy p {\n  link adaptive 10mbit-100mbit delay 1.5ms start 50mbit;\n"
                 "  download adaptive 20mbit - 200mbit;\n  class a { default; }\n}\n");
  ASSERT_TRUE(p.ast) << p.diags;
  ASSERT_EQ(p.ast->links.size(), 1u);
  const auto& l = p.ast->links[0];
  ASSERT_TRUE(l.adaptive);
  EXPECT_EQ(l.loc, (Loc{2, 3, 4}));
  EXPECT_EQ(l.adaptive->loc.col, 8u);
  EXPECT_EQ(l.adaptive->min.bps, 10'000'000u);
  EXPECT_EQ(l.adaptive->min.loc, (Loc{2, 17, 6}));
  EXPECT_EQ(l.adaptive->max.bps, 100'000'000u);
  EXPECT_EQ(l.adaptive->max.loc, (Loc{2, 24, 7}));
  ASSERT_TRUE(l.adaptive->start && l.adaptive->delay);
  EXPECT_EQ(l.adaptive->start->bps, 50'000'000u);
  EXPECT_EQ(l.adaptive->delay->us, 1500u);
  EXPECT_EQ(l.adaptive->delay->loc.col, 38u);
  EXPECT_EQ(&l.nominal(), &l.adaptive->max);
  ASSERT_EQ(p.ast->downloads.size(), 1u);
  ASSERT_TRUE(p.ast->downloads[0].adaptive);
  EXPECT_EQ(p.ast->downloads[0].adaptive->max.bps, 200'000'000u);
  EXPECT_FALSE(p.ast->downloads[0].adaptive->start);
  EXPECT_EQ(print_policy(*p.ast), "policy p {\n    link adaptive 10mbit-100mbit start 50mbit delay 1.5ms;\n"
                                  "    download adaptive 20mbit-200mbit;\n    class a { default; }\n}\n");
  auto fixed = parse("policy p { link 1gbit; download 300mbit; class a { default; } }");
  ASSERT_TRUE(fixed.ast) << fixed.diags;
  EXPECT_FALSE(fixed.ast->links[0].adaptive);
  EXPECT_EQ(fixed.ast->downloads[0].rate.bps, 300'000'000u);
  // `download` names no item elsewhere: a class may still be called that.
  EXPECT_TRUE(parse("policy p { link 1gbit; class download { default; } }").ast);
}

TEST(Parser, AdaptiveSyntaxErrorsSayWhatToWrite) {
  auto p = parse("policy p {\n  link adaptive 10mbit;\n  download adaptive 1mbit-2mbit delay 5;\n"
                 "  link adaptive 1mbit-2mbit start 1mbit start 2mbit;\n  class a { default; }\n}\n");
  EXPECT_EQ(p.errors, 3u) << p.diags;
  EXPECT_NE(p.diags.find("t.qos:2:23: error: expected '-' and the highest rate after the lowest"), std::string::npos) << p.diags;
  EXPECT_NE(p.diags.find("t.qos:3:39: error: duration 5 has no unit"), std::string::npos) << p.diags;
  EXPECT_NE(p.diags.find("t.qos:4:41: error: 'start' is given twice"), std::string::npos) << p.diags;
}

TEST(Parser, UdpPortsBelongToUdp) {
  auto p = parse("policy t { link 1mbit; class a { default; } rule tcp udp dport 53 -> a; }");
  ASSERT_TRUE(p.ast) << p.diags;
  EXPECT_EQ(p.ast->rules[0].matches[2].l4, ast::MatchKind::Udp);
}

TEST(Parser, Ipv6AndWords) {
  auto p = parse("policy t { link 1mbit; class a { default; } rule ip6 daddr { ::1, 2001:db8::/32, ::ffff:1.2.3.4 } dscp ef proto gre -> drop; }");
  ASSERT_TRUE(p.ast) << p.diags;
  const auto& r = p.ast->rules[0];
  EXPECT_TRUE(r.drop);
  const auto& els = r.matches[0].value->elements;
  ASSERT_EQ(els.size(), 3u);
  EXPECT_EQ(std::get<ast::Ipv6>(els[0]).addr[15], 1);
  EXPECT_EQ(std::get<ast::Ipv6>(els[1]).len, 32u);
  EXPECT_EQ(std::get<ast::Ipv6>(els[2]).addr[15], 4);
  EXPECT_EQ(std::get<ast::Word>(r.matches[1].value->elements[0]).text, "ef");
  EXPECT_EQ(std::get<ast::Word>(r.matches[2].value->elements[0]).text, "gre");
}

TEST(Parser, RankExpressionTree) {
  auto p = parse("policy t { link 1mbit; scheduler pifo { rank = 1 + 2 * -pkt.len - min(3, 4); bands 2; } class a { default; } }");
  ASSERT_TRUE(p.ast) << p.diags;
  const auto& s = p.ast->schedulers.at(0);
  ASSERT_EQ(s.params.size(), 2u);
  const auto* e = s.params[0].expr.get();
  ASSERT_NE(e, nullptr);
  // ((1 + (2 * -pkt.len)) - min(3, 4)): left-associative, * binds tighter.
  EXPECT_EQ(e->op, '-');
  EXPECT_EQ(e->args[0]->op, '+');
  EXPECT_EQ(e->args[0]->args[1]->op, '*');
  EXPECT_EQ(e->args[0]->args[1]->args[1]->kind, ast::Expr::Kind::Neg);
  EXPECT_EQ(e->args[1]->kind, ast::Expr::Kind::Call);
  EXPECT_EQ(e->args[1]->name, "min");
  EXPECT_EQ(s.params[1].name, "bands");
  EXPECT_EQ(s.params[1].number->value, 2u);
}

TEST(Parser, CommentsAnywhere) {
  auto p = parse("# head\npolicy t # x\n{ link # y\n 1mbit; # z\n class a { # w\n default; } }\n# tail");
  ASSERT_TRUE(p.ast) << p.diags;
  EXPECT_EQ(p.ast->links[0].rate.bps, 1'000'000u);
}

TEST(Parser, ArrowWithoutSpaces) {
  auto p = parse("policy t { link 1mbit; class a-b { default; } rule tcp->a-b; rule udp dport 1->a-b; }");
  ASSERT_TRUE(p.ast) << p.diags;
  EXPECT_EQ(p.ast->rules[0].target, "a-b");
  EXPECT_EQ(p.ast->rules[1].target, "a-b");
}

TEST(Parser, SeveralErrorsInOneRun) {
  auto p = parse("policy t {\n link 1mbps;\n class a { priority x; default; }\n rule tcp dport -> a;\n rule udp -> a\n}\n");
  EXPECT_FALSE(p.ast);
  EXPECT_EQ(p.errors, 4u) << p.diags;
}

TEST(Parser, RatesAndSizes) {
  struct Case { const char* text; uint64_t bps; };
  for (auto c : {Case{"1bit", 1}, Case{"1kbit", 1000}, Case{"1.5kbit", 1500}, Case{"3gbit", 3'000'000'000ull},
                 Case{"1tbit", 1'000'000'000'000ull}, Case{"100Mbit", 100'000'000}}) {
    std::string err;
    auto v = parse_rate_text(c.text, &err);
    ASSERT_TRUE(v) << c.text << ": " << err;
    EXPECT_EQ(*v, c.bps) << c.text;
  }
  for (const char* bad : {"100", "100mbps", "1.5bit", "100mb", "99999999999999999999gbit", "5furlongs"}) {
    std::string err;
    EXPECT_FALSE(parse_rate_text(bad, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
}

TEST(Parser, HugeNumbersAreDiagnosedNotWrapped) {
  auto p = parse("policy t { link 1mbit; class a { priority 99999999999999999999999; default; } }");
  EXPECT_FALSE(p.ast);
  EXPECT_NE(p.diags.find("too large"), std::string::npos) << p.diags;
}

TEST(Printer, RoundTripsThroughTheParser) {
  const char* text =
      "policy t { link 1mbit; scheduler pifo { rank = (1 + -pkt.len) * 2; bands 3; } set s = { 1, 2-3 };"
      " class a { priority 1; weight 2; quantum 3b; rate 4kbit; burst 5kb; default; }"
      " rule ip saddr != { 10.0.0.0/8, 1.2.3.4 } tcp sport @s dport 5 -> a; rule ip6 daddr ::/0 dscp af11 -> drop; rule ip6 -> a; }";
  auto p = parse(text);
  ASSERT_TRUE(p.ast) << p.diags;
  std::string once = print_policy(*p.ast);
  auto q = parse(once);
  ASSERT_TRUE(q.ast) << q.diags << "\n" << once;
  EXPECT_EQ(print_policy(*q.ast), once);
}

}  // namespace
}  // namespace qosc
