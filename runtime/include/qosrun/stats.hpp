#pragma once
// Statistics of an attached policy: what the BPF programs counted (per-CPU
// class counters, the LRU flow table) and what the queues did (HTB class
// counters over netlink), turned into rates, a live terminal view, JSON
// lines and Prometheus text.
//
//   auto src = StatsSource::open_pinned("eth0");        // maps pinned by `qosrun attach`
//   auto a = src->sample({});  ...  auto b = src->sample({});
//   View v = make_view(src->manifest(), *b, &*a, 10);   // rates from the two samples
//   std::cout << render_text(v, false);
//
// For the foreground mode (`qosrun OBJ IFACE`, attach.cpp / foreground code):
// after attaching, call
//
//   int rc = run_live_view(*StatsSource::from_fds(manifest, stats_fd, flows_fd, ifname),
//                          LiveViewOptions{...}, stop_flag);
//
// which redraws the terminal view every `interval` seconds until `stop_flag`
// becomes true (set it from the SIGINT/SIGTERM handler; the view polls it
// every 50 ms) and returns 0 (or 1 when the maps cannot be read). It never
// detaches anything and never installs signal handlers itself.
//
// Counter meanings (see docs/qosrun-stats.md):
// - packets/bytes per hook: every packet the program classified into the
//   class, including those its policer then dropped; bytes are the frame
//   length the program saw (Ethernet header included).
// - drops: policer (the class's rate/burst at XDP/TC), rule (a `drop`
//   target; the map's drop slot, index nclasses), queue (the HTB leaf
//   refused the packet: its bounded queue was full).
// - queue: HTB class counters from the kernel (sent bytes/packets, drops,
//   overlimits, backlog bytes, queue length), delay ~= backlog * 8 / rate
//   where rate is the measured dequeue rate of the class, or its configured
//   ceil when it sent nothing in the interval.
#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "qosc/manifest.hpp"
#include "qosrun/adaptive.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/testrun.hpp"   // ClassCounters

namespace qosrun {

// ---- raw readers --------------------------------------------------------------

// Sums a per-CPU qos_stats map (struct qos_class_stats) over CPUs: `slots`
// entries (nclasses + 1, the last is the drop slot).
Result<std::vector<ClassCounters>> read_stats_map(int fd, uint32_t slots);
// One entry of that map, summed over CPUs (what read_stats_map does per slot).
Status read_stats_entry(int fd, uint32_t key, ClassCounters& out);

// One HTB class as the kernel reports it (qosrun/netlink.hpp).
struct QueueCounters {
  uint32_t handle = 0;          // major << 16 | minor
  uint32_t parent = 0;
  bool leaf = false;            // has a leaf qdisc (no child classes)
  uint64_t bytes = 0;           // sent (dequeued) bytes
  uint64_t packets = 0;         // sent packets
  uint64_t drops = 0;           // refused at enqueue (leaf queue full)
  uint64_t overlimits = 0;
  uint64_t backlog_bytes = 0;   // queued now
  uint64_t qlen = 0;            // packets queued now
  uint64_t rate_bps = 0;        // configured assured rate (bit/s)
  uint64_t ceil_bps = 0;        // configured ceil (bit/s)
  uint32_t prio = 0;
  uint32_t quantum = 0;
};
// Root HTB qdisc counters (the whole link).
struct LinkCounters {
  bool present = false;
  uint32_t handle = 0;
  std::string kind;             // "htb" when qosrun's tree is there
  uint64_t bytes = 0, packets = 0, drops = 0, overlimits = 0, backlog_bytes = 0, qlen = 0;
};
struct QdiscSnapshot {
  LinkCounters root;
  std::vector<QueueCounters> classes;   // every class of the root qdisc's major, by handle
  std::vector<QueueCounters> nested;    // HTB classes of other majors: isolation's sub-queues
  const QueueCounters* find(uint32_t minor) const;
};
// Reads the root qdisc and the classes of `major` on `ifname` (in the
// caller's network namespace).
Result<QdiscSnapshot> read_qdisc(const std::string& ifname, uint32_t major = 1);

// One flow of the LRU table (qos_abi.h: qos_flow_key/val).
struct FlowEntry {
  uint8_t family = 0;           // 4 or 6
  std::string src, dst;         // printable addresses
  uint16_t sport = 0, dport = 0;
  uint8_t proto = 0;
  uint64_t first_ns = 0, last_ns = 0;   // CLOCK_MONOTONIC (bpf_ktime_get_ns)
  uint64_t packets = 0, bytes = 0;
  uint32_t class_id = 0;
  uint32_t hook_mask = 0;       // 1 = XDP (ingress), 2 = TC (egress)
  std::string key;              // raw key bytes (identity across samples)
};
// Reads every entry (batch lookups when the kernel has them, else key by key).
Result<std::vector<FlowEntry>> read_flows(int fd);
std::string proto_name(uint8_t proto);

// One slot of an isolated class (qos_abi.h "isolation"), as read from qos_iso_slots.
struct IsoSlotEntry {
  uint32_t class_id = 0;
  uint32_t index = 0;           // in its pool: flow s, or host h
  bool host = false;            // a host slot of saddr/daddr (else a flow)
  uint8_t family = 0, proto = 0;   // qos_iso_key: a host is `src` alone
  std::string src, dst;            // printable addresses
  uint16_t sport = 0, dport = 0;
  uint64_t last_ns = 0;         // CLOCK_MONOTONIC_COARSE of its last packet
  uint64_t packets = 0;         // steered to it (approximate)
  uint32_t subqueue = 0;        // the classid of its queue in the class's nested HTB
};
struct IsoCounters {
  uint64_t claims = 0, overflows = 0, sparse = 0, nat_found = 0;
};

// ---- sampling -------------------------------------------------------------------

struct Sample {
  uint64_t mono_ns = 0;         // CLOCK_MONOTONIC when taken (same clock as the flow table)
  double unix_time = 0;         // wall clock, seconds
  std::vector<ClassCounters> map;      // nclasses + 1 (drop slot last)
  std::optional<QdiscSnapshot> qdisc;  // nullopt when the interface has no qdisc of ours
  std::string qdisc_error;             // why qdisc is missing
  std::vector<FlowEntry> flows;        // empty unless asked
  // --ingress-shape: the IFB device's HTB tree (downloads), when there is one.
  std::string ifb;
  std::optional<QdiscSnapshot> ifb_qdisc;
  std::optional<uint64_t> pifo_inversions;   // SP-PIFO push-down events (qos_pifo), pifo only
  // Isolation: the slots in use (idle ones too, the view decides) and the
  // counters per class id; coarse_ns is the slots' clock now.
  std::vector<IsoSlotEntry> iso_slots;
  std::vector<IsoCounters> iso_counters;
  uint64_t coarse_ns = 0;
  // The adaptive rate's controller, when one runs (its live state file).
  std::optional<adaptive::Snapshot> adaptive;
};

struct SampleOptions {
  bool flows = false;           // read the flow table too
  bool qdisc = true;            // read HTB counters
};

class StatsSource {
 public:
  // The maps of the policy `qosrun attach` put on `ifname`: its state.json
  // gives the manifest, the pin directory (or `pin_dir` when given) and map
  // ids (used when the pins are not visible in this mount namespace).
  static Result<StatsSource> open_pinned(const std::string& ifname, const std::string& pin_dir = "");
  // Maps of an already loaded policy (the fds are duplicated). flows_fd may be -1.
  static Result<StatsSource> from_fds(const qosc::Manifest& manifest, int stats_fd, int flows_fd,
                                      const std::string& ifname);

