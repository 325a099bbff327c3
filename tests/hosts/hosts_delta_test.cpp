// The quick path of `hosts apply` (plan_delta, qosrun/hosts.hpp) against the
// whole one, without a kernel: for random edits of a table, the placement
// it records is byte for byte what plan_placement's would be, and the
// hosts it hands to apply() are those the whole placements differ in.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "hosts_test_support.hpp"
#include "qosrun/hosts.hpp"
#include "temp_dir.hpp"

namespace qosrun::hosts {
namespace {

using qh_test::hosts_manifest;
using qh_test::parse;

// A table as lines: a comment, the header, then one host a line.
struct Lines {
  std::vector<std::string> v;
  std::string text() const {
    std::string s;
    for (const auto& l : v) s += l + "\n";
    return s;
  }
};

std::string host_line(int i, const std::string& plan, int variant = 0) {
  std::string s = "h" + std::to_string(i) + "," + plan + ",10." + std::to_string(i / 256) + "." + std::to_string(i % 256) +
                  "." + std::to_string(1 + variant);
  if (i % 3 == 0) s += " 2001:db8:" + std::to_string(i) + "::/64";
  return s;
}

class HostsDelta : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    file_ = (dir_ / "hosts.state").string();
    reshape();
    for (const auto& p : m_.plans) rules_.plans.push_back(p.name);
    rules_.max_prefixes = 1 << 20;
  }
  void reshape() {
    root_ = htb::plan(m_, 1500, 65536).value();
    make_room_for_hosts(root_);
    shape_ = Shape::of(m_, root_, 1500, 65536);
  }

  // What apply would leave: `table` applied the whole way, recorded with its bytes.
  void record_whole(const std::string& table) {
    auto next = plan_placement(placement_, parse(table, m_), shape_);
    ASSERT_TRUE(next.ok()) << next.error().message;
    placement_ = *next;
    ASSERT_TRUE(write_placement(file_, placement_).ok());
    ASSERT_TRUE(write_applied_table(file_, placement_.generation, table).ok());
  }

  // The quick path for `table`, checked against the whole one; then the
  // whole one's result recorded as the next start. Returns whether it was quick.
  bool step(const std::string& table, std::string* why) {
    auto delta = plan_delta(file_, "t.csv", table, TableFormat::Csv, rules_, shape_, why);
    auto whole = plan_placement(placement_, parse(table, m_), shape_);
    EXPECT_TRUE(whole.ok()) << whole.error().message;
    if (delta) {
      const std::vector<uint32_t> none;
      EXPECT_EQ(delta->placement_text(delta->next_part, none), to_text(*whole, &none)) << table;
      // What apply() gets: the hosts that differ, as placed before and after.
      std::set<std::string> touched;
      for (const auto& h : delta->old_part.hosts) touched.insert(h.name);
      for (const auto& h : delta->next_part.hosts) touched.insert(h.name);
      for (const auto& h : placement_.hosts)
        if (!touched.count(h.name)) {
          const PlacedHost* now = whole->host(h.name);
          EXPECT_TRUE(now && *now == h) << h.name << " is untouched by the quick path but moved";
        }
      for (const auto& h : delta->old_part.hosts) EXPECT_EQ(*placement_.host(h.name), h);
      for (const auto& h : delta->next_part.hosts) EXPECT_EQ(*whole->host(h.name), h);
      EXPECT_EQ(delta->next_part.groups, whole->groups);
      EXPECT_EQ(delta->old_part.groups, placement_.groups);
      EXPECT_EQ(delta->next_part.next_host_id, whole->next_host_id);
      EXPECT_EQ(delta->untouched + delta->old_part.hosts.size(), placement_.hosts.size());
    }
    placement_ = *whole;
    EXPECT_TRUE(write_placement(file_, placement_).ok());
    EXPECT_TRUE(write_applied_table(file_, placement_.generation, table).ok());
    return delta.has_value();
  }

  qosc::Manifest m_ = hosts_manifest(100000000000ull);   // 100 Gbit: plans of 300 hosts never scale
  htb::Plan root_;
  Shape shape_;
  TableRules rules_;
  qt_support::TempDir dir_{"qh-delta"};
  std::string file_;
  Placement placement_;
};

