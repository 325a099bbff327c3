// Packet notation, policy test files, explain, and the diagnostics formats.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/wait.h>

#include "qosc/diag_format.hpp"
#include "qosc/frontend.hpp"
#include "qosc/packet_notation.hpp"
#include "qosc/review.hpp"
#include "random_policy.hpp"
#include "shell.hpp"

namespace qosc {
namespace {

std::optional<NotatedPacket> packet(const std::string& text, std::string* errors = nullptr) {
  SourceFile f("<packet>", text);
  Diagnostics d(&f);
  auto p = parse_packet_notation(f, d);
  if (errors) *errors = d.str();
  return p;
}

TEST(PacketNotation, ReadsEveryForm) {
  auto p = packet("udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->fields.ip);
  EXPECT_EQ(p->fields.family, ir::Family::V4);
  EXPECT_EQ(p->fields.proto, 17);
  EXPECT_TRUE(p->fields.l4);
  EXPECT_EQ(p->fields.sport, 50000);
  EXPECT_EQ(p->fields.dport, 3074);
  EXPECT_EQ(p->fields.dscp, 46);
  EXPECT_EQ((std::array<uint8_t, 4>{p->fields.saddr[0], p->fields.saddr[1], p->fields.saddr[2], p->fields.saddr[3]}),
            (std::array<uint8_t, 4>{192, 168, 1, 5}));

  auto q = packet("tcp [2001:db8::1]:443 > [2001:db8::2]:50000 vlan 7");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->fields.family, ir::Family::V6);
  EXPECT_EQ(q->fields.sport, 443);
  EXPECT_EQ(q->vlan, 7);

  auto r = packet("icmpv6 2001:db8::1 > ::1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->fields.proto, 58);
  EXPECT_FALSE(r->fields.l4);

  auto s = packet("proto gre 10.0.0.1 > 10.0.0.2 dscp 10");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->fields.proto, 47);
  EXPECT_EQ(s->fields.dscp, 10);

  auto t = packet("tcp 10.0.0.1 > 10.0.0.2 frag");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->fields.proto, 6);
  EXPECT_FALSE(t->fields.l4);
}

// The printer and the frame builder agree with the parser: text -> fields
// -> text, and fields -> frame -> reference packet parser -> the same fields.
TEST(PacketNotation, PrintsAndBuildsWhatItReads) {
  for (const char* text : {"udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef", "tcp 10.0.0.1:1 > 10.0.0.2:65535",
                           "tcp [2001:db8::1]:443 > [2001:db8::2]:50000 dscp cs1 vlan 4095", "icmp 10.0.0.1 > 10.0.0.2",
                           "icmpv6 2001:db8::1 > 2001:db8::2 dscp 63", "proto gre 10.0.0.1 > 10.0.0.2",
                           "proto 200 [::1] > [::2]", "udp 10.0.0.1 > 10.0.0.2 frag", "tcp 2001:db8::1 > 2001:db8::2 frag",
                           "proto 6 10.0.0.1:80 > 10.0.0.2:90", "proto icmp 2001:db8::1 > 2001:db8::2"}) {
    SCOPED_TRACE(text);
    std::string err;
    auto p = packet(text, &err);
    ASSERT_TRUE(p) << err;
    std::string printed = format_packet(*p);
    auto again = packet(printed, &err);
    ASSERT_TRUE(again) << printed << "\n" << err;
    EXPECT_EQ(again->fields, p->fields) << printed;
    EXPECT_EQ(again->vlan, p->vlan);
    auto frame = build_frame(*p);
    EXPECT_EQ(parse_packet(frame), p->fields) << to_string(parse_packet(frame)) << " vs " << to_string(p->fields);
  }
}

TEST(PacketNotation, RandomFieldsRoundTrip) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 3000; ++i) {
    PacketFields f;
    f.ip = true;
    f.family = rng() % 2 ? ir::Family::V4 : ir::Family::V6;
    const bool v6 = f.family == ir::Family::V6;
    for (int k = 0; k < (v6 ? 16 : 4); ++k) f.saddr[size_t(k)] = uint8_t(rng()), f.daddr[size_t(k)] = uint8_t(rng());
    f.dscp = uint8_t(rng() % 64);
    static const int protos[] = {6, 17, 1, 58, 47, 132, 255, 2};
    f.proto = protos[rng() % 8];
    f.l4 = (f.proto == 6 || f.proto == 17) && rng() % 4 != 0;
    if (f.l4) f.sport = uint16_t(rng()), f.dport = uint16_t(rng());
    NotatedPacket n{f, std::nullopt, (f.proto == 6 || f.proto == 17) && !f.l4, {}};
    f.len = n.fields.len = uint32_t(build_frame(n).size());
    std::string text = format_packet(f), err;
    auto p = packet(text, &err);
    ASSERT_TRUE(p) << text << "\n" << err;
    EXPECT_EQ(p->fields, f) << text;
    EXPECT_EQ(parse_packet(build_frame(*p)), f) << text;
  }
}