  Result<Sample> sample(const SampleOptions& opts) const;
  const qosc::Manifest& manifest() const { return manifest_; }
  const std::string& ifname() const { return ifname_; }
  const std::string& pin_dir() const { return pin_dir_; }
  bool has_flows() const { return flows_.valid(); }
  const std::string& ingress_ifb() const { return ifb_; }

  StatsSource(StatsSource&&) noexcept = default;
  StatsSource& operator=(StatsSource&&) noexcept = default;

 private:
  StatsSource() = default;
  qosc::Manifest manifest_;
  std::string ifname_, pin_dir_;
  std::string ifb_;     // the IFB of --ingress-shape ("" = none)
  Fd stats_, flows_, pifo_, iso_slots_, iso_stats_;
};

// ---- the derived view: counters + rates ------------------------------------------

struct HookView {
  uint64_t packets = 0, bytes = 0, drop_policer = 0, drop_rule = 0;
  double pps = 0, bps = 0;      // from the previous sample (0 without one)
};
struct QueueView {
  bool present = false;
  uint32_t minor = 0;
  uint64_t bytes = 0, packets = 0, drops = 0, overlimits = 0, backlog_bytes = 0, qlen = 0;
  uint64_t rate_bps = 0, ceil_bps = 0;
  double bps = 0, pps = 0, drops_ps = 0;
  double delay_ms = 0;          // backlog * 8 / (measured rate, or ceil when idle)
};
// An isolated class's active flows or hosts (idle for less than a second).
struct IsoMemberView {
  std::string who;
  std::string queue;            // its sub-queue, "11:14"
  uint64_t bytes = 0;           // sent from its sub-queue
  double bps = 0;
  double idle_s = 0;
};
struct IsolationView {
  std::string mode;             // flows, saddr, daddr
  bool nat = false;
  uint32_t slots = 0, per_host = 1;
  IsoCounters counters;
  std::vector<IsoMemberView> active;   // by rate, highest first
};
struct ClassView {
  uint32_t id = 0;
  std::string name;
  uint32_t priority = 0, weight = 1, quantum = 0;
  uint64_t cap_bps = 0;         // the class's `rate` (0 = none)
  bool is_default = false;
  HookView xdp, tc;
  QueueView queue;              // the class's HTB leaf (not for pifo: see View::bands)
  QueueView ingress_queue;      // its leaf on the IFB of --ingress-shape
  std::optional<IsolationView> iso;
};
struct FlowView {
  FlowEntry flow;
  std::string cls;              // class name
  double duration_s = 0;        // last - first
  double idle_s = 0;            // now - last
  double bps = 0;               // over the last interval (0 without a previous sample)
};
struct View {
  std::string ifname, policy, scheduler;
  uint64_t link_bps = 0;
  double unix_time = 0;
  double interval_s = 0;        // time since the previous sample (0: none)
  std::vector<ClassView> classes;
  HookView rule_xdp, rule_tc;   // the drop slot: packets dropped by `drop` rules, per hook
  std::vector<QueueView> bands; // pifo: one per SP-PIFO band (band b = minor 0x10 + b)
  LinkCounters link;            // root qdisc
  double link_bps_now = 0;      // root qdisc send rate
  std::string qdisc_error;
  std::vector<FlowView> flows;  // top N
  bool show_members = false;    // the terminal view lists isolated classes' active flows/hosts (--flows)
  size_t flow_count = 0;        // entries in the flow table
  bool has_flow_table = true;   // false: compiled with qosc --flow-table 0
  uint32_t flow_sample = 1;     // > 1: one sample per N x QOS_FLOW_SAMPLE_UNIT bytes (qosc --flow-sample): estimates
  // --ingress-shape: downloads queued on an IFB device with its own HTB tree
  // (the same TC program classifies there, so its packets count in `tc`).
  std::string ifb;
  LinkCounters ifb_link;
  double ifb_link_bps_now = 0;
  std::vector<QueueView> ifb_bands;   // pifo
  std::optional<uint64_t> pifo_inversions;
  std::optional<adaptive::Snapshot> adaptive;   // the adaptive rate, when its controller runs
  bool adaptive_expected = false;               // the policy has an adaptive rate
};

View make_view(const qosc::Manifest& m, const std::string& ifname, const Sample& cur, const Sample* prev,
               size_t top_flows);

nlohmann::json to_json(const View& v);
// The terminal view (no trailing escape sequences; the caller positions it).
std::string render_text(const View& v, bool color);
// Prometheus text exposition format (version 0.0.4).
std::string prometheus_text(const View& v);

// "12.3 Mbit/s", "980 bit/s"; "1.5 MB"; used by the view.
std::string human_bps(double bps);
std::string human_bytes(double bytes);

// ---- the Prometheus endpoint ---------------------------------------------------------

// A tiny HTTP/1.0 server on its own thread: GET /metrics answers with
// `produce()`; anything else 404. Binds to loopback only unless
// allow_remote (an address that is not 127.0.0.0/8 or ::1 is refused).
class MetricsServer {
 public:
  using Producer = std::function<std::string()>;
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& addr_port, bool allow_remote,
                                                      Producer produce);
  ~MetricsServer();
  uint16_t port() const { return port_; }
  const std::string& address() const { return addr_; }

