#pragma once
// One HTB per TX queue (docs/hosts.md, "Every core"). A policy with hosts on
// an interface of several TX queues gets an mq root and, below each queue,
// an HTB qdisc of its own: each has its own lock, so queues (and the CPUs
// sending on them) never wait for each other. A host group lives on one
// queue, and the TC program sends its hosts' packets there through
// skb->queue_mapping (qos_host_val.queue); everything else goes to queue 0.
//
//   root mq 400:
//     400:1       htb 1:        queue 0: the policy's tree as without mq (its
//                               own leaves 1:10.., group leaves 1:(1000+g))
//     400:(q+1)   htb (401+q):  queue q >= 1, every real TX queue:
//                   (401+q):1     the link
//                   (401+q):2     the stray leaf, the HTB's default: a packet
//                                 whose classid this queue does not have
//                   (401+q):(1000+g)  group g placed on queue q
//
// Why a stray leaf: the kernel picks the TX queue after the egress program,
// from queue_mapping only when no socket has a cached queue and XPS is off
// (qos_abi.h, qos_host_val.queue). A packet that lands on a queue whose HTB
// lacks its class would otherwise be sent from HTB's direct queue,
// unshaped; the stray leaf sends it at the lowest priority within the link.
// qosrun turns XPS off on attach and puts it back on detach.
//
// Each queue's link class is at the full link: a host's ceiling is honoured
// whichever queue it is on, and the hosts' assured rates still sum to at
// most the link over all queues; but the total of all queues together is
// no longer held to the link by one lock (docs/hosts.md, "Limits").
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "qosrun/htb.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/netlink.hpp"

namespace qosrun::txq {

inline constexpr uint32_t kMqMajor = 0x400;
inline constexpr uint32_t kMaxQueues = 0x3ff;   // queue q's HTB is 0x401 + q, at most 0x7ff
inline constexpr uint32_t kLinkMinor = htb::kRootMinor;
inline constexpr uint32_t kStrayMinor = 2;

// The HTB qdisc major of TX queue q: 1 (the policy's own tree) for queue 0.
inline uint32_t htb_major(uint32_t q) { return q == 0 ? htb::kMajor : kMqMajor + 1 + q; }
// The mq class queue q's HTB hangs from.
inline uint32_t mq_class(uint32_t q) { return htb::classid(kMqMajor, q + 1); }
// The stray leaf's bfifo of queue q >= 1: a handle of its own below those
// qosrun gives hosts (hosts.hpp, kFirstHandle), never the kernel's automatic ones.
inline uint32_t stray_qdisc(uint32_t q) { return (0x800 + q) << 16; }
// skb->queue_mapping that sends a packet to TX queue q (qos_abi.h).
inline uint16_t queue_mapping(uint32_t q) { return static_cast<uint16_t>(q + 1); }

// An XPS setting qosrun replaced by 0: the file under /sys/class/net/<if>/queues/ and its value.
struct XpsValue {
  std::string file;    // "tx-3/xps_cpus", "tx-3/xps_rxqs"
  std::string value;   // as read ("00000003")
  friend bool operator==(const XpsValue&, const XpsValue&) = default;
};

// The interface's TX queue layout, kept in the record (state.json, queues.tx).
struct Layout {
  uint32_t queues = 1;           // host groups are spread over queues 0 .. queues-1
  uint32_t real = 1;             // the device's real TX queues when attached: each has an HTB
  bool xps_off = false;          // qosrun turned XPS off (recorded before the first write)
  std::vector<XpsValue> xps;     // the non-zero values it replaced, put back on detach
  friend bool operator==(const Layout&, const Layout&) = default;
};
nlohmann::json to_json(const Layout& l);
Layout layout_from_json(const nlohmann::json& j);   // throws nlohmann::json::exception

// The interface's real TX queues, as the calling thread's network namespace
// sees them (its own sysfs: qosrun may run under `nsenter --net`, whose /sys
// is another namespace's).
Result<uint32_t> real_tx_queues(const std::string& ifname);

// How many queues to spread hosts over: `asked` (--tx-queues; 0 = auto) on
// an interface of `real` TX queues. Auto: every real queue for a policy
// with hosts, else 1 (a policy's own classes live in one HTB). Errors say
// what to ask instead.
Result<uint32_t> choose(const std::string& ifname, uint32_t asked, bool policy_has_hosts, uint32_t real);

// XPS of the interface: the non-zero xps_cpus / xps_rxqs values now.
Result<std::vector<XpsValue>> xps_now(const std::string& ifname);
// Writes `values` (file -> value); zero_all: writes "0" to every file in `values` instead.
Status write_xps(const std::string& ifname, const std::vector<XpsValue>& values, bool zero_all);

// The classes of queue q >= 1's HTB, from the policy's root plan.
nl::HtbClassParams link_class(const htb::Plan& root, uint32_t q);
nl::HtbClassParams stray_leaf(const htb::Plan& root, uint32_t q);
// The stray leaf's queue: the largest of the root's leaf queues (a leaf
// without a cap has the link's ceiling, as the stray leaf has).
htb::LeafQueue stray_queue(const htb::Plan& root);

// Builds the mq root, `root`'s tree below 400:1 and the HTB of every other
// real queue. What was made stays on failure (the caller's undo deletes the root).
Status build(nl::RtnlSocket& s, int ifindex, const htb::Plan& root, const Layout& l);

// "mq 400: over 2 TX queues (htb 1:, 402:), XPS off": for status and -v.
std::string describe(const Layout& l);

}  // namespace qosrun::txq
