// Isolation inside a class on the wire (issue 10, docs/isolation.md): one
// class with `isolate saddr` or `isolate flows`, bulk TCP (cubic, GSO on) from
// several source addresses, and what the receiver gets per host or flow,
// compared with an equal share; a sparse flow's one-way delay under that
// load against idle. At 20 and 100 Mbit/s.
//
// Namespaces qt-iso-s (sender, policy on is0, extra addresses 10.214.0.10-99)
// and qt-iso-r (receiver).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <thread>

#include <gtest/gtest.h>

#include "wire_support.hpp"

namespace {

constexpr const char* kS = "qt-iso-s";
constexpr const char* kR = "qt-iso-r";
constexpr const char* kIpS = "10.214.0.1";
constexpr const char* kIpR = "10.214.0.2";
constexpr double kWarmup = 2.0;   // s: TCP leaves slow start, every slot assigned
constexpr double kWindow = 4.0;   // s measured
constexpr double kTcpWire = 1514.0 / 1448.0;

std::string host(int i) { return "10.214.0." + std::to_string(10 + i); }

// A TCP flow from `src` to the receiver's port `port`.
struct Bulk {
  std::string src;
  uint16_t port;
};

class IsolationWire : public ::testing::TestWithParam<double> {
 protected:
  void SetUp() override {
    std::string why = qt::kernel_skip_reason({"ip", "tc", "ethtool"});
    if (!why.empty()) GTEST_SKIP() << why;
    ns_ = std::make_unique<qt::Netns>(std::vector<std::string>{kS, kR});
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    std::string err;
    qt::VethSpec v{kS, "is0", kIpS, kR, "ir0", kIpR, true};
    v.offloads = true;
    ASSERT_TRUE(qt::make_veth(v, &err)) << err;
    std::string cmd;
    for (int i = 0; i < 70; ++i) cmd += "ip addr add " + host(i) + "/24 dev is0; ";
    ASSERT_EQ(ns_->exec(kS, cmd).rc, 0);
  }
  void TearDown() override {
    if (ns_) (void)qt::detach_policy(*ns_, kS, "is0");   // leaves no record behind (none attached: a no-op)
    ns_.reset();
  }

  double link() const { return GetParam(); }
  std::string link_text() const { return std::to_string(static_cast<int>(link() / 1e6)) + "mbit"; }

  void attach(const std::string& name, const std::string& policy) {
    std::string err;
    std::string obj = qt::compile_policy(policy, name, "", &err);
    ASSERT_FALSE(obj.empty()) << err;
    qt::CmdResult r = qt::attach_policy(*ns_, kS, obj, "is0");
    ASSERT_EQ(r.rc, 0) << "qosrun attach failed:\n" << r.out;
  }

  // Runs the flows; returns the bytes on the wire per flow over the window
  // and (when probe_port) the one-way delays of a sparse flow meanwhile.
  std::vector<double> run(const std::vector<Bulk>& flows, double* seconds, uint16_t probe_port = 0,
                          qt::OneWay* probe = nullptr, double window = kWindow) {
    std::vector<uint16_t> ports;
    for (const auto& f : flows) ports.push_back(f.port);
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    qt::TcpSink sink(kR, kIpR, ports);
    EXPECT_TRUE(sink.ok());
    std::vector<std::unique_ptr<qt::TcpBulk>> tcps;
    for (const auto& f : flows) {
      tcps.push_back(std::make_unique<qt::TcpBulk>(kS, kIpR, f.port, "cubic", f.src));
      EXPECT_EQ(tcps.back()->error(), "");
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(kWarmup));
    auto a = sink.snapshot();
    auto t0 = std::chrono::steady_clock::now();
    if (probe) *probe = qt::one_way_delays(kS, host(69), kR, kIpR, probe_port, window);
    else std::this_thread::sleep_for(std::chrono::duration<double>(window));
    auto b = sink.snapshot();
    *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto& t : tcps) t->stop();
    std::vector<double> per_port_bytes;
    std::map<uint16_t, double> by_port;
    for (uint16_t p : ports) by_port[p] = static_cast<double>(b[p] - a[p]) * kTcpWire;
    std::vector<double> out;
    for (const auto& f : flows) out.push_back(by_port[f.port]);
    return out;
  }

