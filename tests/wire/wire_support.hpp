#pragma once
// Support for the wire and statistics tests: network namespaces the test
// creates (deleted by name, also before use), sockets opened inside a
// namespace from the test process, paced UDP senders and counting
// receivers, qosc/qosrun invocations. Nothing here sends traffic outside
// the namespaces a test created.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace qt {

struct CmdResult {
  int rc = -1;
  std::string out;   // stdout and stderr together
};
// Runs `cmd` with /bin/sh, output captured; timeout_s bounds it (killed after).
CmdResult sh(const std::string& cmd, int timeout_s = 60);
// Runs and returns output; records failures in *ok (when given).
std::string must(const std::string& cmd, bool* ok = nullptr);

bool is_root();
// Why kernel tests cannot run here ("" when they can): not root, missing tools.
std::string kernel_skip_reason(const std::vector<std::string>& tools = {});

std::string qosc_bin();
std::string qosrun_bin();
std::string source_dir();
std::string scratch_dir(const std::string& name);   // fresh directory under the build tree

// Network namespaces deleted by name (processes inside are killed first).
void delete_netns(const std::string& name);
class Netns {
 public:
  explicit Netns(std::vector<std::string> names);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  // `ip netns exec NAME CMD`
  CmdResult exec(const std::string& ns, const std::string& cmd, int timeout_s = 60) const;

 private:
  std::vector<std::string> names_;
  bool ok_ = true;
  std::string error_;
};

// A veth pair between two namespaces with addresses (/24), up, IPv6 off,
// GSO/TSO/GRO off (unless `offloads`), static ARP entries so that nothing but
// the test's packets crosses the link.
struct VethSpec {
  std::string ns_a, if_a, addr_a;
  std::string ns_b, if_b, addr_b;
  bool quiet = true;      // IPv6 off + static neighbours
  bool offloads = false;  // keep veth's GSO/TSO/GRO: TCP then hands the qdisc packets of up to 64 KB
};
bool make_veth(const VethSpec& v, std::string* err);

// A socket created inside namespace `ns` (usable from any thread afterwards).
int socket_in_netns(const std::string& ns, int domain, int type, int proto = 0);

// Sends `count` UDP datagrams of `payload` bytes from `ns` to dst:port,
// paced at `pps` packets per second (0 = as fast as possible). Returns the
// number sendto() accepted, or -1 on error.
long send_udp(const std::string& ns, const std::string& dst, uint16_t port, size_t payload, long count,
              double pps = 0, const std::string& src = "");
// ... from one socket to each of `ports` in turn (datagram i to ports[i % n]).
long send_udp_in_turn(const std::string& ns, const std::string& dst, const std::vector<uint16_t>& ports,
                      size_t payload, long count, double pps = 0, const std::string& src = "");

// A pipe that wakes a receiver thread's poll() when it is asked to stop.
class WakePipe {
 public:
  WakePipe();
  ~WakePipe();
  WakePipe(const WakePipe&) = delete;
  WakePipe& operator=(const WakePipe&) = delete;
  bool ok() const { return fd_[0] >= 0; }
  int poll_fd() const { return fd_[0]; }
  void wake();
  // Waits up to `ms` for wake(); true when it came. A receiver of a flood
  // drains its sockets between these waits instead of sleeping on them: a
  // thread asleep on a socket is woken for nearly every datagram, and each
  // wakeup (an IPI on these VMs) is paid in the softirq of the thread that
  // sent the datagram, since veth delivers it there. On the 100-host test's
  // ~50,000 datagrams/s that was ~15 % of both cores, enough to slow the
  // senders below the load they had to offer.
  bool woken_within(int ms) const;

 private:
  int fd_[2] = {-1, -1};
};

// A UDP receiver bound in `ns` on several ports; counts datagrams and bytes
// per port on its own thread until stopped, draining its sockets every
// millisecond (WakePipe::woken_within).
class UdpSink {
 public:
  UdpSink(const std::string& ns, const std::string& addr, const std::vector<uint16_t>& ports);
  ~UdpSink();
  bool ok() const { return ok_; }
  struct Count {
    uint64_t packets = 0, bytes = 0;
  };
  Count count(uint16_t port) const;
  std::map<uint16_t, Count> snapshot() const;
  void stop();

