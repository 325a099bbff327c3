// Helpers of the qosrun attach tests: see attach_support.hpp.
#include "attach_support.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "qos_abi.h"
#include "qosc/object_digest.hpp"
#include "qosrun/state.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

namespace qt_att {

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Removed when the test program ends.
fs::path scratch() {
  static qt_support::TempDir dir("qt-att-objs");
  return dir.ok() ? dir.path() : fs::path("/tmp");
}

}  // namespace

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

Cmd sh(const std::string& cmd, int timeout_s) {
  static std::mutex mu;
  static int counter = 0;
  int n;
  {
    std::lock_guard lock(mu);
    n = counter++;
  }
  fs::path out = scratch() / ("cmd" + std::to_string(n) + ".out"), err = scratch() / ("cmd" + std::to_string(n) + ".err");
  std::string full = "timeout -s KILL " + std::to_string(timeout_s) + " /bin/sh -c " + shell_quote(cmd) + " >" +
                     out.string() + " 2>" + err.string();
  int rc = std::system(full.c_str());
  Cmd c;
  c.rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  c.out = slurp(out);
  c.err = slurp(err);
  std::error_code ec;
  fs::remove(out, ec);
  fs::remove(err, ec);
  return c;
}

bool is_root() { return geteuid() == 0; }

std::string compile(const std::string& name, const std::string& text, const std::string& link) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::lock_guard lock(mu);
  std::string key = name + "@" + link;
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  fs::path src = scratch() / (name + ".qos");
  fs::path obj = scratch() / (name + "-" + link + ".bpf.o");
  {
    std::ofstream o(src);
    o << text;
  }
  Cmd c = sh(std::string(QOSC_BIN) + " " + src.string() + (link.empty() ? "" : " --link " + link) + " -o " +
                 obj.string(),
             120);
  if (c.rc != 0 || !fs::exists(obj)) return {};
  cache[key] = obj.string();
  return obj.string();
}

std::string compile_example(const std::string& name, const std::string& link) {
  std::string text = slurp(fs::path(QOSC_EXAMPLES_DIR) / (name + ".qos"));
  if (text.empty()) return {};
  return compile("example-" + name, text, link);
}