  std::string stats() {
    std::string err;
    auto j = qt::stats_json(*ns_, kS, "is0", &err, "--no-rates");
    return j ? j->dump(1) : err;
  }

  std::unique_ptr<qt::Netns> ns_;
};

std::string fmt_shares(const std::vector<double>& v, double total) {
  std::string s;
  char b[32];
  for (double x : v) {
    std::snprintf(b, sizeof b, "%s%.3f", s.empty() ? "" : " ", total > 0 ? x / total : 0.0);
    s += b;
  }
  return s;
}

// CAKE's dual-srchost case: host A runs one upload, host B eight; with
// `isolate saddr` each host gets half (without: A got 0.105 at 100 Mbit).
TEST_P(IsolationWire, EveryHostGetsAnEqualShareWhateverItsFlowCount) {
  // A's port differs from B's so that the sink counts them apart.
  std::vector<Bulk> flows{{host(0), 6000}};
  for (int i = 0; i < 8; ++i) flows.push_back({host(1), 6001});
  double shares[2] = {0, 0};
  for (int isolated = 0; isolated < 2; ++isolated) {
    ASSERT_NO_FATAL_FAILURE(attach("iso_hosts", "policy iso_hosts {\n  link " + link_text() + ";\n  class bulk { " +
                                                    (isolated ? "isolate saddr; " : "") + "default; }\n}\n"));
    double dt = 0;
    auto bytes = run(flows, &dt);
    // The sink counts per port: B's eight flows all go to 6001.
    const double a = bytes[0], b = bytes[1];
    const double total = a + b;
    shares[isolated] = a / total;
    std::fprintf(stderr, "[ measured ] %s %s: host A (1 flow) share %.3f, host B (8 flows) %.3f, total %.1f%% of link\n",
                 link_text().c_str(), isolated ? "isolate saddr" : "no isolation", a / total, b / total,
                 100 * 8 * total / dt / link());
    if (isolated) {
      EXPECT_NEAR(a / total, 0.5, 0.03) << stats();
      EXPECT_GT(8 * total / dt, 0.95 * link()) << stats();
    }
    EXPECT_EQ(qt::detach_policy(*ns_, kS, "is0").rc, 0);
  }
  // Without isolation the nine flows share one drop-tail queue, whose split
  // is not fair either way: at 20 Mbit/s (a bfifo of one 64 KB packet since
  // leaf queues hold whole packets, 29 ms) host A got 0.12-0.39 in repeated
  // runs, at 100 Mbit/s 0.14-0.16. What must hold is that A is short of its half.
  EXPECT_LT(shares[0], 0.45) << "without isolation host A should get well under half: the setup is not what it claims";
}

// `isolate flows`: nine bulk flows in one class share it equally.
TEST_P(IsolationWire, NineFlowsShareTheClassEqually) {
  ASSERT_NO_FATAL_FAILURE(
      attach("iso_flows", "policy iso_flows {\n  link " + link_text() + ";\n  class bulk { isolate flows; default; }\n}\n"));
  std::vector<Bulk> flows;
  for (int i = 0; i < 9; ++i) flows.push_back({host(i % 3), static_cast<uint16_t>(6100 + i)});
  double dt = 0;
  auto bytes = run(flows, &dt);
  double total = std::accumulate(bytes.begin(), bytes.end(), 0.0), sq = 0;
  for (double x : bytes) sq += x * x;
  const double jain = total * total / (bytes.size() * sq);
  const double least = *std::min_element(bytes.begin(), bytes.end()) / (total / bytes.size());
  std::fprintf(stderr, "[ measured ] %s: 9 flows, shares %s, Jain %.4f, smallest %.2f of fair, total %.1f%% of link\n",
               link_text().c_str(), fmt_shares(bytes, total).c_str(), jain, least, 100 * 8 * total / dt / link());
  EXPECT_GE(jain, 0.99) << stats();
  EXPECT_GE(least, 0.8) << stats();
  EXPECT_GT(8 * total / dt, 0.95 * link()) << stats();
}

