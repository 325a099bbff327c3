#pragma once
// The HTB tree qosrun builds from a policy's manifest, as a plain value
// (planned without a kernel, applied through qosrun/netlink.hpp). How each
// scheduler of the language maps onto HTB parameters is explained in
// docs/qosrun.md ("The HTB mapping"); the constants live here.
//
//   root qdisc   htb 1:  default 1:<leaf of the default class>, r2q explicit
//   1:1          rate = ceil = link
//   1:<minor>    one leaf per class (minor 0x10 + class id) or, for pifo, one
//                per SP-PIFO band (0x10 + band); each with its queue (see
//                LeafQueue: a short bfifo, or for a slow leaf a queue of
//                frames) or, for a class with `isolate`, an HTB qdisc of
//                sub-queues (Nested), each with such a queue
//   1:<0x100+id> an isolated class's sparse flows (docs/isolation.md)
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "qosc/manifest.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/netlink.hpp"

namespace qosrun::htb {

inline constexpr uint32_t kMajor = 1;          // QOS_HTB_MAJOR
inline constexpr uint32_t kRootMinor = 1;      // 1:1, the link
inline constexpr uint32_t kMinorBase = QOS_HTB_MINOR_BASE;
inline constexpr uint32_t kMaxPrio = 7;        // HTB has 8 priorities (TC_HTB_NUMPRIO)
// strict_priority / pifo: the best priority present (pifo: band 0) is assured
// the link (split among its classes, held to each cap); every other leaf's
// assured rate is link / kSpAssuredDivisor, at least kMinRateBps: what a
// starved class still gets (see docs/qosrun.md).
inline constexpr uint64_t kSpAssuredDivisor = 1000;
inline constexpr uint64_t kMinRateBps = 8000;
inline constexpr uint32_t kLeafQueueMs = 5;     // bfifo limit: this much traffic at the leaf's ceil
inline constexpr uint32_t kLeafQueueMinFrames = 4;
// A leaf too slow for a bfifo that holds the largest packet (GSO, GRO: 64 KB
// is half a second at 1 Mbit/s) within this much of its ceiling gets a queue
// of frames holding this much instead: enough for TCP to fill the leaf at
// the RTTs of an access network, and a tenth of what one 64 KB packet takes
// at 1 Mbit/s.
inline constexpr uint32_t kFrameQueueMs = 50;
// The kernel clamps quanta it derives from rate / r2q to 1000..200000 and
// warns; explicit quanta (all of ours) are taken as given (sch_htb.c
// htb_change_class), as a u32 stored in an int.
// Quanta: HTB's round robin is only byte-exact when every quantum is at least
// the largest packet HTB is charged for (docs/qosrun.md, "The HTB mapping").
// The largest skb: the interface's gso_max_size / gro_max_size (and their IPv4
// variants) when qosrun can read them, never less than kDefaultMaxSkb
// (GSO_LEGACY_MAX_SIZE: veth's and most drivers' default, and what GRO builds on
// another interface for a forwarded packet), at most kMaxSkb (GSO_MAX_SIZE,
// BIG TCP). HTB charges a GSO packet its length plus the headers of each
// further segment (qdisc_pkt_len_init): counted as kSegmentHeaderBytes
// (Ethernet + IPv6 + TCP with full options) per segment of MTU - 100 bytes.
inline constexpr uint32_t kDefaultMaxSkb = 65536;
inline constexpr uint32_t kMaxSkb = 524288;
inline constexpr uint32_t kSegmentHeaderBytes = 14 + 40 + 60;
// drr/wfq: quanta keep the exact ratio up to kQuantumSpread:1; beyond, the
// largest is held at kQuantumSpread x the minimum (one class's turn stays
// bounded) and the smallest go below the minimum (a plan note says so).
inline constexpr uint32_t kQuantumSpread = 64;
// An isolated class's sparse leaf is assured this many times the class's
// sparse rate (manifest "sparse_bps"): room for that many sparse flows at
// once, and at least 1/kSparseShareOfCeil of the class's ceiling (new
// flows' first packets, ARP and TCP handshakes go there too).
inline constexpr uint64_t kSparseFlowsAssured = 8;
inline constexpr uint64_t kSparseShareOfCeil = 10;

// A leaf's queue. A bfifo of `limit` bytes drops a packet larger than what
// it has room for, so a bfifo must hold the largest packet the interface
// sees: kLeafQueueMs of the leaf's ceiling where that is enough, else one
// largest packet while that is within kFrameQueueMs. Slower leaves (below
// ~11.6 Mbit/s at 64 KB) get a frame queue (`split_above` > 0,
// nl::frame_queue_message): packets above `split_above` bytes are cut into
// frames, and the queue holds kFrameQueueMs of the ceiling (at least
// kLeafQueueMinFrames frames).
struct LeafQueue {
  uint32_t limit = 0;
  uint32_t split_above = 0;   // 0: a bfifo
  bool frames() const { return split_above != 0; }   // the kind: the kernel changes a qdisc only within it
  friend bool operator==(const LeafQueue&, const LeafQueue&) = default;
};
// `frame`: one full frame (MTU + Ethernet); `largest`: the largest packet
// (min_quantum + frame).
LeafQueue leaf_queue(uint64_t ceil_bps, uint32_t frame, uint32_t largest);
// The request that creates (NLM_F_CREATE | NLM_F_EXCL) or changes (0) it;
// the kernel changes a qdisc only within its kind (bfifo or frame queue).
nl::NlMessage leaf_queue_message(int ifindex, uint32_t parent_classid, uint32_t handle, const LeafQueue& q,
                                 uint16_t flags);
Status add_queue(nl::RtnlSocket& s, int ifindex, uint32_t parent_classid, uint32_t handle, const LeafQueue& q);

// Isolation (docs/isolation.md): an HTB qdisc below a leaf that divides the
// leaf's traffic into equal sub-queues. Its only filter is a two-instruction
// classic cls_bpf program that returns skb->cb[cb_slot], the classid the TC
// program chose (qos_abi.h "isolation"). Each sub-queue is a leaf with its
// LeafQueue, or (hosts with their own flows) another Nested one level down: HTB's
// round robin gives an inner class one turn per active child, so hosts are
// only equal to each other when each host is a single leaf of its qdisc.
struct Nested {
  uint32_t handle = 0;            // qdisc handle (major << 16)
  uint32_t cb_slot = 0;           // QOS_CB_SUBQ, or QOS_CB_SUBQ + 1 for a host's flows
  uint32_t default_minor = 0;
  nl::HtbClassParams root;        // <major>:1
  std::vector<nl::HtbClassParams> subs;   // <major>:<QOS_ISO_MINOR_BASE + i>, parent <major>:1
  LeafQueue queue;                // of each sub-queue without a qdisc below
  std::vector<Nested> below;      // empty, or one per sub (a host's flows)
  friend bool operator==(const Nested&, const Nested&) = default;
};

struct Leaf {
  uint32_t minor = 0;         // 1:<minor>
  std::string label;          // class name, or "band N" for pifo
  int32_t class_id = -1;      // -1 for a pifo band
  nl::HtbClassParams params;  // classid 1:minor, parent 1:1
  LeafQueue queue;            // unused with a nested qdisc
  std::optional<Nested> nested;   // an isolated class's sub-queues instead of its queue
  friend bool operator==(const Leaf&, const Leaf&) = default;
};

struct Plan {
  uint32_t major = kMajor;
  uint32_t default_minor = 0;
  uint32_t r2q = 10;
  uint32_t frame_bytes = 1514; // MTU + Ethernet header: one full frame
  nl::HtbClassParams link;     // 1:1
  std::vector<Leaf> leaves;    // ascending minor
  std::vector<std::string> notes;   // adjustments worth telling the user (-v)
  const Leaf* find(uint32_t minor) const;
  friend bool operator==(const Plan&, const Plan&) = default;
};

// Plans the tree for a manifest on an interface with this MTU, whose largest
// skb is `max_skb` bytes (its gso/gro max size; see kDefaultMaxSkb).
// `link_now`: the rate an adaptive link is shaped to now (0: the manifest's
// link). It moves the link class, the leaves and their bfifo limits; isolated
// classes' nested sub-queues stay planned at the manifest's link, so a rate
// change never has to replace them.
Result<Plan> plan(const qosc::Manifest& m, uint32_t mtu, uint32_t max_skb = kDefaultMaxSkb, uint64_t link_now = 0);

// Which tree of a policy: the interface's, shaped to `link`, or the IFB's of
// --ingress-shape, shaped to `download` (to `link` without one).
enum class Where : uint8_t { Interface, Ifb };
// That tree, with an adaptive rate (`link adaptive` for the interface,
// `download adaptive` for the IFB) at `rate_now` clamped to its range, or at
// its start rate when `rate_now` is 0.
Result<Plan> plan_for(const qosc::Manifest& m, Where where, uint32_t mtu, uint32_t max_skb, uint64_t rate_now = 0);

// The smallest quantum that keeps HTB's round robin byte-exact: the largest
// length HTB charges one packet on an interface with this MTU and largest skb.
uint32_t min_quantum(uint32_t mtu, uint32_t max_skb);

// Rate bucket depth when the policy gives none: 1 ms at the rate plus one
// frame (what tc uses by default: rate/HZ + MTU).
uint32_t default_burst(uint64_t rate_bps, uint32_t frame);

// The classic cls_bpf program of a nested HTB (isolation's sub-queues, the
// host groups of docs/hosts.md): return skb->cb[slot], the classid the TC
// program chose (0 = no match: the qdisc's default queue). One program per
// slot, loaded on first use, closed with this object (a filter keeps its own
// reference).
class CbClassidProgram {
 public:
  CbClassidProgram() = default;
  ~CbClassidProgram();
  CbClassidProgram(const CbClassidProgram&) = delete;
  CbClassidProgram& operator=(const CbClassidProgram&) = delete;
  Result<int> fd(uint32_t slot);

