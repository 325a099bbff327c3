#pragma once
// Per-host plans on an attached policy (docs/hosts.md): where each host of a
// host table lives in the HTB tree, and applying a table as the difference
// to what is there.
//
//   root htb 1: (or, with several TX queues, one HTB per queue under mq: qosrun/txq.hpp)
//     1:1                      the link
//       1:<0x10+id> ...        the policy's own leaves (traffic of no listed host)
//       1:<0x1000+g>           group g: rate = its hosts' assured rates, ceil = link
//         htb <G>:             the group's own HTB, one cls_bpf filter returning skb->cb[QOS_CB_HOST]
//           <G>:1              never limits
//             <G>:<S>          a host: rate = its plan's rate (scaled to fit the link), ceil, burst
//               <G>:<S+1+id>   one leaf per class of its plan, each with a bfifo <H>:
//
// Why groups: adding or deleting an HTB class walks every class of its qdisc
// (tc_bind_tclass), so a qdisc of 8,000 classes takes 2.2 s to fill and
// 40,000 take 130 s; a group of at most kHostsPerGroup hosts keeps every add
// cheap. A host keeps its group, slot and handles while it exists.
//
// Planning (plan_placement, diff) is plain computation; apply() changes the
// interface and the qos_hosts map.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "qos_abi.h"
#include "qosc/manifest.hpp"
#include "qosrun/host_table.hpp"
#include "qosrun/htb.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"

struct bpf_object;

namespace qosrun::hosts {

inline constexpr uint32_t kGroupMinorBase = 0x1000;   // group g's leaf in the root HTB: 1:(0x1000 + g)
inline constexpr uint32_t kMaxGroups = 0xffff - kGroupMinorBase;
inline constexpr uint32_t kHostsPerGroup = 64;        // at most, and fewer for plans of many classes:
inline constexpr uint32_t kClassesPerGroup = 1024;    // ... hosts x (1 + classes) stays near this
inline constexpr uint32_t kSlotStride = 0x80;         // host slot s: class <G>:(0x80 (s+1)), leaves above it
// Qdisc handles (16 bits per interface) qosrun gives groups and bfifos:
// above the root's (1:, 0x10.., 0x100..) and isolation's (0x1000 + slots),
// below the kernel's automatic ones (0x8000..) when a class isolates.
inline constexpr uint32_t kFirstHandle = 0x2000;
inline constexpr uint32_t kAutoHandleFirst = 0x8000;
// The kernel finds a qdisc by handle in a hash of 16 buckets per device
// (dev->qdisc_hash, hash_32(handle, 4)), walking a bucket's list from the
// newest entry; every class add or change looks up its qdisc there, and a
// new queue's handle is searched for in its whole bucket. With one bfifo per
// leaf, a bucket holds thousands of queues: the groups' HTB qdiscs get
// handles of one bucket of their own, which no queue takes, so looking a
// group up walks only groups (docs/hosts.md, "Cost").
inline constexpr uint32_t kGroupHashBucket = 15;
constexpr uint32_t qdisc_hash_bucket(uint32_t major) { return ((major << 16) * 0x61C88647u) >> 28; }
// With hosts, the policy's own leaves (traffic of no listed host) are
// assured 1/kUnlistedShare of what they would be without (they still borrow
// up to their ceilings), and hosts' assured rates sum to at most the rest.
inline constexpr uint64_t kUnlistedShare = 10;
// A pinned map larger than this is not made at attach (a table that needs more is sharded).
inline constexpr size_t kMaxMapEntries = 1u << 20;

// A host's leaves: class id -> the handle of the leaf's bfifo (major << 16),
// ascending by class id. A plan has a few classes, so a sorted vector (one
// allocation per host, none per lookup) rather than a std::map, whose node
// per class made 30,000 allocations for each placement of 10,000 hosts read,
// planned or copied.
class LeafHandles {
 public:
  using value_type = std::pair<uint32_t, uint32_t>;
  using const_iterator = std::vector<value_type>::const_iterator;
  const_iterator begin() const { return v_.begin(); }
  const_iterator end() const { return v_.end(); }
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  void reserve(size_t n) { v_.reserve(n); }
  const_iterator find(uint32_t cls) const {
    auto it = lower(cls);
    return it != v_.end() && it->first == cls ? it : v_.end();
  }
  bool count(uint32_t cls) const { return find(cls) != v_.end(); }
  uint32_t at(uint32_t cls) const {
    auto it = find(cls);
    if (it == v_.end()) throw std::out_of_range("no leaf of this class");
    return it->second;
  }
  // Sets the handle of class `cls`, adding the class where it belongs.
  void set(uint32_t cls, uint32_t handle) {
    auto it = lower(cls);
    if (it != v_.end() && it->first == cls) v_[static_cast<size_t>(it - v_.begin())].second = handle;
    else v_.insert(it, {cls, handle});
  }
  friend bool operator==(const LeafHandles&, const LeafHandles&) = default;

