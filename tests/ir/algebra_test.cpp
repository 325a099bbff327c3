// The rule algebra against the reference interpreter, by brute force.
//
// For a small policy, every packet decides like one of a finite set of
// *representatives*: per dimension, one value for each elementary interval
// between the boundaries the rules' values create (computed here without the
// algebra). Checking a claim on every representative checks it on every
// packet. Policies come from the random generator (tests/support).
#include <gtest/gtest.h>

#include <bitset>
#include <map>
#include <random>
#include <set>

#include "qosc/diff.hpp"
#include "qosc/frontend.hpp"
#include "qosc/match_text.hpp"
#include "qosc/reach.hpp"
#include "random_policy.hpp"

namespace qosc {
namespace detail {
std::optional<ir::Policy> check_and_lower_keep_dead(const ast::Policy&, const SourceFile&, Diagnostics&);
}

namespace {

using Addr = std::array<uint8_t, 16>;

// The first address after a prefix, unless it wraps.
std::optional<Addr> after(const ir::Prefix& p) {
  const int width = p.family == ir::Family::V4 ? 32 : 128;
  Addr a = p.addr;
  for (int bit = p.len; bit < width; ++bit) a[size_t(bit / 8)] |= uint8_t(0x80u >> (bit % 8));
  for (int i = width / 8 - 1; i >= 0; --i) {
    if (++a[size_t(i)] != 0) return a;
  }
  return std::nullopt;
}

std::vector<PacketFields> representatives(const std::vector<const ir::Policy*>& policies) {
  std::vector<const ir::Rule*> rules;
  for (const auto* p : policies)
    for (const auto& r : p->rules) rules.push_back(&r);
  // Protocols: one per membership signature over the rules' protocol sets;
  // TCP and UDP always (with and without ports).
  std::map<std::vector<bool>, int> proto_sig;
  for (int v = 0; v < 256; ++v) {
    std::vector<bool> sig;
    for (const auto* r : rules) sig.push_back(r->protos && r->protos->test(size_t(v)));
    proto_sig.emplace(sig, v);
  }
  std::set<int> protos = {6, 17, -1};
  for (const auto& [sig, v] : proto_sig) protos.insert(v);
  std::map<std::vector<bool>, int> dscp_sig;
  for (int v = 0; v < 64; ++v) {
    std::vector<bool> sig;
    for (const auto* r : rules) sig.push_back(r->dscp && r->dscp->test(size_t(v)));
    dscp_sig.emplace(sig, v);
  }
  std::set<uint16_t> ports = {0};
  for (const auto* r : rules)
    for (const auto* s : {&r->sport, &r->dport})
      if (*s)
        for (const auto& iv : **s) {
          ports.insert(iv.lo);
          if (iv.hi < 65535) ports.insert(uint16_t(iv.hi + 1));
        }
  std::map<ir::Family, std::set<Addr>> addrs;
  addrs[ir::Family::V4].insert(Addr{});
  addrs[ir::Family::V6].insert(Addr{});
  for (const auto* r : rules)
    for (const auto& m : r->addrs)
      for (const auto& p : m.prefixes) {
        addrs[p.family].insert(p.addr);
        if (auto a = after(p)) addrs[p.family].insert(*a);
      }
  std::vector<PacketFields> out;
  for (ir::Family fam : {ir::Family::V4, ir::Family::V6})
    for (int proto : protos) {
      if (proto < 0 && fam == ir::Family::V4) continue;
      for (int l4 = 0; l4 < 2; ++l4) {
        if (l4 && proto != 6 && proto != 17) continue;
        const std::set<uint16_t> none = {0};
        for (const auto& [sig, dscp] : dscp_sig)
          for (uint16_t sp : l4 ? ports : none)
            for (uint16_t dp : l4 ? ports : none)
              for (const auto& sa : addrs[fam])
                for (const auto& da : addrs[fam]) {
                  PacketFields f;
                  f.ip = true;
                  f.family = fam;
                  f.proto = proto;
                  f.l4 = l4;
                  f.sport = sp;
                  f.dport = dp;
                  f.dscp = uint8_t(dscp);
                  f.saddr = sa;
                  f.daddr = da;
                  out.push_back(f);
                }
      }
    }
  return out;
}

struct Lowered {
  std::optional<ir::Policy> live;   // as the front end gives it (unreachable rules left out)
  std::optional<ir::Policy> all;    // every rule kept
};

Lowered lower(const std::string& text) {
  Lowered l;
  SourceFile f("r.qos", text);
  Diagnostics d(&f), d2(&f);
  auto ast = parse_policy(f, d);
  if (!ast) return l;
  l.live = check_and_lower(*ast, f, d);
  l.all = detail::check_and_lower_keep_dead(*ast, f, d2);
  return l;
}

testsupport::RandomPolicyOptions small() {
  testsupport::RandomPolicyOptions o;
  o.max_rules = 6;
  o.max_matches = 3;
  o.allow_pifo = false;
  return o;
}

std::string outcome(const ir::Policy& p, int32_t c) { return c == ir::kDrop ? "drop" : p.classes[size_t(c)].name; }

TEST(IntervalSet, AgreesWithBitsets) {
  std::mt19937_64 rng(1);
  using S = ir::IntervalSet<uint32_t>;
  auto random_set = [&](std::bitset<64>* bits) {
    S s;
    uint32_t v = 0;
    while (v < 64) {
      uint32_t lo = v + uint32_t(rng() % 6), hi = lo + uint32_t(rng() % 6);
      if (lo > 63) break;
      hi = std::min<uint32_t>(hi, 63);
      s = s.unite(S::range(lo, hi));
      for (uint32_t i = lo; i <= hi; ++i) bits->set(i);
      v = hi + 1 + uint32_t(rng() % 3);
    }
    return s;
  };
  auto bits_of = [](const S& s) {
    std::bitset<64> b;
    for (const auto& iv : s.intervals()) {
      EXPECT_LE(iv.lo, iv.hi);
      for (uint32_t i = iv.lo; i <= iv.hi; ++i) b.set(i);
    }
    for (size_t k = 1; k < s.intervals().size(); ++k)  // sorted, disjoint, not adjacent
      EXPECT_GT(s.intervals()[k].lo, s.intervals()[k - 1].hi + 1);
    return b;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    std::bitset<64> ba, bb;
    S a = random_set(&ba), b = random_set(&bb);
    ASSERT_EQ(bits_of(a), ba);
    EXPECT_EQ(bits_of(a.intersect(b)), ba & bb);
    EXPECT_EQ(bits_of(a.minus(b)), ba & ~bb);
    EXPECT_EQ(bits_of(a.unite(b)), ba | bb);
    EXPECT_EQ(a.overlaps(b), (ba & bb).any());
    EXPECT_EQ(a.subset_of(b), (ba & ~bb).none());
    for (uint32_t v = 0; v < 64; ++v) EXPECT_EQ(a.contains(v), ba.test(v));
  }
}

// A rule's boxes hold exactly the packets the interpreter says it matches;
// box intersection and difference are exact on every representative.
TEST(Region, RuleBoxesAndOperationsAreExact) {
  std::mt19937_64 rng(2);
  size_t checked = 0;
  for (int iter = 0; iter < 120; ++iter) {
    auto l = lower(testsupport::random_policy(rng, small()));
    ASSERT_TRUE(l.all) << "generator produced an invalid policy";
    const auto& p = *l.all;
    auto reps = representatives({&p});
    if (reps.size() > 300000) continue;
    std::vector<ir::Region> regions;
    for (const auto& r : p.rules) regions.emplace_back(ir::rule_boxes(r));
    for (size_t i = 0; i + 1 < p.rules.size(); ++i) {
      ir::Region diff = regions[i];
      diff.subtract(regions[i + 1]);
      std::vector<ir::Box> inter;
      for (const auto& b : regions[i + 1].boxes()) {
        ir::Region x = regions[i].intersect(b);
        inter.insert(inter.end(), x.boxes().begin(), x.boxes().end());
      }
      for (const auto& f : reps) {
        bool a = rule_matches(p.rules[i], f), b = rule_matches(p.rules[i + 1], f);
        ASSERT_EQ(regions[i].contains(f), a) << to_string(f);
        size_t in_diff = 0, in_inter = 0;
        for (const auto& x : diff.boxes()) in_diff += x.contains(f);
        for (const auto& x : inter) in_inter += x.contains(f);
        ASSERT_EQ(in_diff, size_t(a && !b)) << to_string(f);   // disjoint pieces, exact
        ASSERT_EQ(in_inter, size_t(a && b)) << to_string(f);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100000u);
}

// Union-unreachability agrees with brute force: a rule is reported exactly
// when no packet has it as its first match. The front end leaves out exactly
// those rules, and leaving them out changes no decision.
TEST(Reach, UnreachableRulesAgreeWithBruteForce) {
  std::mt19937_64 rng(3);
  size_t dead_total = 0, union_only = 0, policies = 0;
  for (int iter = 0; iter < 250; ++iter) {
    auto l = lower(testsupport::random_policy(rng, small()));
    ASSERT_TRUE(l.all && l.live);
    const auto& p = *l.all;
    auto reps = representatives({&p});
    if (reps.size() > 300000) continue;
    ++policies;
    std::vector<bool> reached(p.rules.size());
    for (const auto& f : reps) {
      int m = first_match(p, f);
      if (m >= 0) reached[size_t(m)] = true;
      ASSERT_EQ(classify(p, f), classify(*l.live, f)) << to_string(f);
    }
    auto dead = ir::unreachable_rules(p);
    std::set<uint32_t> ds(dead.begin(), dead.end());
    for (uint32_t i = 0; i < p.rules.size(); ++i) EXPECT_EQ(ds.count(i) == 1, !reached[i]) << "rule " << i << " iter " << iter;
    EXPECT_EQ(l.live->rules.size(), p.rules.size() - dead.size());
    dead_total += dead.size();
    // Dead rules no single earlier rule covers (the case the union finds).
    for (uint32_t i : dead) {
      auto mine = ir::rule_boxes(p.rules[i]);
      if (mine.empty()) continue;
      bool single = false;
      for (uint32_t j = 0; j < i && !single; ++j) {
        ir::Region r(mine);
        r.subtract(ir::Region(ir::rule_boxes(p.rules[j])));
        single = r.empty();
      }
      union_only += !single;
    }
  }
  EXPECT_GT(policies, 150u);
  EXPECT_GT(dead_total, 20u);
  EXPECT_GT(union_only, 0u) << "no rule covered only by a union: the test does not exercise the union";
}

TEST(Reach, DecisionRegionsPartitionPacketSpace) {
  std::mt19937_64 rng(4);
  for (int iter = 0; iter < 120; ++iter) {
    auto l = lower(testsupport::random_policy(rng, small()));
    ASSERT_TRUE(l.live);
    const auto& p = *l.live;
    auto reps = representatives({&p});
    if (reps.size() > 300000) continue;
    auto regions = ir::decision_regions(p);
    for (const auto& f : reps) {
      int in = 0;
      int32_t got = 0;
      for (const auto& d : regions)
        if (d.region.contains(f)) ++in, got = d.outcome;
      ASSERT_EQ(in, 1) << to_string(f);
      ASSERT_EQ(got, classify(p, f)) << to_string(f);
    }
  }
}

// A printed match expression, compiled as a rule, matches exactly the
// packets of its part (every representative of both).
TEST(MatchText, PrintedExpressionsParseBackToTheSamePackets) {
  std::mt19937_64 rng(5);
  size_t printed = 0;
  for (int iter = 0; iter < 120; ++iter) {
    auto l = lower(testsupport::random_policy(rng, small()));
    ASSERT_TRUE(l.live);
    const auto& p = *l.live;
    for (const auto& d : ir::decision_regions(p)) {
      for (const auto& b : ir::merge_boxes(d.region.boxes())) {
        for (const auto& part : ir::match_parts(b)) {
          if (part.text.find('(') != std::string::npos) continue;  // a remark, not syntax
          std::string text = "policy t { link 1gbit; class a { default; } class b { }\n rule " + part.text + " -> b; }\n";
          auto back = lower(text);
          ASSERT_TRUE(back.live && back.live->rules.size() == 1) << part.text;
          const ir::Rule& r = back.live->rules[0];
          auto reps = representatives({&p, &*back.live});
          if (reps.size() > 300000) continue;
          for (const auto& f : reps)
            ASSERT_EQ(rule_matches(r, f), part.box.contains(f)) << part.text << "\n" << to_string(f);
          ++printed;
        }
        // The parts together are the box (port-less packets: whatever their ports).
        auto parts = ir::match_parts(b);
        ir::Box wide = b;
        wide.sport = wide.dport = ir::all_ports();
        for (const auto& f : representatives({&p})) {
          size_t n = 0;
          for (const auto& part : parts) n += part.box.contains(f);
          ASSERT_EQ(n, size_t(f.l4 ? b.contains(f) : wide.contains(f))) << to_string(f);
        }
      }
    }
  }
  EXPECT_GT(printed, 200u);
}

// Mutations a reviewer makes: swap two rules, widen a prefix, move a port
// range, send a rule to another class.
ir::Policy mutate(const ir::Policy& p, std::mt19937_64& rng) {
  ir::Policy m = p;
  if (m.rules.empty()) return m;
  size_t i = rng() % m.rules.size();
  switch (rng() % 4) {
    case 0:
      if (m.rules.size() > 1) std::swap(m.rules[i], m.rules[(i + 1) % m.rules.size()]);
      break;
    case 1:
      for (auto& a : m.rules[i].addrs)
        for (auto& pr : a.prefixes)
          if (pr.len > 0) {
            --pr.len;
            pr.addr[pr.len / 8] &= uint8_t(~(0x80u >> (pr.len % 8)));
            return m;
          }
      [[fallthrough]];
    case 2:
      for (auto* s : {&m.rules[i].dport, &m.rules[i].sport})
        if (*s && !(*s)->empty()) {
          auto& iv = (*s)->front();
          uint16_t shift = uint16_t(1 + rng() % 100);
          if (iv.hi + shift <= 65535 && ((*s)->size() == 1 || (*s)->at(1).lo > iv.hi + shift + 1)) {
            iv.lo = uint16_t(iv.lo + shift);
            iv.hi = uint16_t(iv.hi + shift);
          }
          return m;
        }
      [[fallthrough]];
    default:
      m.rules[i].target = m.rules[i].target == ir::kDrop ? 0 : int32_t((m.rules[i].target + 1) % m.classes.size());
  }
  return m;
}

// `qosc diff` is exact both ways: a representative's outcome differs exactly
// when it lies in a reported region with that old/new pair; each example
// packet really goes from `from` to `to`.
TEST(Diff, ExactBothWaysOnMutationsAndRandomPairs) {
  std::mt19937_64 rng(6);
  size_t differing = 0, lines = 0, pairs = 0;
  for (int iter = 0; iter < 200; ++iter) {
    auto la = lower(testsupport::random_policy(rng, small()));
    ASSERT_TRUE(la.live);
    const ir::Policy a = *la.live;
    ir::Policy b;
    if (iter % 4 == 3) {
      auto lb = lower(testsupport::random_policy(rng, small()));
      ASSERT_TRUE(lb.live);
      b = *lb.live;
    } else {
      b = mutate(a, rng);
    }
    auto reps = representatives({&a, &b});
    if (reps.size() > 300000) continue;
    ++pairs;
    auto d = analysis::diff_policies(a, b);
    for (const auto& t : d.traffic) {
      ++lines;
      if (!t.example) continue;
      EXPECT_EQ(outcome(a, classify(a, *t.example)), t.from) << t.match;
      EXPECT_EQ(outcome(b, classify(b, *t.example)), t.to) << t.match;
    }
    for (const auto& f : reps) {
      std::string from = outcome(a, classify(a, f)), to = outcome(b, classify(b, f));
      size_t in = 0;
      for (const auto& t : d.traffic)
        for (const auto& box : t.boxes)
          if (box.contains(f)) {
            ++in;
            EXPECT_EQ(t.from, from) << t.match << " " << to_string(f);
            EXPECT_EQ(t.to, to) << t.match << " " << to_string(f);
          }
      ASSERT_EQ(in, size_t(from != to)) << to_string(f) << " iter " << iter << "\n" << dump_ir(a) << "\n" << dump_ir(b) << "\n" << analysis::to_text(d);
      differing += from != to;
    }
    EXPECT_EQ(d.traffic.empty(), std::none_of(reps.begin(), reps.end(), [&](const PacketFields& f) {
                return outcome(a, classify(a, f)) != outcome(b, classify(b, f));
              }) && outcome(a, int32_t(a.default_class)) == outcome(b, int32_t(b.default_class)));
  }
  EXPECT_GT(pairs, 150u);
  EXPECT_GT(differing, 1000u);
  EXPECT_GT(lines, 100u);
}

TEST(Diff, SameMeaningIsNoChange) {
  const std::string a = R"(policy p { link 100mbit;
  class web { priority 1; } class bulk { default; }
  set ports = { 80, 443 };
  rule tcp dport @ports -> web;
  rule tcp dport 1-100 -> web;
  rule tcp dport 101-200 -> web;
  rule udp dport 53 -> bulk;
})";
  // Reordered equivalent rules, the set renamed and inlined, ranges joined.
  const std::string b = R"(policy p { link 100mbit;
  class web { priority 1; } class bulk { default; }
  set web_ports = { 443, 80 };
  rule udp dport 53 -> bulk;
  rule tcp dport 1-200 -> web;
  rule tcp dport @web_ports -> web;
})";
  auto la = lower(a), lb = lower(b);
  ASSERT_TRUE(la.live && lb.live);
  auto d = analysis::diff_policies(*la.live, *lb.live);
  EXPECT_TRUE(d.same()) << analysis::to_text(d);
}