// 64 hosts, one upload each, in one class: each within ±10 % of an equal
// share. At 100 Mbit/s only (at 20 each host's 300 kbit/s is a few dozen
// packets a second: a 4 s window measures TCP's sawtooth, not the queues).
class IsolationWireWide : public IsolationWire {};

TEST_P(IsolationWireWide, SixtyFourHostsShareEqually) {
  ASSERT_NO_FATAL_FAILURE(attach("iso_64", "policy iso_64 {\n  link " + link_text() +
                                               ";\n  class bulk { isolate saddr 64 flows 1; default; }\n}\n"));
  std::vector<Bulk> flows;
  for (int i = 0; i < 64; ++i) flows.push_back({host(i), static_cast<uint16_t>(6200 + i)});
  double dt = 0;
  auto bytes = run(flows, &dt, 0, nullptr, 8.0);
  double total = std::accumulate(bytes.begin(), bytes.end(), 0.0);
  auto [lo, hi] = std::minmax_element(bytes.begin(), bytes.end());
  const double fair = total / bytes.size();
  std::fprintf(stderr, "[ measured ] %s: 64 hosts, each %.3f..%.3f of an equal share, total %.1f%% of link\n",
               link_text().c_str(), *lo / fair, *hi / fair, 100 * 8 * total / dt / link());
  EXPECT_GE(*lo / fair, 0.9) << stats();
  EXPECT_LE(*hi / fair, 1.1) << stats();
  EXPECT_GT(8 * total / dt, 0.95 * link()) << stats();
}

// A sparse flow in the isolated class keeps its idle delay while eight bulk
// flows fill the class (without isolation: +5.4 ms at 100 Mbit, the bfifo).
TEST_P(IsolationWire, SparseFlowKeepsItsIdleDelayUnderBulk) {
  const uint16_t probe_port = 6399;
  {
    // The same without isolation, for the record: the sparse flow waits in the bfifo.
    ASSERT_NO_FATAL_FAILURE(
        attach("iso_sparse0", "policy iso_sparse0 {\n  link " + link_text() + ";\n  class bulk { default; }\n}\n"));
    std::vector<Bulk> flows;
    for (int i = 0; i < 8; ++i) flows.push_back({host(i), static_cast<uint16_t>(6300 + i)});
    double dt = 0;
    qt::OneWay fifo;
    run(flows, &dt, probe_port, &fifo);
    std::fprintf(stderr, "[ measured ] %s no isolation: sparse flow one-way p50/p99 under 8 bulk flows %.3f/%.3f ms\n",
                 link_text().c_str(), fifo.p50(), fifo.p99());
    EXPECT_EQ(qt::detach_policy(*ns_, kS, "is0").rc, 0);
  }
  ASSERT_NO_FATAL_FAILURE(
      attach("iso_sparse", "policy iso_sparse {\n  link " + link_text() + ";\n  class bulk { isolate flows; default; }\n}\n"));
  qt::OneWay idle = qt::one_way_delays(kS, host(69), kR, kIpR, probe_port, 3.0);
  std::vector<Bulk> flows;
  for (int i = 0; i < 8; ++i) flows.push_back({host(i), static_cast<uint16_t>(6300 + i)});
  double dt = 0;
  qt::OneWay loaded;
  auto bytes = run(flows, &dt, probe_port, &loaded);
  double total = std::accumulate(bytes.begin(), bytes.end(), 0.0);
  const double allowed = link() >= 100e6 ? 1.0 : 2.0;
  std::fprintf(stderr,
               "[ measured ] %s: sparse flow one-way p50/p99 idle %.3f/%.3f ms, under 8 bulk flows %.3f/%.3f ms "
               "(lost %ld of %ld), bulk %.1f%% of link\n",
               link_text().c_str(), idle.p50(), idle.p99(), loaded.p50(), loaded.p99(), loaded.lost(), loaded.sent,
               100 * 8 * total / dt / link());
  ASSERT_GT(idle.ms.size(), 100u);
  ASSERT_GT(loaded.ms.size(), 100u);
  EXPECT_LE(loaded.p99(), idle.p99() + allowed) << stats();
  EXPECT_GT(8 * total / dt, 0.9 * link()) << stats();
}