TEST(PacketNotation, BadPacketsAreLocated) {
  struct Case {
    const char* text;
    const char* message;   // the first line of the diagnostics
  };
  const Case cases[] = {
      {"udp 10.0.0.1:5 > 10.0.0.2", "<packet>:1:18: error: the destination needs a port: a UDP packet has ports"},
      {"tcp 10.0.0.1 > 10.0.0.2:80", "<packet>:1:5: error: the source needs a port: a TCP packet has ports"},
      {"icmp 10.0.0.1:5 > 10.0.0.2", "<packet>:1:6: error: the source has a port, but 'icmp' carries none"},
      {"udp 10.0.0.1:5 > [::1]:5", "<packet>:1:18: error: the source is an IPv4 address but the destination is an IPv6 address"},
      {"icmp ::1 > ::2", "<packet>:1:1: error: 'icmp' is ICMP for IPv4, but the addresses are IPv6"},
      {"tpc 10.0.0.1:5 > 10.0.0.2:6", "<packet>:1:1: error: expected the packet's protocol (tcp, udp, icmp, icmpv6 or proto N), found 'tpc'"},
      {"udp 10.0.0.1:5 10.0.0.2:6", "<packet>:1:16: error: expected '>' between the source and the destination, found '10.0.0.2:6'"},
      {"udp 10.0.0.1:70000 > 10.0.0.2:6", "<packet>:1:14: error: port 70000 is outside 0-65535"},
      {"udp 10.0.0.256:1 > 10.0.0.2:6", "<packet>:1:5: error: '10.0.0.256' is not an IPv4 address: 256 is above 255"},
      {"udp 10.0.0.0/8:1 > 10.0.0.2:6", "<packet>:1:5: error: '10.0.0.0/8' is a prefix; a packet has one address"},
      {"udp 10.0.0.1:1 > 10.0.0.2:6 dscp eff", "<packet>:1:34: error: unknown DSCP name 'eff'"},
      {"udp 10.0.0.1:1 > 10.0.0.2:6 dscp 64", "<packet>:1:34: error: DSCP value 64 is above 63"},
      {"udp 10.0.0.1:1 > 10.0.0.2:6 vlan 5000", "<packet>:1:34: error: VLAN id 5000 is outside 0-4095"},
      {"udp 10.0.0.1:1 > 10.0.0.2:6 fragment", "<packet>:1:29: error: expected 'dscp', 'vlan', 'frag' or the end of the packet, found 'fragment'"},
      {"proto 44 [::1] > [::2]", "<packet>:1:7: error: protocol 44 is an IPv6 extension header, never a packet's final protocol"},
      {"proto grr 10.0.0.1 > 10.0.0.2", "<packet>:1:7: error: unknown protocol name 'grr'"},
      {"udp [2001:db8::1:1 > 10.0.0.2", "<packet>:1:19: error: expected ']' after the IPv6 address, found '>'"},
      {"", "<packet>:1:1: error: expected the packet's protocol (tcp, udp, icmp, icmpv6 or proto N), found end of input"},
  };
  for (const auto& c : cases) {
    std::string err;
    EXPECT_FALSE(packet(c.text, &err)) << c.text;
    EXPECT_EQ(err.substr(0, err.find('\n')), c.message) << c.text << "\n" << err;
  }
}