TEST(Diff, OneRuleEditReadsAsOneLine) {
  const std::string a = R"(policy p { link 100mbit;
  class web { priority 1; } class bulk { default; } class games { priority 0; }
  rule udp dport 3074 -> games;
  rule ip saddr 10.0.0.0/8 tcp dport 80 -> web;
  rule tcp dport { 80, 443 } -> web;
  rule dscp ef -> games;
})";
  const std::string b = R"(policy p { link 100mbit;
  class web { priority 1; } class bulk { default; } class games { priority 0; }
  rule udp dport 3074 -> games;
  rule ip saddr 10.0.0.0/8 tcp dport 80 -> bulk;
  rule tcp dport { 80, 443 } -> web;
  rule dscp ef -> games;
})";
  auto la = lower(a), lb = lower(b);
  ASSERT_TRUE(la.live && lb.live);
  auto d = analysis::diff_policies(*la.live, *lb.live);
  ASSERT_EQ(d.traffic.size(), 1u) << analysis::to_text(d);
  EXPECT_EQ(d.traffic[0].match, "ip saddr 10.0.0.0/8 tcp dport 80");
  EXPECT_EQ(d.traffic[0].from, "web");
  EXPECT_EQ(d.traffic[0].to, "bulk");
  ASSERT_TRUE(d.traffic[0].example);
  EXPECT_EQ(ir::format_packet_example(*d.traffic[0].example), "tcp 10.0.0.1:50000 > 198.51.100.1:80");
}

