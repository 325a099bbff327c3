// The statistics view without a kernel: rates from two samples, queue delay,
// flow ordering, JSON, Prometheus text, addresses and the metrics server on
// loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "qos_abi.h"
#include "qosrun/stats.hpp"

namespace {

using namespace qosrun;

qosc::Manifest manifest(const char* sched = "weighted_fair_queuing") {
  qosc::Manifest m;
  m.policy = "home";
  m.scheduler = sched;
  m.link_bps = 20000000;
  for (uint32_t i = 0; i < 2; ++i) {
    qosc::ManifestClass c;
    c.id = i;
    c.name = i == 0 ? "games" : "bulk";
    c.priority = i;
    c.weight = i + 1;
    c.rate_bps = i == 0 ? 5000000 : 0;
    c.is_default = i == 1;
    c.htb_minor = 0x10 + i;
    m.classes.push_back(c);
  }
  return m;
}

Sample sample(uint64_t t_ns, uint64_t k) {
  Sample s;
  s.mono_ns = t_ns;
  s.unix_time = 1.7e9 + static_cast<double>(t_ns) / 1e9;
  s.map.resize(3);
  s.map[0].packets[QOS_HOOK_XDP] = 100 * k;
  s.map[0].bytes[QOS_HOOK_XDP] = 100000 * k;
  s.map[0].packets[QOS_HOOK_TC] = 10 * k;
  s.map[0].bytes[QOS_HOOK_TC] = 5000 * k;
  s.map[0].drop_policer[QOS_HOOK_XDP] = 3 * k;
  s.map[2].packets[QOS_HOOK_XDP] = 7 * k;   // the drop slot
  s.map[2].drop_rule[QOS_HOOK_XDP] = 7 * k;
  QdiscSnapshot q;
  q.root = {true, 0x10000, "htb", 2000000 * k, 2000 * k, 5 * k, 0, 1500, 1};
  QueueCounters games;
  games.handle = 0x10010;
  games.parent = 0x10001;
  games.leaf = true;
  games.bytes = 1000000 * k;   // 8 Mbit per second when k grows by one per second
  games.packets = 1000 * k;
  games.drops = 2 * k;
  games.backlog_bytes = 10000;   // 10 kB at 8 Mbit/s = 10 ms
  games.qlen = 7;
  games.ceil_bps = 5000000;
  q.classes.push_back(games);
  s.qdisc = q;
  return s;
}

TEST(StatsView, RatesAndDelayFromTwoSamples) {
  auto m = manifest();
  Sample a = sample(1000000000ull, 1), b = sample(3000000000ull, 3);   // 2 s apart, counters x3
  View v = make_view(m, "eth0", b, &a, 0);
  ASSERT_EQ(v.classes.size(), 2u);
  EXPECT_DOUBLE_EQ(v.interval_s, 2.0);
  const ClassView& g = v.classes[0];
  EXPECT_EQ(g.xdp.packets, 300u);
  EXPECT_DOUBLE_EQ(g.xdp.pps, 100.0);           // (300 - 100) / 2
  EXPECT_DOUBLE_EQ(g.xdp.bps, 8 * 100000.0);    // (300k - 100k) bytes / 2 s * 8
  EXPECT_DOUBLE_EQ(g.tc.pps, 10.0);
  EXPECT_EQ(g.xdp.drop_policer, 9u);
  ASSERT_TRUE(g.queue.present);
  EXPECT_DOUBLE_EQ(g.queue.bps, 8e6);
  EXPECT_NEAR(g.queue.delay_ms, 10.0, 1e-9);
  EXPECT_EQ(g.queue.drops, 6u);
  EXPECT_FALSE(v.classes[1].queue.present);     // no HTB class 1:11 in the snapshot
  EXPECT_EQ(v.rule_xdp.drop_rule, 21u);
  EXPECT_DOUBLE_EQ(v.link_bps_now, 8 * 2000000.0);

  // Without a previous sample: counters, no rates; delay from the ceil.
  View first = make_view(m, "eth0", a, nullptr, 0);
  EXPECT_EQ(first.interval_s, 0.0);
  EXPECT_EQ(first.classes[0].xdp.bps, 0.0);
  EXPECT_NEAR(first.classes[0].queue.delay_ms, 1000.0 * 8 * 10000 / 5e6, 1e-9);
}

TEST(StatsView, CounterGoingBackGivesZeroRateNotGarbage) {
  auto m = manifest();
  Sample a = sample(1000000000ull, 5), b = sample(2000000000ull, 1);
  View v = make_view(m, "eth0", b, &a, 0);
  EXPECT_EQ(v.classes[0].xdp.bps, 0.0);
  EXPECT_EQ(v.classes[0].queue.bps, 0.0);
}

TEST(StatsView, TopFlowsByBytesThenByRate) {
  auto m = manifest();
  Sample a = sample(1000000000ull, 1), b = sample(2000000000ull, 2);
  auto flow = [](uint16_t port, uint64_t bytes, uint32_t cls) {
    FlowEntry f;
    f.family = 4;
    f.src = "10.0.0.1";
    f.dst = "10.0.0.2";
    f.sport = 1000;
    f.dport = port;
    f.proto = 17;
    f.bytes = bytes;
    f.packets = bytes / 100;
    f.first_ns = 500000000ull;
    f.last_ns = 1900000000ull;
    f.class_id = cls;
    f.key = std::to_string(port);
    return f;
  };
  a.flows = {flow(1, 1000000, 1), flow(2, 10000, 0)};
  b.flows = {flow(1, 1000100, 1), flow(2, 60000, 0), flow(3, 500, 0)};
  b.flows[2].first_ns = 1500000000ull;   // new since sample a: all its bytes are in the interval
  View by_bytes = make_view(m, "eth0", b, nullptr, 2);
  ASSERT_EQ(by_bytes.flows.size(), 2u);
  EXPECT_EQ(by_bytes.flows[0].flow.dport, 1);
  EXPECT_EQ(by_bytes.flows[0].cls, "bulk");
  EXPECT_NEAR(by_bytes.flows[0].duration_s, 1.4, 1e-9);
  EXPECT_NEAR(by_bytes.flows[0].idle_s, 0.1, 1e-9);
  View by_rate = make_view(m, "eth0", b, &a, 5);
  ASSERT_EQ(by_rate.flows.size(), 3u);
  EXPECT_EQ(by_rate.flows[0].flow.dport, 2);   // 50 kB in the last second
  EXPECT_DOUBLE_EQ(by_rate.flows[0].bps, 8 * 50000.0);
  EXPECT_EQ(by_rate.flows[1].flow.dport, 3);
  EXPECT_DOUBLE_EQ(by_rate.flows[1].bps, 8 * 500.0);
  EXPECT_EQ(by_rate.flows[2].flow.dport, 1);
  EXPECT_DOUBLE_EQ(by_rate.flows[2].bps, 8 * 100.0);
  EXPECT_EQ(by_rate.flow_count, 3u);
}

TEST(StatsView, JsonHasEveryCounter) {
  auto m = manifest();
  Sample a = sample(1000000000ull, 1), b = sample(2000000000ull, 2);
  nlohmann::json j = to_json(make_view(m, "eth0", b, &a, 0));
  EXPECT_EQ(j["iface"], "eth0");
  EXPECT_EQ(j["policy"], "home");
  EXPECT_EQ(j["classes"][0]["name"], "games");
  EXPECT_EQ(j["classes"][0]["xdp"]["packets"], 200);
  EXPECT_EQ(j["classes"][0]["drops"]["policer"], 6);
  EXPECT_EQ(j["classes"][0]["drops"]["queue"], 4);
  EXPECT_EQ(j["classes"][0]["queue"]["handle"], "1:10");
  EXPECT_EQ(j["classes"][0]["queue"]["backlog_bytes"], 10000);
  EXPECT_TRUE(j["classes"][1]["queue"].is_null());
  EXPECT_EQ(j["drop_rule"]["xdp"]["packets"], 14);
  EXPECT_EQ(j["link"]["sent_bytes"], 4000000);
  // One line: scripts read one object per line.
  EXPECT_EQ(j.dump().find('\n'), std::string::npos);
}

TEST(StatsView, PifoShowsBands) {
  auto m = manifest("pifo");
  m.pifo_mapping = "sp-pifo";
  m.pifo_bands = 3;
  Sample a = sample(1000000000ull, 1);
  View v = make_view(m, "eth0", a, nullptr, 0);
  ASSERT_EQ(v.bands.size(), 3u);
  EXPECT_TRUE(v.bands[0].present);    // 1:10 exists in the snapshot
  EXPECT_FALSE(v.bands[1].present);
  EXPECT_FALSE(v.classes[0].queue.present);   // classes have no leaf of their own under pifo
  std::string text = render_text(v, false);
  EXPECT_NE(text.find("band  0"), std::string::npos) << text;
}

TEST(StatsView, TextView) {
  auto m = manifest();
  Sample a = sample(1000000000ull, 1), b = sample(2000000000ull, 2);
  std::string t = render_text(make_view(m, "eth0", b, &a, 0), false);
  EXPECT_NE(t.find("qosrun stats eth0"), std::string::npos) << t;
  EXPECT_NE(t.find("games"), std::string::npos);
  EXPECT_NE(t.find("bulk*"), std::string::npos);   // the default class is starred
  EXPECT_NE(t.find("10.00 ms"), std::string::npos) << t;
  EXPECT_EQ(t.find('\x1b'), std::string::npos);    // no colour when asked for none
  std::string c = render_text(make_view(m, "eth0", b, &a, 0), true);
  EXPECT_NE(c.find("\x1b[1m"), std::string::npos);
}

TEST(StatsView, HumanUnits) {
  EXPECT_EQ(human_bps(980), "980 bit/s");
  EXPECT_EQ(human_bps(12.34e6), "12.3 Mbit/s");
  EXPECT_EQ(human_bps(2.5e9), "2.50 Gbit/s");
  EXPECT_EQ(human_bytes(1500), "1.5 kB");
}

TEST(Prometheus, TextFormat) {
  auto m = manifest();
  m.classes[0].name = "we\"ird";
  Sample a = sample(1000000000ull, 1), b = sample(2000000000ull, 2);
  std::string p = prometheus_text(make_view(m, "eth0", b, &a, 0));
  EXPECT_NE(p.find("# TYPE qosc_class_packets_total counter\n"), std::string::npos) << p;
  EXPECT_NE(p.find("qosc_class_packets_total{iface=\"eth0\",policy=\"home\",class=\"we\\\"ird\",hook=\"xdp\"} 200\n"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("qosc_class_drops_total{iface=\"eth0\",policy=\"home\",class=\"we\\\"ird\",hook=\"tc\",reason=\"queue\"} 4\n"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("qosc_rule_drops_total{iface=\"eth0\",policy=\"home\",hook=\"xdp\"} 14\n"), std::string::npos);
  EXPECT_NE(p.find("qosc_queue_delay_seconds{iface=\"eth0\",policy=\"home\",class=\"we\\\"ird\",direction=\"egress\"} 0.01\n"),
            std::string::npos)
      << p;
  // Every sample line is NAME{labels} VALUE; every family has HELP and TYPE.
  std::istringstream in(p);
  std::string line;
  int samples = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) continue;
    ++samples;
    EXPECT_NE(line.find("} "), std::string::npos) << line;
  }
  EXPECT_GT(samples, 20);
}

// Prometheus' own linter on everything the exposition can hold: rates in
// bytes per second, delays in seconds, counters ending in _total.
TEST(Prometheus, PromtoolFindsNothing) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool is not installed (Debian's prometheus package; scripts/setup.sh installs it)";
  auto m = manifest();
  Sample a = sample(1000000000ull, 1), b = sample(2000000000ull, 2);
  adaptive::Snapshot snap;
  adaptive::DirectionView up;
  up.config = {"upload", 10000000, 100000000, 100000000, 5};
  up.rate_bps = 27000000;
  up.achieved_bps = 26000000;
  snap.upload = up;
  adaptive::ReflectorView r;
  r.addr = "192.0.2.1";
  r.alive = true;
  r.baseline_ms = 12.5;
  snap.reflectors.push_back(r);
  b.adaptive = snap;
  std::string text = prometheus_text(make_view(m, "eth0", b, &a, 0));
  ASSERT_NE(text.find("qosc_adaptive_rate_bytes_per_second{iface=\"eth0\",policy=\"home\",direction=\"upload\"} 3375000\n"),
            std::string::npos)
      << text;
  char path[] = "/tmp/qosc-metrics-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string said;
  char buf[512];
  while (fgets(buf, sizeof buf, pipe)) said += buf;
  int rc = pclose(pipe);
  unlink(path);
  EXPECT_EQ(rc, 0) << said;
  EXPECT_EQ(said, "") << text;
}

TEST(Metrics, Addresses) {
  auto a = parse_host_port("127.0.0.1:9464");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  auto b = parse_host_port("[::1]:9000");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  auto c = parse_host_port("9464");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_FALSE(parse_host_port("1.2.3.4:99999"));
  EXPECT_FALSE(parse_host_port("::1:80"));
  EXPECT_FALSE(parse_host_port("host:"));
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("127.8.9.10"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_TRUE(is_loopback_address("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(is_loopback_address("192.168.1.1"));
  EXPECT_FALSE(is_loopback_address("::"));
}

TEST(Metrics, RefusesRemoteUnlessAllowed) {
  auto s = MetricsServer::start("0.0.0.0:0", false, [] { return std::string(); });
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("--metrics-allow-remote"), std::string::npos) << s.error().message;
}

std::string http_get(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

TEST(Metrics, ServesOnLoopback) {
  int calls = 0;
  auto s = MetricsServer::start("127.0.0.1:0", false, [&calls] {
    ++calls;
    return std::string("qosc_x 1\n");
  });
  ASSERT_TRUE(s) << s.error().message;
  uint16_t port = (*s)->port();
  ASSERT_NE(port, 0);
  std::string r = http_get(port, "/metrics");
  EXPECT_NE(r.find("HTTP/1.0 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\nqosc_x 1\n"), std::string::npos) << r;
  EXPECT_NE(http_get(port, "/nope").find("404"), std::string::npos);
  EXPECT_EQ(calls, 1);
  s->reset();   // stops the thread
}

}  // namespace