std::optional<std::vector<Expectation>> tests_of(const std::string& text, std::string* errors) {
  SourceFile f("t.tests", text);
  Diagnostics d(&f);
  auto r = parse_test_file(f, d);
  *errors = d.str();
  if (d.has_errors()) return std::nullopt;
  return r;
}

TEST(TestFile, ReadsCasesAndComments) {
  std::string err;
  auto r = tests_of("# a comment\n\nexpect udp 1.2.3.4:5 > 5.6.7.8:9 -> gaming;   # why\n"
                    "expect tcp 1.2.3.4:5 >\n  5.6.7.8:23 -> drop;\n",
                    &err);
  ASSERT_TRUE(r) << err;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].target, "gaming");
  EXPECT_EQ((*r)[0].loc.line, 3u);
  EXPECT_EQ((*r)[0].packet_text, "udp 1.2.3.4:5 > 5.6.7.8:9");
  EXPECT_TRUE((*r)[1].drop);
  EXPECT_EQ((*r)[1].packet_text, "tcp 1.2.3.4:5 > 5.6.7.8:23");
}

TEST(TestFile, ReportsEveryBrokenCase) {
  std::string err;
  auto r = tests_of("expect udp 1.2.3.4:5 > 5.6.7.8 -> a;\nexpect udp 1.2.3.4:5 > 5.6.7.8:9 a;\n"
                    "expct udp 1.2.3.4:5 > 5.6.7.8:9 -> a;\nexpect udp 1.2.3.4:5 > 5.6.7.8:9 -> a\n",
                    &err);
  EXPECT_FALSE(r);
  EXPECT_NE(err.find("t.tests:1:24: error: the destination needs a port"), std::string::npos) << err;
  EXPECT_NE(err.find("t.tests:2:34: error: expected 'dscp', 'vlan', 'frag', or '->' and the expected class, found 'a;'"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("t.tests:3:1: error: expected 'expect PACKET -> CLASS;', found 'expct'"), std::string::npos) << err;
  EXPECT_NE(err.find("t.tests:4:38: error: expected ';' after the expected class, found end of input"), std::string::npos)
      << err;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Reviewed {
  std::unique_ptr<SourceFile> file;
  std::optional<ReviewedPolicy> policy;
};
Reviewed review(const std::string& name, const std::string& text) {
  Reviewed r;
  r.file = std::make_unique<SourceFile>(name, text);
  Diagnostics d(r.file.get());
  r.policy = review_policy(*r.file, d);
  EXPECT_TRUE(r.policy) << d.str();
  return r;
}

TEST(Explain, NamesTheDecidingRuleAndTheFirstFailedMatchOfEachEarlierOne) {
  auto r = review("gaming.qos", read(QOSC_SOURCE_DIR "/examples/gaming.qos"));
  auto p = packet("tcp 192.168.1.5:40000 > 198.51.100.7:22 dscp af41");
  ASSERT_TRUE(p);
  auto e = explain(*r.policy, p->fields);
  EXPECT_EQ(render_explanation(*r.policy, *p, e, false),
            "tcp 192.168.1.5:40000 > 198.51.100.7:22 dscp af41 -> control\n"
            "  decided by gaming.qos:18: rule ip saddr 192.168.1.0/24 tcp dport 22 -> control;\n"
            "  earlier rules:\n"
            "    gaming.qos:14: udp: the protocol is tcp\n"
            "    gaming.qos:15: udp: the protocol is tcp\n"
            "    gaming.qos:16: dscp ef: the DSCP is af41 (34)\n"
            "    gaming.qos:17: tcp dport { 80, 443 }: the destination port is 22\n");
  auto q = packet("udp [2001:db9::1]:5 > [2001:db9::2]:6");
  auto f = explain(*r.policy, q->fields);
  std::string v = render_explanation(*r.policy, *q, f, true);
  EXPECT_NE(v.find("  no rule matched: 'bulk' is the default class (gaming.qos:12)\n"), std::string::npos) << v;
  EXPECT_NE(v.find("    gaming.qos:18: rule ip saddr 192.168.1.0/24 tcp dport 22 -> control;\n"
                   "        ip saddr 192.168.1.0/24: the packet is IPv6\n"
                   "        tcp: the protocol is udp\n"
                   "        tcp dport 22: the protocol is udp\n"),
            std::string::npos)
      << v;
}

// On random policies and packets: explain's outcome is the interpreter's, its
// deciding rule matches with every match, and each earlier rule has a failed
// match that really fails (its rule without that match would still not
// decide differently is not claimed; the match alone fails).
TEST(Explain, SaysWhatSetDscpDoesOnEgress) {
  auto r = review("m.qos", "policy m {\n  link 1mbit;\n  class voip { set dscp ef; }\n  class bulk { default; }\n"
                           "  rule udp dport 5060 -> voip;\n}\n");
  ASSERT_TRUE(r.policy);
  auto p = packet("udp 10.0.0.1:5000 > 10.0.0.2:5060 dscp af11");
  ASSERT_TRUE(p);
  EXPECT_EQ(render_explanation(*r.policy, *p, explain(*r.policy, p->fields), false),
            "udp 10.0.0.1:5000 > 10.0.0.2:5060 dscp af11 -> voip\n"
            "  decided by m.qos:5: rule udp dport 5060 -> voip;\n"
            "  on egress: DSCP af11 (10) -> ef (46) (set dscp of class 'voip', m.qos:3)\n");
  auto q = packet("udp 10.0.0.1:5000 > 10.0.0.2:53");   // the default class has no set dscp
  ASSERT_TRUE(q);
  EXPECT_EQ(render_explanation(*r.policy, *q, explain(*r.policy, q->fields), false).find("on egress"), std::string::npos);
}

TEST(Explain, AgreesWithTheInterpreterOnRandomPolicies) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 60; ++i) {
    std::string text = testsupport::random_policy(rng);
    auto r = review("r.qos", text);
    if (!r.policy) continue;
    const auto& P = *r.policy;
    for (int k = 0; k < 200; ++k) {
      PacketFields f;
      f.ip = true;
      f.family = rng() % 2 ? ir::Family::V4 : ir::Family::V6;
      for (auto& b : f.saddr) b = uint8_t(rng() % 4 == 0 ? rng() : (rng() % 3) * 64);
      for (auto& b : f.daddr) b = uint8_t(rng() % 4 == 0 ? rng() : (rng() % 3) * 64);
      static const int protos[] = {6, 17, 1, 58, 47};
      f.proto = protos[rng() % 5];
      f.l4 = f.proto == 6 || f.proto == 17;
      f.sport = uint16_t(rng() % 3 == 0 ? rng() : rng() % 100);
      f.dport = uint16_t(rng() % 3 == 0 ? rng() : rng() % 100);
      f.dscp = uint8_t(rng() % 64);
      auto e = explain(P, f);
      ASSERT_EQ(e.outcome, classify(P.ir, f)) << text;
      if (e.deciding_rule >= 0) {
        for (const auto& m : P.match_alone[size_t(e.deciding_rule)]) EXPECT_TRUE(rule_matches(m, f)) << text;
        EXPECT_EQ(P.every_rule.rules[size_t(e.deciding_rule)].target, e.outcome);
      }
      for (const auto& miss : e.earlier) {
        EXPECT_FALSE(rule_matches(P.every_rule.rules[miss.rule], f)) << text;
        EXPECT_FALSE(miss.failed.empty()) << text << "\nrule " << miss.rule;
      }
    }
  }
}