 private:
  const_iterator lower(uint32_t cls) const {
    return std::lower_bound(v_.begin(), v_.end(), cls, [](const value_type& e, uint32_t c) { return e.first < c; });
  }
  std::vector<value_type> v_;
};

// A host where it is: group, slot, handles, and what it was given.
struct PlacedHost {
  std::string name, plan;
  std::vector<Prefix> prefixes;   // sorted
  uint32_t group = 0;             // index g
  uint32_t slot = 0;
  uint32_t host_id = 0;
  uint64_t rate_bps = 0;          // its assured rate as applied (the plan's, scaled)
  LeafHandles leaves;
  uint64_t fingerprint = 0;       // of every class parameter applied: a change shows as another value
  uint32_t host_minor() const { return kSlotStride * (slot + 1); }
  uint32_t minor_base() const { return host_minor() + 1; }   // leaf of class c: minor_base + c (qos_abi.h)
  friend bool operator==(const PlacedHost&, const PlacedHost&) = default;
};

static_assert(std::is_nothrow_move_constructible_v<PlacedHost>, "vectors of hosts grow by moving, not copying");

struct Group {
  uint32_t index = 0;
  uint32_t major = 0;             // its HTB qdisc handle (major << 16)
  uint64_t rate_bps = 0;          // its leaf Q:(0x1000 + g) as applied
  // The TX queue it lives on (qosrun/txq.hpp): its leaf is in that queue's
  // HTB (Q = txq::htb_major(queue); 1 for queue 0, and always without mq).
  // Chosen when the group is made, kept while it exists.
  uint32_t queue = 0;
  uint32_t leaf_classid() const;  // Q:(0x1000 + g)
  friend bool operator==(const Group&, const Group&) = default;
};

// Everything the hosts of an interface hold, kept in /run/qosc/<if>/hosts.state.
struct Placement {
  std::vector<Group> groups;        // ascending index
  std::vector<PlacedHost> hosts;    // ascending name
  uint32_t next_host_id = 1;
  // Counts the placements written: a journal names the one it belongs to.
  uint64_t generation = 0;
  // Classes of removed hosts to delete; the next apply deletes them first
  // (again, when the apply that recorded them did: the kernel says ENOENT).
  std::vector<uint32_t> pending_deletes;
  // From the journal (<state>.journal) of an apply killed while it created
  // classes for this placement: they are in the kernel and in no placement.
  // The next apply deletes them first and writes the whole map again.
  std::vector<uint32_t> journal_deletes;
  const Group* group(uint32_t index) const;
  const PlacedHost* host(const std::string& name) const;
  friend bool operator==(const Placement&, const Placement&) = default;
};

// `pending`: the classes to record as pending_deletes (nullptr: p's own).
std::string to_text(const Placement& p, const std::vector<uint32_t>* pending = nullptr);
Result<Placement> placement_from_text(const std::string& text, const std::string& source);
// The interface's placement; empty when it has none.
Result<Placement> read_placement(const std::string& path);
Status write_placement(const std::string& path, const Placement& p,
                       const std::vector<uint32_t>* pending = nullptr);   // write + rename
// The placement's text, in pieces written one after another (to_text's whole, or Delta's).
Status write_placement_text(const std::string& path, std::span<const std::string_view> parts);
// <path>.journal: the classes an apply creates for placement `p` before it records the next one.
std::string journal_file(const std::string& placement_path);
// The classes the journal lists for placement `generation`: an apply killed
// while creating them (empty: none, or a journal of another placement).
std::vector<uint32_t> read_journal(const std::string& placement_path, uint64_t generation);
Status write_journal(const std::string& placement_path, const Placement& p, const std::vector<uint32_t>& creating);

// What the tree looks like for one policy on one interface.
struct Shape {
  const qosc::Manifest* manifest = nullptr;
  uint64_t link_bps = 0;
  uint32_t mtu = 1500, max_skb = 0;
  // Handles the placement must not take (the root tree's and isolation's).
  std::vector<std::pair<uint32_t, uint32_t>> reserved_majors;   // [first, last]
  uint32_t last_handle = 0xffff;
  // TX queues host groups are spread over, each with its own HTB (qosrun/txq.hpp); 1: one HTB, no queue_mapping.
  uint32_t tx_queues = 1;
  static Shape of(const qosc::Manifest& m, const htb::Plan& root, uint32_t mtu, uint32_t max_skb);
  uint32_t hosts_per_group() const;
};

// The policy's own leaves of a hosts policy: assured 1/kUnlistedShare of
// their rate, so that hosts' assured rates fit in the rest of the link.
void make_room_for_hosts(htb::Plan& root);

// The HTB parameters of one host: its class and one leaf per class of its plan.
struct HostClasses {
  nl::HtbClassParams host;
  struct Leaf {
    uint32_t class_id;
    nl::HtbClassParams params;
    htb::LeafQueue queue;
  };
  std::vector<Leaf> leaves;
  uint64_t class_mask = 0;
  uint32_t default_leaf = 0;
  uint64_t fingerprint = 0;
};

// Plans `table` against `old`: hosts that stay keep group, slot, handles and
// id; new ones take free slots (not slots freed by this same change: their
// classes are deleted last) and new handles. Errors: out of handles, groups.
Result<Placement> plan_placement(const Placement& old, const HostTable& table, const Shape& shape);

// The assured rate each plan gets now: its rate, scaled by a power of
// 2^(1/4) when the plans of all hosts exceed the link's share for hosts (a
// coarse step, so one more host rarely changes every other host's rate).
std::map<std::string, uint64_t> plan_rates(const Shape& shape, const std::vector<std::string>& plan_of_each_host);
// ... from how many hosts are on each plan.
std::map<std::string, uint64_t> plan_rates(const Shape& shape, const std::map<std::string, size_t, std::less<>>& hosts_on);

// HostClasses per (plan, rate), without the classids: 10,000 hosts share a few plans.
class ClassCache {
 public:
  std::map<std::pair<std::string, uint64_t>, HostClasses> entries;
  // The classes of (plan, rate), computed once.
  Result<const HostClasses*> get(const Shape& shape, const std::string& plan, uint64_t rate);
};
Result<HostClasses> host_classes(const Shape& shape, const Group& g, const PlacedHost& h, ClassCache* cache = nullptr);
// Group g's leaf in the root HTB, and the never-limiting root of its own HTB.
nl::HtbClassParams group_leaf(const Shape& shape, const Group& g);
nl::HtbClassParams group_root(const Shape& shape, const Group& g);
// The qos_hosts value of a host (its queue_mapping only with several TX queues).
qos_host_val map_value(const Shape& shape, const Group& g, const PlacedHost& h, const HostClasses& c);
// The netlink request that makes (flags NLM_F_CREATE | NLM_F_EXCL) or changes
// (0) leaf `l`'s queue, handle `handle`.
nl::NlMessage leaf_queue_message(int ifindex, const HostClasses::Leaf& l, uint32_t handle, uint16_t flags);
qos_host_key map_key(const Prefix& p);

struct Summary {
  size_t added = 0, changed = 0, removed = 0, unchanged = 0;
  size_t messages = 0, map_writes = 0;   // netlink requests and map updates/deletes made
  size_t groups = 0;                      // host groups after the apply
  double seconds = 0;
  std::vector<std::string> notes;
};

// Measured with 10,000 hosts: deleting a class that is gone costs the next
// apply ~5 us, recording the placement again (quick path) ~1.1 ms.
inline constexpr size_t kRecordAgainAbove = 200;

struct ApplyTarget {
  nl::RtnlSocket* sock = nullptr;
  int ifindex = 0;
  std::string ifname;
  int map_fd = -1;            // the qos_hosts map
  int drain_ms = 200;         // how long a removed host's queue may take to empty
  int exact_fd = -1;          // qos_hosts_exact (single addresses), -1: the object has none, all in qos_hosts
  // Called with the classes an apply is about to create (in the order to
  // delete them) before it creates any; empty: no journal (tests).
  std::function<Status(const Placement& old, const std::vector<uint32_t>& creating)> journal;
  // Record the placement again once more than kRecordAgainAbove deletes went
  // through, without them as pending: worth it where recording is cheap (the
  // quick path writes the untouched hosts' lines as they were); else the
  // next apply deletes them again first (ENOENT).
  bool record_after_deletes = false;
};

// Changes the interface from `old` to `next` (plan_placement's): creates
// groups, classes and queues of new hosts, then writes their map entries;
// changes classes of changed hosts in place; deletes map entries of removed
// hosts, waits for their queues to drain (at most drain_ms), then deletes
// their classes. Hosts equal in both are not touched. A kernel refusal while
// creating or changing undoes this call's changes and lists every refusal
// with its host; `committed` is called with the placement to record once the
// map holds the new hosts (before the slow deletes), and again at the end.
Result<Summary> apply(const ApplyTarget& t, const Shape& shape, const Placement& old, const Placement& next,
                      const std::function<Status(const Placement&, const std::vector<uint32_t>& pending)>& committed);

// ---- the interface's hosts, for the commands (hosts_iface.cpp) ----------------------------------

std::string placement_file(const std::string& ifname);   // /run/qosc/<if>/hosts.state
TableRules rules_for(const qosc::Manifest& m, size_t map_entries);
// The shape of an attached policy's tree (the MTU it was planned for).
Shape shape_of(const state::Record& r);

// attach --hosts: the table, read and checked against the policy's plans
// before anything on the interface changes. Errors: the policy has no
// `hosts`, --queues none, a bad table.
Result<HostTable> table_for_attach(const qosc::Manifest& m, const std::string& path, bool queues);
// Before load: the policy's hosts map made large enough for `t`.
Status size_map(bpf_object* obj, const qosc::Manifest& m, const HostTable& t);
// After the root HTB is built: groups, hosts and map entries of `t`; the
// placement written beside the record. A failure leaves what it made for
// the attach's undo (which removes the root qdisc and with it every group).
Result<Summary> attach_hosts(nl::RtnlSocket& s, const state::Record& rec, int map_fd, const HostTable& t,
                             int exact_fd = -1);

// attach and reload: a policy with `hosts` and downloads shaped on an IFB
// (--ingress-shape) are refused together. The TC program is the same on the
// IFB, where a host's address is the other one (saddr for `hosts daddr`)
// and where no host groups exist: a listed host's packet there would leave
// the IFB's classes for its default one. The error says what to do instead.
Status check_ingress_shape(const qosc::Manifest& m, bool ingress_shape);

// Before the root qdisc goes (detach): the host groups of `ifname`, newest
// group first. Every HTB class and qdisc holds a filter block that a device
// without ndo_setup_tc (veth, IFB) records in one list for the whole system,
// newest first, and deleting a block searches that list for it: deleting
// the root whole frees the groups in hash order, walking most of the list
// for each; newest first finds each block near the head. Best effort: the
// root's deletion takes whatever is left.
void remove_groups(nl::RtnlSocket& s, int ifindex, const std::string& ifname);

// reload: can policy `next` keep the hosts on `ifname` (has `hosts` and every
// plan a host is on)? The error says what to do.
Status check_reload(const std::string& ifname, const qosc::Manifest& next);
// After a reload: the same hosts under the new policy's plans; classes whose
// parameters moved are changed in place, the others are not touched.
Result<Summary> reapply(nl::RtnlSocket& s, const state::Record& rec, int map_fd, int exact_fd = -1);

// ---- the quick path of `hosts apply` (hosts_delta.cpp) --------------------------------------------

// The bytes of the last table applied, beside the placement (<placement>.table),
// after a line "generation G" naming the placement they made: what the next
// apply compares its table with.
std::string applied_table_file(const std::string& placement_path);
Status write_applied_table(const std::string& placement_path, uint64_t generation, std::string_view text);

// A table planned from the lines in which it differs from the last one
// applied: what the whole path (plan_placement of every host, then apply)
// would do, given to apply() as the part of the placements that moves.
class Delta {
 public:
  Placement old_part;    // every group and pending delete; of the hosts, those whose line went or changed
  Placement next_part;   // every group that keeps hosts; the hosts of the lines that came or changed
  size_t untouched = 0;  // hosts in neither: their lines, classes and map entries stay as they are
  size_t lines = 0;      // lines of the two tables without an equal in the other
  // The whole placement after it: the untouched hosts' lines as they were
  // read, the others from `next` (apply()'s `committed` gets next_part);
  // record() writes it to `placement_path` (write_placement_text).
  std::string placement_text(const Placement& next, const std::vector<uint32_t>& pending) const;
  Status record(const std::string& placement_path, const Placement& next, const std::vector<uint32_t>& pending) const;