 private:
  MetricsServer() = default;
  void loop();
  Fd listen_;
  Fd wake_[2];
  std::thread thread_;
  Producer produce_;
  std::string addr_;
  uint16_t port_ = 0;
};
// Parses "127.0.0.1:9464", "[::1]:9464", ":9464" (loopback) or "9464".
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> parse_host_port(const std::string& s);
bool is_loopback_address(const std::string& host);

// ---- the command and the live view -----------------------------------------------------

struct LiveViewOptions {
  double interval_s = 1.0;
  size_t top_flows = 10;
  bool color = true;
  std::ostream* out = nullptr;  // default std::cout
};
// The live view of the foreground mode (see the top of this file).
int run_live_view(const StatsSource& src, const LiveViewOptions& opts, const std::atomic<bool>& stop);

struct StatsOptions {
  std::string ifname;
  std::string pin_dir;          // "" = stats_pin_dir(ifname)
  bool json = false;
  bool watch = false;
  double interval_s = 1.0;      // watch period; one-shot: the window rates are measured over
  bool window = true;           // one-shot: measure rates over interval_s (false: counters at once)
  size_t top_flows = 0;         // 0: no flow table in the output
  std::string metrics;          // "" = no endpoint
  bool metrics_allow_remote = false;
  uint64_t count = 0;           // samples to print in watch mode (0 = until stopped)
  int verbosity = 0;
};
// `qosrun stats`: exit code. `stop` (may be null) ends watch/metrics modes;
// the command installs SIGINT/SIGTERM handlers that set its own flag.
int run_stats(const StatsOptions& opts, std::ostream& out, std::ostream& err, const std::atomic<bool>* stop = nullptr);

namespace cli {
class CommandTable;
void register_stats(CommandTable& t);   // stats_cmd.cpp: `qosrun stats`
}  // namespace cli

}  // namespace qosrun
