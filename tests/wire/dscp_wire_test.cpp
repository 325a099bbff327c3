// `set dscp` on the wire: a policy attached by `qosrun attach` on the sender's
// veth (namespaces qt-dscp-a -> qt-dscp-b) rewrites the DSCP of two classes'
// UDP packets; a packet socket at the receiver captures the frames as they
// arrive. Checked on every captured frame, IPv4 (with and without IP options)
// and IPv6: the DSCP is the class's `set dscp` value (or untouched for the
// class without one), the ECN bits are the ones the sender set, the IPv4
// header checksum and the UDP checksum verify (TX checksum offload is off on
// the sender, so the checksums on the wire are real), and the receiver's
// stack delivered every datagram to its socket (it drops IPv4 headers with a
// bad checksum).
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "wire_support.hpp"

namespace {

constexpr const char* kA = "qt-dscp-a";
constexpr const char* kB = "qt-dscp-b";
constexpr const char* kIpA = "10.207.1.1";
constexpr const char* kIpB = "10.207.1.2";
constexpr const char* kIp6A = "fd00:207::1";
constexpr const char* kIp6B = "fd00:207::2";

constexpr const char* kPolicy = R"(policy wire_dscp {
    link 1gbit;
    class voice { priority 0; set dscp ef; }
    class wash  { priority 1; set dscp 0; }
    class other { priority 2; default; }
    rule udp dport 5004 -> voice;
    rule udp dport 5005 -> wash;
}
)";

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return s;
}
uint32_t sum16(const uint8_t* p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += be16(p + i);
  if (n & 1) s += uint32_t(p[n - 1]) << 8;
  return s;
}

struct Seen {
  int family = 0;
  uint16_t dport = 0;
  int dscp = -1, ecn = -1;
  bool options = false;
  bool ip_csum_ok = false, udp_csum_ok = false;
};

// One captured frame (no VLAN on this link), or nullopt when not our UDP.
std::optional<Seen> parse(const uint8_t* f, size_t n) {
  if (n < 14) return std::nullopt;
  const uint16_t type = be16(f + 12);
  const uint8_t* ip = f + 14;
  Seen s;
  if (type == ETH_P_IP && n >= 34) {
    const size_t ihl = size_t(ip[0] & 0x0f) * 4;
    if (ip[9] != IPPROTO_UDP || n < 14 + ihl + 8) return std::nullopt;
    s.family = 4;
    s.dscp = ip[1] >> 2;
    s.ecn = ip[1] & 3;
    s.options = ihl > 20;
    s.ip_csum_ok = fold(sum16(ip, ihl)) == 0xffff;
    const uint8_t* udp = ip + ihl;
    const size_t ulen = be16(udp + 4);
    if (14 + ihl + ulen > n) return std::nullopt;
    s.dport = be16(udp + 2);
    const uint32_t pseudo = sum16(ip + 12, 8) + IPPROTO_UDP + uint32_t(ulen);
    s.udp_csum_ok = be16(udp + 6) != 0 && fold(pseudo + sum16(udp, ulen)) == 0xffff;
    return s;
  }
  if (type == ETH_P_IPV6 && n >= 14 + 48) {
    if (ip[6] != IPPROTO_UDP) return std::nullopt;
    const uint8_t tc = uint8_t((ip[0] & 0x0f) << 4 | ip[1] >> 4);
    s.family = 6;
    s.dscp = tc >> 2;
    s.ecn = tc & 3;
    s.ip_csum_ok = true;   // IPv6 has no header checksum
    const uint8_t* udp = ip + 40;
    const size_t ulen = be16(udp + 4);
    if (14 + 40 + ulen > n) return std::nullopt;
    s.dport = be16(udp + 2);
    const uint32_t pseudo = sum16(ip + 8, 32) + IPPROTO_UDP + uint32_t(ulen);
    s.udp_csum_ok = fold(pseudo + sum16(udp, ulen)) == 0xffff;
    return s;
  }
  return std::nullopt;
}

// The IPv4 TOS (IP_TOS) or IPv6 traffic class (IPV6_TCLASS) of each datagram
// `fd` receives until it has been quiet for 500 ms (-1: no such cmsg).
std::vector<int> received_marks(int fd, int level, int type) {
  std::vector<int> marks;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 500) <= 0) break;
    char buf[64], ctl[128];
    iovec iov{buf, sizeof buf};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    if (recvmsg(fd, &m, 0) <= 0) break;
    int seen = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == level && c->cmsg_type == type)
        seen = type == IP_TOS ? *reinterpret_cast<uint8_t*>(CMSG_DATA(c)) : *reinterpret_cast<int*>(CMSG_DATA(c));
    marks.push_back(seen);
  }
  return marks;
}