// `set dscp` changes no class of any packet, but is a change of the class.
TEST(Diff, SetDscpChangesAreClassChanges) {
  const std::string a = R"(policy p { link 100mbit;
  class voip { priority 1; set dscp ef; } class bulk { set dscp 0; default; } class web { }
  rule udp dport 5060 -> voip; rule tcp dport 443 -> web;
})";
  const std::string b = R"(policy p { link 100mbit;
  class voip { priority 1; set dscp 34; } class bulk { default; } class web { set dscp cs2; }
  rule udp dport 5060 -> voip; rule tcp dport 443 -> web;
})";
  auto la = lower(a), lb = lower(b);
  ASSERT_TRUE(la.live && lb.live);
  auto d = analysis::diff_policies(*la.live, *lb.live);
  EXPECT_TRUE(d.traffic.empty()) << analysis::to_text(d);
  EXPECT_FALSE(d.same());
  const std::string text = analysis::to_text(d);
  EXPECT_NE(text.find("class 'voip': set dscp ef -> af41"), std::string::npos) << text;
  EXPECT_NE(text.find("class 'bulk': set dscp 0 -> none"), std::string::npos) << text;
  EXPECT_NE(text.find("class 'web': set dscp none -> cs2"), std::string::npos) << text;
  EXPECT_TRUE(analysis::diff_policies(*la.live, *la.live).same());
}