TEST(PolicyTests, UnknownClassIsAnErrorWithAHint) {
  auto r = review("gaming.qos", read(QOSC_SOURCE_DIR "/examples/gaming.qos"));
  SourceFile t("g.tests", "expect udp 1.2.3.4:5 > 5.6.7.8:3074 -> gamng;\n");
  Diagnostics d(&t);
  auto cases = parse_test_file(t, d);
  ASSERT_EQ(cases.size(), 1u);
  EXPECT_FALSE(run_policy_tests(*r.policy, cases, "g.tests", d));
  EXPECT_EQ(d.str(), "g.tests:1:40: error: unknown class 'gamng': policy 'gaming' has no such class\n"
                     "   1 | expect udp 1.2.3.4:5 > 5.6.7.8:3074 -> gamng;\n"
                     "     |                                        ^~~~~\n"
                     "hint: did you mean 'gaming'?\n");
}

TEST(DiagnosticsFormat, JsonAndSarifCarryEveryDiagnostic) {
  SourceFile f("p.qos", "policy p {\n  link 1mbit;\n  class a { default; }\n  rule tcp -> b;\n}\n");
  Diagnostics d(&f);
  auto ast = parse_policy(f, d);
  ASSERT_TRUE(ast);
  (void)check_and_lower(*ast, f, d);
  ASSERT_EQ(d.error_count(), 1u);
  std::ostringstream text, js, sa;
  DiagnosticsReport rj(DiagnosticsFormat::Json, text), rs(DiagnosticsFormat::Sarif, text);
  rj.add(d);
  rs.add(d);
  rj.finish(js);
  rs.finish(sa);
  EXPECT_EQ(text.str(), "");
  auto j = nlohmann::json::parse(js.str());
  ASSERT_EQ(j["diagnostics"].size(), 1u);
  EXPECT_EQ(j["diagnostics"][0]["file"], "p.qos");
  EXPECT_EQ(j["diagnostics"][0]["line"], 4);
  EXPECT_EQ(j["diagnostics"][0]["column"], 15);
  EXPECT_EQ(j["diagnostics"][0]["severity"], "error");
  EXPECT_EQ(j["diagnostics"][0]["message"], "unknown class 'b'");
  auto s = nlohmann::json::parse(sa.str());
  EXPECT_EQ(s["version"], "2.1.0");
  const auto& res = s["runs"][0]["results"];
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0]["level"], "error");
  EXPECT_EQ(res[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "p.qos");
  EXPECT_EQ(res[0]["locations"][0]["physicalLocation"]["region"]["startLine"], 4);
  EXPECT_EQ(res[0]["locations"][0]["physicalLocation"]["region"]["startColumn"], 15);
  EXPECT_EQ(res[0]["locations"][0]["physicalLocation"]["region"]["endColumn"], 16);
}

