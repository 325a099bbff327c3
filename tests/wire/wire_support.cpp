// See wire_support.hpp.
#include "wire_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qt {

namespace {

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'') o += "'\\''";
    else o += c;
  }
  return o + "'";
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void sleep_until_ns(uint64_t t) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(t / 1000000000ull);
  ts.tv_nsec = static_cast<long>(t % 1000000000ull);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

}  // namespace

CmdResult sh(const std::string& cmd, int timeout_s) {
  CmdResult r;
  std::string full = "timeout -k 2 " + std::to_string(timeout_s) + " /bin/sh -c " + shell_quote(cmd) + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return r;
}

std::string must(const std::string& cmd, bool* ok) {
  CmdResult r = sh(cmd);
  if (r.rc != 0 && ok) {
    *ok = false;
    std::fprintf(stderr, "command failed (%d): %s\n%s\n", r.rc, cmd.c_str(), r.out.c_str());
  }
  return r.out;
}

bool is_root() { return geteuid() == 0; }

std::string kernel_skip_reason(const std::vector<std::string>& tools) {
  if (!is_root()) return "needs root (creates network namespaces, attaches BPF programs and qdiscs); run as root";
  for (const auto& t : tools)
    if (sh("command -v " + t + " >/dev/null").rc != 0) return "'" + t + "' is not installed (scripts/setup.sh installs it)";
  if (access(qosc_bin().c_str(), X_OK) != 0) return "qosc is not built (" + qosc_bin() + ")";
  if (access(qosrun_bin().c_str(), X_OK) != 0) return "qosrun is not built (" + qosrun_bin() + ")";
  return "";
}

std::string qosc_bin() { return QT_QOSC_BIN; }
std::string qosrun_bin() { return QT_QOSRUN_BIN; }
std::string source_dir() { return QT_SOURCE_DIR; }

std::string scratch_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(QT_BINARY_DIR) / "scratch" / name;
  std::error_code ec;
  std::filesystem::remove_all(p, ec);
  std::filesystem::create_directories(p, ec);
  return p.string();
}

// ---- namespaces -------------------------------------------------------------------

void delete_netns(const std::string& name) {
  std::string path = "/run/netns/" + name;
  if (access(path.c_str(), F_OK) != 0) return;
  CmdResult pids = sh("ip netns pids " + name);
  std::istringstream in(pids.out);
  long pid;
  while (in >> pid)
    if (pid > 1) kill(static_cast<pid_t>(pid), SIGKILL);
  // bpffs mounts or links that pinned programs vanish with the namespace's devices.
  sh("ip netns del " + name);
}

Netns::Netns(std::vector<std::string> names) : names_(std::move(names)) {
  for (const auto& n : names_) delete_netns(n);
  for (const auto& n : names_) {
    CmdResult r = sh("ip netns add " + n + " && ip -n " + n + " link set lo up");
    if (r.rc != 0) {
      ok_ = false;
      error_ += "ip netns add " + n + ": " + r.out;
    }
  }
}

Netns::~Netns() {
  for (const auto& n : names_) delete_netns(n);
}

CmdResult Netns::exec(const std::string& ns, const std::string& cmd, int timeout_s) const {
  return sh("ip netns exec " + ns + " /bin/sh -c " + shell_quote(cmd), timeout_s);
}

bool make_veth(const VethSpec& v, std::string* err) {
  bool ok = true;
  auto run = [&](const std::string& c) {
    CmdResult r = sh(c);
    if (r.rc != 0) {
      ok = false;
      if (err) *err += c + ": " + r.out + "\n";
    }
  };
  run("ip link add " + v.if_a + " netns " + v.ns_a + " type veth peer name " + v.if_b + " netns " + v.ns_b);
  if (!ok) return false;
  const std::pair<const std::string*, const std::string*> ends[2] = {{&v.ns_a, &v.if_a}, {&v.ns_b, &v.if_b}};
  for (auto [ns, ifn] : ends) {
    if (v.quiet) run("ip netns exec " + *ns + " sysctl -qw net.ipv6.conf." + *ifn + ".disable_ipv6=1");
    if (!v.offloads)
      run("ip netns exec " + *ns + " ethtool -K " + *ifn + " gso off tso off gro off >/dev/null 2>&1; true");
  }
  run("ip -n " + v.ns_a + " addr add " + v.addr_a + "/24 dev " + v.if_a);
  run("ip -n " + v.ns_b + " addr add " + v.addr_b + "/24 dev " + v.if_b);
  if (v.quiet) {
    std::string mac_a = sh("ip -n " + v.ns_a + " -br link show " + v.if_a + " | awk '{print $3}'").out;
    std::string mac_b = sh("ip -n " + v.ns_b + " -br link show " + v.if_b + " | awk '{print $3}'").out;
    mac_a.erase(mac_a.find_last_not_of(" \n") + 1);
    mac_b.erase(mac_b.find_last_not_of(" \n") + 1);
    run("ip -n " + v.ns_a + " neigh replace " + v.addr_b + " lladdr " + mac_b + " dev " + v.if_a + " nud permanent");
    run("ip -n " + v.ns_b + " neigh replace " + v.addr_a + " lladdr " + mac_a + " dev " + v.if_b + " nud permanent");
  }
  run("ip -n " + v.ns_a + " link set " + v.if_a + " up");
  run("ip -n " + v.ns_b + " link set " + v.if_b + " up");
  return ok;
}

