// The counters `qosrun stats` reports equal what was sent, per class and
// hook, to the packet and the byte (±0): known numbers of UDP datagrams of
// known sizes to ports the policy maps to classes, through XDP (ingress of
// the attached veth) and TC + HTB (its egress), inside two namespaces this
// test creates (qt-st-a: the peer, qt-st-d: the attached side).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "wire_support.hpp"

namespace {

using nlohmann::json;

constexpr const char* kA = "qt-st-a";
constexpr const char* kD = "qt-st-d";
constexpr const char* kIpA = "10.201.0.1";
constexpr const char* kIpD = "10.201.0.2";
constexpr size_t kHeaders = 14 + 20 + 8;   // Ethernet + IPv4 + UDP: what the programs count on top of the payload

const char* kPolicy = R"(policy st {
    link 100mbit;
    scheduler strict_priority;
    class c1    { priority 0; }
    class c2    { priority 1; }
    class c3    { priority 2; rate 1mbit; burst 10kb; }
    class other { priority 3; default; }
    rule udp dport 5001 -> c1;
    rule udp dport 5002 -> c2;
    rule udp dport 5003 -> c3;
    rule udp dport 5009 -> drop;
}
)";

const json* find_class(const json& j, const std::string& name) {
  for (const auto& c : j.at("classes"))
    if (c.at("name") == name) return &c;
  return nullptr;
}

uint64_t u(const json& j, const char* a, const char* b) { return j.at(a).at(b).get<uint64_t>(); }

constexpr size_t kTurnFrame = 1024;

class StatsCounters : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = qt::kernel_skip_reason({"ip", "tc", "ethtool"});
    if (!why.empty()) GTEST_SKIP() << why;
    ns_ = std::make_unique<qt::Netns>(std::vector<std::string>{kA, kD});
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    std::string err;
    ASSERT_TRUE(qt::make_veth({kA, "st-a0", kIpA, kD, "st-d0", kIpD, true}, &err)) << err;
    // An exact flow table (qosc samples by default): FlowTableCountsEachFlow checks
    // every packet; SampledFlowTableEstimatesEachFlow attaches the default.
    obj_ = qt::compile_policy(kPolicy, "st", "--flow-sample 1", &err);
    ASSERT_FALSE(obj_.empty()) << err;
    qt::CmdResult r = qt::attach_policy(*ns_, kD, obj_, "st-d0");
    ASSERT_EQ(r.rc, 0) << "qosrun attach failed:\n" << r.out;
    attached_ = true;
  }
  void TearDown() override {
    if (attached_) qt::detach_policy(*ns_, kD, "st-d0");
    ns_.reset();
  }
  std::unique_ptr<qt::Netns> ns_;
  std::string obj_;
  bool attached_ = false;
};

