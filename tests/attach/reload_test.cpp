// qosrun reload: programs swapped atomically under steady traffic (no packet
// lost, none misclassified, counters continue), HTB classes changed in
// place, and a failed reload leaves the old policy exactly as it was.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <regex>
#include <thread>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attach_support.hpp"

using namespace qt_att;

namespace {

// Two policies with the same classes (so the statistics map is reused) but
// different rules and class parameters (so programs and HTB classes change).
const char* kPolicyA = R"(policy reload_a {
    link 100mbit;
    scheduler strict_priority;
    class control { priority 0; }
    class gaming  { priority 1; rate 50mbit; burst 100kb; }
    class web     { priority 3; }
    class bulk    { priority 5; default; }
    rule icmp -> control;
    rule udp dport 5001 -> gaming;
    rule tcp dport { 80, 443 } -> web;
}
)";
const char* kPolicyB = R"(policy reload_b {
    link 100mbit;
    scheduler strict_priority;
    class control { priority 0; }
    class gaming  { priority 0; rate 40mbit; burst 80kb; }
    class web     { priority 2; rate 60mbit; burst 100kb; }
    class bulk    { priority 6; default; }
    rule icmp -> control;
    rule udp dport 6000-6010 -> bulk;
    rule udp dport 5001 -> gaming;
    rule tcp dport { 80, 443, 8080 } -> web;
}
)";

uint64_t htb_sent_packets(const Pair& p, const std::string& classid) {
  Cmd c = p.in_a("tc -s class show dev " + p.if_a + " classid " + classid);
  std::smatch m;
  static const std::regex re(R"(Sent (\d+) bytes (\d+) pkt)");
  if (!std::regex_search(c.out, m, re)) return UINT64_MAX;
  return std::stoull(m[2].str());
}

}  // namespace