  Delta();
  ~Delta();
  Delta(Delta&&) noexcept;
  Delta& operator=(Delta&&) noexcept;

 private:
  struct Text;
  std::unique_ptr<Text> text_;
  // The text in pieces: `head` (counters and groups) and `lines` (the hosts
  // written anew, the pending line) hold what the old placement does not.
  std::vector<std::string_view> placement_parts(const Placement& next, const std::vector<uint32_t>& pending,
                                                std::string& head, std::string& lines) const;
  friend std::optional<Delta> plan_delta(const std::string&, const std::string&, std::string_view, TableFormat,
                                         const TableRules&, const Shape&, std::string*);
};

// The quick path for `table` (its text; `table_source` names it in
// messages) on the interface whose placement is at `placement_path`, or
// nothing, with the reason in `why`, when the whole path must take it: a
// JSON table, no record of the last table of this placement, an
// interrupted apply, any problem in the lines that changed (the whole path
// lists every problem), plan rates that move, a new group.
std::optional<Delta> plan_delta(const std::string& placement_path, const std::string& table_source,
                                std::string_view table, TableFormat format, const TableRules& rules,
                                const Shape& shape, std::string* why);

struct ApplyOptions {
  std::string ifname;
  std::string table;          // path
  int drain_ms = 200;
  int verbosity = 0;
  bool quick = true;          // the quick path when it applies (QOSRUN_HOSTS_QUICK=0: never)
};
// `qosrun hosts apply IFACE TABLE`.
Result<Summary> apply_table(const ApplyOptions& o, std::ostream& log);

// `qosrun hosts show IFACE`: each host with its class counters.
struct HostView {
  PlacedHost host;
  uint32_t group_major = 0;
  uint32_t queue = 0;         // its group's TX queue
  uint32_t classid = 0;       // the host's class
  uint64_t bytes = 0, packets = 0, drops = 0;
  uint32_t backlog = 0;
  bool found = false;         // its class exists in the kernel
};
struct HostsReport {
  std::string ifname, policy;
  std::vector<HostView> hosts;
  size_t groups = 0;
  uint32_t tx_queues = 1;     // queues hosts are spread over (1: one HTB)
  std::vector<size_t> groups_per_queue;   // with tx_queues > 1
};
Result<HostsReport> show(const std::string& ifname);

}  // namespace qosrun::hosts