TEST_F(StatsCounters, EqualPacketsSentPerClassAndHook) {
  // Receivers on both sides (so no ICMP port-unreachable comes back).
  qt::UdpSink sink_d(kD, kIpD, {5001, 5002, 5003, 5009});
  qt::UdpSink sink_a(kA, kIpA, {5001, 5002, 5003, 5009});
  ASSERT_TRUE(sink_d.ok() && sink_a.ok());

  std::string err;
  auto before = qt::stats_json(*ns_, kD, "st-d0", &err);
  ASSERT_TRUE(before) << err;

  struct Send {
    const char* ns;
    const char* dst;
    uint16_t port;
    size_t payload;
    long count;
  };
  // Ingress (a -> d: XDP on st-d0) and egress (d -> a: TC on st-d0, then HTB).
  // Paced well below what the veth's XDP ring takes, so none is lost before the program.
  const Send sends[] = {
      {kA, kIpD, 5001, 100, 300},  {kA, kIpD, 5002, 1000, 200}, {kA, kIpD, 5009, 60, 50},
      {kA, kIpD, 5003, 1000, 100},  // far above c3's 1 Mbit/s policer: most are policed at XDP
      {kD, kIpA, 5001, 200, 150},  {kD, kIpA, 5002, 500, 250},  {kD, kIpA, 5009, 60, 40},
      {kD, kIpA, 5003, 1200, 80},   // c3's HTB leaf is capped at 1 Mbit/s: its bounded queue overflows
  };
  for (const auto& s : sends) {
    long n = qt::send_udp(s.ns, s.dst, s.port, s.payload, s.count, 5000);
    ASSERT_EQ(n, s.count) << "sendto failed for port " << s.port;
  }
  // c3's egress queue drains at 1 Mbit/s: wait until HTB holds nothing.
  json after;
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto j = qt::stats_json(*ns_, kD, "st-d0", &err);
    ASSERT_TRUE(j) << err;
    after = *j;
    const json* c3 = find_class(after, "c3");
    ASSERT_NE(c3, nullptr);
    if (!c3->at("queue").is_null() && c3->at("queue").at("qlen").get<uint64_t>() == 0 && i >= 3) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  sink_d.stop();
  sink_a.stop();

  // XDP: every datagram a sent, classified by port, bytes = payload + headers.
  const json* c1 = find_class(after, "c1");
  const json* c2 = find_class(after, "c2");
  const json* c3 = find_class(after, "c3");
  const json* other = find_class(after, "other");
  ASSERT_TRUE(c1 && c2 && c3 && other);
  EXPECT_EQ(u(*c1, "xdp", "packets"), 300u);
  EXPECT_EQ(u(*c1, "xdp", "bytes"), 300u * (100 + kHeaders));
  EXPECT_EQ(u(*c2, "xdp", "packets"), 200u);
  EXPECT_EQ(u(*c2, "xdp", "bytes"), 200u * (1000 + kHeaders));
  EXPECT_EQ(u(*c3, "xdp", "packets"), 100u);
  EXPECT_EQ(u(*c3, "xdp", "bytes"), 100u * (1000 + kHeaders));
  EXPECT_EQ(after.at("drop_rule").at("xdp").at("packets").get<uint64_t>(), 50u);
  // The policer: what it dropped plus what arrived is what was sent; it did drop.
  const uint64_t pol = u(*c3, "xdp", "drops_policer");
  EXPECT_EQ(pol + sink_d.count(5003).packets, 100u);
  EXPECT_GT(pol, 50u) << "100 x 1 kB at 5000/s is 40x c3's 1 Mbit/s: most must be policed";
  EXPECT_EQ(u(*c1, "xdp", "drops_policer"), 0u);
  EXPECT_EQ(sink_d.count(5001).packets, 300u);
  EXPECT_EQ(sink_d.count(5002).packets, 200u);
  EXPECT_EQ(sink_d.count(5009).packets, 0u) << "a drop rule let packets through";

  // TC: every datagram d sent; HTB queues.
  EXPECT_EQ(u(*c1, "tc", "packets"), 150u);
  EXPECT_EQ(u(*c1, "tc", "bytes"), 150u * (200 + kHeaders));
  EXPECT_EQ(u(*c2, "tc", "packets"), 250u);
  EXPECT_EQ(u(*c2, "tc", "bytes"), 250u * (500 + kHeaders));
  EXPECT_EQ(u(*c3, "tc", "packets"), 80u);
  EXPECT_EQ(u(*c3, "tc", "bytes"), 80u * (1200 + kHeaders));
  EXPECT_EQ(after.at("drop_rule").at("tc").at("packets").get<uint64_t>(), 40u);
  EXPECT_EQ(sink_a.count(5009).packets, 0u) << "a drop rule let packets through on egress";
  // Queue: the HTB leaf sent what arrived; its drops are the rest (queue overflow).
  ASSERT_FALSE(c1->at("queue").is_null()) << "no HTB class for c1: " << after.dump();
  EXPECT_EQ(c1->at("queue").at("sent_packets").get<uint64_t>(), 150u);
  EXPECT_EQ(c1->at("queue").at("sent_bytes").get<uint64_t>(), 150u * (200 + kHeaders));
  EXPECT_EQ(c2->at("queue").at("sent_packets").get<uint64_t>(), 250u);
  EXPECT_EQ(sink_a.count(5001).packets, 150u);
  EXPECT_EQ(sink_a.count(5002).packets, 250u);
  const uint64_t qdrops = u(*c3, "drops", "queue");
  EXPECT_EQ(c3->at("queue").at("sent_packets").get<uint64_t>(), sink_a.count(5003).packets);
  EXPECT_EQ(qdrops + sink_a.count(5003).packets, 80u);
  EXPECT_GT(qdrops, 0u) << "80 x 1.2 kB at once into a 1 Mbit/s class with a few ms of queue must overflow";

  // Nothing else crossed the link (no ARP, no IPv6): the default class saw nothing.
  EXPECT_EQ(u(*other, "xdp", "packets"), 0u);
  EXPECT_EQ(u(*other, "tc", "packets"), 0u);
}

