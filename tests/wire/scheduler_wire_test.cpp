// Each scheduler of the language on the wire: a policy attached by
// `qosrun attach` on the sender's side of a veth link shaped to 20 Mbit/s,
// backlogged classes (paced UDP senders, each faster than the link, one
// destination port per class), and what the receiver gets per class over a
// measurement window compared with the scheduler's contract
// (shared/spec/language.md, "Classes and schedulers").
//
// Namespaces qt-wire-s (sender, policy on ws0) and qt-wire-r (receiver).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "wire_support.hpp"

namespace {

constexpr const char* kS = "qt-wire-s";
constexpr const char* kR = "qt-wire-r";
constexpr const char* kIpS = "10.202.0.1";
constexpr const char* kIpR = "10.202.0.2";
constexpr double kLink = 20e6;
constexpr size_t kPayload = 1400;   // 1442-byte frames for every class
constexpr double kWarmup = 1.0;     // s before measuring: queues fill, HTB settles
constexpr double kWindow = 3.0;     // s measured

struct Flow {
  uint16_t port;
  double bps;                 // offered, on the wire
  size_t payload = kPayload;  // UDP payload per datagram
};

struct Outcome {
  std::map<uint16_t, double> bps;   // received, on the wire (payload + headers)
  double total = 0;
  std::string stats;                // qosrun stats after the run, for failure messages
};

class SchedulerWire : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = qt::kernel_skip_reason({"ip", "tc", "ethtool"});
    if (!why.empty()) GTEST_SKIP() << why;
    ns_ = std::make_unique<qt::Netns>(std::vector<std::string>{kS, kR});
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    std::string err;
    ASSERT_TRUE(qt::make_veth({kS, "ws0", kIpS, kR, "wr0", kIpR, true}, &err)) << err;
  }
  void TearDown() override { ns_.reset(); }

  // Compiles and attaches `policy`, runs the flows, returns what arrived.
  Outcome run(const std::string& name, const std::string& policy, const std::vector<Flow>& flows) {
    Outcome o;
    std::string err;
    std::string obj = qt::compile_policy(policy, name, "", &err);
    EXPECT_FALSE(obj.empty()) << err;
    if (obj.empty()) return o;
    qt::CmdResult r = qt::attach_policy(*ns_, kS, obj, "ws0");
    EXPECT_EQ(r.rc, 0) << "qosrun attach failed:\n" << r.out;
    if (r.rc != 0) return o;
    std::vector<uint16_t> ports;
    for (const auto& f : flows) ports.push_back(f.port);
    qt::UdpSink sink(kR, kIpR, ports);
    EXPECT_TRUE(sink.ok());
    std::vector<std::unique_ptr<qt::UdpFlood>> senders;
    for (const auto& f : flows) senders.push_back(std::make_unique<qt::UdpFlood>(kS, kIpR, f.port, f.bps, f.payload));
    std::this_thread::sleep_for(std::chrono::duration<double>(kWarmup));
    auto a = sink.snapshot();
    auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(kWindow));
    auto b = sink.snapshot();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto stats = qt::stats_json(*ns_, kS, "ws0", &err, "--no-rates");
    o.stats = stats ? stats->dump(1) : err;
    for (auto& s : senders) s->stop();
    sink.stop();
    for (const auto& f : flows) {
      double pk = static_cast<double>(b[f.port].packets - a[f.port].packets);
      double by = static_cast<double>(b[f.port].bytes - a[f.port].bytes);
      o.bps[f.port] = 8.0 * (by + pk * 42) / dt;
      o.total += o.bps[f.port];
    }
    r = qt::detach_policy(*ns_, kS, "ws0");
    EXPECT_EQ(r.rc, 0) << "qosrun detach failed:\n" << r.out;
    std::string line = name + ":";
    for (const auto& [p, v] : o.bps) line += " " + std::to_string(p) + "=" + std::to_string(v / 1e6).substr(0, 6) + "M";
    line += " total=" + std::to_string(o.total / 1e6).substr(0, 6) + "M";
    std::fprintf(stderr, "[ measured ] %s\n", line.c_str());
    RecordProperty("measured", line);
    return o;
  }

  std::unique_ptr<qt::Netns> ns_;
};