// A plan or the hosts line changes no class of any packet, but `qosc diff`
// reports every change of one: what each host of the table gets.
TEST(Diff, PlanAndHostsChangesAreReported) {
  const std::string a = R"(policy p { link 100mbit;
  class game { priority 0; } class bulk { default; }
  rule udp dport 27015 -> game;
  plan basic { rate 10mbit; } plan gone { rate 1mbit; } plan premium { rate 50mbit; }
  hosts daddr;
})";
  const std::string b = R"(policy p { link 100mbit;
  class game { priority 0; } class bulk { default; }
  rule udp dport 27015 -> game;
  plan basic { rate 20mbit; } plan new { rate 1mbit; } plan premium { rate 50mbit; ceil 80mbit; burst 64kb; classes bulk; }
  hosts saddr nat;
})";
  auto la = lower(a), lb = lower(b);
  ASSERT_TRUE(la.live && lb.live);
  auto d = analysis::diff_policies(*la.live, *lb.live);
  EXPECT_TRUE(d.traffic.empty()) << analysis::to_text(d);
  EXPECT_FALSE(d.same());
  const std::string text = analysis::to_text(d);
  for (const char* line : {"  hosts: daddr -> saddr nat\n", "  plan 'gone' removed\n", "  plan 'new' added\n",
                           "  plan 'basic': rate 10mbit -> 20mbit\n", "  plan 'premium': ceil the rate -> 80mbit\n",
                           "  plan 'premium': burst default -> 64kb\n", "  plan 'premium': classes all -> bulk\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << text;
  EXPECT_EQ(analysis::to_json(d)["classes"].size(), 7u) << text;
  EXPECT_TRUE(analysis::diff_policies(*la.live, *la.live).same());
  // Adding hosts and plans to a policy without them.
  const std::string plain = R"(policy p { link 100mbit;
  class game { priority 0; } class bulk { default; }
  rule udp dport 27015 -> game;
})";
  auto lp = lower(plain);
  ASSERT_TRUE(lp.live);
  const std::string added = analysis::to_text(analysis::diff_policies(*lp.live, *la.live));
  EXPECT_NE(added.find("  hosts: none -> daddr\n"), std::string::npos) << added;
  EXPECT_NE(added.find("  plan 'basic' added\n"), std::string::npos) << added;
}

