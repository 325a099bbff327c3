// qosrun attach --hosts, hosts apply, hosts show, reload and detach with a
// compiled policy that has plans and `hosts daddr` (docs/hosts.md), in
// namespaces of their own (qh-<case>-a/-b): the tree tc shows, the map, what
// an apply touches and what it leaves alone, zero loss for a host that does
// not change while 100 others do, a bad table that changes nothing.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "attach_support.hpp"
#include "qos_abi.h"

using namespace qt_att;

namespace {

// Egress of a towards b: what b's addresses "download", so a host is the destination.
const char* kPolicy = R"(policy qh {
    link 200mbit;
    scheduler strict_priority;
    class game { priority 0; }
    class bulk { priority 5; default; }
    rule udp dport 5001 -> game;
    plan small     { rate 2mbit; }
    plan big       { rate 10mbit; ceil 20mbit; }
    plan game_only { rate 1mbit; classes game, bulk; }
    hosts daddr;
}
)";

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

// Host "steady" is b's own address; h<i> are table entries only (10.88.x.y).
std::string table(int from, int to, const std::string& plan_of_changed = "small", int changed_from = 0,
                  int changed_to = 0) {
  std::string s = "host,plan,prefixes\nsteady,big,10.77.0.2\n";
  for (int i = from; i < to; ++i)
    s += fmt::format("h{},{},10.88.{}.{}\n", i, i >= changed_from && i < changed_to ? plan_of_changed : "small",
                     i / 250, i % 250 + 1);
  return s;
}

// `tc class show` as classid -> its line (without counters).
std::map<std::string, std::string> classes_of(const Pair& p) {
  std::map<std::string, std::string> out;
  Cmd c = p.in_a("tc class show dev " + p.if_a);
  std::istringstream in(c.out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string cls, kind, id;
    w >> cls >> kind >> id;
    if (cls == "class") out[id] = line;
  }
  return out;
}

nlohmann::json hosts_json(const Pair& p) {
  Cmd c = p.qosrun("hosts show " + p.if_a + " --json");
  try {
    return nlohmann::json::parse(c.out);
  } catch (...) {
    return nlohmann::json{{"error", c.all()}};
  }
}

const nlohmann::json* host_in(const nlohmann::json& j, const std::string& name) {
  if (!j.contains("hosts")) return nullptr;
  for (const auto& h : j["hosts"])
    if (h["host"] == name) return &h;
  return nullptr;
}

}  // namespace

