#pragma once
// The adaptive link rate (`link adaptive MIN-MAX`, `download adaptive
// MIN-MAX`; docs/adaptive.md): a shaper only protects latency while it is the
// bottleneck, so on a link whose capacity moves (LTE, Wi-Fi backhaul, DOCSIS)
// qosrun moves the HTB root's rate with it, from the round-trip time to a few
// reflectors and the rate the shaper achieves.
//
// Three parts, each usable alone:
//   RateController   the decisions: pure, fed with times, RTT samples and
//                    achieved rates, so tests drive it with a simulated link;
//   Prober           ICMP/ICMPv6 echo probes with kernel receive timestamps;
//   run_adaptive     the loop that joins them to an attached policy: reads
//                    the HTB root's byte counter, changes the HTB classes in
//                    place, writes the live state file that `qosrun stats`
//                    shows. The foreground form runs it on a thread; the
//                    persistent form in `qosrun supervise IFACE`, started by
//                    attach and stopped by detach.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "qosc/manifest.hpp"
#include "qosrun/loader.hpp"   // Result, Status, Fd

namespace qosrun::adaptive {

// ---- the decisions ------------------------------------------------------------------------------

// How the controller reacts; the defaults are what docs/adaptive.md explains
// and the wire test measures. A policy chooses only the range, the start and
// the delay threshold (ManifestAdaptive).
struct Tuning {
  double probe_interval_s = 0.02;     // all reflectors together: one probe every 20 ms
  double reflector_timeout_s = 1.0;   // no answer for this long: the reflector is left out
  double bloat_samples = 2;           // this many consecutive deltas over the threshold: delay rose
  double high_load = 0.75;            // achieved / shaper rate above this: the link is loaded
  // On a delay rise, a direction is cut when it carries at least this x its
  // MIN (a link the modem holds far below the shaper shows a low load, so the
  // load ratio cannot decide), and, when both do, only those with at least
  // half the other's load (a download's ACKs do not cut the upload).
  double carrying_of_min = 0.5;
  double cut_factor = 0.9;            // on a delay rise: min(rate, achieved) x this
  double refractory_s = 0.25;         // after a cut: no other cut or rise for this long
  double rise_per_s = 0.2;            // loaded, delay low: +20 %/s (compounded per tick)
  double near_rise_per_s = 0.04;      // within `near` of the rate of the last cut: +4 %/s
  double near = 0.05;                 // ... i.e. within 5 % of it
  double near_memory_s = 10;          // the last cut's rate is remembered this long
  double drift_per_s = 0.01;          // idle: 1 %/s towards the start rate
  double fresh_s = 0.25;              // a rise needs an answer at most this old
  double rate_step_min = 0.005;       // changes smaller than 0.5 % are not applied
  double rebase_after_s = 10;         // a baseline below every sample of an unloaded link this long is raised
};

struct DirectionConfig {
  std::string name;                   // "upload", "download"
  uint64_t min_bps = 0, max_bps = 0, start_bps = 0;
  double delay_ms = 5;                // RTT rise over the baseline that counts as a delay rise
};

// One reflector's estimate.
struct ReflectorView {
  std::string addr;
  bool alive = false;
  double baseline_ms = 0;             // the RTT with empty queues
  double delay_ms = 0;                // the last RTT minus the baseline
  double last_rtt_ms = 0;
  uint64_t sent = 0, received = 0;
  std::string note;                   // e.g. why it was left out
};

struct DirectionView {
  DirectionConfig config;
  uint64_t rate_bps = 0;              // the shaper's rate now
  uint64_t achieved_bps = 0;          // what the shaper sent, over the last tick window
  double load = 0;                    // achieved / rate
  uint64_t cuts = 0, rises = 0;
  std::string last_decision;
};

class RateController {
 public:
  // `upload` is the interface's tree, `download` the IFB's (either may be absent).
  RateController(std::optional<DirectionConfig> upload, std::optional<DirectionConfig> download,
                 std::vector<std::string> reflectors, Tuning tuning = {});

  // A probe to reflector `r` was sent at `t` (seconds, any monotonic origin).
  void on_sent(size_t r, double t);
  // Its answer: round-trip time in ms, observed at `t`.
  void on_rtt(size_t r, double t, double rtt_ms);
  // Decides at `t` with the rates each shaper achieved since the last call
  // (bits/s; ignored for an absent direction). Returns true when a rate changed
  // by at least rate_step_min (apply it: rate_bps()).
  bool tick(double t, uint64_t achieved_up_bps, uint64_t achieved_down_bps);

  bool has(size_t dir) const { return dirs_[dir].present; }
  uint64_t rate_bps(size_t dir) const { return dirs_[dir].view.rate_bps; }
  // Starts a direction from `bps` (clamped to its range): a reload keeps the rate it had.
  void set_rate(size_t dir, uint64_t bps);
  // The range, start and threshold changed (a reload): keep the rate, clamped.
  void reconfigure(size_t dir, const DirectionConfig& c);
  const DirectionView& view(size_t dir) const { return dirs_[dir].view; }
  std::vector<ReflectorView> reflectors() const;
  // Why the rates are held (every reflector silent), "" when they are not.
  const std::string& holding() const { return holding_; }
  // The last decisions, newest last (at most 10), with their times.
  const std::deque<std::string>& decisions() const { return decisions_; }
  size_t alive_reflectors() const;

