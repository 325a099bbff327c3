// One HTB per TX queue (docs/hosts.md, "Every core"; qosrun/txq.hpp): a
// policy with hosts on a veth pair of 2 TX queues, in namespaces of their own
// (qm-<case>-a/-b): the tree (mq + 2 HTB, the stray leaf), host groups on
// both queues, a host's packets counted in its own queue's HTB and nowhere
// else, traffic of no listed host on queue 0, a packet on a queue without its
// class shaped by that queue's stray leaf, XPS off while attached and put
// back on detach, reload keeping it all, detach leaving the interface as it was.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "attach_support.hpp"

using namespace qt_att;

namespace {

// Egress of a towards b: b's addresses are the hosts (daddr).
const char* kPolicy = R"(policy qm {
    link 10gbit;
    scheduler strict_priority;
    class game { priority 0; }
    class bulk { priority 5; default; }
    rule udp dport 5001 -> game;
    plan small { rate 2mbit; }
    plan big   { rate 10mbit; ceil 20mbit; }
    hosts daddr;
}
)";

// "a-first" (10.77.0.3) sorts first: group 0, which goes to queue 1 (the
// lightest queue other than 0); "steady" (10.77.0.2) sorts last: group 1,
// queue 0. 100 more hosts fill the groups (64 hosts each at most).
std::string table() {
  std::string s = "host,plan,prefixes\na-first,big,10.77.0.3\nsteady,big,10.77.0.2\n";
  for (int i = 0; i < 100; ++i) s += fmt::format("h{:03},small,10.88.{}.{}\n", i, i / 250, i % 250 + 1);
  return s;
}

// Tables live beside the state root; each is removed when the test ends.
struct TempFiles {
  std::vector<std::string> paths;
  ~TempFiles() {
    for (const auto& p : paths) ::unlink(p.c_str());
  }
};
TempFiles temp_files;

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
  temp_files.paths.push_back(path);
  return path;
}

// `tc -s class|qdisc show` as "<kind> <id>" -> packets sent.
std::map<std::string, uint64_t> sent_of(const Pair& p, const std::string& what) {
  std::map<std::string, uint64_t> out;
  Cmd c = p.in_a("tc -s " + what + " show dev " + p.if_a);
  std::istringstream in(c.out);
  std::string line, current;
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string first, kind, id;
    w >> first;
    if (first == what) {
      w >> kind >> id;
      current = kind + " " + id;
    } else if (first == "Sent" && !current.empty()) {
      uint64_t bytes = 0, pkts = 0;
      std::string b;
      w >> bytes >> b >> pkts;
      out[current] = pkts;
      current.clear();
    }
  }
  return out;
}

std::string xps(const Pair& p) {
  // ip netns exec mounts the namespace's own sysfs.
  return sh(fmt::format("ip netns exec {} sh -c 'for q in /sys/class/net/{}/queues/tx-*; do echo $q $(cat $q/xps_cpus) "
                        "$(cat $q/xps_rxqs); done'",
                        p.ns_a, p.if_a))
      .out;
}