std::string classes_and_rules(const std::vector<std::string>& class_attrs) {
  std::string s;
  for (size_t i = 0; i < class_attrs.size(); ++i)
    s += "    class c" + std::to_string(i) + " { " + class_attrs[i] + (i + 1 == class_attrs.size() ? " default;" : "") +
         " }\n";
  for (size_t i = 0; i < class_attrs.size(); ++i)
    s += "    rule udp dport " + std::to_string(6000 + i) + " -> c" + std::to_string(i) + ";\n";
  return s;
}

std::string policy(const std::string& name, const std::string& sched, const std::vector<std::string>& attrs) {
  return "policy " + name + " {\n    link 20mbit;\n    scheduler " + sched + ";\n" + classes_and_rules(attrs) + "}\n";
}

// Shares within ±5% of the configured ratio (relative), and the link used.
void expect_shares(const Outcome& o, const std::vector<double>& ratio, const char* what) {
  double sum = 0;
  for (double r : ratio) sum += r;
  ASSERT_EQ(o.bps.size(), ratio.size()) << o.stats;
  size_t i = 0;
  for (const auto& [port, bps] : o.bps) {
    double want = ratio[i++] / sum;
    double got = bps / o.total;
    EXPECT_NEAR(got / want, 1.0, 0.05) << what << ": port " << port << " got share " << got << ", configured "
                                       << want << "\n"
                                       << o.stats;
  }
  EXPECT_GT(o.total, 0.93 * kLink) << what << ": the link was not filled\n" << o.stats;
  EXPECT_LT(o.total, 1.05 * kLink) << what << ": more than the link went through\n" << o.stats;
}

TEST_F(SchedulerWire, StrictPriorityServesTheHigherClassFirst) {
  // Both backlogged above the link: the higher class takes the link, the lower gets ~nothing.
  Outcome o = run("sp", policy("sp", "strict_priority", {"priority 0;", "priority 3;"}),
                  {{6000, 30e6}, {6001, 30e6}});
  EXPECT_GT(o.bps[6000], 0.93 * kLink) << o.stats;
  EXPECT_LT(o.bps[6001], 0.02 * kLink) << "the lower class was served while the higher one was backlogged\n"
                                       << o.stats;
}

TEST_F(SchedulerWire, StrictPriorityStarvesNothingItShouldNot) {
  // The higher class under the link keeps everything it sends; the lower gets the rest.
  Outcome o = run("sp2", policy("sp2", "strict_priority", {"priority 0;", "priority 3;"}),
                  {{6000, 8e6}, {6001, 30e6}});
  EXPECT_NEAR(o.bps[6000] / 8e6, 1.0, 0.03) << o.stats;
  EXPECT_NEAR(o.bps[6001] / (kLink - 8e6), 1.0, 0.07) << o.stats;
}

TEST_F(SchedulerWire, RoundRobinEqualShares) {
  Outcome o = run("rr", policy("rr", "round_robin", {"priority 0;", "priority 3;", "priority 7;"}),
                  {{6000, 30e6}, {6001, 30e6}, {6002, 30e6}});
  expect_shares(o, {1, 1, 1}, "round_robin");
}

TEST_F(SchedulerWire, DeficitRoundRobinSharesFollowQuantum) {
  Outcome o = run("drr", policy("drr", "deficit_round_robin", {"quantum 1514b;", "quantum 3028b;", "quantum 6056b;"}),
                  {{6000, 30e6}, {6001, 30e6}, {6002, 30e6}});
  expect_shares(o, {1, 2, 4}, "deficit_round_robin");
}

TEST_F(SchedulerWire, WeightedFairQueuingSharesFollowWeight) {
  Outcome o = run("wfq", policy("wfq", "weighted_fair_queuing", {"weight 1;", "weight 2;", "weight 5;"}),
                  {{6000, 30e6}, {6001, 30e6}, {6002, 30e6}});
  expect_shares(o, {1, 2, 5}, "weighted_fair_queuing");
}

TEST_F(SchedulerWire, WeightedFairQueuingRedistributesUnusedShare) {
  // c0 (weight 1 of 4 = 5 Mbit/s) only offers 2 Mbit/s: c1 and c2 split the rest 1:2.
  Outcome o = run("wfq2", policy("wfq2", "weighted_fair_queuing", {"weight 1;", "weight 1;", "weight 2;"}),
                  {{6000, 2e6}, {6001, 30e6}, {6002, 30e6}});
  EXPECT_NEAR(o.bps[6000] / 2e6, 1.0, 0.05) << o.stats;
  EXPECT_NEAR(o.bps[6002] / o.bps[6001], 2.0, 0.1) << o.stats;
  EXPECT_GT(o.total, 0.93 * kLink) << o.stats;
}