std::string without_manifest(const std::string& object) {
  std::string bytes = slurp(object);
  // Rename the section (same length) in the section-name table and in BTF,
  // which names the section as a data section too.
  const std::string from = ".qosc.manifest", to = ".qosc.manifesX";
  size_t n = 0;
  for (size_t pos = bytes.find(from + '\0'); pos != std::string::npos; pos = bytes.find(from + '\0', pos)) {
    bytes.replace(pos, from.size(), to);
    ++n;
  }
  if (n == 0) return {};
  fs::path p = scratch() / (fs::path(object).stem().string() + "-nomanifest.bpf.o");
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

std::string truncated(const std::string& object, size_t n) {
  std::string bytes = slurp(object).substr(0, n);
  fs::path p = scratch() / (fs::path(object).stem().string() + "-truncated" + std::to_string(n) + ".bpf.o");
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

std::string with_flipped_bit(const std::string& object, const std::string& section) {
  std::string bytes = slurp(object);
  std::string err;
  auto sections = qosc::object_sections(std::span(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
                                        &err);
  if (!sections) return {};
  auto s = std::find_if(sections->begin(), sections->end(), [&](const auto& x) { return x.name == section; });
  if (s == sections->end() || s->size == 0) return {};
  bytes[s->offset + s->size / 2] ^= 0x08;
  std::string tag = section;
  std::replace(tag.begin(), tag.end(), '.', '_');
  fs::path p = scratch() / (fs::path(object).stem().string() + "-flipped" + tag + ".bpf.o");
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

// ---- Pair -----------------------------------------------------------------------------------

Pair::Pair(const std::string& t, const std::string& prefix_, unsigned queues) : tag(t) {
  const std::string mq = queues > 1 ? " numtxqueues " + std::to_string(queues) + " numrxqueues " + std::to_string(queues) : "";
  // QOSC_NS_PREFIX=qs-: namespaces qs-qh-..., so that runs of the same
  // cases by several people on one machine do not meet.
  const char* outer = std::getenv("QOSC_NS_PREFIX");
  const std::string prefix = (outer ? std::string(outer) : std::string()) + prefix_;
  ns_a = prefix + tag + "-a";
  ns_b = prefix + tag + "-b";
  if_a = "qa" + tag + "0";
  if_b = "qa" + tag + "1";
  state_root = "/tmp/" + prefix + tag + "-run";
  pin_root = "/sys/fs/bpf/" + prefix + tag;
  destroy();   // an earlier crashed run
  std::vector<std::string> steps = {
      "ip netns add " + ns_a,
      "ip netns add " + ns_b,
      "ip netns exec " + ns_a + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
      "ip netns exec " + ns_b + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
      "ip -n " + ns_a + " link add name " + if_a + mq + " type veth peer name " + if_b + mq + " netns " + ns_b,
      "ip -n " + ns_a + " addr add " + ip_a + "/24 dev " + if_a,
      "ip -n " + ns_b + " addr add " + ip_b + "/24 dev " + if_b,
      "ip -n " + ns_a + " link set " + if_a + " up",
      "ip -n " + ns_b + " link set " + if_b + " up",
      "ip -n " + ns_a + " link set lo up",
      "ip -n " + ns_b + " link set lo up",
  };
  for (const auto& s : steps) {
    Cmd c = sh(s, 20);
    if (c.rc != 0) {
      setup_error_ = s + ": " + c.all();
      return;
    }
  }
  ok_ = true;
}

Pair::~Pair() { destroy(); }

void Pair::destroy() {
  // Tables the cases write beside the state root (STATE_ROOT-NAME.csv) go with it.
  sh("ip netns del " + ns_a + " 2>/dev/null; ip netns del " + ns_b + " 2>/dev/null; rm -rf " + state_root + " " +
         state_root + "-*.csv " + pin_root + "; true",
     20);
}

Cmd Pair::in_a(const std::string& cmd, int timeout_s) const {
  return sh("nsenter --net=/run/netns/" + ns_a + " /bin/sh -c " + shell_quote(cmd), timeout_s);
}
Cmd Pair::in_b(const std::string& cmd, int timeout_s) const {
  return sh("nsenter --net=/run/netns/" + ns_b + " /bin/sh -c " + shell_quote(cmd), timeout_s);
}

std::string Pair::qosrun_cmdline(const std::string& args, const std::string& env) const {
  return "env QOSRUN_STATE_ROOT=" + state_root + " QOSRUN_PIN_ROOT=" + pin_root + " " + env +
         " nsenter --net=/run/netns/" + ns_a + " " + QOSRUN_BIN + " " + args;
}

Cmd Pair::qosrun(const std::string& args, const std::string& env, int timeout_s) const {
  return sh(qosrun_cmdline(args, env), timeout_s);
}

std::string Pair::snapshot(const std::string& ifname) const {
  const std::string i = ifname.empty() ? if_a : ifname;
  Cmd c = in_a("echo '# qdisc'; tc qdisc show dev " + i + "; echo '# class'; tc class show dev " + i +
               "; echo '# egress'; tc filter show dev " + i + " egress; echo '# ingress'; tc filter show dev " + i +
               " ingress; echo '# link'; ip -d link show dev " + i + "; echo '# links'; ip -o link show | cut -d' ' -f2");
  return c.out + (c.rc ? "\n(snapshot failed: " + c.err + ")" : "");
}

std::string Pair::leftovers() const {
  std::string s;
  std::error_code ec;
  // Any file under this pair's roots, whatever key it was kept under: a
  // record, a lock file, the adaptive controller's live state or log, a pin.
  if (fs::exists(state_root, ec))
    for (const auto& e : fs::recursive_directory_iterator(state_root, ec))
      if (!e.is_directory(ec)) s += "state file " + e.path().string() + "\n";
  if (fs::exists(pin_root, ec))
    for (const auto& e : fs::recursive_directory_iterator(pin_root, ec))
      if (!e.is_directory(ec)) s += "pin " + e.path().string() + "\n";
  return s;
}

// ---- Background -------------------------------------------------------------------------------

Background start_background(const std::string& cmd, const std::string& tag) {
  Background b;
  b.out_file = (scratch() / (tag + ".bg.out")).string();
  b.err_file = (scratch() / (tag + ".bg.err")).string();
  std::string full = "exec " + cmd + " >" + b.out_file + " 2>" + b.err_file;
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  b.pid = pid;
  return b;
}

std::string kill9_at_step(const Pair& p, const std::string& args, const std::string& step, const std::string& tag,
                          const std::function<void()>& while_paused) {
  Background bg = start_background(p.qosrun_cmdline(args, "QOSRUN_PAUSE_AT=" + step), tag);
  const bool paused = bg.wait_for("paused at step", 15000);
  if (paused && while_paused) while_paused();
  bg.kill9();
  bg.wait();
  return paused ? std::string() : "qosrun " + args + " never paused at step " + step + ": " + bg.err();
}

std::string Background::out() const { return slurp(out_file); }
std::string Background::err() const { return slurp(err_file); }

bool Background::wait_for(const std::string& needle, int ms) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (out().find(needle) != std::string::npos || err().find(needle) != std::string::npos) return true;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return out().find(needle) != std::string::npos ||
                                                      err().find(needle) != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void Background::kill9() {
  if (pid > 0) ::kill(pid, SIGKILL);
}

int Background::wait() {
  if (pid <= 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- statistics ---------------------------------------------------------------------------------

int socket_in(const std::string& ns, int type) {
  int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  int s = -1;
  if (self >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0) {
    s = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    (void)::setns(self, CLONE_NEWNET);
  }
  if (self >= 0) ::close(self);
  if (target >= 0) ::close(target);
  return s;
}

NumberedUdpStream::NumberedUdpStream(const Pair& p, uint32_t packets, size_t payload_bytes)
    : packets_(packets), seen_(packets, 0) {
  rx_ = socket_in(p.ns_b, SOCK_DGRAM);
  tx_ = socket_in(p.ns_a, SOCK_DGRAM);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(5001);
  inet_pton(AF_INET, p.ip_b.c_str(), &dst.sin_addr);
  if (rx_ < 0 || tx_ < 0) {
    error_ = "cannot open sockets in " + p.ns_a + " / " + p.ns_b;
    return;
  }
  if (::bind(rx_, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    error_ = std::string("cannot bind the receiver: ") + std::strerror(errno);
    return;
  }
  int rcvbuf = 4 << 20;
  setsockopt(rx_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  timeval tv{0, 100000};   // the receiver looks at the clock at least every 100 ms
  setsockopt(rx_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  receiver_ = std::thread([this] {
    auto idle_since = std::chrono::steady_clock::now();
    for (;;) {
      uint32_t buf[64];
      ssize_t n = ::recv(rx_, buf, sizeof buf, 0);
      auto now = std::chrono::steady_clock::now();
      if (n >= 4) {
        if (buf[0] < packets_) seen_[buf[0]] = 1;
        idle_since = now;
        continue;
      }
      if (done_.load() && now - idle_since > std::chrono::milliseconds(500)) break;
    }
  });
  sender_ = std::thread([this, dst, payload_bytes] {
    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    std::vector<char> payload(std::max<size_t>(payload_bytes, sizeof(uint32_t)), 0);
    for (uint32_t i = 0; i < packets_; ++i) {
      std::memcpy(payload.data(), &i, sizeof i);
      if (::sendto(tx_, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) ==
          static_cast<ssize_t>(payload.size()))
        sent_.fetch_add(1);
      next.tv_nsec += 1000000;
      if (next.tv_nsec >= 1000000000) {
        next.tv_nsec -= 1000000000;
        ++next.tv_sec;
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    }
    done_.store(true);
  });
}

void NumberedUdpStream::wait() {
  if (sender_.joinable()) sender_.join();
  if (receiver_.joinable()) receiver_.join();
}

NumberedUdpStream::~NumberedUdpStream() {
  wait();
  if (rx_ >= 0) ::close(rx_);
  if (tx_ >= 0) ::close(tx_);
}

uint32_t NumberedUdpStream::received() const {
  uint32_t n = 0;
  for (uint8_t s : seen_) n += s;
  return n;
}

namespace {
// Each CPU's counters of `slot` in the per-CPU stats map at `path`; empty on failure.
std::vector<qos_class_stats> per_cpu_stats(const std::string& path, uint32_t slot) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return {};
  int ncpu = libbpf_num_possible_cpus();
  std::vector<qos_class_stats> per(static_cast<size_t>(ncpu > 0 ? ncpu : 1));
  if (bpf_map_lookup_elem(fd, &slot, per.data()) != 0) per.clear();
  close(fd);
  return per;
}
}  // namespace

std::vector<std::vector<uint64_t>> read_pinned_stats(const std::string& path, uint32_t slots) {
  std::vector<std::vector<uint64_t>> out(slots, std::vector<uint64_t>(2, 0));
  for (uint32_t k = 0; k < slots; ++k) {
    auto per = per_cpu_stats(path, k);
    if (per.empty()) return {};
    for (const auto& c : per)
      for (int h = 0; h < 2; ++h) out[k][h] += c.packets[h];
  }
  return out;
}

std::vector<uint64_t> read_pinned_stats_per_cpu(const std::string& path, uint32_t slot, int hook) {
  std::vector<uint64_t> out;
  for (const auto& c : per_cpu_stats(path, slot)) out.push_back(c.packets[hook]);
  return out;
}

std::string Pair::key(const std::string& ifname) const {
  const std::string dev = ifname.empty() ? if_a : ifname;
  uint64_t cookie = qosrun::state::netns_cookie_of("/run/netns/" + ns_a);
  return cookie ? dev + "@ns" + std::to_string(cookie) : dev;
}

}  // namespace qt_att