// `n` UDP packets from an unconnected socket in `ns` (no cached TX queue: the
// program's queue_mapping decides).
int send_udp_from(const std::string& ns, const std::string& to, int n) {
  int s = socket_in(ns, SOCK_DGRAM);
  if (s < 0) return 0;
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(6000);
  inet_pton(AF_INET, to.c_str(), &dst.sin_addr);
  char payload[100] = {};
  int sent = 0;
  for (int i = 0; i < n; ++i)
    sent += ::sendto(s, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == sizeof payload;
  ::close(s);
  return sent;
}
int send_udp(const Pair& p, const std::string& to, int n) { return send_udp_from(p.ns_a, to, n); }

// Steering's topology: a third namespace <prefix><tag>-c whose packets to the
// hosts enter namespace a on veth qs<tag>0 (a: 10.79.0.1/24, c: 10.79.0.2/24)
// and leave it on the pair's if_a; removed by name at the end.
struct Sender {
  std::string ns, if_in, if_c, error;
  Sender(const Pair& p, const std::string& prefix) : ns(prefix + p.tag + "-c"), if_in("qs" + p.tag + "0"), if_c("qs" + p.tag + "1") {
    sh("ip netns del " + ns + " 2>/dev/null");
    for (const std::string& c :
         {"ip netns add " + ns,
          fmt::format("ip link add name {} netns {} type veth peer name {} netns {}", if_in, p.ns_a, if_c, ns),
          fmt::format("ip -n {} addr add 10.79.0.1/24 dev {}", p.ns_a, if_in),
          fmt::format("ip -n {} addr add 10.79.0.2/24 dev {}", ns, if_c),
          fmt::format("ip -n {} link set {} up", p.ns_a, if_in), fmt::format("ip -n {} link set {} up", ns, if_c),
          fmt::format("ip -n {} link set lo up", ns),
          fmt::format("ip -n {} route add 10.77.0.0/24 via 10.79.0.1", ns),
          fmt::format("ip netns exec {} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                      "net.ipv4.conf.default.rp_filter=0",
                      p.ns_a)}) {
      Cmd r = sh(c);
      if (r.rc != 0) {
        error = c + ": " + r.all();
        return;
      }
    }
  }
  ~Sender() { sh("ip netns del " + ns + " 2>/dev/null"); }
  // `n` packets to `to`, sent from CPU `cpu` (the XDP program of if_in runs
  // on the CPU that sends into the veth pair).
  int send_on_cpu(int cpu, const std::string& to, int n) const {
    cpu_set_t old, one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_getaffinity(0, sizeof old, &old) != 0 || sched_setaffinity(0, sizeof one, &one) != 0) return 0;
    int sent = send_udp_from(ns, to, n);
    (void)sched_setaffinity(0, sizeof old, &old);
    return sent;
  }
};

}  // namespace