 private:
  void loop();
  std::vector<int> fds_;
  std::vector<uint16_t> ports_;
  std::unique_ptr<std::atomic<uint64_t>[]> pk_, by_;
  std::atomic<bool> stop_{false};
  std::thread th_;
  bool ok_ = false;
  WakePipe wake_;
};

// A paced UDP sender on its own thread (a backlogged class).
class UdpFlood {
 public:
  UdpFlood(const std::string& ns, const std::string& dst, uint16_t port, double bps, size_t payload);
  ~UdpFlood();
  void stop();
  uint64_t sent() const { return sent_.load(); }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::thread th_;
};

// A TCP receiver bound in `ns` on several ports: accepts any number of
// connections per port and counts the payload bytes per port on its own thread.
class TcpSink {
 public:
  TcpSink(const std::string& ns, const std::string& addr, const std::vector<uint16_t>& ports);
  ~TcpSink();
  bool ok() const { return ok_; }
  std::map<uint16_t, uint64_t> snapshot() const;   // payload bytes per port so far
  void stop();

 private:
  void loop();
  std::vector<int> listeners_;
  std::vector<uint16_t> ports_;
  std::unique_ptr<std::atomic<uint64_t>[]> by_;
  std::atomic<bool> stop_{false};
  std::thread th_;
  bool ok_ = false;
  WakePipe wake_;
};

// A bulk TCP sender on its own thread (a backlogged class): connects from `ns`
// to dst:port with congestion control `cc` (new namespaces inherit the host's
// default, e.g. bbr; the tests pin cubic) and writes as fast as the
// connection takes it until stopped (at most 300 s). error() says why it
// could not start ("" when it runs).
class TcpBulk {
 public:
  // `src`: the source address to bind ("" = the kernel's choice).
  TcpBulk(const std::string& ns, const std::string& dst, uint16_t port, const std::string& cc = "cubic",
          const std::string& src = "");
  ~TcpBulk();
  const std::string& error() const { return error_; }
  void stop();

 private:
  int fd_ = -1;
  std::string error_;
  std::atomic<bool> stop_{false};
  std::thread th_;
};

// A game-like flow measured without the machine's CPU noise: one thread in
// namespace `from` sends a small UDP datagram every `interval_ms` carrying
// the time it is sent (CLOCK_REALTIME, read just before sendto), and a socket
// in `to` takes each with the kernel's receive timestamp (SO_TIMESTAMPNS).
// Every namespace shares the host's clock, so receive minus send is the
// one-way delay through the path, queues included, without the receiver's
// wake-up delay (which is what a user-space RTT tool like irtt adds on a busy
// machine). Blocks for `seconds` (+0.5 s for the last datagrams).
inline constexpr size_t kOneWayPayload = 64;   // bytes of each datagram one_way_delays sends
struct OneWay {
  std::vector<double> ms;   // one-way delay of each datagram received
  std::vector<double> sent_at;   // when each of them was sent (CLOCK_REALTIME, unix seconds): ms[i]'s datagram
  long sent = 0;
  long lost() const { return sent - static_cast<long>(ms.size()); }
  double p50() const;
  double p99() const;
};
OneWay one_way_delays(const std::string& from_ns, const std::string& from_addr, const std::string& to_ns,
                      const std::string& to_addr, uint16_t to_port, double seconds, double interval_ms = 10);

// Compiles `policy_text` with qosc into dir/name.bpf.o; returns the path or
// "" with *err set.
std::string compile_policy(const std::string& policy_text, const std::string& name, const std::string& extra_args,
                           std::string* err);

// `qosrun attach OBJ IFACE [extra]` / `qosrun detach IFACE` inside a namespace.
CmdResult attach_policy(const Netns& ns, const std::string& nsname, const std::string& obj, const std::string& ifname,
                        const std::string& extra = "");
CmdResult detach_policy(const Netns& ns, const std::string& nsname, const std::string& ifname);

// `qosrun ARGS` / `qosrun stats --json` inside a namespace.
CmdResult qosrun_in(const Netns& ns, const std::string& nsname, const std::string& args, int timeout_s = 60);
std::optional<nlohmann::json> stats_json(const Netns& ns, const std::string& nsname, const std::string& ifname,
                                         std::string* err, const std::string& extra = "--no-rates");

// Percentile (0-100) of a sample, linear interpolation.
double percentile(std::vector<double> v, double p);

}  // namespace qt