  static constexpr size_t kUp = 0, kDown = 1;

 private:
  struct Reflector {
    ReflectorView view;
    double last_sent = -1, last_answer = -1;
    int over = 0;                     // consecutive samples over the threshold
    double low_since = -1;            // unloaded and every sample above the baseline since
    double low_min = 0;               // the smallest RTT since then
    bool fresh = false;               // answered since the last tick
  };
  struct Direction {
    bool present = false;
    DirectionView view;
    double rate = 0;                  // exact (view.rate_bps is the applied, rounded value)
    double applied = 0;
    double last_cut = -1e9, cut_rate = 0;
  };
  // `to_blame`: this direction carries enough that a delay rise is cut here.
  void decide(Direction& d, double t, double dt, bool bloated, bool to_blame);
  void note(double t, const std::string& what);

  Tuning tuning_;
  Direction dirs_[2];
  std::vector<Reflector> refl_;
  double last_tick_ = -1, t0_ = -1;
  double last_answer_ = -1e9;         // the newest answer of any reflector
  std::string holding_;
  std::deque<std::string> decisions_;
};

// ---- probes --------------------------------------------------------------------------------------

// ICMP (IPv4) and ICMPv6 echo requests with identifier QOS_PROBE_ICMP_ID
// (qos_abi.h: the TC program sends them through HTB's direct queue, so they
// measure the queue beyond the shaper, not the shaper's own), sent through
// `ifname` (SO_BINDTODEVICE), answers taken with the kernel's receive
// timestamp. A random tag in each probe keeps several qosruns' answers apart.
class Prober {
 public:
  static Result<Prober> open(const std::string& ifname, const std::vector<std::string>& reflectors);
  // Sends the next probe to reflector `r`; false when the kernel refused it
  // (e.g. no route): counted as a probe without an answer.
  bool send(size_t r);
  // Reads every answer waiting: (reflector, RTT in ms). Non-blocking.
  std::vector<std::pair<size_t, double>> receive();
  // fds to poll() for answers.
  std::vector<int> fds() const;
  Prober(Prober&&) noexcept = default;
  Prober& operator=(Prober&&) noexcept = default;

 private:
  Prober() = default;
  struct Target {
    int family = 0;
    unsigned char addr[16] = {};
    uint32_t scope = 0;
  };
  std::vector<Target> targets_;
  Fd fd4_, fd6_;
  uint32_t tag_ = 0;
  uint16_t seq_ = 0;
};

// Parses and checks reflector addresses (IPv4/IPv6 literals).
Status check_reflectors(const std::vector<std::string>& addrs);
// The gateway of the default route through `ifname` (IPv4 first, then IPv6),
// "" when there is none.
std::string default_gateway(const std::string& ifname);

// ---- running it on an attached policy -------------------------------------------------------------

struct RunOptions {
  std::string ifname;                 // the interface with the policy (its record says the rest)
  std::vector<std::string> reflectors;
  const std::atomic<bool>* stop = nullptr;
  Tuning tuning;
  int verbosity = 0;
};
// Runs the controller until *stop (or the policy is detached). Returns the
// exit code: 0 when stopped or detached, 1 on an error (printed to `err`).
int run_adaptive(const RunOptions& o, std::ostream& err);

// The persistent form: `qosrun supervise IFACE` in a session of its own,
// which waits until the record names it (attach writes its pid there) and
// runs the controller until detach stops it. Returns its pid and start time.
Result<std::pair<pid_t, uint64_t>> start_supervisor(const std::string& ifname);
// SIGTERM, then SIGKILL after 2 s; nothing when it is gone (or the pid is another process now).
void stop_supervisor(pid_t pid, uint64_t start);

// What a running controller shows: written by it every 0.5 s to its live
// state file (<state dir>/adaptive.json), read back by `qosrun status` and
// `qosrun stats` (terminal, JSON, Prometheus) and by reload.
struct Snapshot {
  double unix_time = 0;
  pid_t pid = 0;
  uint32_t generation = 0;            // of the record it works on
  std::optional<DirectionView> upload, download;
  std::vector<ReflectorView> reflectors;
  std::string holding;                // RateController::holding()
  std::vector<std::string> decisions; // newest last
  const std::optional<DirectionView>& direction(size_t dir) const { return dir == 0 ? upload : download; }
};
Snapshot snapshot_of(const RateController& c);
nlohmann::json to_json(const Snapshot& s);
Snapshot snapshot_from_json(const nlohmann::json& j);   // throws nlohmann::json::exception

std::string state_file(const std::string& ifname);
// The running controller's snapshot; nullopt when none runs (no file, or not
// rewritten for 5 s: the controller was killed).
std::optional<Snapshot> read_snapshot(const std::string& ifname);
// The rate the running controller applied, for a reload that must keep it (0
// when none runs or it has no such direction).
uint64_t current_rate(const std::string& ifname, size_t dir);

}  // namespace qosrun::adaptive