TEST(HostsMq, OneHtbPerTxQueueHostsOnBothQueuesXpsOffAndRestored) {
  REQUIRE_ROOT();
  Pair p("mq", "qm-", 2);
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qm", kPolicy, "");
  ASSERT_FALSE(obj.empty());
  for (const char* addr : {"10.77.0.3", "10.77.0.4"}) ASSERT_EQ(p.in_b(fmt::format("ip addr add {}/24 dev {}", addr, p.if_b)).rc, 0);
  // XPS on, as a NIC driver sets it: attach turns it off, detach puts it back.
  ASSERT_EQ(sh(fmt::format("ip netns exec {0} sh -c 'echo 1 > /sys/class/net/{1}/queues/tx-0/xps_cpus && echo 2 > "
                           "/sys/class/net/{1}/queues/tx-1/xps_cpus'",
                           p.ns_a, p.if_a))
                .rc,
            0);
  const std::string xps_before = xps(p);
  ASSERT_NE(xps_before.find("tx-1 2"), std::string::npos) << xps_before;
  const std::string before = p.snapshot();

  const std::string t = write_file(p.state_root + "-t.csv", table());
  Cmd at = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t);
  ASSERT_EQ(at.rc, 0) << at.all();
  EXPECT_NE(at.out.find("102 hosts in 2 groups"), std::string::npos) << at.all();
  EXPECT_NE(at.out.find("under mq 400: with an htb per TX queue (2 queues)"), std::string::npos) << at.all();

  // The tree: mq at the root, htb 1: on queue 0, htb 402: (link 402:1, stray leaf 402:2 by default) on queue 1.
  Cmd q = p.in_a("tc qdisc show dev " + p.if_a);
  EXPECT_NE(q.out.find("qdisc mq 400: root"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("qdisc htb 1: parent 400:1"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("qdisc htb 402: parent 400:2"), std::string::npos) << q.out;
  Cmd cls = p.in_a("tc class show dev " + p.if_a);
  EXPECT_NE(cls.out.find("class htb 402:1 root rate 10Gbit ceil 10Gbit"), std::string::npos) << cls.out;
  EXPECT_NE(cls.out.find("class htb 402:2 parent 402:1 leaf 801: prio 7"), std::string::npos) << cls.out;
  // XPS off while attached.
  const std::string xps_during = xps(p);
  EXPECT_EQ(xps_during.find("tx-1 2"), std::string::npos) << xps_during;
  EXPECT_EQ(xps_during.find("tx-0 1"), std::string::npos) << xps_during;

  // Groups on both queues; a-first's group leaf in queue 1's HTB, steady's in queue 0's.
  Cmd shown = p.qosrun("hosts show " + p.if_a + " --json");
  ASSERT_EQ(shown.rc, 0) << shown.all();
  nlohmann::json j = nlohmann::json::parse(shown.out);
  EXPECT_EQ(j["tx_queues"], 2);
  EXPECT_EQ(j["groups_per_queue"], nlohmann::json::array({1, 1})) << j["groups_per_queue"].dump();
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& h : j["hosts"]) by_name[h["host"]] = h;
  ASSERT_EQ(by_name.size(), 102u);
  EXPECT_EQ(by_name["a-first"]["queue"], 1);
  EXPECT_EQ(by_name["steady"]["queue"], 0);
  const int g_first = by_name["a-first"]["group"], g_steady = by_name["steady"]["group"];
  const std::string leaf_first = fmt::format("402:{:x}", 0x1000 + g_first);
  const std::string leaf_steady = fmt::format("1:{:x}", 0x1000 + g_steady);
  EXPECT_NE(cls.out.find("class htb " + leaf_first + " parent 402:1 leaf"), std::string::npos) << cls.out;
  EXPECT_NE(cls.out.find("class htb " + leaf_steady + " parent 1:1 leaf"), std::string::npos) << cls.out;
  Cmd text = p.qosrun("hosts show " + p.if_a);
  EXPECT_NE(text.out.find("102 hosts in 2 groups on 2 TX queues (1/1 groups per queue)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("QUEUE"), std::string::npos) << text.out;
  Cmd st = p.qosrun("status " + p.if_a);
  EXPECT_NE(st.out.find("mq 400: with an htb per TX queue"), std::string::npos) << st.all();
  EXPECT_EQ(st.out.find("MISSING"), std::string::npos) << st.all();

  // Packets: each host's through its own queue's HTB, nothing of no listed host on queue 1.
  ASSERT_EQ(p.in_a("ping -c 1 -W 1 -q 10.77.0.3 && ping -c 1 -W 1 -q 10.77.0.2 && ping -c 1 -W 1 -q 10.77.0.4").rc, 0);
  auto c0 = sent_of(p, "class");
  auto q0 = sent_of(p, "qdisc");
  constexpr int kN = 200;
  ASSERT_EQ(send_udp(p, "10.77.0.3", kN), kN);
  ASSERT_EQ(send_udp(p, "10.77.0.2", kN), kN);
  ASSERT_EQ(send_udp(p, "10.77.0.4", kN), kN);   // no listed host
  ::usleep(300000);
  auto c1 = sent_of(p, "class");
  auto q1 = sent_of(p, "qdisc");
  auto delta = [&](std::map<std::string, uint64_t>& a, std::map<std::string, uint64_t>& b, const std::string& k) {
    return static_cast<int64_t>(b[k]) - static_cast<int64_t>(a[k]);
  };
  EXPECT_GE(delta(c0, c1, "htb " + leaf_first), kN) << "a-first's packets through its group on queue 1";
  EXPECT_GE(delta(c0, c1, "htb " + leaf_steady), kN) << "steady's packets through its group on queue 0";
  EXPECT_EQ(delta(c0, c1, "htb 402:2"), 0) << "nothing strayed into queue 1's default leaf";
  EXPECT_LE(delta(q0, q1, "htb 402:"), kN + 5) << "only a-first's packets on queue 1";
  EXPECT_GE(delta(q0, q1, "htb 1:"), 2 * kN) << "steady's and the unlisted host's packets on queue 0";
  nlohmann::json after = nlohmann::json::parse(p.qosrun("hosts show " + p.if_a + " --json").out);
  for (const auto& h : after["hosts"]) {
    if (h["host"] != "a-first" && h["host"] != "steady") continue;
    EXPECT_GE(h["packets"].get<uint64_t>(), uint64_t{kN}) << h.dump();
  }

  // XPS back on (as a driver reset does), every CPU on queue 1: the kernel
  // sends everything there, and what queue 1's HTB has no class for goes
  // through its stray leaf, shaped, not around the tree; status says so.
  ASSERT_EQ(sh(fmt::format("ip netns exec {0} sh -c 'echo 3 > /sys/class/net/{1}/queues/tx-1/xps_cpus'", p.ns_a, p.if_a)).rc, 0);
  auto x0 = sent_of(p, "class");
  ASSERT_EQ(send_udp(p, "10.77.0.4", kN), kN);   // no listed host: its class is 1:11, only in queue 0's HTB
  ::usleep(300000);
  auto x1 = sent_of(p, "class");
  EXPECT_GE(delta(x0, x1, "htb 402:2"), kN) << "a packet on a queue without its class is shaped by the stray leaf";
  Cmd st2 = p.qosrun("status " + p.if_a);
  EXPECT_NE(st2.all().find("XPS is on again"), std::string::npos) << st2.all();
  ASSERT_EQ(sh(fmt::format("ip netns exec {0} sh -c 'echo 0 > /sys/class/net/{1}/queues/tx-1/xps_cpus'", p.ns_a, p.if_a)).rc, 0);

  // Reload keeps the queues, the hosts and where they are.
  Cmd rl = p.qosrun("reload " + obj + " " + p.if_a);
  ASSERT_EQ(rl.rc, 0) << rl.all();
  EXPECT_NE(p.in_a("tc qdisc show dev " + p.if_a).out.find("qdisc htb 402: parent 400:2"), std::string::npos);
  auto r0 = sent_of(p, "class");
  ASSERT_EQ(send_udp(p, "10.77.0.3", kN), kN);
  ASSERT_EQ(send_udp(p, "10.77.0.4", kN), kN);
  ::usleep(300000);
  auto r1 = sent_of(p, "class");
  EXPECT_GE(delta(r0, r1, "htb " + leaf_first), kN) << "after reload";
  EXPECT_EQ(delta(r0, r1, "htb 402:2"), 0) << "after reload: the new program still sends unlisted traffic to queue 0";

  // A table that needs a third group: it goes to the lighter queue.
  std::string more = table();
  for (int i = 100; i < 140; ++i) more += fmt::format("h{:03},small,10.88.{}.{}\n", i, i / 250, i % 250 + 1);
  Cmd ap = p.qosrun("hosts apply " + p.if_a + " " + write_file(p.state_root + "-t2.csv", more));
  ASSERT_EQ(ap.rc, 0) << ap.all();
  nlohmann::json j2 = nlohmann::json::parse(p.qosrun("hosts show " + p.if_a + " --json").out);
  EXPECT_EQ(j2["hosts"].size(), 142u);
  std::map<std::string, nlohmann::json> by2;
  for (const auto& h : j2["hosts"]) by2[h["host"]] = h;
  EXPECT_EQ(by2["a-first"]["queue"], 1) << "a group keeps its queue";
  EXPECT_EQ(by2["steady"]["queue"], 0) << "a group keeps its queue";

  Cmd dt = p.qosrun("detach " + p.if_a);
  ASSERT_EQ(dt.rc, 0) << dt.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(xps(p), xps_before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(HostsMq, TxQueuesOneKeepsOneHtbAndAskingTooManyIsRefused) {
  REQUIRE_ROOT();
  Pair p("one", "qm-", 2);
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qm", kPolicy, "");
  ASSERT_FALSE(obj.empty());
  const std::string before = p.snapshot();
  const std::string t = write_file(p.state_root + "-t.csv", table());
  Cmd bad = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t + " --tx-queues 3");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("has 2 TX queues"), std::string::npos) << bad.all();
  EXPECT_EQ(p.snapshot(), before);
  Cmd at = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t + " --tx-queues 1");
  ASSERT_EQ(at.rc, 0) << at.all();
  Cmd q = p.in_a("tc qdisc show dev " + p.if_a);
  EXPECT_NE(q.out.find("qdisc htb 1: root"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("mq"), std::string::npos) << q.out;
  nlohmann::json j = nlohmann::json::parse(p.qosrun("hosts show " + p.if_a + " --json").out);
  EXPECT_EQ(j["tx_queues"], 1);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

// An attach that fails or is killed after XPS went off: the undo, or the
// detach that cleans up after the kill, puts XPS back with everything else.
TEST(HostsMq, FailedOrKilledAttachPutsXpsBack) {
  REQUIRE_ROOT();
  Pair p("k9", "qm-", 2);
  ASSERT_TRUE(p.ok()) << p.setup_error();
  const std::string obj = compile("qm", kPolicy, "");
  ASSERT_FALSE(obj.empty());
  ASSERT_EQ(sh(fmt::format("ip netns exec {0} sh -c 'echo 2 > /sys/class/net/{1}/queues/tx-0/xps_cpus && echo 1 > "
                           "/sys/class/net/{1}/queues/tx-1/xps_cpus'",
                           p.ns_a, p.if_a))
                .rc,
            0);
  const std::string xps_before = xps(p);
  const std::string before = p.snapshot();
  const std::string t = write_file(p.state_root + "-t.csv", table());
  for (const char* step : {"xps", "htb-leaf", "hosts", "tc-filter"}) {
    SCOPED_TRACE(step);
    Cmd f = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t, std::string("QOSRUN_FAIL_AT=") + step);
    EXPECT_NE(f.rc, 0) << f.all();
    EXPECT_EQ(xps(p), xps_before);
    EXPECT_EQ(p.snapshot(), before);
    EXPECT_EQ(p.leftovers(), "");
  }
  for (const char* step : {"htb-leaf", "hosts", "xdp"}) {
    SCOPED_TRACE(step);
    ASSERT_EQ(kill9_at_step(p, "attach " + obj + " " + p.if_a + " --hosts " + t, step, std::string("qm-k9-") + step,
                            [&] { EXPECT_EQ(xps(p).find("tx-1 1"), std::string::npos) << "XPS is off by then"; }),
              "");
    Cmd d = p.qosrun("detach " + p.if_a);
    EXPECT_EQ(d.rc, 0) << d.all();
    EXPECT_EQ(xps(p), xps_before);
    EXPECT_EQ(p.snapshot(), before);
    EXPECT_EQ(p.leftovers(), "");
  }
}

// Steering (docs/hosts.md "Steering"): packets that come in on another
// interface go, with --steer-from, to the CPU of their host's TX queue before
// they are forwarded: the TC program on if_a counts a-first's packets (queue
// 1) on CPU 1 and steady's (queue 0) on CPU 0, although every packet was sent
// on CPU 0; without steering all of them are counted on CPU 0. Detach takes
// the steering program away; a reload keeps it (and refuses a policy that
// finds hosts another way); a failed or killed attach leaves nothing on the
// steering interface.
TEST(HostsSteer, PacketsOfAHostAreShapedOnTheCpuOfItsQueue) {
  REQUIRE_ROOT();
  if (libbpf_num_possible_cpus() < 2 || sysconf(_SC_NPROCESSORS_ONLN) < 2)
    GTEST_SKIP() << "steering needs 2 CPUs online (queue q is CPU q's)";
  Pair p("st", "qm-", 2);
  ASSERT_TRUE(p.ok()) << p.setup_error();
  Sender c(p, "qm-");
  ASSERT_EQ(c.error, "");
  const std::string obj = compile("qm", kPolicy, "");
  ASSERT_FALSE(obj.empty());
  ASSERT_EQ(p.in_b(fmt::format("ip addr add 10.77.0.3/24 dev {}", p.if_b)).rc, 0);
  const std::string t = write_file(p.state_root + "-t.csv", table());
  const std::string snap_in = p.snapshot(c.if_in), before = p.snapshot();
  const std::string stats = p.pin_dir() + "/qos_stats";
  constexpr uint32_t kBulk = 1;   // port 6000: the policy's default class
  constexpr int kN = 300;
  // Packets to `to` sent on CPU 0: how many the TC program counted on CPU 0 and on CPU 1.
  auto counted = [&](const std::string& to) {
    auto a = read_pinned_stats_per_cpu(stats, kBulk, 1);
    EXPECT_EQ(c.send_on_cpu(0, to, kN), kN);
    ::usleep(300000);
    auto b = read_pinned_stats_per_cpu(stats, kBulk, 1);
    std::vector<int64_t> d(2, 0);
    for (size_t i = 0; i < 2 && i < a.size() && i < b.size(); ++i) d[i] = static_cast<int64_t>(b[i] - a[i]);
    return d;
  };
  // Warm the neighbour entries (the first packets wait for ARP).
  ASSERT_EQ(c.send_on_cpu(0, "10.77.0.3", 1), 1);
  ASSERT_EQ(c.send_on_cpu(0, "10.77.0.2", 1), 1);
  ::usleep(200000);

  // Without steering: everything on the CPU it was sent on.
  Cmd plain = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t);
  ASSERT_EQ(plain.rc, 0) << plain.all();
  auto d = counted("10.77.0.3");
  EXPECT_GE(d[0], kN) << "without steering a-first's packets stay on CPU 0";
  EXPECT_EQ(d[1], 0);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);

  // Refused, and nothing changed: one HTB, the shaped interface itself, an unknown interface.
  for (const std::string& args : {" --tx-queues 1 --steer-from " + c.if_in, " --steer-from " + p.if_a,
                                  std::string(" --steer-from qs-none0")}) {
    SCOPED_TRACE(args);
    Cmd bad = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t + args);
    EXPECT_NE(bad.rc, 0) << bad.all();
    EXPECT_NE(bad.err.find("--steer-from"), std::string::npos) << bad.all();
    EXPECT_EQ(p.snapshot(), before);
    EXPECT_EQ(p.snapshot(c.if_in), snap_in);
  }

  Cmd at = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t + " --steer-from " + c.if_in);
  ASSERT_EQ(at.rc, 0) << at.all();
  EXPECT_NE(at.out.find("steering from " + c.if_in), std::string::npos) << at.all();
  EXPECT_NE(p.in_a("ip link show dev " + c.if_in).out.find("prog/xdp"), std::string::npos);
  Cmd st = p.qosrun("status " + p.if_a);
  EXPECT_NE(st.out.find("steer"), std::string::npos) << st.all();
  EXPECT_EQ(st.out.find("MISSING"), std::string::npos) << st.all();
  d = counted("10.77.0.3");
  EXPECT_GE(d[1], kN) << "a-first's group is on queue 1: its packets are shaped on CPU 1";
  EXPECT_LE(d[0], 2);
  d = counted("10.77.0.2");
  EXPECT_GE(d[0], kN) << "steady's group is on queue 0: CPU 0";
  EXPECT_LE(d[1], 2);

  // A reload keeps steering; a policy that finds hosts by source is refused.
  Cmd rl = p.qosrun("reload " + obj + " " + p.if_a);
  ASSERT_EQ(rl.rc, 0) << rl.all();
  d = counted("10.77.0.3");
  EXPECT_GE(d[1], kN) << "after a reload";
  std::string by_src = kPolicy;
  by_src.replace(by_src.find("hosts daddr"), 11, "hosts saddr");
  const std::string obj_src = compile("qm-saddr", by_src, "");
  Cmd rs = p.qosrun("reload " + obj_src + " " + p.if_a);
  EXPECT_NE(rs.rc, 0) << rs.all();
  EXPECT_NE(rs.err.find("steers hosts' packets"), std::string::npos) << rs.all();

  Cmd dt = p.qosrun("detach " + p.if_a);
  ASSERT_EQ(dt.rc, 0) << dt.all();
  EXPECT_EQ(p.snapshot(c.if_in), snap_in) << "detach takes the steering program away";
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");

  // An attach that fails, or is killed, once the steering program is on its
  // interface leaves nothing on either interface.
  Cmd f = p.qosrun("attach " + obj + " " + p.if_a + " --hosts " + t + " --steer-from " + c.if_in,
                   "QOSRUN_FAIL_AT=steer");
  EXPECT_NE(f.rc, 0) << f.all();
  EXPECT_EQ(p.snapshot(c.if_in), snap_in);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
  ASSERT_EQ(kill9_at_step(p, "attach " + obj + " " + p.if_a + " --hosts " + t + " --steer-from " + c.if_in, "steer",
                          "qm-st-k9", [&] {
                            EXPECT_NE(p.in_a("ip link show dev " + c.if_in).out.find("prog/xdp"), std::string::npos)
                                << "killed with the steering program attached";
                          }),
            "");
  Cmd d9 = p.qosrun("detach " + p.if_a);
  EXPECT_EQ(d9.rc, 0) << d9.all();
  EXPECT_EQ(p.snapshot(c.if_in), snap_in);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}
