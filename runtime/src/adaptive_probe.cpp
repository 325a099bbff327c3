// ICMP / ICMPv6 echo probes for the adaptive rate (qosrun/adaptive.hpp).
//
// Raw sockets (qosrun runs as root): the probe's identifier must be
// QOS_PROBE_ICMP_ID, which the TC program recognises and sends through HTB's
// direct queue, and "ping sockets" (SOCK_DGRAM) let the kernel pick the
// identifier. The RTT is the kernel's receive timestamp (SO_TIMESTAMPNS)
// minus the time written into the probe just before sendto(): the
// controller's own wake-up delay on a busy machine is not in it.
#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "qos_abi.h"
#include "qosrun/adaptive.hpp"
#include "qosrun/netlink.hpp"

namespace qosrun::adaptive {

namespace {

struct ProbePayload {
  uint32_t tag;        // this Prober's random tag
  uint32_t reflector;  // index into targets_
  int64_t sent_ns;     // CLOCK_REALTIME at sendto
};

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint16_t inet_checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (len & 1) sum += uint32_t(p[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

Result<Fd> open_raw(int family, const std::string& ifname) {
  int proto = family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6};
  int fd = ::socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return errno_error(errno, fmt::format("cannot open an {} socket for probes (needs root)",
                                                    family == AF_INET ? "ICMP" : "ICMPv6"));
  Fd f(fd);
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  // Only echo replies wake us up.
  if (family == AF_INET) {
    uint32_t filter = ~(1u << ICMP_ECHOREPLY);
    (void)setsockopt(fd, SOL_RAW, 1 /* ICMP_FILTER */, &filter, sizeof filter);
  } else {
    icmp6_filter f6;
    ICMP6_FILTER_SETBLOCKALL(&f6);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f6);
    (void)setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f6, sizeof f6);
  }
  // Through the shaped interface, whatever the routing table prefers.
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(), static_cast<socklen_t>(ifname.size())) != 0)
    return errno_error(errno, fmt::format("cannot bind the probe socket to {}", ifname));
  return f;
}

}  // namespace

Status check_reflectors(const std::vector<std::string>& addrs) {
  for (const auto& a : addrs) {
    unsigned char buf[16];
    std::string host = a.substr(0, a.find('%'));
    if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
      return Error{fmt::format("--reflector '{}' is not an IPv4 or IPv6 address: give a host beyond the link that "
                               "answers ping, e.g. --reflector 192.0.2.1",
                               a)};
  }
  return {};
}

Result<Prober> Prober::open(const std::string& ifname, const std::vector<std::string>& reflectors) {
  if (Status st = check_reflectors(reflectors); !st) return st.error();
  Prober p;
  std::random_device rd;
  p.tag_ = rd();
  for (const auto& a : reflectors) {
    Target t;
    std::string host = a.substr(0, a.find('%'));
    if (inet_pton(AF_INET, host.c_str(), t.addr) == 1) {
      t.family = AF_INET;
    } else {
      inet_pton(AF_INET6, host.c_str(), t.addr);
      t.family = AF_INET6;
      t.scope = if_nametoindex(ifname.c_str());
    }
    if (t.family == AF_INET && !p.fd4_.valid()) {
      auto fd = open_raw(AF_INET, ifname);
      if (!fd) return fd.error();
      p.fd4_ = std::move(*fd);
    }
    if (t.family == AF_INET6 && !p.fd6_.valid()) {
      auto fd = open_raw(AF_INET6, ifname);
      if (!fd) return fd.error();
      p.fd6_ = std::move(*fd);
    }
    p.targets_.push_back(t);
  }
  return p;
}

std::vector<int> Prober::fds() const {
  std::vector<int> v;
  if (fd4_.valid()) v.push_back(fd4_.get());
  if (fd6_.valid()) v.push_back(fd6_.get());
  return v;
}

