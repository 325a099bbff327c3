#pragma once
// Persistent state of an attached policy, one set per interface:
//
//   /sys/fs/bpf/qosc/<ifname>/      pinned programs (qos_xdp, qos_tc) and maps
//                                   (qos_stats, qos_flows, ...) by their names
//   /run/qosc/<ifname>/state.json   what this attach created and what was there
//                                   before (bpffs holds no regular files)
//   /run/qosc/<ifname>.lock         flock: one qosrun at a time per interface
//
// $QOSRUN_PIN_ROOT and $QOSRUN_STATE_ROOT move the two roots (tests).
// <ifname> is the interface name in the host's network namespace and
// "<ifname>@ns<cookie>" in any other (see state_key); state.json records the
// namespace too, and qosrun refuses to touch a record made in another one.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "qosc/manifest.hpp"
#include "qosrun/htb.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/netlink.hpp"
#include "qosrun/txq.hpp"

namespace qosrun::state {

struct Paths {
  std::string pin_root;     // /sys/fs/bpf/qosc
  std::string pin_dir;      // /sys/fs/bpf/qosc/<ifname>
  std::string state_dir;    // /run/qosc/<ifname>
  std::string state_file;   // /run/qosc/<ifname>/state.json
  std::string adaptive_file;   // /run/qosc/<ifname>/adaptive.json: the adaptive rate's live state
  std::string hosts_file;   // /run/qosc/<ifname>/hosts.state: where each host of a host table is (qosrun/hosts.hpp)
  std::string lock_file;    // /run/qosc/<ifname>.lock
};
Paths paths_for(const std::string& ifname);
// The name under which an interface's state is kept: the interface name in
// the host's network namespace, "<ifname>@ns<cookie>" in any other.
std::string state_key(const std::string& ifname);
// Where state.json of `ifname` lives (for `qosrun stats` and other readers).
std::string state_file(const std::string& ifname);

// ---- injected failures (tests) ------------------------------------------------------------

// Returns an error when $QOSRUN_FAIL_AT names `step` (a comma-separated
// list may name several). Steps: load, pin, htb-root, xps (XPS recorded, not
// yet off: one HTB per TX queue), htb-class, htb-leaf,
// clsact, tc-filter, xdp, ifb, ifb-redirect, ifb-htb, ifb-tc, state;
// reload: reload-load, reload-htb, reload-tc, reload-xdp, reload-change;
// hosts (attach --hosts, hosts apply): hosts, hosts-group, hosts-create,
// hosts-change, hosts-map, hosts-delete, hosts-state.
// $QOSRUN_PAUSE_AT=<step> sleeps 30 s at that step first (after printing
// "paused at step"), so a test can kill qosrun half-way.
Status fail_point(std::string_view step);

// ---- the lock ------------------------------------------------------------------------------

class Lock {
 public:
  // flock(LOCK_EX) on the interface's lock file, waiting at most `wait_ms`
  // ($QOSRUN_LOCK_WAIT_MS overrides it).
  static Result<Lock> acquire(const std::string& ifname, int wait_ms = 3000);
  // The same on a lock file given by its path; `what` names it in messages.
  static Result<Lock> acquire_file(const std::string& path, const std::string& what, int wait_ms);
  // Unlinks the lock file while holding it, when its interface has no record
  // left, so that /run/qosc does not keep one file per interface ever used.
  // Safe: a qosrun that opened the old file and then gets the lock sees the
  // file is no longer at its path and locks the new one (see acquire_file).
  void remove_file();
  Lock(Lock&&) noexcept = default;
  Lock& operator=(Lock&&) noexcept = default;

