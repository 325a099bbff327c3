#pragma once
// A small rtnetlink client for what qosrun changes on an interface: qdiscs
// (the HTB tree, its bfifo leaves, putting back the qdisc that was there
// before), HTB classes, the IFB device of --ingress-shape and its
// matchall+mirred redirect. libbpf attaches the BPF programs itself
// (bpf_tc_*, bpf_xdp_*); everything else goes through here.
//
// Messages are plain values (NlMessage): built and inspected without a
// kernel, sent by an RtnlSocket that asks for an ACK and returns the kernel's
// extended-ack text ("Specified qdisc kind is unknown") with the errno, so
// error messages say what the kernel said.
//
// Everything works on the network namespace of the calling thread.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qosrun/loader.hpp"   // Error, Result, Status, Fd

struct nlmsghdr;

namespace qosrun::nl {

// ---- messages -------------------------------------------------------------------

class NlMessage {
 public:
  NlMessage(uint16_t type, uint16_t flags);
  // The fixed header after nlmsghdr (tcmsg, ifinfomsg ...), appended raw.
  template <class T>
  NlMessage& header(const T& h) { return bytes(&h, sizeof h); }
  NlMessage& attr(uint16_t type, const void* data, size_t len);
  NlMessage& attr_str(uint16_t type, const std::string& s);   // NUL-terminated
  NlMessage& attr_u32(uint16_t type, uint32_t v) { return attr(type, &v, sizeof v); }
  NlMessage& attr_u64(uint16_t type, uint64_t v) { return attr(type, &v, sizeof v); }
  template <class T>
  NlMessage& attr_struct(uint16_t type, const T& v) { return attr(type, &v, sizeof v); }
  // Nested attribute: begin() returns a token for end().
  size_t begin(uint16_t type);
  NlMessage& end(size_t token);

  uint16_t type() const;
  std::span<const uint8_t> data() const { return buf_; }
  std::vector<uint8_t>& buffer() { return buf_; }

 private:
  NlMessage& bytes(const void* p, size_t n);
  std::vector<uint8_t> buf_;
};

// Attributes of a received message: type -> payload (the last one wins).
struct Attrs {
  std::vector<std::pair<uint16_t, std::span<const uint8_t>>> items;
  std::optional<std::span<const uint8_t>> get(uint16_t type) const;
  std::optional<std::string> str(uint16_t type) const;
  std::optional<uint32_t> u32(uint16_t type) const;
};
Attrs parse_attrs(std::span<const uint8_t> payload);

// ---- the socket ---------------------------------------------------------------------

class RtnlSocket {
 public:
  static Result<RtnlSocket> open();
  // Sends one request with NLM_F_ACK and waits for the answer. On failure the
  // Error says "`what`: <strerror> (kernel: <extack>)" and code = errno.
  Status request(NlMessage& msg, const std::string& what);
  // A dump request (NLM_F_DUMP): `each` sees every answer message.
  Status dump(NlMessage& msg, const std::string& what, const std::function<void(const nlmsghdr*)>& each);
  // Many requests, each with NLM_F_ACK, packed several to a sendmsg (about
  // 32 KiB at a time); the kernel handles them in order, each on its own, and
  // acknowledges each. Returns one entry per failed request: its index in
  // `msgs` and the error ("<strerror> (kernel: <extack>)", code = errno), so a
  // caller can say which of its objects failed. The transport failing (send
  // or receive) fails every request not yet acknowledged.
  // $QOSRUN_NETLINK_BATCH=0 sends one request per sendmsg (to measure the gain).
  struct BatchFailure {
    size_t index;
    Error error;
  };
  std::vector<BatchFailure> batch(std::span<NlMessage> msgs);