int socket_in_netns(const std::string& ns, int domain, int type, int proto) {
  int target = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) return -1;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    close(target);
    return -1;
  }
  int fd = -1;
  if (setns(target, CLONE_NEWNET) == 0) {
    fd = socket(domain, type | SOCK_CLOEXEC, proto);
    if (setns(self, CLONE_NEWNET) != 0) std::abort();   // never continue in the wrong namespace
  }
  close(target);
  close(self);
  return fd;
}

// ---- UDP ---------------------------------------------------------------------------------

namespace {
bool make_addr(const std::string& ip, uint16_t port, sockaddr_in* a) {
  std::memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  return inet_pton(AF_INET, ip.c_str(), &a->sin_addr) == 1;
}
}  // namespace

long send_udp(const std::string& ns, const std::string& dst, uint16_t port, size_t payload, long count, double pps,
              const std::string& src) {
  return send_udp_in_turn(ns, dst, {port}, payload, count, pps, src);
}

long send_udp_in_turn(const std::string& ns, const std::string& dst, const std::vector<uint16_t>& ports,
                      size_t payload, long count, double pps, const std::string& src) {
  int fd = socket_in_netns(ns, AF_INET, SOCK_DGRAM);
  if (fd < 0 || ports.empty()) {
    if (fd >= 0) close(fd);
    return -1;
  }
  std::vector<sockaddr_in> to(ports.size());
  for (size_t i = 0; i < ports.size(); ++i)
    if (!make_addr(dst, ports[i], &to[i])) {
      close(fd);
      return -1;
    }
  if (!src.empty()) {
    sockaddr_in from{};
    make_addr(src, 0, &from);
    bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from);
  }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  std::vector<char> buf(payload, 'q');
  long ok = 0;
  uint64_t t0 = now_ns();
  for (long i = 0; i < count; ++i) {
    if (pps > 0) sleep_until_ns(t0 + static_cast<uint64_t>(static_cast<double>(i) * 1e9 / pps));
    const sockaddr_in& a = to[static_cast<size_t>(i) % to.size()];
    ssize_t n = sendto(fd, buf.data(), buf.size(), 0, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    if (n == static_cast<ssize_t>(payload)) ++ok;
  }
  close(fd);
  return ok;
}