#ifdef QOSC_BIN
using qt_support::shell;

std::string temp_dir() {
  std::string d = ::testing::TempDir() + "qosc_review_cli";
  std::string cmd = "mkdir -p '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return d;
}

TEST(Cli, TestPrintsFailuresAndTheTotals) {
  const std::string dir = temp_dir();
  {
    std::ofstream t(dir + "/wrong.tests");
    t << "expect udp 192.168.1.5:50000 > 203.0.113.9:3074 -> gaming;\n"
         "expect tcp 192.168.1.5:40000 > 198.51.100.7:443 -> bulk;\n"
         "expect tcp 192.168.1.5:40000 > 198.51.100.7:8443 -> web;\n"
         "expect tcp 192.168.1.5:40000 > 198.51.100.7:23 -> web;\n";
  }
  int code = 0;
  std::string out = shell("cd '" + dir + "' && cp '" QOSC_SOURCE_DIR "/examples/gaming.qos' . && '" QOSC_BIN
                          "' test --no-bpf --junit junit.xml gaming.qos wrong.tests 2>&1",
                          &code);
  EXPECT_EQ(out, "wrong.tests:2: expected 'bulk', got 'web' (decided by gaming.qos:17)\n"
                 "wrong.tests:3: expected 'web', got 'bulk' (no rule matched; default class at gaming.qos:12)\n"
                 "wrong.tests:4: expected 'web', got 'drop' (decided by gaming.qos:21)\n"
                 "1 passed, 3 failed\n");
  EXPECT_EQ(code, 1);
  std::string xml = read(dir + "/junit.xml");
  EXPECT_NE(xml.find("<testsuite name=\"wrong.tests\" tests=\"4\" failures=\"3\">"), std::string::npos) << xml;
  out = shell("'" QOSC_BIN "' test --no-bpf '" QOSC_SOURCE_DIR "/examples/gaming.qos' '" QOSC_SOURCE_DIR
              "/examples/gaming.tests' 2>&1",
              &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(" passed, 0 failed\n"), std::string::npos) << out;
}