TEST_F(StatsCounters, FlowTableCountsEachFlow) {
  qt::UdpSink sink_d(kD, kIpD, {5001, 5002});
  ASSERT_TRUE(sink_d.ok());
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5001, 300, 120, 5000), 120);
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5002, 700, 70, 5000), 70);
  std::string err;
  auto j = qt::stats_json(*ns_, kD, "st-d0", &err, "--no-rates --flows 10");
  ASSERT_TRUE(j) << err;
  const json& flows = j->at("flows");
  ASSERT_GE(flows.size(), 2u) << j->dump();
  // Ordered by bytes: the 5002 flow (70 x 742) before the 5001 flow (120 x 342).
  EXPECT_EQ(flows[0].at("dport"), 5002);
  EXPECT_EQ(flows[0].at("packets"), 70);
  EXPECT_EQ(flows[0].at("bytes"), 70 * (700 + kHeaders));
  EXPECT_EQ(flows[0].at("class"), "c2");
  EXPECT_EQ(flows[0].at("src"), kIpA);
  EXPECT_EQ(flows[0].at("dst"), kIpD);
  EXPECT_EQ(flows[0].at("proto"), "udp");
  EXPECT_EQ(flows[0].at("hooks"), "xdp");
  EXPECT_EQ(flows[1].at("dport"), 5001);
  EXPECT_EQ(flows[1].at("packets"), 120);
  EXPECT_EQ(flows[1].at("class"), "c1");
  EXPECT_GT(flows[1].at("duration_s").get<double>(), 0.0);
  EXPECT_LT(flows[1].at("duration_s").get<double>(), 5.0);
}