class DscpWire : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = qt::kernel_skip_reason({"ip", "tc", "ethtool"});
    if (!why.empty()) GTEST_SKIP() << why;
    ns_ = std::make_unique<qt::Netns>(std::vector<std::string>{kA, kB});
    ASSERT_TRUE(ns_->ok()) << ns_->error();
    std::string err;
    // IPv6 on (quiet = false), neighbours static for both families: nothing but the
    // test's datagrams crosses the link.
    ASSERT_TRUE(qt::make_veth({kA, "qd-a", kIpA, kB, "qd-b", kIpB, false}, &err)) << err;
    bool ok = true;
    qt::must(std::string("ip netns exec ") + kA + " ethtool -K qd-a tx off >/dev/null", &ok);
    qt::must(std::string("ip -n ") + kA + " addr add " + kIp6A + "/64 dev qd-a nodad", &ok);
    qt::must(std::string("ip -n ") + kB + " addr add " + kIp6B + "/64 dev qd-b nodad", &ok);
    auto mac = [](const char* ns, const char* ifn) {
      std::string m = qt::sh(std::string("ip -n ") + ns + " -br link show " + ifn + " | awk '{print $3}'").out;
      m.erase(m.find_last_not_of(" \n") + 1);
      return m;
    };
    const std::string mac_a = mac(kA, "qd-a"), mac_b = mac(kB, "qd-b");
    for (const char* a : {kIpB, kIp6B})
      qt::must(std::string("ip -n ") + kA + " neigh replace " + a + " lladdr " + mac_b + " dev qd-a nud permanent", &ok);
    for (const char* a : {kIpA, kIp6A})
      qt::must(std::string("ip -n ") + kB + " neigh replace " + a + " lladdr " + mac_a + " dev qd-b nud permanent", &ok);
    ASSERT_TRUE(ok) << "setting up the link failed";
  }
  void TearDown() override {
    if (attached_) qt::detach_policy(*ns_, kA, "qd-a");
    ns_.reset();
  }
  std::unique_ptr<qt::Netns> ns_;
  bool attached_ = false;
};