// The policy's game class keeps its figures while the isolated bulk class
// is full: a game flow's one-way p99 within 1 ms of idle.
TEST_P(IsolationWire, GameClassKeepsItsDelayWhileTheIsolatedClassIsFull) {
  const uint16_t game_port = 27015;
  ASSERT_NO_FATAL_FAILURE(attach("iso_game", "policy iso_game {\n  link " + link_text() +
                                                 ";\n  class game { priority 0; }\n"
                                                 "  class bulk { priority 5; isolate saddr; default; }\n"
                                                 "  rule udp dport 27015 -> game;\n}\n"));
  qt::OneWay idle = qt::one_way_delays(kS, host(69), kR, kIpR, game_port, 3.0);
  std::vector<Bulk> flows;
  for (int i = 0; i < 8; ++i) flows.push_back({host(i % 2), static_cast<uint16_t>(6400 + i)});
  double dt = 0;
  qt::OneWay loaded;
  auto bytes = run(flows, &dt, game_port, &loaded);
  double total = std::accumulate(bytes.begin(), bytes.end(), 0.0);
  std::fprintf(stderr,
               "[ measured ] %s: game flow one-way p50/p99 idle %.3f/%.3f ms, with the isolated class full "
               "%.3f/%.3f ms (lost %ld of %ld), bulk %.1f%% of link\n",
               link_text().c_str(), idle.p50(), idle.p99(), loaded.p50(), loaded.p99(), loaded.lost(), loaded.sent,
               100 * 8 * total / dt / link());
  ASSERT_GT(loaded.ms.size(), 100u);
  EXPECT_LE(loaded.p99(), idle.p99() + 1.0) << stats();
  EXPECT_GT(8 * total / dt, 0.9 * link()) << stats();
}

std::string rate_name(const ::testing::TestParamInfo<double>& i) {
  return std::to_string(static_cast<int>(i.param / 1e6)) + "mbit";
}
INSTANTIATE_TEST_SUITE_P(Rates, IsolationWire, ::testing::Values(20e6, 100e6), rate_name);
INSTANTIATE_TEST_SUITE_P(Rates, IsolationWireWide, ::testing::Values(100e6), rate_name);

}  // namespace

// ---- NAT: the router masquerades on the shaped egress --------------------------------------