 private:
  Lock() = default;
  Fd fd_;
  std::string path_;
};

// ---- bpffs --------------------------------------------------------------------------------

// Makes sure `dir`'s file system is a bpffs, mounting one on the pin root
// when needed (/sys/fs/bpf normally). `mounted` says whether it did.
Status ensure_bpffs(const std::string& pin_root, bool* mounted);
// Removes every pin in `dir` and the directory (missing is fine).
Status remove_pins(const std::string& dir);
// Pins `fd` at `path`, replacing a pin already there.
Status pin_fd(int fd, const std::string& path);

// ---- processes and namespaces ----------------------------------------------------------------

uint64_t process_start_time(pid_t pid);   // /proc/<pid>/stat field 22; 0 when gone
bool process_alive(pid_t pid, uint64_t start_time);
uint64_t netns_inode();                   // of the calling thread
// The calling thread's network namespace as the kernel names it for good:
// the netns cookie (SO_NETNS_COOKIE). Inode numbers of deleted namespaces
// are handed to new ones, so a record keyed by inode would be inherited by
// an unrelated namespace; a cookie is never reused. 0 when unavailable.
uint64_t netns_cookie();
// The cookie of the namespace behind an nsfs file (/proc/PID/ns/net,
// /run/netns/NAME); 0 when it cannot be entered.
uint64_t netns_cookie_of(const std::string& nsfile);
// Is `netns`, as a record of `format` names a namespace, the calling thread's?
bool netns_is_here(int format, uint64_t netns);

// ---- the record -----------------------------------------------------------------------------

struct TcAttachment {         // our bpf filter on clsact egress
  bool clsact_created = false;   // we created clsact (destroy it on detach)
  bool attached = false;
  uint32_t handle = 0, priority = 0;
  uint32_t prog_id = 0;
};
// The XDP mode a program is attached in ("native" / "skb" in state.json).
enum class XdpAttachMode : uint8_t { Native, Skb };
const char* to_string(XdpAttachMode m);
struct XdpAttachment {
  bool attached = false;
  XdpAttachMode mode = XdpAttachMode::Native;
  uint32_t prog_id = 0;
};
// The steering program on another interface (attach --steer-from,
// docs/hosts.md "Steering"): where a listed host's packets come in, each is
// sent to the CPU of its TX queue on the shaped interface.
struct Steering {
  std::string ifname;
  int ifindex = 0;
  XdpAttachment xdp;
};
struct Queues {
  bool created = false;       // root replaced by our HTB
  htb::Plan plan;
  // The root qdisc before we replaced it: nullopt = the kernel's default
  // (handle 0:), restored by deleting our root.
  std::optional<nl::QdiscInfo> previous;
  bool previous_restorable = true;   // false with --force over a qdisc we cannot rebuild
  // One HTB per TX queue under an mq root (qosrun/txq.hpp): `plan` is queue
  // 0's; nullopt: `plan` is the root.
  std::optional<txq::Layout> tx;
};
// One interface's share of the work: the interface itself, or the IFB of
// --ingress-shape.
struct Side {
  std::string ifname;
  int ifindex = 0;
  TcAttachment tc;
  bool has_queues = false;
  Queues queues;
};
struct Ingress {
  std::string ifb_name;
  int ifb_ifindex = 0;
  bool ifb_created = false;
  bool redirect_attached = false;
  bool clsact_created = false;       // on the main interface, for the ingress filter
  uint32_t redirect_prio = 0, redirect_handle = 0;
  Side ifb;                          // HTB + TC program on the IFB
};

// The adaptive rate's controller (docs/adaptive.md): the reflectors it
// probes and, in the persistent form, the supervisor process that runs it
// (`qosrun supervise IFACE`, started by attach, stopped by detach). In the
// foreground form the controller is a thread of the owner: pid 0.
struct Adaptive {
  std::vector<std::string> reflectors;
  pid_t supervisor_pid = 0;
  uint64_t supervisor_start = 0;   // process_start_time: a reused pid is not ours
};

// A reload in progress (`qosrun reload`), written before its first change to
// the interface and cleared when the new record is written. Until then the
// record still describes the old policy, whose programs stay pinned. A
// journal whose process is gone (kill -9, a crash) is an interrupted reload:
// the next reload or detach finishes it by putting the old policy back
// (lifecycle::recover_interrupted_reload).
struct ReloadJournal {
  pid_t pid = 0;
  uint64_t start = 0;           // process_start_time of pid
  std::string object;           // the object being loaded
  htb::Plan main_to;            // the trees it is changing to
  std::optional<htb::Plan> ifb_to;
  bool interrupted() const { return !process_alive(pid, start); }
};

// Where the record's owner is: each phase is written before its first step
// ("attaching", "attached", "detaching" in state.json).
enum class Phase : uint8_t { Attaching, Attached, Detaching };
const char* to_string(Phase p);

struct Record {
  // 2: `netns` is the namespace's cookie (1: its inode, which the kernel reuses).
  int format = 2;
  Phase phase = Phase::Attaching;
  std::string ifname;
  int ifindex = 0;
  uint64_t netns = 0;         // cookie of the namespace the interface is in
  uint64_t netns_inode = 0;   // its inode then: finds a live namespace to compare cookies with
  pid_t owner_pid = 0;        // the foreground qosrun, or the one attaching; 0 = persistent
  uint64_t owner_start = 0;
  bool foreground = false;
  std::string object;         // absolute path of the .bpf.o
  std::string created;        // ISO 8601 UTC
  uint32_t generation = 0;    // reloads so far
  qosc::Manifest manifest;
  Side main;                  // the interface: tc + queues
  XdpAttachment xdp;
  std::vector<Steering> steering;   // in the order attached
  std::optional<Ingress> ingress;
  // Pinned objects by name (the pin dir holds exactly these) and their kernel
  // ids, so they can be found without the bpffs (e.g. under `ip netns exec`,
  // which hides /sys/fs/bpf).
  std::map<std::string, uint32_t> progs, maps;
  std::string pin_dir;
  bool xdp_meta = false;      // attached with --xdp-meta (reload keeps it)
  std::optional<Adaptive> adaptive;   // the policy has an adaptive rate
  std::optional<ReloadJournal> reloading;   // a reload is changing the interface

  // Made in the calling thread's network namespace?
  bool in_this_netns() const;
  // An fd of the policy's map or program `name`: its pin in pin_dir, else its
  // recorded id (the bpffs may be hidden: `ip netns exec` remounts /sys);
  // -1 when neither is there. The caller closes it.
  int map_fd(const std::string& name) const;
  int prog_fd(const std::string& name) const;
  // Why the record no longer describes anything attached (empty: it does):
  // its owner process is gone while it was attaching or running in the
  // foreground (a crash or kill -9), its interface is gone or is another one
  // now, or every program it recorded is gone from the kernel. Only
  // meaningful in the record's own namespace.
  std::string stale_reason() const;
  bool stale() const { return !stale_reason().empty(); }
};

nlohmann::json to_json(const Record& r);
Record record_from_json(const nlohmann::json& j);   // throws on malformed input

// nullopt when there is no state file; an Error when it is unreadable.
Result<std::optional<Record>> read(const std::string& ifname);
// Atomically replaces state.json (write + rename).
Status write(const Record& r);
Status remove(const std::string& ifname);   // state file and its directory
// Interface names that have a state file (this state root).
std::vector<std::string> list();
// Removes the records (state, pins, lock) of namespaces that no longer
// exist, each under its own lock; returns one line per record removed. Such
// records are left when a namespace is deleted with a policy attached, and
// their pins would keep the programs and maps in memory for good.
std::vector<std::string> remove_orphans();

std::string now_iso8601();

}  // namespace qosrun::state
