#pragma once
// Helpers of the qosrun attach tests: shell commands with a time limit, a
// pair of network namespaces joined by a veth pair (created by the test,
// removed by name at start and end), the interface's observable state as
// text, and policies compiled with the real qosc binary.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace qt_att {

struct Cmd {
  int rc = -1;            // exit status; -1 when killed by a signal
  std::string out, err;
  std::string all() const { return out + err; }
};

// /bin/sh -c `cmd` under timeout(1); stdout and stderr captured.
Cmd sh(const std::string& cmd, int timeout_s = 30);
std::string shell_quote(const std::string& s);
bool is_root();

// Compiles `text` (a .qos policy) with the qosc binary once per process;
// returns the object's path. `link` overrides the policy's link ("": the policy's own).
std::string compile(const std::string& name, const std::string& text, const std::string& link = "100mbit");
// examples/<name>.qos compiled with --link.
std::string compile_example(const std::string& name, const std::string& link = "100mbit");
// A copy of `object` whose manifest section is renamed: an object without a manifest.
std::string without_manifest(const std::string& object);
// The first `bytes` bytes of `object`: a broken object.
std::string truncated(const std::string& object, size_t bytes);
// A copy of `object` with one bit flipped in the middle of section `section`
// (e.g. "xdp", the XDP program's code); "" when it has no such section.
std::string with_flipped_bit(const std::string& object, const std::string& section);

// Two namespaces qt-att-<tag>-a / -b with a veth pair qa<tag>0 (in a,
// 10.77.0.1/24) - qa<tag>1 (in b, 10.77.0.2/24); IPv6 off so neighbour
// discovery does not add packets. qosrun runs in a with its own state root
// (/tmp/qt-att-<tag>-run) and pin root (/sys/fs/bpf/qt-att-<tag>).
class Pair {
 public:
  // `prefix` names the namespaces and roots (<prefix><tag>-a ...): each feature's tests keep their own.
  // `queues` > 1: a veth pair with that many TX and RX queues on each end.
  explicit Pair(const std::string& tag, const std::string& prefix = "qt-att-", unsigned queues = 1);
  ~Pair();
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;

  bool ok() const { return ok_; }
  const std::string& setup_error() const { return setup_error_; }

  std::string tag, ns_a, ns_b, if_a, if_b, ip_a = "10.77.0.1", ip_b = "10.77.0.2";
  std::string state_root, pin_root;

  Cmd in_a(const std::string& cmd, int timeout_s = 30) const;
  Cmd in_b(const std::string& cmd, int timeout_s = 30) const;
  // `qosrun ARGS` in namespace a with this pair's roots; `env` is prepended
  // (e.g. "QOSRUN_FAIL_AT=xdp").
  Cmd qosrun(const std::string& args, const std::string& env = "", int timeout_s = 60) const;
  // The command line that qosrun() runs, for background use.
  std::string qosrun_cmdline(const std::string& args, const std::string& env = "") const;

  // What a user sees on the interface: qdiscs, classes, filters on both
  // clsact hooks, `ip -d link show` (XDP state) and the namespace's links
  // (an IFB left behind shows there).
  std::string snapshot(const std::string& ifname = "") const;
  // Nothing of qosrun's left: no file in the state root (records, lock
  // files, the adaptive controller's files), no pins.
  std::string leftovers() const;
  // The name qosrun keeps an interface of namespace a under ("<if>@ns<cookie>",
  // see state::state_key), for paths in the state and pin roots.
  std::string key(const std::string& ifname = "") const;
  std::string pin_dir() const { return pin_root + "/" + key(); }

 private:
  void destroy();
  bool ok_ = false;
  std::string setup_error_;
};

// A process started in the background (fork + exec of /bin/sh -c), its
// output going to files.
struct Background {
  pid_t pid = -1;           // the shell's pid; `exec` makes it the command's
  std::string out_file, err_file;
  std::string out() const;
  std::string err() const;
  // Waits until `needle` appears in stdout or stderr (at most `ms`).
  bool wait_for(const std::string& needle, int ms) const;
  void kill9();
  int wait();               // exit status (-1 when killed)
};
Background start_background(const std::string& cmd, const std::string& tag);
// `qosrun ARGS` of `p` started in the background with QOSRUN_PAUSE_AT=`step`
// and killed with SIGKILL once it says it paused there (`while_paused` runs
// first): a qosrun killed in the middle of that step. "" when it paused;
// else why not, with what it printed.
std::string kill9_at_step(const Pair& p, const std::string& args, const std::string& step, const std::string& tag,
                          const std::function<void()>& while_paused = {});

// A UDP socket (SOCK_DGRAM or SOCK_RAW ...) made inside network namespace `ns`; -1 on failure.
int socket_in(const std::string& ns, int type);

// A numbered UDP stream from namespace a of `p` to b (port 5001), paced at
// 1000 packets/s, and a receiver noting which numbers arrived: the measure
// of "loses no packet" while qosrun changes what is under the stream.
// Sender and receiver start in the constructor; wait() returns once the last
// packet is sent and nothing has arrived for 500 ms.
class NumberedUdpStream {
 public:
  NumberedUdpStream(const Pair& p, uint32_t packets, size_t payload_bytes);
  ~NumberedUdpStream();
  NumberedUdpStream(const NumberedUdpStream&) = delete;
  NumberedUdpStream& operator=(const NumberedUdpStream&) = delete;

  const std::string& error() const { return error_; }   // "" when the stream runs
  void wait();
  uint32_t packets() const { return packets_; }
  uint32_t sent() const { return sent_.load(); }
  uint32_t received() const;   // distinct numbers that arrived

 private:
  uint32_t packets_;
  int rx_ = -1, tx_ = -1;
  std::string error_;
  std::vector<uint8_t> seen_;
  std::atomic<bool> done_{false};
  std::atomic<uint32_t> sent_{0};
  std::thread sender_, receiver_;
};

// Sums the per-CPU qos_stats map pinned at `path`: packets per class and hook
// (index [class][hook], hook 0 = XDP, 1 = TC). Empty on failure.
std::vector<std::vector<uint64_t>> read_pinned_stats(const std::string& path, uint32_t slots);
// The same map's packets of slot `slot` and `hook` on each CPU (index = CPU). Empty on failure.
std::vector<uint64_t> read_pinned_stats_per_cpu(const std::string& path, uint32_t slot, int hook);

// For kernel tests (gtest): skip with the reason when not root; a Pair that
// must come up.
#define REQUIRE_ROOT()                                                                                  \
  do {                                                                                                  \
    if (!::qt_att::is_root()) GTEST_SKIP() << "needs root: creates network namespaces and attaches BPF programs"; \
  } while (0)
#define MAKE_PAIR(var, tag)                          \
  ::qt_att::Pair var(tag);                           \
  ASSERT_TRUE(var.ok()) << var.setup_error();

}  // namespace qt_att
