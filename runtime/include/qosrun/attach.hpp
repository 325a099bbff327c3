#pragma once
// Attaching a compiled policy to an interface for real, and taking it off
// again: the XDP program on ingress, the TC program on clsact egress, an HTB
// tree built from the manifest (qosrun/htb.hpp), optionally an IFB device
// shaping downloads, pinned programs and maps, and a state record
// (qosrun/state.hpp) saying what this run created and what was there before.
//
// All or nothing: every step is recorded before it is taken, and any
// failure undoes what this run created with the same code `detach` uses, so
// the interface is left as it was. A process killed with -9 leaves the record
// and the pins; `qosrun detach` or the next `attach` cleans them.
//
//   auto a = qosrun::attach({.object = "gaming.bpf.o", .ifname = "eth0"}, std::cerr);
//   ...
//   qosrun::detach({.ifname = "eth0"}, std::cerr);
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "qosc/manifest.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/state.hpp"

namespace qosrun {

// Our TC filters: clsact egress (the policy's program) and, with
// --ingress-shape, clsact ingress (matchall + mirred to the IFB).
inline constexpr uint32_t kTcHandle = 1;
inline constexpr uint32_t kTcPriority = 0x51c0;

enum class XdpMode : uint8_t { Auto, Native, Skb };   // Auto: native, else skb with a note

struct AttachOptions {
  std::string object;           // .bpf.o written by qosc
  std::string ifname;
  XdpMode mode = XdpMode::Auto;
  bool queues = true;           // --queues htb (true) | none
  bool ingress_shape = false;   // IFB + HTB for downloads
  bool force = false;           // replace a policy already attached / a root qdisc we cannot restore
  bool xdp_meta = false;        // XDP writes the class into the packet metadata (LoadOptions::xdp_meta)
  bool foreground = false;      // the caller stays and detaches (records its pid as the owner)
  // --reflector: hosts the adaptive rate's controller probes (docs/adaptive.md);
  // empty: the interface's default gateway. Only for a policy with an adaptive rate.
  std::vector<std::string> reflectors;
  // --hosts: a host table (docs/hosts.md), checked against the policy's plans
  // before anything changes; only for a policy with `hosts`.
  std::string hosts_table;
  // --tx-queues: how many TX queues hosts are spread over, each with its own
  // HTB under an mq root (qosrun/txq.hpp). 0 (auto): every real TX queue for
  // a policy with hosts, one HTB otherwise; 1: one HTB as without hosts.
  uint32_t tx_queues = 0;
  // --steer-from: interfaces where the hosts' packets come in; each gets the
  // policy's steering XDP program, which sends a listed host's packet to the
  // CPU of its TX queue (docs/hosts.md "Steering"). Needs hosts on several TX queues.
  std::vector<std::string> steer_from;
  int verbosity = 0;
};

struct Attached {
  state::Record record;
  LoadedPolicy policy;          // keeps the programs and maps open (the foreground view reads the maps)
  std::vector<std::string> notes;
  std::string hosts;            // with --hosts: "N hosts in G groups (T ms)"
};

// Attaches; on failure nothing this call created is left behind.
Result<Attached> attach(const AttachOptions& opts, std::ostream& log);

struct DetachOptions {
  std::string ifname;
  bool force = false;           // also when a live foreground qosrun owns the interface
  pid_t as_owner = 0;           // the foreground's own detach: only if it still owns the record
  int verbosity = 0;
};
// Detaches and restores what was there before. `warnings` gets what could
// not be put back exactly (also printed to `log`).
Status detach(const DetachOptions& opts, std::ostream& log, std::vector<std::string>* warnings = nullptr);

struct ReloadOptions {
  std::string object;
  std::string ifname;
  int verbosity = 0;
  int drain_ms = 200;           // how long an obsolete HTB class may take to empty
};
struct Reloaded {
  state::Record record;
  std::vector<std::string> reused_maps, new_maps;
  std::vector<std::string> notes;
};
// Swaps the policy in place: programs replaced atomically, maps reused where
// compatible (statistics continue), HTB classes changed in place. On failure
// the old policy stays as it was.
Result<Reloaded> reload(const ReloadOptions& opts, std::ostream& log);

// What is attached, checked against the kernel.
struct StatusReport {
  std::string ifname;
  bool attached = false;        // a state record exists
  state::Record record;
  bool stale = false;           // its owner is gone (kill -9 / crash)
  bool xdp_ok = false, tc_ok = false, queues_ok = false, ingress_ok = false;
  std::vector<bool> steering_ok;   // per record.steering: its program is on its interface
  std::string xdp_now;          // what the kernel has now ("id 57 native", "none")
  std::string root_qdisc_now;   // "htb 1:", "noqueue 0:"
  std::vector<std::string> problems;
};
Result<StatusReport> status_of(const std::string& ifname);

// ---- the foreground form (`qosrun OBJ IFACE`) -------------------------------------------

struct ForegroundContext {
  const qosc::Manifest& manifest;
  std::string ifname;
  int stats_fd = -1;            // qos_stats (per-CPU array, nclasses + 1)
  int flows_fd = -1;            // qos_flows (LRU hash), -1 when absent
  std::string pin_dir;
  const std::atomic<bool>& stop;   // set by SIGINT/SIGTERM/SIGHUP: return soon after
  int verbosity = 0;
};
using ForegroundView = std::function<int(const ForegroundContext&)>;

// What `qosrun OBJ IFACE` shows while it runs. The statistics code replaces
// the basic view by calling this from its register function (before parse).
void set_foreground_view(ForegroundView view);
// The basic view: one line per second with each class's packet counts.
int basic_foreground_view(const ForegroundContext& ctx);

// Foreground: attach, run the view until a signal, detach. Exit code.
int run_foreground(const AttachOptions& opts, std::ostream& out, std::ostream& err);

}  // namespace qosrun