 private:
  std::array<int, 5> fds_{-1, -1, -1, -1, -1};
};

// The bfifo handle of a leaf: (minor << 16), i.e. "<minor>:" (unique per leaf).
inline uint32_t leaf_qdisc_handle(uint32_t minor) { return minor << 16; }
inline uint32_t classid(uint32_t major, uint32_t minor) { return (major << 16) | minor; }

nlohmann::json to_json(const Plan& p);
Plan plan_from_json(const nlohmann::json& j);   // throws nlohmann::json::exception on a malformed value

// One line per class for -v and `status`.
std::string describe(const LeafQueue& q);   // "6056 bytes", "31250 bytes of frames (...)"
std::string describe(const Plan& p);

// ---- building and changing the tree on an interface -----------------------------------------

// Creates root, 1:1 and every leaf with its queue. On failure returns the
// error; what was created stays (the caller's undo removes the root).
// Honours the injected failure points htb-root, htb-class and htb-leaf
// (QOSRUN_FAIL_AT, see qosrun/state.hpp).
// `parent`: the root, or a class of another qdisc (an mq queue, qosrun/txq.hpp).
Status build(nl::RtnlSocket& s, int ifindex, const Plan& p, uint32_t parent = 0xffffffffu);

// Changing a tree built from `from` into `to` in place (reload), in three
// steps around the program swap: create the leaves `to` adds (before the new
// programs steer packets there), change the classes whose minor persists
// (tc class change: queued packets stay), delete the leaves `to` drops after
// the swap, once their queue has drained (at most `drain_ms`).
// The root's `default` cannot change (HTB has no qdisc change operation);
// the TC program classifies every packet, so the default is only a fallback.
Status add_new_leaves(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to, std::vector<uint32_t>* added);
Status change_persisting(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to);
// An adaptive link's rate change: the same tree (plan() of one manifest at
// two rates), its classes and bfifo limits changed in place. Nothing queued
// is dropped.
Status change_rate(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to);
Status delete_obsolete(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to, int drain_ms,
                       std::vector<std::string>* warnings);

}  // namespace qosrun::htb