bool Prober::send(size_t r) {
  if (r >= targets_.size()) return false;
  const Target& t = targets_[r];
  struct {
    uint8_t type, code;
    uint16_t checksum, id, seq;
    ProbePayload payload;
  } __attribute__((packed)) msg{};
  msg.type = t.family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
  msg.id = htons(QOS_PROBE_ICMP_ID);
  msg.seq = htons(++seq_);
  msg.payload.tag = tag_;
  msg.payload.reflector = static_cast<uint32_t>(r);
  msg.payload.sent_ns = realtime_ns();
  if (t.family == AF_INET) {
    msg.checksum = inet_checksum(&msg, sizeof msg);   // the kernel computes ICMPv6's
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    std::memcpy(&sa.sin_addr, t.addr, 4);
    return ::sendto(fd4_.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) >= 0;
  }
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  std::memcpy(&sa.sin6_addr, t.addr, 16);
  sa.sin6_scope_id = t.scope;
  return ::sendto(fd6_.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) >= 0;
}

std::vector<std::pair<size_t, double>> Prober::receive() {
  std::vector<std::pair<size_t, double>> out;
  for (int fd : fds()) {
    const bool v4 = fd4_.valid() && fd == fd4_.get();
    for (;;) {
      uint8_t buf[256];
      alignas(cmsghdr) char ctrl[128];
      iovec iov{buf, sizeof buf};
      msghdr mh{};
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = ctrl;
      mh.msg_controllen = sizeof ctrl;
      ssize_t n = ::recvmsg(fd, &mh, MSG_DONTWAIT);
      if (n < 0) break;
      // IPv4 raw sockets hand us the IP header; ICMPv6 ones do not.
      size_t off = 0;
      if (v4) {
        if (n < 20) continue;
        off = size_t(buf[0] & 0x0f) * 4;
      }
      if (size_t(n) < off + 8 + sizeof(ProbePayload)) continue;
      const uint8_t* icmp = buf + off;
      uint8_t want = v4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
      uint16_t id;
      std::memcpy(&id, icmp + 4, 2);
      if (icmp[0] != want || ntohs(id) != QOS_PROBE_ICMP_ID) continue;
      ProbePayload pl;
      std::memcpy(&pl, icmp + 8, sizeof pl);
      if (pl.tag != tag_ || pl.reflector >= targets_.size()) continue;   // another qosrun's probe
      int64_t rx = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
          timespec ts;
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          rx = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        }
      if (rx == 0) rx = realtime_ns();
      double rtt_ms = double(rx - pl.sent_ns) / 1e6;
      if (rtt_ms >= 0 && rtt_ms < 60000) out.emplace_back(pl.reflector, rtt_ms);
    }
  }
  return out;
}

std::string default_gateway(const std::string& ifname) {
  int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) return "";
  auto s = nl::RtnlSocket::open();
  if (!s) return "";
  for (int family : {AF_INET, AF_INET6}) {
    std::string found;
    nl::NlMessage msg(RTM_GETROUTE, 0);
    rtmsg rt{};
    rt.rtm_family = static_cast<unsigned char>(family);
    msg.header(rt);
    Status st = s->dump(msg, "list routes", [&](const nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWROUTE || !found.empty()) return;
      const auto* r = static_cast<const rtmsg*>(NLMSG_DATA(h));
      if (r->rtm_dst_len != 0 || r->rtm_table != RT_TABLE_MAIN) return;
      const auto* p = reinterpret_cast<const uint8_t*>(r) + NLMSG_ALIGN(sizeof(rtmsg));
      size_t len = h->nlmsg_len - NLMSG_LENGTH(sizeof(rtmsg));
      auto attrs = nl::parse_attrs({p, len});
      auto oif = attrs.u32(RTA_OIF);
      auto gw = attrs.get(RTA_GATEWAY);
      if (!oif || static_cast<int>(*oif) != ifindex || !gw) return;
      char text[INET6_ADDRSTRLEN] = {};
      if (inet_ntop(family, gw->data(), text, sizeof text)) found = text;
    });
    if (st && !found.empty()) return found;
  }
  return "";
}

}  // namespace qosrun::adaptive