TEST(Hosts, AttachWithATableBuildsTheTreeAndTheMapAndDetachRestores) {
  REQUIRE_ROOT();
  Pair p("at", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "");   // its own link: 200 Mbit, no plan scaled down
  ASSERT_FALSE(obj.empty());
  const std::string before = p.snapshot();
  const std::string t = write_file(p.state_root + "-t1.csv", table(0, 3) + "six,game_only,2001:db8::/64\n");
  Cmd at = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t);
  ASSERT_EQ(at.rc, 0) << at.all();
  EXPECT_NE(at.out.find("5 hosts in 1 groups"), std::string::npos) << at.all();

  nlohmann::json j = hosts_json(p);
  ASSERT_EQ(j["hosts"].size(), 5u) << j.dump();
  const nlohmann::json* steady = host_in(j, "steady");
  ASSERT_TRUE(steady);
  EXPECT_EQ((*steady)["plan"], "big");
  EXPECT_EQ((*steady)["prefixes"], "10.77.0.2/32");
  // The tree: the group's leaf in the root HTB holding the group's HTB with the filter; steady's class and leaves.
  auto cls = classes_of(p);
  std::string group_leaf = cls.count("1:1000") ? cls["1:1000"] : "";
  const std::string host_class = (*steady)["class"];
  // The group's handle: the first of the qdisc-hash bucket kept for groups (hosts.hpp).
  const std::string group = host_class.substr(0, host_class.find(':') + 1);
  EXPECT_EQ(group, "2004:");
  EXPECT_NE(group_leaf.find("parent 1:1 leaf " + group), std::string::npos) << group_leaf;
  ASSERT_TRUE(cls.count(host_class)) << host_class;
  EXPECT_NE(cls[host_class].find("rate 10Mbit ceil 20Mbit"), std::string::npos) << cls[host_class];
  Cmd f = p.in_a("tc filter show dev " + p.if_a + " parent " + group);
  EXPECT_NE(f.out.find("qos_hosts"), std::string::npos) << f.all();
  // The maps: one entry per prefix, steady's value names its group and leaves. A single
  // address (steady's /32) is in the exact-match map, not in the trie; six's /64 in the trie.
  int map = bpf_obj_get((p.pin_dir() + "/qos_hosts").c_str());
  ASSERT_GE(map, 0) << p.pin_dir();
  int exact = bpf_obj_get((p.pin_dir() + "/" QOS_HOSTS_EXACT_MAP).c_str());
  ASSERT_GE(exact, 0) << p.pin_dir();
  qos_host_key k{};
  k.prefixlen = 128;
  k.addr[10] = k.addr[11] = 0xff;
  inet_pton(AF_INET, "10.77.0.2", &k.addr[12]);
  qos_host_val v{};
  ASSERT_EQ(bpf_map_lookup_elem(exact, k.addr, &v), 0);
  EXPECT_EQ(v.outer_classid, 0x11000u);
  EXPECT_EQ(v.group_major, std::stoul(group, nullptr, 16));
  EXPECT_NE(bpf_map_lookup_elem(map, &k, &v), 0) << "a /32 is not in the trie too";
  qos_host_key k6{};
  k6.prefixlen = 64;
  inet_pton(AF_INET6, "2001:db8::", k6.addr);
  EXPECT_EQ(bpf_map_lookup_elem(map, &k6, &v), 0) << "six's /64 is in the trie";
  ::close(exact);
  ::close(map);

  // Traffic to steady on UDP 5001 (class game) lands in steady's game leaf.
  ASSERT_EQ(p.in_a("ping -c 1 -W 1 -q " + p.ip_b).rc, 0);
  Cmd s = p.in_a("bash -c 'for i in $(seq 1 20); do echo x > /dev/udp/10.77.0.2/5001; done'");
  ASSERT_EQ(s.rc, 0) << s.all();
  j = hosts_json(p);
  steady = host_in(j, "steady");
  ASSERT_TRUE(steady);
  EXPECT_GE((*steady)["packets"].get<uint64_t>(), 20u) << j.dump();
  int minor = std::stoi(host_class.substr(host_class.find(':') + 1), nullptr, 16);
  Cmd game = p.in_a(fmt::format("tc -s class show dev {} classid {}{:x}", p.if_a, group, minor + 1));
  std::smatch m;
  std::regex re(R"(Sent \d+ bytes (\d+) pkt)");
  ASSERT_TRUE(std::regex_search(game.out, m, re)) << game.all();
  EXPECT_GE(std::stoul(m[1].str()), 20u) << "steady's game leaf";

  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(Hosts, ApplyTouchesOnlyTheHostsThatChanged) {
  REQUIRE_ROOT();
  Pair p("ap", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "");   // its own link: 200 Mbit, no plan scaled down
  const std::string t1 = write_file(p.state_root + "-t1.csv", table(0, 50));
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t1).rc, 0);
  ASSERT_EQ(p.in_a("bash -c 'for i in $(seq 1 10); do echo x > /dev/udp/10.77.0.2/5001; done'").rc, 0);
  auto before = classes_of(p);
  nlohmann::json jb = hosts_json(p);
  // h0..h9 go, h50..h59 come, h20..h24 move to plan big.
  const std::string t2 = write_file(p.state_root + "-t2.csv", table(10, 60, "big", 20, 25));
  Cmd ap = p.qosrun("hosts apply " + p.if_a + " " + t2);
  ASSERT_EQ(ap.rc, 0) << ap.all();
  EXPECT_NE(ap.out.find("10 added, 5 changed, 10 removed, 36 unchanged"), std::string::npos) << ap.all();
  auto after = classes_of(p);
  nlohmann::json ja = hosts_json(p);
  for (const auto& h : ja["hosts"]) {
    const std::string name = h["host"];
    const nlohmann::json* was = host_in(jb, name);
    const std::string cls = h["class"];
    ASSERT_TRUE(after.count(cls)) << name << " " << cls;
    int n = name == "steady" ? -1 : std::stoi(name.substr(1));
    if (n >= 50) {
      EXPECT_FALSE(was) << name;
      continue;
    }
    ASSERT_TRUE(was) << name;
    EXPECT_EQ((*was)["class"], h["class"]) << name << " kept its class";
    if (n >= 20 && n < 25) {
      EXPECT_NE(after[cls].find("rate 10Mbit ceil 20Mbit"), std::string::npos) << after[cls];
    } else {
      EXPECT_EQ(before[cls], after[cls]) << name << " was touched";
      EXPECT_EQ((*was)["packets"], h["packets"]) << name;   // steady's counters went on, not reset
    }
  }
  for (int i = 0; i < 10; ++i) {
    const nlohmann::json* gone = host_in(jb, fmt::format("h{}", i));
    ASSERT_TRUE(gone);
    EXPECT_FALSE(after.count((*gone)["class"].get<std::string>())) << "h" << i << " still has its class";
    EXPECT_FALSE(host_in(ja, fmt::format("h{}", i)));
  }
  EXPECT_GT((*host_in(ja, "steady"))["packets"].get<uint64_t>(), 0u);
  // The same table again: nothing to do.
  Cmd same = p.qosrun("hosts apply " + p.if_a + " " + t2);
  EXPECT_NE(same.out.find("0 added, 0 changed, 0 removed, 51 unchanged"), std::string::npos) << same.all();
  EXPECT_EQ(classes_of(p), after);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(Hosts, ABadTableChangesNothing) {
  REQUIRE_ROOT();
  Pair p("bad", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "");   // its own link: 200 Mbit, no plan scaled down
  const std::string before = p.snapshot();
  const std::string bad = write_file(p.state_root + "-bad.csv",
                                     "host,plan,prefixes\nsteady,big,10.77.0.2\nx,gold,10.1.0.0/16\n"
                                     "y,small,10.1.2.0/24\nsteady,small,10.9.9.9\nz,small,10.5.0.1/8\n");
  // attach with it: refused before anything is touched.
  Cmd at = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + bad);
  EXPECT_EQ(at.rc, 1) << at.all();
  EXPECT_NE(at.err.find(bad + ":3: unknown plan 'gold' for host 'x': the policy's plans are small, big, game_only"),
            std::string::npos)
      << at.all();
  EXPECT_NE(at.err.find(bad + ":4: prefix 10.1.2.0/24 of host 'y' lies inside prefix 10.1.0.0/16 of host 'x'"),
            std::string::npos)
      << at.all();
  EXPECT_NE(at.err.find(bad + ":5: host 'steady' is listed twice"), std::string::npos) << at.all();
  EXPECT_NE(at.err.find(bad + ":6: host 'z': '10.5.0.1/8' has host bits set: write 10.0.0.0/8"), std::string::npos)
      << at.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
  // A policy without hosts given --hosts: a clear error.
  const std::string plain = compile("qh_plain", "policy plain { link 100mbit; class a { default; } }\n");
  Cmd np = p.qosrun("attach " + plain + " " + p.if_a + " --hosts " + bad);
  EXPECT_EQ(np.rc, 1);
  EXPECT_NE(np.err.find("policy 'plain' has no hosts"), std::string::npos) << np.all();
  EXPECT_EQ(p.snapshot(), before);
  // hosts apply with it: the hosts stay as they were.
  const std::string good = write_file(p.state_root + "-good.csv", table(0, 20));
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + good).rc, 0);
  const std::string attached = p.snapshot();
  std::ifstream st(p.state_root + "/" + p.key() + "/hosts.state");
  std::string state_before((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(state_before.empty());
  Cmd ap = p.qosrun("hosts apply " + p.if_a + " " + bad);
  EXPECT_EQ(ap.rc, 1);
  EXPECT_NE(ap.err.find("is refused: 4 problems, nothing was changed"), std::string::npos) << ap.all();
  EXPECT_EQ(p.snapshot(), attached);
  std::ifstream st2(p.state_root + "/" + p.key() + "/hosts.state");
  std::string state_after((std::istreambuf_iterator<char>(st2)), std::istreambuf_iterator<char>());
  EXPECT_EQ(state_after, state_before);
  EXPECT_EQ(hosts_json(p)["hosts"].size(), 21u);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
}

TEST(Hosts, AnUnchangedHostLosesNoPacketWhileOthersChange) {
  REQUIRE_ROOT();
  Pair p("loss", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "1gbit");   // room for every plan: no host's rate moves
  // Five tables: 100 other hosts added, changed, removed, added again, changed again.
  std::vector<std::string> tables = {
      write_file(p.state_root + "-0.csv", table(0, 100)),
      write_file(p.state_root + "-1.csv", table(0, 100, "big", 0, 50)),
      write_file(p.state_root + "-2.csv", table(0, 0)),
      write_file(p.state_root + "-3.csv", table(100, 200, "game_only", 100, 150)),
      write_file(p.state_root + "-4.csv", table(150, 250)),
  };
  const std::string t0 = write_file(p.state_root + "-start.csv", table(0, 0));
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t0).rc, 0);
  ASSERT_EQ(p.in_a("ping -c 1 -W 1 -q " + p.ip_b).rc, 0);

  // 1000 packets/s of 200 bytes (1.6 Mbit/s, below steady's 10 Mbit/s) for 4 s.
  NumberedUdpStream stream(p, 4000, 200);
  ASSERT_EQ(stream.error(), "");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<Cmd> applies;
  for (const auto& t : tables) {
    applies.push_back(p.qosrun("hosts apply " + p.if_a + " " + t));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  stream.wait();
  for (const auto& a : applies) EXPECT_EQ(a.rc, 0) << a.all();
  EXPECT_NE(applies[0].out.find("100 added"), std::string::npos) << applies[0].all();
  EXPECT_NE(applies[2].out.find("100 removed"), std::string::npos) << applies[2].all();
  ASSERT_EQ(stream.sent(), stream.packets());
  EXPECT_EQ(stream.received(), stream.packets()) << "packets of the unchanged host lost during 5 applies";
  // ... and every one went through steady's class, none around it.
  const nlohmann::json shown = hosts_json(p);
  const nlohmann::json* steady = host_in(shown, "steady");
  ASSERT_TRUE(steady) << shown.dump();
  EXPECT_GE((*steady)["packets"].get<uint64_t>(), stream.packets());
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(Hosts, ReloadKeepsTheHosts) {
  REQUIRE_ROOT();
  Pair p("rl", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "");   // its own link: 200 Mbit, no plan scaled down
  std::string faster = kPolicy;
  faster.replace(faster.find("rate 2mbit"), 10, "rate 3mbit");
  const std::string obj2 = compile("qh_faster", faster, "");
  const std::string t = write_file(p.state_root + "-t.csv", table(0, 10));
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t).rc, 0);
  auto before = classes_of(p);
  nlohmann::json jb = hosts_json(p);
  Cmd rl = p.qosrun("reload " + obj + " " + p.if_a);
  ASSERT_EQ(rl.rc, 0) << rl.all();
  EXPECT_EQ(classes_of(p), before) << "a reload of the same policy touched the hosts";
  EXPECT_EQ(hosts_json(p)["hosts"], jb["hosts"]);
  // The map was kept: traffic to steady still lands in its class.
  ASSERT_EQ(p.in_a("bash -c 'for i in $(seq 1 10); do echo x > /dev/udp/10.77.0.2/5001; done'").rc, 0);
  EXPECT_GE((*host_in(hosts_json(p), "steady"))["packets"].get<uint64_t>(), 10u);
  // A policy whose plan `small` is faster: the small hosts' classes change in place.
  Cmd rl2 = p.qosrun("reload " + obj2 + " " + p.if_a);
  ASSERT_EQ(rl2.rc, 0) << rl2.all();
  EXPECT_NE(rl2.err.find("10 host(s) changed to the new plans"), std::string::npos) << rl2.all();
  auto after = classes_of(p);
  const std::string h0 = (*host_in(jb, "h0"))["class"];
  EXPECT_NE(after[h0].find("rate 3Mbit"), std::string::npos) << after[h0];
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