TEST_F(HostsDelta, PlansWhatTheWholePathPlans) {
  const std::vector<std::string> plans = {"basic", "premium", "game_only"};
  std::mt19937 rng(20261201);
  Lines t;
  t.v.push_back("# subscribers");
  t.v.push_back("host,plan,prefixes");
  std::map<int, size_t> line_of;   // host -> its line
  int next_host = 0;
  for (; next_host < 300; ++next_host) t.v.push_back(host_line(next_host, plans[next_host % 3]));
  record_whole(t.text());
  int quick = 0, rounds = 200;
  std::map<std::string, int> refusals;
  for (int r = 0; r < rounds; ++r) {
    // 1 to 6 edits of one of these kinds, anywhere in the table.
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      const size_t n = t.v.size();
      const size_t at = 2 + rng() % (n - 2);
      switch (rng() % 6) {
        case 0: {   // another plan
          std::string& l = t.v[at];
          size_t a = l.find(','), b = l.find(',', a + 1);
          if (a == std::string::npos || b == std::string::npos) break;
          l = l.substr(0, a + 1) + plans[rng() % 3] + l.substr(b);
          break;
        }
        case 1:   // a host goes
          if (n > 50) t.v.erase(t.v.begin() + static_cast<long>(at));
          break;
        case 2:   // a new host
          t.v.insert(t.v.begin() + static_cast<long>(at), host_line(next_host, plans[rng() % 3]));
          ++next_host;
          break;
        case 3: {   // another address (host bits of its /32)
          std::string& l = t.v[at];
          if (l[0] != 'h') break;
          int i = std::stoi(l.substr(1, l.find(',') - 1));
          size_t a = l.find(','), b = l.find(',', a + 1);
          l = host_line(i, l.substr(a + 1, b - a - 1), 1 + static_cast<int>(rng() % 3));
          break;
        }
        case 4:   // a line moves
          if (at + 1 < n) std::swap(t.v[at], t.v[at + 1]);
          break;
        default:   // a comment
          t.v.insert(t.v.begin() + static_cast<long>(at), "# note " + std::to_string(r));
          break;
      }
    }
    std::string why;
    if (step(t.text(), &why)) ++quick;
    else ++refusals[why];
    if (HasFailure()) break;
  }
  // Every refusal is one the quick path is meant to make here: a new host
  // that needs a new group (the groups fill up as hosts come).
  for (const auto& [why, count] : refusals) EXPECT_EQ(why, "a new host needs a new group") << count << " time(s)";
  EXPECT_GE(quick, rounds * 3 / 4) << "quick path taken " << quick << " of " << rounds;
  std::cout << "quick path taken " << quick << " of " << rounds << " times\n";
}

TEST_F(HostsDelta, LeavesToTheWholePathWhatItCannotShow) {
  Lines t;
  t.v.push_back("host,plan,prefixes");
  for (int i = 0; i < 100; ++i) t.v.push_back(host_line(i, "basic"));
  record_whole(t.text());
  std::string why;
  auto quick = [&](const std::string& table) {
    return plan_delta(file_, "t.csv", table, TableFormat::Csv, rules_, shape_, &why).has_value();
  };
  EXPECT_TRUE(quick(t.text())) << why;   // nothing changed: nothing to do, quickly
  Lines bad = t;
  bad.v[6] = "h4,basic,10.0.9.1";   // h5's line names h4, whose own line stays
  EXPECT_FALSE(quick(bad.text()));
  EXPECT_EQ(why, "a changed line names host 'h4', whose own line stays");
  bad = t;
  bad.v[5] = "h4x,basic,10.0.3.0/24";   // holds h3's 10.0.3.1
  EXPECT_FALSE(quick(bad.text()));
  EXPECT_NE(why.find("overlaps host"), std::string::npos) << why;
  bad = t;
  bad.v[7] = "h6,gold,10.0.6.1";   // an unknown plan: the whole path words it
  EXPECT_FALSE(quick(bad.text()));
  EXPECT_EQ(why, "the lines that changed have problems");
  EXPECT_FALSE(plan_delta(file_, "t.json", "[]", TableFormat::Auto, rules_, shape_, &why));
  EXPECT_EQ(why, "a JSON table");
  // A reload re-plans the hosts (another generation): the bytes kept are of the one before.
  ASSERT_TRUE(write_applied_table(file_, placement_.generation + 1, t.text()).ok());
  EXPECT_FALSE(quick(t.text()));
  EXPECT_NE(why.find("does not belong to this placement"), std::string::npos) << why;
  ASSERT_TRUE(write_applied_table(file_, placement_.generation, t.text()).ok());
  // A placement an older qosrun wrote (no tally lines): the whole path reads every host.
  {
    std::ifstream in(file_);
    std::string line, kept;
    while (std::getline(in, line))
      if (!line.starts_with("tally\t")) kept += line + "\n";
    in.close();
    std::ofstream(file_) << kept;
    EXPECT_FALSE(quick(t.text()));
    EXPECT_EQ(why, "a placement without tallies (written by an older qosrun)");
    // Cut short in its last (host) line: refused, not walked past its end.
    std::string text = to_text(placement_);
    text.resize(text.size() - 10);
    std::ofstream(file_) << text;
    EXPECT_FALSE(quick(t.text()));
    EXPECT_NE(why.find("a last line without its newline"), std::string::npos) << why;
    ASSERT_TRUE(write_placement(file_, placement_).ok());
    EXPECT_TRUE(quick(t.text())) << why;
  }
  // An apply killed while it created classes: the whole path recovers.
  ASSERT_TRUE(write_journal(file_, placement_, {0x20000081}).ok());
  EXPECT_FALSE(quick(t.text()));
  EXPECT_EQ(why, "an interrupted apply to recover");
}

TEST_F(HostsDelta, PlanRatesThatMoveTakeTheWholePath) {
  m_ = hosts_manifest(1000000000ull);   // 1 Gbit: 100 hosts on basic (10 Mbit) fill the hosts' share
  reshape();
  Lines t;
  t.v.push_back("host,plan,prefixes");
  for (int i = 0; i < 100; ++i) t.v.push_back(host_line(i, "basic"));
  record_whole(t.text());
  // Basic's 1,000 Mbit in all are scaled by 2^(-1/4) into the 900 Mbit for
  // hosts; 3 hosts on premium (+120 Mbit) need 2^(-2/4): every rate moves.
  for (int i = 0; i < 3; ++i) t.v[1 + i] = host_line(i, "premium");
  std::string why;
  EXPECT_FALSE(step(t.text(), &why));
  EXPECT_EQ(why, "the plans' assured rates move");
}

}  // namespace
}  // namespace qosrun::hosts
