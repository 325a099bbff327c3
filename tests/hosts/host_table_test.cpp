// Host tables (qosrun/host_table.hpp): what is accepted, and that a bad
// table is refused whole with every problem as FILE:LINE: what to do.
#include <gtest/gtest.h>

#include <string>

#include "qosrun/host_table.hpp"

namespace qosrun::hosts {
namespace {

TableRules rules(size_t max = 1000) {
  TableRules r;
  r.plans = {"basic", "premium"};
  r.max_prefixes = max;
  return r;
}

HostTable ok(const std::string& text, TableFormat f = TableFormat::Auto) {
  auto t = parse_host_table(text, "t.csv", rules(), f);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return t.ok() ? *t : HostTable{};
}

std::string refused(const std::string& text, size_t max = 1000, const std::string& source = "t.csv") {
  auto t = parse_host_table(text, source, rules(max));
  EXPECT_FALSE(t.ok()) << "accepted:\n" << text;
  return t.ok() ? "" : t.error().message;
}

TEST(HostTable, CsvWithQuotesCommentsAndBothFamilies) {
  HostTable t = ok("# our customers\n"
                   "host,plan,prefixes\n"
                   "\n"
                   "alice,basic,10.0.0.5\n"
                   "\"bob, 2nd floor\",premium,\"10.0.1.0/24 2001:db8:1::/48\"\n"
                   "  carol , basic , 2001:db8:2::7  \n"
                   "\"dan \"\"the\"\" host\",basic,192.168.9.0/30\n");
  ASSERT_EQ(t.hosts.size(), 4u);
  EXPECT_EQ(t.hosts[0].name, "alice");
  EXPECT_EQ(t.hosts[0].line, 4u);
  ASSERT_EQ(t.hosts[0].prefixes.size(), 1u);
  EXPECT_EQ(t.hosts[0].prefixes[0].text(), "10.0.0.5/32");
  EXPECT_EQ(t.hosts[0].prefixes[0].len, 128);   // IPv4-mapped: 96 + 32
  EXPECT_EQ(t.hosts[1].name, "bob, 2nd floor");
  ASSERT_EQ(t.hosts[1].prefixes.size(), 2u);
  EXPECT_EQ(t.hosts[1].prefixes[0].text(), "10.0.1.0/24");
  EXPECT_EQ(t.hosts[1].prefixes[1].text(), "2001:db8:1::/48");
  EXPECT_EQ(t.hosts[2].name, "carol");
  EXPECT_EQ(t.hosts[2].prefixes[0].text(), "2001:db8:2::7/128");
  EXPECT_EQ(t.hosts[3].name, "dan \"the\" host");
  EXPECT_EQ(t.prefix_count(), 5u);
}

TEST(HostTable, JsonByContentWithLines) {
  HostTable t = ok("[\n"
                   "  {\"host\": \"alice\", \"plan\": \"basic\", \"prefixes\": [\"10.0.0.5\"]},\n"
                   "  {\n"
                   "    \"host\": \"bob\", \"plan\": \"premium\",\n"
                   "    \"prefixes\": [\"10.0.1.0/24\", \"2001:db8::/32\"]\n"
                   "  }\n"
                   "]\n");
  ASSERT_EQ(t.hosts.size(), 2u);
  EXPECT_EQ(t.hosts[0].line, 2u);
  EXPECT_EQ(t.hosts[1].line, 3u);
  EXPECT_EQ(t.hosts[1].prefixes[1].text(), "2001:db8::/32");
}

TEST(HostTable, EmptyTableIsNoHosts) {
  EXPECT_TRUE(ok("host,plan,prefixes\n").hosts.empty());
  EXPECT_TRUE(ok("[]").hosts.empty());
}

TEST(HostTable, MalformedLines) {
  std::string e = refused("host,plan,prefixes\n"
                          "alice,basic\n"
                          "bob,basic,10.0.0.1,extra\n"
                          "\"carol,basic,10.0.0.2\n"
                          "dan\"x,basic,10.0.0.3\n");
  EXPECT_NE(e.find("t.csv:2: malformed line: 2 field(s)"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:3: malformed line: 4 field(s)"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:4: malformed line: a quote is opened and never closed"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:5: malformed line: a quote inside an unquoted field"), std::string::npos) << e;
  EXPECT_NE(e.find("4 problems, nothing was changed"), std::string::npos) << e;
}

TEST(HostTable, MissingHeader) {
  std::string e = refused("alice,basic,10.0.0.5\n");
  EXPECT_NE(e.find("t.csv:1: the first line must be the header host,plan,prefixes"), std::string::npos) << e;
}

TEST(HostTable, UnknownPlanListsThePolicysPlans) {
  std::string e = refused("host,plan,prefixes\nalice,gold,10.0.0.5\n");
  EXPECT_NE(e.find("t.csv:2: unknown plan 'gold' for host 'alice': the policy's plans are basic, premium"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("plan gold"), std::string::npos) << e;
}

TEST(HostTable, DuplicateHost) {
  std::string e = refused("host,plan,prefixes\nalice,basic,10.0.0.5\nalice,basic,10.0.0.6\n");
  EXPECT_NE(e.find("t.csv:3: host 'alice' is listed twice (first at line 2)"), std::string::npos) << e;
}

TEST(HostTable, DuplicatePrefix) {
  std::string e = refused("host,plan,prefixes\nalice,basic,10.0.0.5\nbob,basic,10.0.0.5/32\n");
  EXPECT_NE(e.find("t.csv:3: prefix 10.0.0.5/32 is listed for host 'bob' and for host 'alice' (line 2)"),
            std::string::npos)
      << e;
  e = refused("host,plan,prefixes\nalice,basic,10.0.0.5 10.0.0.5\n");
  EXPECT_NE(e.find("t.csv:2: host 'alice' lists prefix 10.0.0.5/32 twice"), std::string::npos) << e;
}

TEST(HostTable, OverlappingHosts) {
  std::string e = refused("host,plan,prefixes\nalice,basic,10.0.0.0/24\nbob,basic,10.0.0.77\n"
                          "carol,basic,2001:db8::/32\ndan,basic,2001:db8:5::/48\n");
  EXPECT_NE(e.find("t.csv:3: prefix 10.0.0.77/32 of host 'bob' lies inside prefix 10.0.0.0/24 of host 'alice' "
                   "(line 2)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("t.csv:5: prefix 2001:db8:5::/48 of host 'dan' lies inside prefix 2001:db8::/32 of host 'carol'"),
            std::string::npos)
      << e;
  // The wider prefix written later: reported at the later line all the same.
  e = refused("host,plan,prefixes\nbob,basic,10.0.0.77\nalice,basic,10.0.0.0/24\n");
  EXPECT_NE(e.find("t.csv:3:"), std::string::npos) << e;
  // IPv4 and IPv6 never overlap, nor do neighbours.
  ok("host,plan,prefixes\na,basic,10.0.0.0/25\nb,basic,10.0.0.128/25\nc,basic,::a00:0/120\n");
}

TEST(HostTable, HostBitsSuggestTheCanonicalForm) {
  std::string e = refused("host,plan,prefixes\nalice,basic,10.0.0.1/24\nbob,basic,2001:db8::1/64\n");
  EXPECT_NE(e.find("t.csv:2: host 'alice': '10.0.0.1/24' has host bits set: write 10.0.0.0/24 (or 10.0.0.1/32"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("write 2001:db8::/64"), std::string::npos) << e;
}

TEST(HostTable, BadAddressesAndLengths) {
  std::string e = refused("host,plan,prefixes\na,basic,10.0.0.300\nb,basic,10.0.0.0/33\nc,basic,10.0.0.0/\n"
                          "d,basic,fe80::zz\ne,basic,\n");
  EXPECT_NE(e.find("t.csv:2: host 'a': '10.0.0.300' is not an IPv4 or IPv6 address"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:3: host 'b': '10.0.0.0/33': the prefix length must be a number from 0 to 32"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("t.csv:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:5: host 'd': 'fe80::zz' is not an IPv6 address"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:6: host 'e' has no prefixes"), std::string::npos) << e;
}

TEST(HostTable, MorePrefixesThanTheMapHolds) {
  std::string e = refused("host,plan,prefixes\na,basic,10.0.0.1 10.0.0.2\nb,basic,10.0.0.3\n", 2);
  EXPECT_NE(e.find("t.csv: the table has 3 prefixes and the map qos_hosts holds 2: shard"), std::string::npos) << e;
}

TEST(HostTable, EveryProblemIsListedNotOnlyTheFirst) {
  std::string e = refused("host,plan,prefixes\n"
                          "a,gold,10.0.0.1\n"
                          "a,basic,10.0.0.2\n"
                          "b,basic,10.0.0.2/24\n"
                          "c,basic,10.0.0.2\n");
  EXPECT_NE(e.find("t.csv:2: unknown plan"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:3: host 'a' is listed twice"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:4: host 'b': '10.0.0.2/24' has host bits set"), std::string::npos) << e;
  EXPECT_NE(e.find("t.csv:5: prefix 10.0.0.2/32 is listed for host 'c' and for host 'a' (line 3)"), std::string::npos)
      << e;
  EXPECT_NE(e.find("4 problems"), std::string::npos) << e;
}

TEST(HostTable, JsonProblems) {
  std::string e = refused("[\n {\"host\": \"a\", \"plan\": \"basic\", \"prefixes\": [\"10.0.0.1\"], \"x\": 1},\n"
                          " {\"host\": 5, \"plan\": \"basic\", \"prefixes\": [\"10.0.0.2\"]},\n"
                          " {\"host\": \"c\", \"plan\": \"basic\"},\n"
                          " 7\n]",
                          1000, "t.json");
  EXPECT_NE(e.find("t.json:2: entry 1: unknown key \"x\""), std::string::npos) << e;
  EXPECT_NE(e.find("t.json:3: entry 2: \"host\" must be a string"), std::string::npos) << e;
  EXPECT_NE(e.find("t.json:4: entry 3: \"prefixes\" is missing"), std::string::npos) << e;
  EXPECT_NE(e.find("t.json:5: entry 4 is not an object"), std::string::npos) << e;
  e = refused("[\n {\"host\": \"a\",\n  \"plan\": \"basic\" \"prefixes\": []}\n]", 1000, "t.json");
  EXPECT_NE(e.find("t.json:3: not valid JSON"), std::string::npos) << e;
}

TEST(Prefix, OverlapsAndCanonicalText) {
  auto a = parse_prefix("10.0.0.0/8"), b = parse_prefix("10.200.3.0/24"), c = parse_prefix("::ffff:10.0.0.0/104");
  auto d = parse_prefix("11.0.0.0/8"), e = parse_prefix("2001:db8::/32"), f = parse_prefix("2001:db8:0:1::5");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok() && e.ok() && f.ok());
  EXPECT_TRUE(a->overlaps(*b));   // either way round
  EXPECT_TRUE(b->overlaps(*a));
  EXPECT_FALSE(a->overlaps(*d));
  EXPECT_FALSE(b->overlaps(*d));
  EXPECT_TRUE(e->overlaps(*f));   // across the halves of the 128 bits
  EXPECT_FALSE(e->overlaps(*a));
  EXPECT_TRUE(parse_prefix("::/0")->overlaps(*a));
  // ::ffff:10.0.0.0/104 is written as IPv6 but is the same trie key as 10.0.0.0/8.
  EXPECT_EQ(a->addr, c->addr);
  EXPECT_EQ(a->len, c->len);
  EXPECT_EQ(parse_prefix("0.0.0.0/0")->text(), "0.0.0.0/0");
  EXPECT_EQ(parse_prefix("::/0")->len, 0);
  std::string canonical;
  EXPECT_FALSE(parse_prefix("192.168.1.77/16", &canonical).ok());
  EXPECT_EQ(canonical, "192.168.0.0/16");
}

}  // namespace
}  // namespace qosrun::hosts