// Hosts shape what leaves the interface; the IFB of --ingress-shape has no
// hosts' subtrees (docs/hosts.md "Both directions"). Both together are
// refused, at attach and at reload onto an interface shaped both ways,
// with what to do, and nothing changes.
TEST(Hosts, IngressShapeWithHostsIsRefusedAndNothingChanges) {
  REQUIRE_ROOT();
  Pair p("ig", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "");
  const std::string plain = compile("qh_plain", R"(policy plain {
    link 200mbit;
    class game { priority 0; }
    class bulk { priority 5; default; }
    rule udp dport 5001 -> game;
}
)", "");
  const std::string t = write_file(p.state_root + "-t.csv", table(0, 3));
  const std::string before = p.snapshot();
  for (const std::string& extra : {" --hosts " + t, std::string()}) {
    Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape" + extra);
    EXPECT_NE(a.rc, 0) << a.all();
    EXPECT_NE(a.err.find("per-host plans (`hosts daddr`)"), std::string::npos) << a.all();
    EXPECT_NE(a.err.find("on the uplink interface, a policy with `hosts saddr`"), std::string::npos) << a.all();
    EXPECT_NE(a.err.find("attach without --ingress-shape"), std::string::npos) << a.all();
    EXPECT_EQ(p.snapshot(), before) << extra;
    EXPECT_EQ(p.leftovers(), "") << extra;
  }
  // Without --ingress-shape the same attach works.
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t).rc, 0);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  // A policy without hosts shaping both ways cannot be reloaded into one with hosts.
  ASSERT_EQ(p.qosrun("attach " + plain + " " + p.if_a + " --ingress-shape").rc, 0);
  const std::string attached = p.snapshot();
  Cmd rl = p.qosrun("reload " + obj + " " + p.if_a);
  EXPECT_NE(rl.rc, 0) << rl.all();
  EXPECT_NE(rl.err.find("attach without --ingress-shape"), std::string::npos) << rl.all();
  EXPECT_EQ(p.snapshot(), attached);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