TEST_F(SchedulerWire, ClassCapsHold) {
  // c0 capped at 4 Mbit/s, c1 at 9 Mbit/s, c2 uncapped: each offered 30 Mbit/s.
  Outcome o = run("caps", policy("caps", "weighted_fair_queuing",
                                 {"weight 5; rate 4mbit;", "weight 5; rate 9mbit;", "weight 1;"}),
                  {{6000, 30e6}, {6001, 30e6}, {6002, 30e6}});
  EXPECT_NEAR(o.bps[6000] / 4e6, 1.0, 0.05) << o.stats;
  EXPECT_NEAR(o.bps[6001] / 9e6, 1.0, 0.05) << o.stats;
  EXPECT_NEAR(o.bps[6002] / (kLink - 13e6), 1.0, 0.07) << "the uncapped class gets what the caps leave\n" << o.stats;
}

TEST_F(SchedulerWire, PifoServesAscendingRank) {
  // rank = class.priority: with every class backlogged, the lowest rank takes the link; when it offers
  // less than the link, the next rank takes the remainder, and the highest rank is served last.
  Outcome o = run("pifo", policy("pifo", "pifo", {"priority 0;", "priority 2;", "priority 5;"}),
                  {{6000, 6e6}, {6001, 8e6}, {6002, 30e6}});
  EXPECT_NEAR(o.bps[6000] / 6e6, 1.0, 0.05) << o.stats;
  EXPECT_NEAR(o.bps[6001] / 8e6, 1.0, 0.05) << o.stats;
  EXPECT_NEAR(o.bps[6002] / (kLink - 14e6), 1.0, 0.10) << o.stats;
  Outcome all = run("pifo2", policy("pifo2", "pifo", {"priority 0;", "priority 2;", "priority 5;"}),
                    {{6000, 30e6}, {6001, 30e6}, {6002, 30e6}});
  EXPECT_GT(all.bps[6000], 0.9 * kLink) << all.stats;
  EXPECT_LT(all.bps[6001] + all.bps[6002], 0.07 * kLink) << "higher ranks served while rank 0 was backlogged\n"
                                                         << all.stats;
}

TEST_F(SchedulerWire, PifoServesAscendingRankFromPacketLength) {
  // rank = pkt.len: one class, two flows; 300-byte frames rank before 1442-byte frames, so the
  // short-packet flow keeps all it offers and the long-packet flow gets the remainder.
  const std::string p = "policy pifolen {\n    link 20mbit;\n    scheduler pifo { rank = pkt.len; bands 4; }\n"
                        "    class all { priority 0; default; }\n}\n";
  Outcome o = run("pifolen", p, {{6000, 8e6, 258}, {6001, 30e6, kPayload}});
  EXPECT_NEAR(o.bps[6000] / 8e6, 1.0, 0.05) << o.stats;
  EXPECT_NEAR(o.bps[6001] / (kLink - 8e6), 1.0, 0.07) << o.stats;
}

// A slow link and TCP as the kernel sends it: with GSO/TSO on (veth's
// default, and any NIC's), TCP hands the qdisc packets of up to 64 KB, and
// GRO builds them from received traffic (what reaches the IFB of
// --ingress-shape). A leaf queue that drops what it cannot hold whole
// starved TCP here (uploads 0.06, downloads 1.2-1.3 of 5 Mbit/s through a 6 KB
// bfifo); a slow leaf's queue now holds frames, cut from larger packets, and
// 50 ms of its ceiling (htb::LeafQueue), so TCP fills the link and a packet
// of the same class waits at most about that long.
struct TcpUnderPing {
  double tcp_bps = 0;
  double rtt_avg_ms = -1, rtt_max_ms = -1;
  std::string context;   // ping's summary and qosrun stats, for failure messages
};