// A sampled flow table (qos_maps.h, qos_flow_sampled) takes one sample per
// N x 2 KB (here N = 2: z = 4 KB), a packet of len bytes with probability
// len / z, counting z bytes and ~z / len packets: a flow's bytes are a
// multiple of z, bytes and packets near what was sent, and the class
// counters stay exact.
TEST_F(StatsCounters, SampledFlowTableEstimatesEachFlow) {
  std::string err;
  const std::string sampled = qt::compile_policy(kPolicy, "st-sampled", "--flow-sample 2", &err);
  ASSERT_FALSE(sampled.empty()) << err;
  qt::detach_policy(*ns_, kD, "st-d0");
  attached_ = false;
  qt::CmdResult r = qt::attach_policy(*ns_, kD, sampled, "st-d0");
  ASSERT_EQ(r.rc, 0) << "qosrun attach failed:\n" << r.out;
  attached_ = true;
  qt::UdpSink sink_d(kD, kIpD, {5001, 5002, 5010, 5011});
  ASSERT_TRUE(sink_d.ok());
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5001, 300, 3200, 5000), 3200);
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5002, 100, 3200, 5000), 3200);
  // Two flows of one class (other) taking turns with 1,024-byte frames: a
  // sample every z = 4,096 bytes exactly (a countdown) would take every 4th
  // packet, always of the same flow, and never see the other; packets drawn
  // at random see both alike.
  ASSERT_EQ(qt::send_udp_in_turn(kA, kIpD, {5010, 5011}, kTurnFrame - kHeaders, 3200, 5000), 3200);
  auto j = qt::stats_json(*ns_, kD, "st-d0", &err, "--no-rates --flows 10");
  ASSERT_TRUE(j) << err;
  EXPECT_EQ(j->at("flow_sample"), 2);
  const uint64_t z = j->at("flow_sample_bytes").get<uint64_t>();
  EXPECT_EQ(z, 4096u);
  const json* c1 = find_class(*j, "c1");
  const json* c2 = find_class(*j, "c2");
  ASSERT_TRUE(c1 && c2);
  EXPECT_EQ(u(*c1, "xdp", "packets"), 3200u) << "class counters count every packet";
  EXPECT_EQ(u(*c2, "xdp", "packets"), 3200u);
  // Sampled bytes: mean = sent, ~z / (payload + headers) samples: 3200 / 12 = 267
  // (sd 6%), 3200 / 29 = 110 (sd 9.5%) and 1600 / 4 = 400 (sd 4%) for each of
  // the turn-taking flows; +-40% is > 4 sd.
  const struct { int port; uint64_t sent; size_t payload; } want[] = {
      {5001, 3200, 300}, {5002, 3200, 100}, {5010, 1600, kTurnFrame - kHeaders}, {5011, 1600, kTurnFrame - kHeaders}};
  for (const auto& w : want) {
    const json* f = nullptr;
    for (const auto& x : j->at("flows"))
      if (x.at("dport") == w.port && x.at("proto") == "udp") f = &x;
    ASSERT_NE(f, nullptr) << "flow to " << w.port << " missing:\n" << j->dump();
    const uint64_t pk = f->at("packets").get<uint64_t>(), by = f->at("bytes").get<uint64_t>();
    EXPECT_EQ(by % z, 0u) << by;
    EXPECT_GE(by, w.sent * (w.payload + kHeaders) * 6 / 10) << w.port;
    EXPECT_LE(by, w.sent * (w.payload + kHeaders) * 14 / 10) << w.port;
    // Each sample counts z / len packets, rounded at random: packets ~ bytes / len.
    EXPECT_NEAR(double(pk), double(by) / double(w.payload + kHeaders), 0.05 * double(by) / double(w.payload + kHeaders))
        << w.port;
  }
}