TEST(PacketExample, Notation) {
  PacketFields f;
  f.ip = true;
  f.family = ir::Family::V4;
  f.proto = 17;
  f.l4 = true;
  f.saddr = {192, 168, 1, 5};
  f.daddr = {203, 0, 113, 9};
  f.sport = 50000;
  f.dport = 3074;
  f.dscp = 46;
  EXPECT_EQ(ir::format_packet_example(f), "udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef");
  f.family = ir::Family::V6;
  f.saddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  f.daddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  f.proto = 6;
  f.dport = 443;
  f.dscp = 0;
  EXPECT_EQ(ir::format_packet_example(f), "tcp [2001:db8::1]:50000 > [2001:db8::2]:443");
  f.proto = 58;
  f.l4 = false;
  EXPECT_EQ(ir::format_packet_example(f), "icmpv6 2001:db8::1 > 2001:db8::2");
  f.proto = 47;
  f.dscp = 5;
  EXPECT_EQ(ir::format_packet_example(f), "proto 47 2001:db8::1 > 2001:db8::2 dscp 5");
  f.proto = 6;
  EXPECT_EQ(ir::format_packet_example(f), "tcp 2001:db8::1 > 2001:db8::2 dscp 5 frag");
}

}  // namespace
}  // namespace qosc