// `policy` attached on ws0 (with `attach_args`), a 5 s iperf3 upload (or
// download: `reverse`) from the sender's side with ping beside it.
TcpUnderPing tcp_under_ping(const qt::Netns& ns, const std::string& policy, const std::string& attach_args,
                            bool reverse) {
  TcpUnderPing o;
  std::string err;
  std::string obj = qt::compile_policy(policy, reverse ? "slowdown" : "slowup", "", &err);
  EXPECT_FALSE(obj.empty()) << err;
  if (obj.empty()) return o;
  qt::CmdResult r = qt::qosrun_in(ns, kS, "attach " + obj + " ws0 " + attach_args);
  EXPECT_EQ(r.rc, 0) << r.out;
  if (r.rc != 0) return o;
  // One client, and gone within 25 s whatever happens (a daemon would outlive the namespace).
  EXPECT_EQ(ns.exec(kR, std::string("timeout -k 2 25 iperf3 -s -1 -B ") + kIpR + " >/dev/null 2>&1 &").rc, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string ping_file = "/tmp/qt-wire-slowlink-ping.txt";
  qt::CmdResult run = ns.exec(kS,
                              std::string("ping -i 0.1 -c 45 -q ") + kIpR + " > " + ping_file +
                                  " 2>&1 & timeout -k 2 12 iperf3 -c " + kIpR + (reverse ? " -R" : "") +
                                  " -t 5 -J; wait; echo @@PING@@; cat " + ping_file + "; rm -f " + ping_file,
                              25);
  auto stats = qt::stats_json(ns, kS, "ws0", &err, "--no-rates");
  (void)qt::detach_policy(ns, kS, "ws0");
  const size_t cut = run.out.find("@@PING@@");
  EXPECT_NE(cut, std::string::npos) << run.out;
  if (cut == std::string::npos) return o;
  try {
    o.tcp_bps = nlohmann::json::parse(run.out.substr(0, cut)).at("end").at("sum_received").at("bits_per_second");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "iperf3: " << e.what() << "\n" << run.out;
  }
  if (size_t at = run.out.find("rtt min/avg/max/mdev = ", cut); at != std::string::npos) {
    double mn = 0;
    std::sscanf(run.out.c_str() + at, "rtt min/avg/max/mdev = %lf/%lf/%lf", &mn, &o.rtt_avg_ms, &o.rtt_max_ms);
  }
  std::fprintf(stderr, "[ measured ] 5 Mbit/s %s, offloads on: TCP %.2f Mbit/s, ping avg %.1f ms max %.1f ms\n",
               reverse ? "download (IFB)" : "upload", o.tcp_bps / 1e6, o.rtt_avg_ms, o.rtt_max_ms);
  o.context = run.out.substr(cut) + "\n" + (stats ? stats->dump(1) : err);
  return o;
}

void expect_fills_and_stays_short(const TcpUnderPing& o) {
  EXPECT_GT(o.tcp_bps, 0.85 * 5e6) << "TCP did not fill the 5 Mbit/s link\n" << o.context;
  ASSERT_GT(o.rtt_avg_ms, 0) << o.context;
  EXPECT_LT(o.rtt_avg_ms, 60) << o.context;
  EXPECT_LT(o.rtt_max_ms, 100) << "the bulk class held more than 50 ms (one 64 KB packet is 116 ms)\n" << o.context;
}

TEST_F(SchedulerWire, SlowLinkCarriesTcpSentInGsoPackets) {
  std::string why = qt::kernel_skip_reason({"iperf3", "ping"});
  if (!why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(ns_->exec(kS, "ethtool -K ws0 gso on tso on").rc, 0);
  // ping goes to bulk, the default class, behind TCP's packets.
  expect_fills_and_stays_short(tcp_under_ping(*ns_,
                                              "policy slowup {\n    link 5mbit;\n    class games { priority 0; rate 1mbit; }\n"
                                              "    class bulk { priority 4; default; }\n"
                                              "    rule udp dport 27015 -> games;\n}\n",
                                              "", false));
}

TEST_F(SchedulerWire, SlowDownloadCarriesTcpReceivedInGroPackets) {
  std::string why = qt::kernel_skip_reason({"iperf3", "ping"});
  if (!why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(ns_->exec(kR, "ethtool -K wr0 gso on tso on").rc, 0);
  ASSERT_EQ(ns_->exec(kS, "ethtool -K ws0 gro on").rc, 0);
  // The IFB's tree at `download 5mbit`; ping's replies queue there in bulk, behind TCP's.
  expect_fills_and_stays_short(tcp_under_ping(*ns_,
                                              "policy slowdown {\n    link 100mbit;\n    download 5mbit;\n"
                                              "    class games { priority 0; rate 1mbit; }\n"
                                              "    class bulk { priority 4; default; }\n"
                                              "    rule udp dport 27015 -> games;\n}\n",
                                              "--ingress-shape", true));
}

}  // namespace