TEST_F(StatsCounters, RatesFromSuccessiveSamples) {
  // 2000 datagrams/s of 958 bytes payload = 1000-byte frames = 16 Mbit/s for ~3 s.
  qt::UdpSink sink_d(kD, kIpD, {5002});
  std::thread sender([] { qt::send_udp(kA, kIpD, 5002, 1000 - kHeaders, 6000, 2000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  std::string err;
  auto j = qt::stats_json(*ns_, kD, "st-d0", &err, "--interval 1.5");
  sender.join();
  ASSERT_TRUE(j) << err;
  EXPECT_NEAR(j->at("interval_s").get<double>(), 1.5, 0.2);
  const json* c2 = find_class(*j, "c2");
  ASSERT_NE(c2, nullptr);
  EXPECT_NEAR(c2->at("xdp").at("pps").get<double>(), 2000.0, 100.0);
  EXPECT_NEAR(c2->at("xdp").at("bps").get<double>(), 16e6, 0.8e6);
  EXPECT_EQ(c2->at("tc").at("pps").get<double>(), 0.0);
}

TEST_F(StatsCounters, MetricsEndpointServesTheSameCounters) {
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5001, 100, 77, 5000), 77);
  // The endpoint inside the namespace (its own loopback), stopped by timeout.
  std::thread server([this] {
    ns_->exec(kD, "timeout -s INT 4 " + qt::qosrun_bin() + " stats st-d0 --metrics 127.0.0.1:9464", 10);
  });
  std::string body;
  for (int i = 0; i < 30 && body.find("qosc_class_packets_total") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int fd = qt::socket_in_netns(kD, AF_INET, SOCK_STREAM);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(9464);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
      ASSERT_EQ(write(fd, req, sizeof req - 1), static_cast<ssize_t>(sizeof req - 1));
      char buf[4096];
      ssize_t n;
      body.clear();
      while ((n = read(fd, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
    }
    close(fd);
  }
  server.join();
  EXPECT_NE(body.find("HTTP/1.0 200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("# TYPE qosc_class_packets_total counter"), std::string::npos) << body;
  EXPECT_NE(body.find("qosc_class_packets_total{iface=\"st-d0\",policy=\"st\",class=\"c1\",hook=\"xdp\"} 77\n"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("qosc_queue_backlog_bytes{iface=\"st-d0\",policy=\"st\",class=\"c1\",direction=\"egress\"}"), std::string::npos)
      << body;

  // A non-loopback address is refused without --metrics-allow-remote.
  qt::CmdResult r = ns_->exec(kD, qt::qosrun_bin() + " stats st-d0 --metrics " + kIpD + ":9465", 10);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("--metrics-allow-remote"), std::string::npos) << r.out;
}

TEST_F(StatsCounters, IngressShapingQueuesAreReported) {
  // Re-attach with --ingress-shape: arriving traffic is queued on an IFB with its own HTB tree.
  ASSERT_EQ(qt::detach_policy(*ns_, kD, "st-d0").rc, 0);
  qt::CmdResult r = qt::attach_policy(*ns_, kD, obj_, "st-d0", "--ingress-shape");
  ASSERT_EQ(r.rc, 0) << r.out;
  qt::UdpSink sink_d(kD, kIpD, {5001, 5002});
  ASSERT_TRUE(sink_d.ok());
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5001, 500, 200, 5000), 200);
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5002, 300, 90, 5000), 90);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string err;
  auto j = qt::stats_json(*ns_, kD, "st-d0", &err);
  ASSERT_TRUE(j) << err;
  ASSERT_TRUE(j->contains("ingress")) << j->dump(1);
  EXPECT_FALSE(j->at("ingress").at("ifb").get<std::string>().empty());
  ASSERT_FALSE(j->at("ingress").at("link").is_null()) << j->dump(1);
  const json* c1 = find_class(*j, "c1");
  const json* c2 = find_class(*j, "c2");
  ASSERT_TRUE(c1 && c2);
  EXPECT_EQ(sink_d.count(5001).packets, 200u);
  EXPECT_EQ(u(*c1, "xdp", "packets"), 200u);
  ASSERT_FALSE(c1->at("ingress_queue").is_null()) << j->dump(1);
  EXPECT_EQ(c1->at("ingress_queue").at("sent_packets").get<uint64_t>(), 200u) << j->dump(1);
  EXPECT_EQ(c2->at("ingress_queue").at("sent_packets").get<uint64_t>(), 90u) << j->dump(1);
  // The IFB's TC program classified them too (documented: ingress-shaped packets count at `tc`).
  EXPECT_EQ(u(*c1, "tc", "packets"), 200u);
  EXPECT_EQ(u(*c1, "tc", "bytes"), 200u * (500 + kHeaders));
  EXPECT_EQ(c1->at("ingress_queue").at("sent_bytes").get<uint64_t>(), 200u * (500 + kHeaders));
}

TEST_F(StatsCounters, CountersContinueAcrossReload) {
  qt::UdpSink sink_d(kD, kIpD, {5001});
  ASSERT_TRUE(sink_d.ok());
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5001, 100, 60, 5000), 60);
  qt::CmdResult r = qt::qosrun_in(*ns_, kD, "reload " + obj_ + " st-d0");
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_EQ(qt::send_udp(kA, kIpD, 5001, 100, 40, 5000), 40);
  std::string err;
  auto j = qt::stats_json(*ns_, kD, "st-d0", &err);
  ASSERT_TRUE(j) << err;
  const json* c1 = find_class(*j, "c1");
  ASSERT_NE(c1, nullptr);
  EXPECT_EQ(u(*c1, "xdp", "packets"), 100u) << "the statistics did not continue across the reload";
  EXPECT_EQ(sink_d.count(5001).packets, 100u);
}

TEST_F(StatsCounters, ClearErrorsForWrongInterfaces) {
  qt::CmdResult r = ns_->exec(kD, qt::qosrun_bin() + " stats lo", 10);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("no qosc policy is attached to lo"), std::string::npos) << r.out;
  r = ns_->exec(kD, qt::qosrun_bin() + " stats nosuch0", 10);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("no interface 'nosuch0'"), std::string::npos) << r.out;
}

}  // namespace