UdpSink::UdpSink(const std::string& ns, const std::string& addr, const std::vector<uint16_t>& ports)
    : ports_(ports), pk_(new std::atomic<uint64_t>[ports.size()]), by_(new std::atomic<uint64_t>[ports.size()]) {
  for (size_t i = 0; i < ports.size(); ++i) {
    pk_[i] = 0;
    by_[i] = 0;
  }
  if (!wake_.ok()) return;
  for (uint16_t p : ports) {
    int fd = socket_in_netns(ns, AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
    if (fd < 0) return;
    int rcv = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    sockaddr_in a{};
    make_addr(addr, p, &a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return;
    }
    fds_.push_back(fd);
  }
  ok_ = true;
  th_ = std::thread([this] { loop(); });
}

void UdpSink::loop() {
  char buf[65536];
  for (bool last = false; !last;) {   // once more after stop(): what had arrived is counted
    last = stop_.load() || wake_.woken_within(1);
    for (size_t i = 0; i < fds_.size(); ++i) {
      for (;;) {
        ssize_t n = recv(fds_[i], buf, sizeof buf, 0);
        if (n < 0) break;
        pk_[i].fetch_add(1);
        by_[i].fetch_add(static_cast<uint64_t>(n));
      }
    }
  }
}

UdpSink::Count UdpSink::count(uint16_t port) const {
  for (size_t i = 0; i < ports_.size(); ++i)
    if (ports_[i] == port) return {pk_[i].load(), by_[i].load()};
  return {};
}

WakePipe::WakePipe() {
  if (pipe2(fd_, O_CLOEXEC | O_NONBLOCK) != 0) fd_[0] = fd_[1] = -1;
}

WakePipe::~WakePipe() {
  for (int fd : fd_)
    if (fd >= 0) close(fd);
}

bool WakePipe::woken_within(int ms) const {
  pollfd p = {fd_[0], POLLIN, 0};
  return poll(&p, 1, ms) > 0;
}

void WakePipe::wake() {
  char c = 1;
  if (fd_[1] >= 0) {
    ssize_t n = write(fd_[1], &c, 1);
    (void)n;
  }
}

std::map<uint16_t, UdpSink::Count> UdpSink::snapshot() const {
  std::map<uint16_t, Count> m;
  for (size_t i = 0; i < ports_.size(); ++i) m[ports_[i]] = {pk_[i].load(), by_[i].load()};
  return m;
}

void UdpSink::stop() {
  if (stop_.exchange(true)) return;
  wake_.wake();
  if (th_.joinable()) th_.join();
}

UdpSink::~UdpSink() {
  stop();
  for (int fd : fds_) close(fd);
}

UdpFlood::UdpFlood(const std::string& ns, const std::string& dst, uint16_t port, double bps, size_t payload) {
  fd_ = socket_in_netns(ns, AF_INET, SOCK_DGRAM);
  if (fd_ < 0) return;
  sockaddr_in to{};
  make_addr(dst, port, &to);
  th_ = std::thread([this, to, bps, payload] {
    // A real-time priority keeps the pacing smooth while other work shares the two cores, so a
    // class offered above the link really stays backlogged (best effort: ignored when refused).
    // Safe here: this thread waits for no other thread (it only sleeps and sends), and it stops
    // by itself after kMaxFloodNs even if stop() is never called.
    sched_param sp{};
    sp.sched_priority = 10;
    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    constexpr uint64_t kMaxFloodNs = 300ull * 1000000000ull;
    std::vector<char> buf(payload, 'f');
    const double wire_bits = 8.0 * static_cast<double>(payload + 42);   // UDP + IPv4 + Ethernet headers
    const double pps = bps / wire_bits;
    const uint64_t t0 = now_ns();
    uint64_t i = 0;
    while (!stop_.load()) {
      uint64_t due = t0 + static_cast<uint64_t>(static_cast<double>(i) * 1e9 / pps);
      uint64_t now = now_ns();
      if (now - t0 > kMaxFloodNs) break;
      if (due > now) {
        // Sleep in slices of at most 1 ms so that stop() is seen quickly.
        sleep_until_ns(std::min(due, now + 1000000));
        continue;
      }
      if (sendto(fd_, buf.data(), buf.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) > 0)
        sent_.fetch_add(1);
      ++i;
    }
  });
}

void UdpFlood::stop() {
  stop_.store(true);
  if (th_.joinable()) th_.join();
}

UdpFlood::~UdpFlood() {
  stop();
  if (fd_ >= 0) close(fd_);
}

// ---- TCP ---------------------------------------------------------------------------------

TcpSink::TcpSink(const std::string& ns, const std::string& addr, const std::vector<uint16_t>& ports)
    : ports_(ports), by_(new std::atomic<uint64_t>[ports.size()]) {
  for (size_t i = 0; i < ports.size(); ++i) by_[i] = 0;
  if (!wake_.ok()) return;
  for (uint16_t p : ports) {
    int fd = socket_in_netns(ns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    if (fd < 0) return;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in a{};
    make_addr(addr, p, &a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 16) != 0) {
      close(fd);
      return;
    }
    listeners_.push_back(fd);
  }
  ok_ = true;
  th_ = std::thread([this] { loop(); });
}

void TcpSink::loop() {
  struct Conn {
    int fd;
    size_t port_index;
  };
  std::vector<Conn> conns;
  std::vector<char> buf(1 << 18);
  while (!stop_.load()) {
    std::vector<pollfd> pf;
    for (int fd : listeners_) pf.push_back({fd, POLLIN, 0});
    for (const auto& c : conns) pf.push_back({c.fd, POLLIN, 0});
    pf.push_back({wake_.poll_fd(), POLLIN, 0});
    if (poll(pf.data(), pf.size(), 200) <= 0) continue;
    if (pf.back().revents) break;
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (!(pf[i].revents & POLLIN)) continue;
      for (int c; (c = accept4(listeners_[i], nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;)
        conns.push_back({c, i});
    }
    for (size_t k = 0; k < conns.size(); ++k) {
      if (!(pf[listeners_.size() + k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      for (;;) {
        ssize_t n = recv(conns[k].fd, buf.data(), buf.size(), 0);
        if (n > 0) {
          by_[conns[k].port_index].fetch_add(static_cast<uint64_t>(n));
          continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          close(conns[k].fd);
          conns[k].fd = -1;
        }
        break;
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(), [](const Conn& c) { return c.fd < 0; }), conns.end());
  }
  for (const auto& c : conns) close(c.fd);
}

std::map<uint16_t, uint64_t> TcpSink::snapshot() const {
  std::map<uint16_t, uint64_t> m;
  for (size_t i = 0; i < ports_.size(); ++i) m[ports_[i]] = by_[i].load();
  return m;
}

void TcpSink::stop() {
  if (stop_.exchange(true)) return;
  wake_.wake();
  if (th_.joinable()) th_.join();
}

TcpSink::~TcpSink() {
  stop();
  for (int fd : listeners_) close(fd);
}

TcpBulk::TcpBulk(const std::string& ns, const std::string& dst, uint16_t port, const std::string& cc,
                 const std::string& src) {
  fd_ = socket_in_netns(ns, AF_INET, SOCK_STREAM);
  if (fd_ < 0) {
    error_ = "cannot open a TCP socket in " + ns + ": " + std::strerror(errno);
    return;
  }
  if (setsockopt(fd_, IPPROTO_TCP, TCP_CONGESTION, cc.data(), static_cast<socklen_t>(cc.size())) != 0) {
    error_ = "cannot set TCP congestion control " + cc + ": " + std::strerror(errno);
    return;
  }
  // Bounded blocking: connect() and send() give up after 200 ms so that stop() is seen.
  timeval tv{0, 200000};
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (!src.empty()) {
    sockaddr_in from{};
    make_addr(src, 0, &from);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      error_ = "cannot bind to " + src + ": " + std::strerror(errno);
      return;
    }
  }
  sockaddr_in to{};
  make_addr(dst, port, &to);
  int rc = connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to);
  if (rc != 0 && errno == EINPROGRESS) {
    // The send timeout cut connect() short (a busy link delays the SYN): the
    // handshake goes on; wait for it, bounded.
    pollfd pfd{fd_, POLLOUT, 0};
    int soerr = ETIMEDOUT;
    socklen_t len = sizeof soerr;
    if (poll(&pfd, 1, 5000) == 1) getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len);
    errno = soerr;
    rc = soerr == 0 ? 0 : -1;
  }
  if (rc != 0) {
    error_ = "cannot connect to " + dst + ":" + std::to_string(port) + ": " + std::strerror(errno);
    return;
  }
  th_ = std::thread([this] {
    constexpr uint64_t kMaxBulkNs = 300ull * 1000000000ull;
    std::vector<char> buf(1 << 18, 't');
    const uint64_t t0 = now_ns();
    while (!stop_.load() && now_ns() - t0 < kMaxBulkNs) {
      ssize_t n = send(fd_, buf.data(), buf.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
    }
  });
}

void TcpBulk::stop() {
  stop_.store(true);
  if (th_.joinable()) th_.join();
}

TcpBulk::~TcpBulk() {
  stop();
  if (fd_ >= 0) close(fd_);
}

// ---- qosc / qosrun ---------------------------------------------------------------------------

double OneWay::p50() const { return percentile(ms, 50); }
double OneWay::p99() const { return percentile(ms, 99); }

OneWay one_way_delays(const std::string& from_ns, const std::string& from_addr, const std::string& to_ns,
                      const std::string& to_addr, uint16_t to_port, double seconds, double interval_ms) {
  OneWay r;
  int tx = socket_in_netns(from_ns, AF_INET, SOCK_DGRAM);
  int rx = socket_in_netns(to_ns, AF_INET, SOCK_DGRAM);
  sockaddr_in src{}, dst{};
  int on = 1;
  if (tx < 0 || rx < 0 || !make_addr(from_addr, 0, &src) || !make_addr(to_addr, to_port, &dst) ||
      bind(tx, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      bind(rx, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 ||
      setsockopt(rx, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) {
    if (tx >= 0) close(tx);
    if (rx >= 0) close(rx);
    r.sent = -1;
    return r;
  }
  const uint64_t interval = static_cast<uint64_t>(interval_ms * 1e6);
  const uint64_t t0 = now_ns(), end = t0 + static_cast<uint64_t>(seconds * 1e9);
  std::thread sender([&] {
    for (uint64_t due = t0; due < end; due += interval) {
      sleep_until_ns(due);
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t sent_ns = int64_t(ts.tv_sec) * 1000000000ll + ts.tv_nsec;
      char buf[kOneWayPayload] = {};
      std::memcpy(buf, &sent_ns, sizeof sent_ns);
      if (sendto(tx, buf, sizeof buf, 0, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) > 0) ++r.sent;
    }
  });
  const uint64_t stop = end + 500000000ull;
  for (uint64_t now = now_ns(); now < stop; now = now_ns()) {
    pollfd p{rx, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>((stop - now) / 1000000 + 1)) <= 0) continue;
    char buf[kOneWayPayload];
    char ctl[CMSG_SPACE(sizeof(timespec))];
    iovec iov{buf, sizeof buf};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    if (recvmsg(rx, &m, 0) < static_cast<ssize_t>(sizeof(int64_t))) continue;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
      timespec at{};
      std::memcpy(&at, CMSG_DATA(c), sizeof at);
      int64_t sent_ns = 0;
      std::memcpy(&sent_ns, buf, sizeof sent_ns);
      r.ms.push_back(static_cast<double>(int64_t(at.tv_sec) * 1000000000ll + at.tv_nsec - sent_ns) / 1e6);
      r.sent_at.push_back(static_cast<double>(sent_ns) / 1e9);
    }
  }
  sender.join();
  close(tx);
  close(rx);
  return r;
}

std::string compile_policy(const std::string& policy_text, const std::string& name, const std::string& extra_args,
                           std::string* err) {
  std::string dir = scratch_dir("policies-" + name);
  std::string src = dir + "/" + name + ".qos", obj = dir + "/" + name + ".bpf.o";
  {
    std::ofstream f(src);
    f << policy_text;
  }
  CmdResult r = sh(qosc_bin() + " " + src + " " + extra_args + " -o " + obj, 120);
  if (r.rc != 0) {
    if (err) *err = "qosc failed: " + r.out;
    return "";
  }
  return obj;
}

CmdResult attach_policy(const Netns& ns, const std::string& nsname, const std::string& obj, const std::string& ifname,
                        const std::string& extra) {
  return ns.exec(nsname, qosrun_bin() + " attach " + obj + " " + ifname + " " + extra, 60);
}

CmdResult detach_policy(const Netns& ns, const std::string& nsname, const std::string& ifname) {
  return ns.exec(nsname, qosrun_bin() + " detach " + ifname, 60);
}

CmdResult qosrun_in(const Netns& ns, const std::string& nsname, const std::string& args, int timeout_s) {
  return ns.exec(nsname, qosrun_bin() + " " + args, timeout_s);
}

std::optional<nlohmann::json> stats_json(const Netns& ns, const std::string& nsname, const std::string& ifname,
                                         std::string* err, const std::string& extra) {
  // stdout only: errors go to a file so that they do not end up in the JSON.
  CmdResult r = ns.exec(nsname, qosrun_bin() + " stats " + ifname + " --json " + extra + " 2>/dev/null", 30);
  if (r.rc != 0) {
    CmdResult again = ns.exec(nsname, qosrun_bin() + " stats " + ifname + " --json " + extra, 30);
    if (err) *err = "qosrun stats failed (" + std::to_string(r.rc) + "): " + again.out;
    return std::nullopt;
  }
  try {
    std::istringstream in(r.out);
    std::string line, last;
    while (std::getline(in, line))
      if (!line.empty()) last = line;
    return nlohmann::json::parse(last);
  } catch (const std::exception& e) {
    if (err) *err = std::string("qosrun stats printed no JSON: ") + e.what() + "\n" + r.out;
    return std::nullopt;
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  double k = (static_cast<double>(v.size()) - 1) * p / 100.0;
  size_t f = static_cast<size_t>(k);
  size_t c = std::min(f + 1, v.size() - 1);
  return v[f] + (v[c] - v[f]) * (k - static_cast<double>(f));
}

}  // namespace qt
