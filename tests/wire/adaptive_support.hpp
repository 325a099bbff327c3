#pragma once
// The measurement for links whose capacity moves (issue 12): a path
//
//   client (qt-ad-cli) → router (qt-ad-rtr, the policy on ad-r1)
//     → modem (qt-ad-mdm, tbf on ad-m1: the real bottleneck, 250 ms buffer)
//     → server (qt-ad-srv, 10.221.3.2 and a second address 10.221.3.3)
//
// and a scenario runner: a cubic upload client→server throughout, a game-like
// UDP flow client→server every 10 ms (one-way delays, kernel-stamped), the
// modem's rate changed in place (`tc qdisc change`) at each step, and a time
// series every 0.5 s (modem rate, shaper rate, bulk goodput, game delay)
// written as CSV + JSON. Nothing here sends traffic outside these namespaces.
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wire_support.hpp"

namespace qt::adaptive {

constexpr const char* kCli = "qt-ad-cli";
constexpr const char* kRtr = "qt-ad-rtr";
constexpr const char* kMdm = "qt-ad-mdm";
constexpr const char* kSrv = "qt-ad-srv";
constexpr const char* kIpCli = "10.221.1.2";
constexpr const char* kIpSrv = "10.221.3.2";
constexpr const char* kIpSrv2 = "10.221.3.3";   // the server's second address: a second reflector
constexpr const char* kRtrWan = "ad-r1";        // router → modem: where qosrun attaches
constexpr const char* kMdmWan = "ad-m1";        // modem → server: the tbf
constexpr uint16_t kGamePort = 27015;           // in examples/gaming.qos's game ports
constexpr uint16_t kBulkPort = 5201;
constexpr double kModemBufferS = 0.25;          // the tbf's limit, in seconds at its current rate

// `rate R burst B limit L` for the modem's tbf at `bps`: limit = 250 ms at the
// rate, burst = 2 ms at the rate (at least 10 full frames).
std::string tbf_args(double bps);

// Namespaces (deleted by name before and after), veths with addresses and
// routes, forwarding on router and modem, cubic pinned, the modem's tbf.
class Topology {
 public:
  explicit Topology(double modem_bps);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const Netns& ns() const { return *ns_; }
  // The modem's tbf to `bps` in place (limit follows: 250 ms at the new rate).
  bool set_modem(double bps, std::string* err) const;
  // A reflector "killed": the server drops ICMP echo requests to `addr`.
  bool drop_probes_to(const std::string& addr, std::string* err) const;

 private:
  std::unique_ptr<Netns> ns_;
  std::string error_;
};

// The cookie of namespace `ns` (SO_NETNS_COOKIE), 0 when it cannot be read.
uint64_t netns_cookie(const std::string& ns);

// The shaper's current rate: the controller's, from its live state (the file
// `qosrun status IFACE --json` names as "adaptive"."state_file", with the
// rate in "upload"."rate_bps"), or, for a fixed policy, the HTB root class
// 1:1's rate as tc shows it.
class ShaperProbe {
 public:
  ShaperProbe(const Netns& ns, std::string nsname, std::string ifname);
  double rate_bps();   // NaN when nothing can be read
  const std::string& source() const { return source_; }
  std::optional<nlohmann::json> adaptive_state();   // the controller's state, nullopt without one
  const std::string& adaptive_file() const { return file_; }

 private:
  double tc_rate_bps() const;
  const Netns& ns_;
  std::string nsname_, ifname_, file_;
  std::string source_ = "none";
};

struct Step {
  double modem_bps = 0;
  double seconds = 0;
  std::function<void()> at_start;   // runs right after the modem's rate is set (may be empty)
};

struct Options {
  std::string label;          // files <label>.csv and <label>.json
  std::string policy;         // for the record
  std::vector<Step> steps;
  double settle_s = 3;        // the first seconds of each phase are not measured
  double idle_s = 5;          // the game flow alone before the upload starts (0: none)
  double sample_s = 0.5;
  bool bulk = true;
  bool game = true;
};

struct Phase {
  double modem_bps = 0, start_s = 0, end_s = 0;   // start/end relative to the run's start
  double game_p50_ms = NAN, game_p99_ms = NAN, game_max_ms = NAN;
  long game_n = 0, game_expected = 0;
  double bulk_bps = NAN;   // goodput (TCP payload) over [start + settle, end)
  double shaper_min_bps = NAN, shaper_mean_bps = NAN, shaper_max_bps = NAN;
  double bulk_fraction() const { return bulk_bps / modem_bps; }
};

struct Sample {
  double t_s = 0;   // end of the interval, relative to the run's start
  int phase = 0;
  double modem_bps = 0, shaper_bps = NAN, bulk_bps = NAN, game_max_ms = NAN, game_p99_ms = NAN;
  long game_n = 0;
};

struct Result {
  std::string error;   // "" when the run was made
  double idle_p50_ms = NAN, idle_p99_ms = NAN;
  long idle_n = 0;
  std::vector<Phase> phases;
  std::vector<Sample> series;
  std::string shaper_source;
  std::string loadavg_before, loadavg_after;
  std::vector<std::string> files;   // what was written
  std::string table(const std::string& title) const;
  nlohmann::json to_json(const Options& o) const;
};

// Runs the steps (the modem starts at steps[0]'s rate). Writes the series into
// the test's scratch directory and, when QT_ADAPTIVE_OUT is set, there too.
Result run_scenario(const Topology& topo, ShaperProbe& shaper, const Options& o);

// Environment knobs (positive numbers; the default otherwise).
double env_seconds(const char* name, double dflt);

}  // namespace qt::adaptive