// kill -9 of `qosrun hosts apply` paused at each of its steps (QOSRUN_PAUSE_AT,
// as Reload.KilledAtAnyStepIsUndoneByTheNextCommand): after classes were
// created (hosts-change), after they were changed (hosts-map), after the new
// placement was recorded (hosts-delete). The next apply of the same table
// succeeds and leaves exactly the tree and map a clean apply leaves; detach
// after a kill restores the interface. An injected failure at the same
// steps (QOSRUN_FAIL_AT) changes nothing and leaves no journal behind.
TEST(Hosts, AKilledApplyIsRecoveredByTheNextCommand) {
  REQUIRE_ROOT();
  Pair p("kl", "qh-");
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qh", kPolicy, "");
  const std::string before = p.snapshot();
  // t2 removes h0-h19, changes h30-h39 to big, adds h40-h99 (a second group).
  const std::string t1 = write_file(p.state_root + "-t1.csv", table(0, 40));
  const std::string t2 = write_file(p.state_root + "-t2.csv", table(20, 100, "big", 30, 40));
  auto class_ids = [&] {
    std::set<std::string> ids;
    for (const auto& [id, line] : classes_of(p)) ids.insert(id);
    return ids;
  };
  auto map_entries = [&] {   // the trie's and the exact-match map's
    size_t n = 0;
    for (const char* name : {"/qos_hosts", "/" QOS_HOSTS_EXACT_MAP}) {
      int map = bpf_obj_get((p.pin_dir() + name).c_str());
      qos_host_key k{}, nk{};   // the larger key of the two
      for (bool first = true; map >= 0 && bpf_map_get_next_key(map, first ? nullptr : &k, &nk) == 0; first = false) {
        k = nk;
        ++n;
      }
      if (map >= 0) ::close(map);
    }
    return n;
  };
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t1).rc, 0);
  const auto at_t1 = class_ids();
  ASSERT_EQ(p.qosrun("hosts apply " + p.if_a + " " + t2).rc, 0);
  const auto at_t2 = class_ids();
  ASSERT_EQ(map_entries(), 81u);
  ASSERT_EQ(p.qosrun("hosts apply " + p.if_a + " " + t1).rc, 0);
  ASSERT_EQ(class_ids(), at_t1);
  // A failure (not a kill) after the creates takes them back and is no interruption.
  for (const char* step : {"hosts-change", "hosts-map"}) {
    SCOPED_TRACE(step);
    Cmd f = p.qosrun("hosts apply " + p.if_a + " " + t2, std::string("QOSRUN_FAIL_AT=") + step);
    EXPECT_NE(f.rc, 0) << f.all();
    EXPECT_EQ(class_ids(), at_t1);
    EXPECT_EQ(map_entries(), 41u);
    Cmd again = p.qosrun("hosts apply " + p.if_a + " " + t1);
    EXPECT_EQ(again.rc, 0) << again.all();
    EXPECT_EQ(again.err.find("interrupted"), std::string::npos) << again.all();
  }
  for (const char* step : {"hosts-change", "hosts-map", "hosts-delete"}) {
    SCOPED_TRACE(step);
    ASSERT_EQ(kill9_at_step(p, "hosts apply " + p.if_a + " " + t2, step, std::string("kl-") + step), "");
    Cmd r = p.qosrun("hosts apply " + p.if_a + " " + t2);
    ASSERT_EQ(r.rc, 0) << r.all();
    if (std::string(step) != "hosts-delete") {
      EXPECT_NE(r.err.find("an earlier apply was interrupted"), std::string::npos) << r.all();
    }
    EXPECT_EQ(class_ids(), at_t2);
    EXPECT_EQ(map_entries(), 81u);
    nlohmann::json j = hosts_json(p);
    EXPECT_EQ(j["hosts"].size(), 81u);
    for (const auto& h : j["hosts"]) EXPECT_TRUE(h["present"].get<bool>()) << h.dump();
    // And back: nothing of the killed apply is left in the way.
    Cmd back = p.qosrun("hosts apply " + p.if_a + " " + t1);
    ASSERT_EQ(back.rc, 0) << back.all();
    EXPECT_EQ(class_ids(), at_t1);
    EXPECT_EQ(map_entries(), 41u);
  }
  // Killed after creating, then detached: the interface is as before the attach.
  ASSERT_EQ(kill9_at_step(p, "hosts apply " + p.if_a + " " + t2, "hosts-map", "kl-detach"), "");
  Cmd st = p.qosrun("status " + p.if_a);
  EXPECT_EQ(st.rc, 0) << st.all();
  Cmd d = p.qosrun("detach " + p.if_a);
  EXPECT_EQ(d.rc, 0) << d.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}