 private:
  // Sends `msg` with `flags` added and the next sequence number (kept in the message).
  Status send(NlMessage& msg, uint16_t flags, const std::string& what);
  // Reads the answers to the message sent with sequence number `seq` until the
  // last one: NLMSG_ERROR (an error, or 0 = ACK) or NLMSG_DONE (end of a
  // dump). Any other answer goes to `each` (dumps; null for requests).
  Status receive(uint32_t seq, size_t buffer_size, const std::string& what,
                 const std::function<void(const nlmsghdr*)>* each);
  Fd fd_;
  uint32_t seq_ = 0;
  // Kept from one answer to the next: a controller reads counters 50 times a
  // second, and a fresh zeroed 256 KiB buffer each time was most of its CPU.
  std::vector<uint8_t> rx_;
};

// ---- qdiscs and classes as the kernel reports them -----------------------------------------

// A qdisc's or class's counters as the kernel keeps them (TCA_STATS2).
struct TcCounters {
  bool found = false;          // the class exists
  uint64_t bytes = 0, packets = 0;   // sent
  uint32_t drops = 0, overlimits = 0;
  uint32_t backlog_bytes = 0, qlen = 0;   // queued now
};

struct QdiscInfo {
  int ifindex = 0;
  uint32_t handle = 0;     // major << 16
  uint32_t parent = 0;     // TC_H_ROOT for the root qdisc
  std::string kind;
  bool has_options = false;
  uint16_t options_type = 0;          // TCA_OPTIONS with its flag bits as dumped
  std::vector<uint8_t> options;       // raw TCA_OPTIONS payload, replayed as is
  TcCounters counters;
};
struct ClassInfo {
  uint32_t handle = 0, parent = 0;
  std::string kind;
  uint32_t leaf = 0;                  // handle of the leaf qdisc (TCA_... not dumped: 0)
  TcCounters counters;
  // HTB's parameters as dumped (kind "htb"): rates in bit/s, prio, quantum.
  uint64_t rate_bps = 0, ceil_bps = 0;
  uint32_t prio = 0, quantum = 0;
};

Result<std::vector<QdiscInfo>> list_qdiscs(RtnlSocket& s, int ifindex);
// The classes of the qdisc `parent_handle` (0: of every qdisc on the device), with counters.
Result<std::vector<ClassInfo>> list_classes(RtnlSocket& s, int ifindex, uint32_t parent_handle = 0);
// Number of filters attached at `parent` (a qdisc handle or clsact ingress/egress).
Result<size_t> count_filters(RtnlSocket& s, int ifindex, uint32_t parent);
// The root qdisc, nullopt when the device has none.
Result<std::optional<QdiscInfo>> root_qdisc(RtnlSocket& s, int ifindex);

// "htb 1:", "tbf 8001:", "noqueue 0:": for messages.
std::string describe(const QdiscInfo& q);
std::string handle_string(uint32_t handle);  // "1:", "1:10", "ffff:fff1"
std::string ifname_of(int ifindex);          // its name in this namespace, else "ifindex N"

// ---- changes --------------------------------------------------------------------------

// Puts a qdisc back exactly as it was dumped (kind, handle, raw options) as
// the root: RTM_NEWQDISC with CREATE|REPLACE.
Status replay_root_qdisc(RtnlSocket& s, const QdiscInfo& q);
// A classless-configured root qdisc without options (mq): CREATE|REPLACE.
Status add_root_qdisc(RtnlSocket& s, int ifindex, uint32_t handle, const std::string& kind);
Status delete_root_qdisc(RtnlSocket& s, int ifindex);
Status delete_qdisc(RtnlSocket& s, int ifindex, uint32_t parent, uint32_t handle);
NlMessage delete_qdisc_message(int ifindex, uint32_t parent, uint32_t handle);

struct HtbRootSpec {
  uint32_t handle = 1u << 16;
  uint32_t default_minor = 0;
  uint32_t r2q = 10;
  uint32_t parent = 0xffffffffu;   // TC_H_ROOT; a class id for an HTB below a leaf
};
// Replaces the root qdisc with HTB (CREATE|REPLACE); below a class
// (spec.parent not the root) it creates one (CREATE|EXCL).
Status add_htb_root(RtnlSocket& s, int ifindex, const HtbRootSpec& spec);

struct HtbClassParams {
  uint32_t classid = 0;        // major:minor
  uint32_t parent = 0;         // major:minor of the parent class, or the qdisc handle
  uint64_t rate_bps = 0;       // assured rate, bits/s
  uint64_t ceil_bps = 0;
  uint32_t burst_bytes = 0;    // rate bucket depth
  uint32_t cburst_bytes = 0;   // ceil bucket depth
  uint32_t quantum = 0;        // bytes (explicit: no r2q warning)
  uint32_t prio = 0;           // 0..7
  friend bool operator==(const HtbClassParams&, const HtbClassParams&) = default;
};
// The RTM_NEWTCLASS message (create or change), for tests and batches.
NlMessage htb_class_message(int ifindex, const HtbClassParams& p, bool create);
// The other messages of a batch (RtnlSocket::batch), as the functions below send them.
NlMessage htb_qdisc_message(int ifindex, const HtbRootSpec& spec);
NlMessage delete_class_message(int ifindex, uint32_t classid);
// `flags` of a qdisc request: NLM_F_CREATE | NLM_F_EXCL creates, 0 changes
// (the kernel changes a queue only into one of its own kind, under its handle).
NlMessage bfifo_message(int ifindex, uint32_t parent_classid, uint32_t handle, uint32_t limit_bytes, uint16_t flags);
// A leaf's queue that holds frames, never a GSO packet whole: a TBF at
// 1 Tbit/s (it never holds a packet back) whose burst, `split_above` bytes,
// is also the largest packet it takes whole; a larger GSO packet is cut into
// its segments (the kernel's tbf_segment) before they queue in the TBF's
// bfifo of `limit_bytes`. A bfifo must hold the largest GSO packet (64 KB:
// half a second at 1 Mbit/s); this one holds what its limit says.
NlMessage frame_queue_message(int ifindex, uint32_t parent_classid, uint32_t handle, uint32_t limit_bytes,
                              uint32_t split_above, uint16_t flags);
NlMessage classid_filter_message(int ifindex, uint32_t parent, int prog_fd, const std::string& name);
Status add_htb_class(RtnlSocket& s, int ifindex, const HtbClassParams& p);
Status change_htb_class(RtnlSocket& s, int ifindex, const HtbClassParams& p);
Status delete_class(RtnlSocket& s, int ifindex, uint32_t classid);

// From an RTM_GETTCLASS dump of the classes of classid's qdisc.
Result<TcCounters> class_counters(RtnlSocket& s, int ifindex, uint32_t classid);
// Every class of qdisc `qdisc_handle` (major << 16) with its counters, in one dump.
Result<std::vector<std::pair<uint32_t, TcCounters>>> qdisc_class_counters(RtnlSocket& s, int ifindex,
                                                                           uint32_t qdisc_handle);
// Backlog of one class (bytes queued now).
Result<uint64_t> class_backlog(RtnlSocket& s, int ifindex, uint32_t classid);

// ---- links -------------------------------------------------------------------------------

// Creates an IFB device; returns its ifindex.
Result<int> create_ifb(RtnlSocket& s, const std::string& name);
Status set_link_up(RtnlSocket& s, int ifindex);
Status delete_link(RtnlSocket& s, int ifindex);

// A u32 match-all filter at priority `prio` on clsact ingress (ffff:fff2)
// redirecting every packet to the egress of `target_ifindex` (mirred egress
// redirect). The kernel picks the u32 handle: delete it by priority
// (delete_filter with handle 0 removes everything at that priority).
Status add_ingress_redirect(RtnlSocket& s, int ifindex, int target_ifindex, uint32_t prio);
// A classic (not direct-action) cls_bpf filter on qdisc `parent`: the
// program's return value is the classid (0: no match).
Status add_classid_filter(RtnlSocket& s, int ifindex, uint32_t parent, int prog_fd, const std::string& name);
Status delete_filter(RtnlSocket& s, int ifindex, uint32_t parent, uint32_t prio, uint32_t handle,
                     const std::string& kind = "");

// Interface MTU (SIOCGIFMTU), 1500 when it cannot be read.
uint32_t link_mtu(const std::string& ifname);

// The largest skb the stack may hand the interface's qdisc: the largest of its
// gso_max_size, gro_max_size, gso_ipv4_max_size and gro_ipv4_max_size
// (RTM_GETLINK; `ip -d link` shows them), 0 when they cannot be read.
uint32_t link_max_skb(const std::string& ifname);

}  // namespace qosrun::nl