TEST(Reload, UnderSteadyTrafficLosesNothingAndCountersContinue) {
  REQUIRE_ROOT();
  Pair p("rl");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string a = compile("reload_a", kPolicyA), b = compile("reload_b", kPolicyB);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  const std::string before = p.snapshot();
  Cmd at = p.qosrun("attach " + a + " " + p.if_a);
  ASSERT_EQ(at.rc, 0) << at.all();
  ASSERT_EQ(p.in_a("ping -c 1 -W 1 -q " + p.ip_b).rc, 0);   // neighbour resolved before the stream

  NumberedUdpStream stream(p, 3000, 64);   // 1000 packets/s for 3 s
  ASSERT_EQ(stream.error(), "");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<Cmd> reloads;
  for (int i = 0; i < 5; ++i) {
    reloads.push_back(p.qosrun("reload " + std::string(i % 2 == 0 ? b : a) + " " + p.if_a));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  stream.wait();

  for (const auto& r : reloads) {
    EXPECT_EQ(r.rc, 0) << r.all();
    EXPECT_NE(r.out.find("reloaded policy"), std::string::npos) << r.all();
  }
  ASSERT_EQ(stream.sent(), stream.packets());
  EXPECT_EQ(stream.received(), stream.packets()) << "packets lost across 5 reloads";

  // The statistics map was kept: the gaming class (id 1) counted every
  // packet of the stream at the TC hook across all five swaps.
  auto stats = read_pinned_stats(p.pin_dir() + "/qos_stats", 5);
  ASSERT_EQ(stats.size(), 5u) << "cannot read " << p.pin_dir() << "/qos_stats";
  EXPECT_EQ(stats[1][1], stream.packets()) << "TC packets of class gaming";
  // And HTB put every one of them into gaming's leaf 1:11: none misclassified.
  EXPECT_EQ(htb_sent_packets(p, "1:11"), stream.packets());
  Cmd st = p.qosrun("status " + p.if_a);
  EXPECT_NE(st.out.find("reloaded 5 time(s)"), std::string::npos) << st.all();
  EXPECT_EQ(st.out.find("MISSING"), std::string::npos) << st.all();

  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(Reload, ChangesHtbClassesInPlace) {
  REQUIRE_ROOT();
  Pair p("rlc");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string gaming = compile_example("gaming"), server = compile_example("server");
  const std::string before = p.snapshot();
  ASSERT_EQ(p.qosrun("attach " + gaming + " " + p.if_a + " --ingress-shape").rc, 0);
  ASSERT_EQ(p.in_a("ping -c 3 -i 0.1 -W 1 -q " + p.ip_b).rc, 0);
  uint64_t control_sent = htb_sent_packets(p, "1:10");
  ASSERT_GE(control_sent, 3u);

  Cmd r = p.qosrun("-v reload " + server + " " + p.if_a);
  ASSERT_EQ(r.rc, 0) << r.all();
  Cmd classes = p.in_a("tc class show dev " + p.if_a);
  // server.qos: weighted_fair_queuing, weights 10:40:30:20 of 100 Mbit/s.
  EXPECT_NE(classes.out.find("class htb 1:10 parent 1:1 leaf 10: prio 0 rate 10Mbit ceil 100Mbit"), std::string::npos)
      << classes.out;
  EXPECT_NE(classes.out.find("class htb 1:11 parent 1:1 leaf 11: prio 0 rate 40Mbit"), std::string::npos)
      << classes.out;
  EXPECT_NE(classes.out.find("class htb 1:13 parent 1:1 leaf 13: prio 0 rate 20Mbit"), std::string::npos)
      << classes.out;
  EXPECT_EQ(classes.out.find("1:14"), std::string::npos) << "gaming's fifth class is gone:\n" << classes.out;
  // 1:10 was changed, not recreated: its counters continue.
  EXPECT_GE(htb_sent_packets(p, "1:10"), control_sent);
  // The IFB's tree (downloads) changed the same way.
  Cmd ifb = p.in_a("tc class show dev $(ip -o link show type ifb | cut -d: -f2 | tr -d ' ' | cut -d@ -f1)");
  EXPECT_NE(ifb.out.find("class htb 1:11 parent 1:1 leaf 11: prio 0 rate 40Mbit"), std::string::npos) << ifb.all();
  EXPECT_EQ(ifb.out.find("1:14"), std::string::npos) << ifb.all();
  EXPECT_EQ(p.qosrun("status " + p.if_a).out.find("MISSING"), std::string::npos);
  // The statistics map changed shape (5 -> 4 classes): said so.
  EXPECT_NE(r.err.find("map qos_stats starts afresh"), std::string::npos) << r.all();

  Cmd back = p.qosrun("reload " + gaming + " " + p.if_a);
  ASSERT_EQ(back.rc, 0) << back.all();
  EXPECT_NE(p.in_a("tc class show dev " + p.if_a).out.find("class htb 1:14 parent 1:1 leaf 14: prio 5"),
            std::string::npos);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

// The active flows of class `cls` with their sub-queues, from `qosrun stats
// --json`; *claims: the slots the class's flows have claimed so far.
std::map<std::string, std::string> isolated_flows(const Pair& p, const std::string& cls, uint64_t* claims = nullptr) {
  std::map<std::string, std::string> m;
  Cmd st = p.qosrun("stats " + p.if_a + " --json --no-rates");
  auto j = nlohmann::json::parse(st.out, nullptr, false);
  if (j.is_discarded()) return m;
  for (const auto& c : j["classes"])
    if (c["name"] == cls && c.contains("isolate")) {
      for (const auto& a : c["isolate"]["active"]) m[a["who"].get<std::string>()] = a["queue"].get<std::string>();
      if (claims) *claims = c["isolate"]["claims"].get<uint64_t>();
    }
  return m;
}

// Isolation's slot assignments survive a reload that keeps the isolation
// (the flows stay in their sub-queues), and start afresh, said so, when the
// isolation changes.
TEST(Reload, KeepsIsolationSlotsWhenTheIsolationIsTheSame) {
  REQUIRE_ROOT();
  Pair p("rli");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  auto policy = [](const std::string& extra, const std::string& isolate) {
    return "policy rli {\n  link 100mbit;\n  class game { priority 0; }\n  class bulk { priority 4; " + isolate +
           " default; }\n  rule udp dport 27015 -> game;\n" + extra + "}\n";
  };
  const std::string a = compile("rli_a", policy("", "isolate flows 8;"));
  const std::string b = compile("rli_b", policy("  rule tcp dport 22 -> game;\n", "isolate flows 8;"));
  const std::string c = compile("rli_c", policy("", "isolate flows 16;"));
  ASSERT_FALSE(a.empty() || b.empty() || c.empty());
  ASSERT_EQ(p.in_a("ip addr add 10.77.0.11/24 dev " + p.if_a + " && ip addr add 10.77.0.12/24 dev " + p.if_a).rc, 0);
  ASSERT_EQ(p.qosrun("attach " + a + " " + p.if_a).rc, 0);
  auto pings = [&] {
    for (const char* src : {"10.77.0.1", "10.77.0.11", "10.77.0.12"})
      EXPECT_EQ(p.in_a(std::string("ping -c 2 -i 0.05 -W 1 -q -I ") + src + " " + p.ip_b).rc, 0);
  };
  pings();
  uint64_t claims_before = 0, claims_after = 0;
  const auto before = isolated_flows(p, "bulk", &claims_before);
  ASSERT_GE(before.size(), 3u) << "three ICMP flows (and the neighbour lookups) are active";

  Cmd r = p.qosrun("-v reload " + b + " " + p.if_a);
  ASSERT_EQ(r.rc, 0) << r.all();
  EXPECT_NE(r.err.find("qos_iso_slots"), std::string::npos) << "kept the slots\n" << r.all();
  EXPECT_EQ(r.err.find("isolation changed"), std::string::npos) << "it did not\n" << r.all();
  pings();
  const auto after = isolated_flows(p, "bulk", &claims_after);
  // Fresh maps would have the same flows claim their slots again.
  EXPECT_EQ(claims_after, claims_before) << "the flows claimed new slots after the reload";
  for (const auto& [who, queue] : before)
    if (who.rfind("icmp", 0) == 0) {
      ASSERT_TRUE(after.count(who)) << who;
      EXPECT_EQ(after.at(who), queue) << who << " changed sub-queue across the reload";
    }

  Cmd r2 = p.qosrun("-v reload " + c + " " + p.if_a);
  ASSERT_EQ(r2.rc, 0) << r2.all();
  EXPECT_NE(r2.err.find("isolation changed: flows and hosts are assigned to sub-queues afresh"), std::string::npos)
      << r2.all();
  EXPECT_NE(p.in_a("tc class show dev " + p.if_a).out.find("class htb 11:1f "), std::string::npos)
      << "the new isolation's sixteenth sub-queue";
  pings();
  EXPECT_GE(isolated_flows(p, "bulk").size(), 3u);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(Reload, FailureAtAnyStepKeepsTheOldPolicy) {
  REQUIRE_ROOT();
  Pair p("rlf");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string gaming = compile_example("gaming"), server = compile_example("server");
  const std::string before = p.snapshot();
  // server (4 classes) -> gaming (5): the reload adds a class, changes four.
  ASSERT_EQ(p.qosrun("attach " + server + " " + p.if_a + " --ingress-shape").rc, 0);
  const std::string attached = p.snapshot();
  for (const char* step : {"reload-load", "reload-htb", "reload-tc", "reload-xdp", "reload-change"}) {
    SCOPED_TRACE(step);
    Cmd r = p.qosrun("reload " + gaming + " " + p.if_a, std::string("QOSRUN_FAIL_AT=") + step);
    EXPECT_EQ(r.rc, 1) << r.all();
    EXPECT_NE(r.err.find(std::string("injected failure at step '") + step + "'"), std::string::npos) << r.all();
    EXPECT_EQ(p.snapshot(), attached);
    Cmd st = p.qosrun("status " + p.if_a);
    EXPECT_NE(st.out.find("policy 'server'"), std::string::npos) << st.all();
    EXPECT_EQ(st.out.find("MISSING"), std::string::npos) << st.all();
  }
  Cmd missing = p.qosrun("reload " + gaming + " qanosuch0");
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("no interface named qanosuch0"), std::string::npos) << missing.all();
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  Cmd none = p.qosrun("reload " + gaming + " " + p.if_a);
  EXPECT_EQ(none.rc, 1);
  EXPECT_NE(none.err.find("has no qosc policy attached"), std::string::npos) << none.all();
}

// A reload killed (kill -9) at any step is journaled: status says so, and the
// next command puts the recorded policy back before doing its own work — a
// reload then reloads, a detach restores the interface exactly.
TEST(Reload, KilledAtAnyStepIsUndoneByTheNextCommand) {
  REQUIRE_ROOT();
  Pair p("rlk");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string gaming = compile_example("gaming"), server = compile_example("server");
  const std::string before = p.snapshot();
  ASSERT_EQ(p.qosrun("attach " + server + " " + p.if_a + " --ingress-shape").rc, 0);
  // The trees (program ids change with every reload; the classes must not).
  auto trees = [&] {
    return p.in_a("tc class show dev " + p.if_a + "; tc qdisc show dev " + p.if_a +
                  "; tc class show dev $(ip -o link show type ifb | cut -d: -f2 | tr -d ' ' | cut -d@ -f1)")
        .out;
  };
  const std::string attached = trees();
  for (const char* step : {"reload-htb", "reload-tc", "reload-xdp", "reload-change"}) {
    SCOPED_TRACE(step);
    ASSERT_EQ(kill9_at_step(p, "reload " + gaming + " " + p.if_a, step, std::string("rlk-") + step), "");
    Cmd st = p.qosrun("status " + p.if_a);
    EXPECT_NE(st.out.find("was interrupted"), std::string::npos) << st.all();
    // The next reload first undoes the interrupted one, then does its own.
    Cmd r = p.qosrun("reload " + gaming + " " + p.if_a);
    ASSERT_EQ(r.rc, 0) << r.all();
    EXPECT_NE(r.err.find("was interrupted; policy 'server' is back as it was"), std::string::npos) << r.all();
    st = p.qosrun("status " + p.if_a);
    EXPECT_NE(st.out.find("policy 'gaming'"), std::string::npos) << st.all();
    EXPECT_EQ(st.out.find("MISSING"), std::string::npos) << st.all();
    EXPECT_EQ(st.out.find("interrupted"), std::string::npos) << st.all();
    ASSERT_EQ(p.qosrun("reload " + server + " " + p.if_a).rc, 0);
    EXPECT_EQ(trees(), attached);
  }
  // Killed after the programs were swapped, then detached: the interface is as before the attach.
  ASSERT_EQ(kill9_at_step(p, "reload " + gaming + " " + p.if_a, "reload-change", "rlk-detach"), "");
  Cmd d = p.qosrun("detach " + p.if_a);
  EXPECT_EQ(d.rc, 0) << d.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}