// Sends `count` datagrams to port from ns A with the given TOS / traffic class.
int send_marked(int family, uint16_t port, int tos, bool ip_options, int count) {
  int fd = qt::socket_in_netns(kA, family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM);
  if (fd < 0) return -1;
  int sent = 0;
  if (family == 4) {
    setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    if (ip_options) {
      const uint8_t opts[4] = {1, 1, 1, 0};   // NOP NOP NOP EOL: IHL 6
      setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opts, sizeof opts);
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, kIpB, &to.sin_addr);
    for (int i = 0; i < count; ++i)
      sent += sendto(fd, "dscp-test-payload", 17, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 17;
  } else {
    setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(port);
    inet_pton(AF_INET6, kIp6B, &to.sin6_addr);
    for (int i = 0; i < count; ++i)
      sent += sendto(fd, "dscp-test-payload", 17, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 17;
  }
  close(fd);
  return sent;
}

TEST_F(DscpWire, ReceiverSeesTheSetDscpWithEcnKeptAndValidChecksums) {
  std::string err;
  const std::string obj = qt::compile_policy(kPolicy, "wire_dscp", "", &err);
  ASSERT_FALSE(obj.empty()) << err;
  auto r = qt::attach_policy(*ns_, kA, obj, "qd-a");
  ASSERT_EQ(r.rc, 0) << r.out;
  attached_ = true;

  // The receiver: a packet socket on qd-b (frames as they arrive) and UDP
  // sockets (what the stack accepts).
  int cap = qt::socket_in_netns(kB, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  ASSERT_GE(cap, 0) << strerror(errno);
  {
    std::string idx = qt::sh(std::string("ip netns exec ") + kB + " cat /sys/class/net/qd-b/ifindex").out;
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = std::stoi(idx);
    ASSERT_EQ(bind(cap, reinterpret_cast<sockaddr*>(&ll), sizeof ll), 0) << strerror(errno);
  }
  qt::UdpSink sink4(kB, kIpB, {5004, 5005, 5006});
  ASSERT_TRUE(sink4.ok());
  int s6[3];
  for (int i = 0; i < 3; ++i) {
    s6[i] = qt::socket_in_netns(kB, AF_INET6, SOCK_DGRAM);
    ASSERT_GE(s6[i], 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(uint16_t(5004 + i));
    inet_pton(AF_INET6, kIp6B, &a.sin6_addr);
    ASSERT_EQ(bind(s6[i], reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  }

  // What is sent: port -> (TOS as the sender sets it, the DSCP expected at the receiver).
  struct Case {
    int family;
    uint16_t port;
    int tos;
    bool options;
    int want_dscp;
  };
  const Case cases[] = {
      {4, 5004, 10 << 2 | 1, false, 46},   // voice: set dscp ef, ECT(1) kept
      {4, 5004, 0 << 2 | 2, true, 46},     // with IP options, ECT(0)
      {4, 5005, 46 << 2 | 3, false, 0},    // wash: CE kept
      {4, 5005, 34 << 2 | 1, true, 0},
      {4, 5006, 10 << 2 | 2, false, 10},   // other: no set dscp, untouched
      {6, 5004, 10 << 2 | 1, false, 46},
      {6, 5005, 46 << 2 | 3, false, 0},
      {6, 5006, 26 << 2 | 2, false, 26},
  };
  constexpr int kEach = 20;
  for (const auto& c : cases) ASSERT_EQ(send_marked(c.family, c.port, c.tos, c.options, kEach), kEach);

  // Captured frames, grouped by (family, port, options).
  std::map<std::tuple<int, uint16_t, bool>, std::vector<Seen>> seen;
  uint8_t buf[2048];
  for (;;) {
    pollfd p{cap, POLLIN, 0};
    if (poll(&p, 1, 500) <= 0) break;
    ssize_t n = recv(cap, buf, sizeof buf, 0);
    if (n <= 0) break;
    auto s = parse(buf, size_t(n));
    if (s && s->dport >= 5004 && s->dport <= 5006) seen[{s->family, s->dport, s->options}].push_back(*s);
  }
  close(cap);

  for (const auto& c : cases) {
    const auto& v = seen[{c.family, c.port, c.options}];
    EXPECT_EQ(v.size(), size_t(kEach)) << "IPv" << c.family << " port " << c.port << (c.options ? " with options" : "");
    for (const auto& s : v) {
      EXPECT_EQ(s.dscp, c.want_dscp) << "IPv" << c.family << " port " << c.port;
      EXPECT_EQ(s.ecn, c.tos & 3) << "IPv" << c.family << " port " << c.port;
      EXPECT_TRUE(s.ip_csum_ok) << "IPv4 header checksum, port " << c.port;
      EXPECT_TRUE(s.udp_csum_ok) << "UDP checksum, IPv" << c.family << " port " << c.port;
    }
  }
  // The stack accepted all of them (IPv4 drops a header with a bad checksum).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(sink4.count(5004).packets, uint64_t(2 * kEach));
  EXPECT_EQ(sink4.count(5005).packets, uint64_t(2 * kEach));
  EXPECT_EQ(sink4.count(5006).packets, uint64_t(kEach));
  for (int i = 0; i < 3; ++i) {
    int got = 0;
    char b[64];
    while (recv(s6[i], b, sizeof b, MSG_DONTWAIT) > 0) ++got;
    EXPECT_EQ(got, kEach) << "IPv6 port " << 5004 + i;
    close(s6[i]);
  }
  sink4.stop();
  std::cerr << "dscp wire: captured";
  for (const auto& [k, v] : seen)
    std::cerr << " IPv" << std::get<0>(k) << "/" << std::get<1>(k) << (std::get<2>(k) ? "+opt" : "") << "=" << v.size()
              << "(dscp " << (v.empty() ? -1 : v[0].dscp) << ")";
  std::cerr << "\n";
}

// --ingress-shape: the TC program also runs on the IFB's egress, so received
// packets of a `set dscp` class reach the local stack rewritten (documented in
// docs/language.md). A's UDP sockets read the TOS / traffic class they got
// (IP_RECVTOS, IPV6_RECVTCLASS); the stack accepting the IPv4 ones means their
// header checksum verified.
TEST_F(DscpWire, DownloadsThroughTheIfbAreRewrittenToo) {
  std::string err;
  const std::string obj = qt::compile_policy(kPolicy, "wire_dscp_ifb", "", &err);
  ASSERT_FALSE(obj.empty()) << err;
  auto r = qt::attach_policy(*ns_, kA, obj, "qd-a", "--ingress-shape");
  ASSERT_EQ(r.rc, 0) << r.out;
  attached_ = true;
  int rx = qt::socket_in_netns(kA, AF_INET, SOCK_DGRAM);
  ASSERT_GE(rx, 0);
  int on = 1;
  setsockopt(rx, IPPROTO_IP, IP_RECVTOS, &on, sizeof on);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(5004);
  inet_pton(AF_INET, kIpA, &a.sin_addr);
  ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  int tx = qt::socket_in_netns(kB, AF_INET, SOCK_DGRAM);
  ASSERT_GE(tx, 0);
  int tos = 10 << 2 | 1;
  setsockopt(tx, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  for (int i = 0; i < 10; ++i) sendto(tx, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  close(tx);
  const std::vector<int> marks = received_marks(rx, IPPROTO_IP, IP_TOS);
  for (int seen : marks) EXPECT_EQ(seen, 46 << 2 | 1) << "the received TOS: DSCP ef, ECN kept";
  const size_t got = marks.size();
  close(rx);
  EXPECT_EQ(got, 10u);

  // IPv6: the traffic class a socket receives (IPV6_RECVTCLASS); the program
  // also takes its bpf_csum_update path here (a received packet).
  int rx6 = qt::socket_in_netns(kA, AF_INET6, SOCK_DGRAM);
  ASSERT_GE(rx6, 0);
  setsockopt(rx6, IPPROTO_IPV6, IPV6_RECVTCLASS, &on, sizeof on);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons(5005);
  inet_pton(AF_INET6, kIp6A, &a6.sin6_addr);
  ASSERT_EQ(bind(rx6, reinterpret_cast<sockaddr*>(&a6), sizeof a6), 0) << strerror(errno);
  int tx6 = qt::socket_in_netns(kB, AF_INET6, SOCK_DGRAM);
  ASSERT_GE(tx6, 0);
  int tclass = 46 << 2 | 3;
  setsockopt(tx6, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
  for (int i = 0; i < 10; ++i) sendto(tx6, "x", 1, 0, reinterpret_cast<sockaddr*>(&a6), sizeof a6);
  close(tx6);
  const std::vector<int> marks6 = received_marks(rx6, IPPROTO_IPV6, IPV6_TCLASS);
  for (int seen : marks6) EXPECT_EQ(seen, 0 << 2 | 3) << "the received traffic class: washed to DSCP 0, CE kept";
  const size_t got6 = marks6.size();
  close(rx6);
  EXPECT_EQ(got6, 10u);
}

// `qosrun classify --hook tc` shows the DSCP each packet leaves with, as the
// kernel's program wrote it (BPF_PROG_TEST_RUN's output frame).
TEST(DscpClassify, TcHookShowsTheRewrittenDscp) {
  if (!qt::is_root()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  std::string err;
  const std::string obj = qt::compile_policy(kPolicy, "classify_dscp", "", &err);
  ASSERT_FALSE(obj.empty()) << err;
  // Three IPv4/UDP frames: port 5004 (voice, DSCP 10 ECN 1), 5005 (wash, DSCP 46), 5006 (other, DSCP 26).
  auto frame = [](uint16_t port, uint8_t tos) {
    std::vector<uint8_t> f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
                              0x45, tos, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                              0x9c, 0x40, uint8_t(port >> 8), uint8_t(port), 0, 16, 0, 0};
    f.resize(50, 'x');
    return f;
  };
  const std::string pcap = qt::scratch_dir("classify_dscp") + "/marks.pcap";
  {
    std::ofstream out(pcap, std::ios::binary);
    const uint32_t head[6] = {0xa1b2c3d4, 2 | 4u << 16, 0, 0, 65535, 1};
    out.write(reinterpret_cast<const char*>(head), sizeof head);
    for (auto [port, tos] : {std::pair{5004, 10 << 2 | 1}, {5005, 46 << 2}, {5006, 26 << 2}}) {
      const auto f = frame(uint16_t(port), uint8_t(tos));
      const uint32_t rec[4] = {0, 0, uint32_t(f.size()), uint32_t(f.size())};
      out.write(reinterpret_cast<const char*>(rec), sizeof rec);
      out.write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
    }
  }
  auto r = qt::sh(qt::qosrun_bin() + " classify " + obj + " --pcap " + pcap + " --hook tc --json 2>&1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out,
            "{\"packet\": 0, \"class\": \"voice\", \"verdict\": \"pass\", \"dscp\": {\"in\": 10, \"out\": 46}}\n"
            "{\"packet\": 1, \"class\": \"wash\", \"verdict\": \"pass\", \"dscp\": {\"in\": 46, \"out\": 0}}\n"
            "{\"packet\": 2, \"class\": \"other\", \"verdict\": \"pass\", \"dscp\": {\"in\": 26, \"out\": 26}}\n");
  r = qt::sh(qt::qosrun_bin() + " classify " + obj + " --pcap " + pcap + " --hook tc 2>&1");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("voice  10 -> 46  "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wash   46 -> 0   "), std::string::npos) << r.out;
  r = qt::sh(qt::qosrun_bin() + " classify " + obj + " --pcap " + pcap + " 2>&1");   // XDP: says where to look
  EXPECT_NE(r.out.find("--hook tc shows the rewritten DSCP"), std::string::npos) << r.out;
}

}  // namespace