// Hosts A (one upload) and B (eight) behind a router that masquerades on its
// WAN side, where the policy shapes: every packet there has the router's
// address as its source. `isolate saddr nat` takes the host from conntrack
// and still gives A half; plain `isolate saddr` sees one host (the check that
// the NAT really happened).
// Namespaces qt-isn-c (clients, 10.215.1.10-11), qt-isn-r (router, r0 / r1
// with the policy and nft masquerade), qt-isn-s (server 10.215.2.2).
class IsolationNat : public ::testing::Test {
 protected:
  static constexpr const char* kC = "qt-isn-c";
  static constexpr const char* kRt = "qt-isn-r";
  static constexpr const char* kSv = "qt-isn-s";
  static constexpr const char* kServer = "10.215.2.2";
  void SetUp() override {
    std::string why = qt::kernel_skip_reason({"ip", "tc", "ethtool", "nft"});
    if (!why.empty()) GTEST_SKIP() << why;
    ns_ = std::make_unique<qt::Netns>(std::vector<std::string>{kC, kRt, kSv});
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    std::string err;
    qt::VethSpec lan{kC, "c0", "10.215.1.2", kRt, "r0", "10.215.1.1", true};
    lan.offloads = true;
    qt::VethSpec wan{kRt, "r1", "10.215.2.1", kSv, "s0", kServer, true};
    wan.offloads = true;
    ASSERT_TRUE(qt::make_veth(lan, &err)) << err;
    ASSERT_TRUE(qt::make_veth(wan, &err)) << err;
    auto ok = [&](const char* ns, const std::string& cmd) {
      auto r = ns_->exec(ns, cmd);
      EXPECT_EQ(r.rc, 0) << cmd << "\n" << r.out;
    };
    ok(kC, "ip addr add 10.215.1.10/24 dev c0 && ip addr add 10.215.1.11/24 dev c0 && "
           "ip route add default via 10.215.1.1");
    ok(kRt, "sysctl -qw net.ipv4.ip_forward=1 && "
            "nft add table ip qtnat && "
            "nft 'add chain ip qtnat post { type nat hook postrouting priority 100 ; }' && "
            "nft add rule ip qtnat post oifname r1 masquerade");
  }
  void TearDown() override { ns_.reset(); }

  // A's share of what the server received.
  double share_of_a(const std::string& isolate, std::string* stats) {
    std::string err;
    std::string obj = qt::compile_policy(
        "policy iso_nat {\n  link 100mbit;\n  class bulk { " + isolate + " default; }\n}\n", "iso_nat", "", &err);
    EXPECT_FALSE(obj.empty()) << err;
    qt::CmdResult r = qt::attach_policy(*ns_, kRt, obj, "r1");
    EXPECT_EQ(r.rc, 0) << r.out;
    if (r.rc != 0) return -1;
    double a = 0, b = 0;
    {
      qt::TcpSink sink(kSv, kServer, {6500, 6501});
      EXPECT_TRUE(sink.ok());
      std::vector<std::unique_ptr<qt::TcpBulk>> tcps;
      tcps.push_back(std::make_unique<qt::TcpBulk>(kC, kServer, 6500, "cubic", "10.215.1.10"));
      for (int i = 0; i < 8; ++i)
        tcps.push_back(std::make_unique<qt::TcpBulk>(kC, kServer, 6501, "cubic", "10.215.1.11"));
      for (auto& t : tcps) EXPECT_EQ(t->error(), "");
      std::this_thread::sleep_for(std::chrono::duration<double>(kWarmup));
      auto s0 = sink.snapshot();
      std::this_thread::sleep_for(std::chrono::duration<double>(kWindow));
      auto s1 = sink.snapshot();
      a = static_cast<double>(s1[6500] - s0[6500]);
      b = static_cast<double>(s1[6501] - s0[6501]);
    }
    auto j = qt::stats_json(*ns_, kRt, "r1", &err, "--no-rates");
    *stats = j ? j->dump(1) : err;
    r = qt::detach_policy(*ns_, kRt, "r1");
    EXPECT_EQ(r.rc, 0) << r.out;
    return a + b > 0 ? a / (a + b) : -1;
  }

  std::unique_ptr<qt::Netns> ns_;
};

TEST_F(IsolationNat, PreNatHostsShareEquallyBehindMasquerade) {
  std::string stats;
  const double plain = share_of_a("isolate saddr;", &stats);
  const double nat = share_of_a("isolate saddr nat;", &stats);
  std::fprintf(stderr, "[ measured ] 100mbit behind masquerade: host A's share %.3f with `isolate saddr nat`, %.3f "
               "with `isolate saddr` (one host after NAT)\n", nat, plain);
  EXPECT_LT(plain, 0.3) << "without `nat` every packet has the router's source: the setup did not NAT?";
  EXPECT_NEAR(nat, 0.5, 0.03) << stats;
}