TEST(Cli, FmtCheckShowsADiffAndRewritesInPlace) {
  const std::string dir = temp_dir();
  {
    std::ofstream p(dir + "/messy.qos");
    p << "policy m {   # header\n link 1mbit;\n\n\n  class a {default;}   class bb { priority 1; rate 1mbit; }\n"
         "rule tcp dport {80,443} -> bb; # web\n}\n";
  }
  int code = 0;
  std::string out = shell("cd '" + dir + "' && '" QOSC_BIN "' fmt --check messy.qos", &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(out, "--- messy.qos\n+++ messy.qos (formatted)\n@@ -1,7 +1,7 @@\n"
                 "-policy m {   # header\n- link 1mbit;\n-\n+policy m {  # header\n+    link 1mbit;\n \n"
                 "-  class a {default;}   class bb { priority 1; rate 1mbit; }\n-rule tcp dport {80,443} -> bb; # web\n"
                 "+    class a  { default; }\n+    class bb { priority 1; rate 1mbit; }\n"
                 "+    rule tcp dport { 80, 443 } -> bb;  # web\n }\n");
  out = shell("cd '" + dir + "' && '" QOSC_BIN "' fmt messy.qos && '" QOSC_BIN "' fmt --check messy.qos && cat messy.qos",
              &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "policy m {  # header\n    link 1mbit;\n\n    class a  { default; }\n    class bb { priority 1; rate 1mbit; }\n"
                 "    rule tcp dport { 80, 443 } -> bb;  # web\n}\n");
  out = shell("printf 'policy x { class a { default; } }' | '" QOSC_BIN "' fmt -", &code);
  EXPECT_EQ(out, "policy x {\n    class a { default; }\n}\n");
  out = shell("printf 'policy x { class a { default; }' | '" QOSC_BIN "' fmt --color never - 2>&1", &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("<stdin>:1:32: error: expected '}' to close the policy"), std::string::npos) << out;
}

TEST(Cli, CheckAndFmtCheckWriteStructuredDiagnostics) {
  const std::string dir = temp_dir();
  {
    std::ofstream p(dir + "/typo.qos");
    p << "policy t {\n    link 1mbit;\n    class a { default; }\n    rule tcp dport 80 -> wbe;\n}\n";
    std::ofstream q(dir + "/loose.qos");
    q << "policy l { link 1mbit; class a { default; } }\n";
  }
  int code = 0;
  std::string out = shell("cd '" + dir + "' && '" QOSC_BIN "' check --diagnostics-format json typo.qos 2>/dev/null", &code);
  EXPECT_EQ(code, 1);
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["diagnostics"].size(), 1u) << out;
  EXPECT_EQ(j["diagnostics"][0]["line"], 4);
  EXPECT_EQ(j["diagnostics"][0]["message"], "unknown class 'wbe'");
  out = shell("cd '" + dir + "' && '" QOSC_BIN "' fmt --check --diagnostics-format sarif loose.qos 2>&1 >/dev/null", &code);
  EXPECT_EQ(code, 1);
  auto s = nlohmann::json::parse(out);
  ASSERT_EQ(s["runs"][0]["results"].size(), 1u) << out;
  EXPECT_EQ(s["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "loose.qos");
}
#endif

}  // namespace
}  // namespace qosc
