#pragma once
// The checked, normalised policy that code generation, the reference
// interpreter and the runtime consume. Every value here is resolved: rates in
// bits/s, sizes in bytes, sets expanded, negation of ports/protocols/DSCP
// folded into the value sets, rules in first-match order.
#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qosc/source.hpp"

namespace qosc::ir {

inline constexpr int32_t kDrop = -1;   // rule target: drop the packet

enum class SchedKind : uint8_t { StrictPriority, RoundRobin, DeficitRoundRobin, WeightedFairQueuing, Pifo };
const char* to_string(SchedKind k);    // canonical name, e.g. "strict_priority"

// Defaults for omitted class attributes (documented in docs/language.md).
inline constexpr uint32_t kDefaultPriority = 4;
inline constexpr uint32_t kDefaultWeight = 1;
inline constexpr uint32_t kDefaultQuantum = 1514;  // one full Ethernet frame

// `isolate` in a class: fair sub-queues inside it (docs/isolation.md).
enum class IsolateMode : uint8_t { None, Flows, Saddr, Daddr };
const char* to_string(IsolateMode m);  // "none", "flows", "saddr", "daddr"
inline constexpr uint32_t kDefaultIsolateSlots = 64;     // flows (mode flows) or hosts (saddr/daddr)
inline constexpr uint32_t kDefaultIsolatePerHost = 4;    // flows inside each host
inline constexpr uint32_t kMaxIsolateSlots = 1024;
inline constexpr uint32_t kMaxIsolatePerHost = 32;
struct Isolation {
  IsolateMode mode = IsolateMode::None;
  bool nat = false;             // hosts are the pre-NAT addresses (conntrack)
  uint32_t slots = 0;           // flows or hosts isolated exactly
  uint32_t per_host = 0;        // saddr/daddr: flows isolated inside each host (1: none)
  bool on() const { return mode != IsolateMode::None; }
  friend bool operator==(const Isolation&, const Isolation&) = default;
};

struct Class {
  uint32_t id = 0;            // dense, 0..n-1, in declaration order
  std::string name;
  uint32_t priority = kDefaultPriority;  // 0..7, 0 served first
  uint32_t weight = kDefaultWeight;      // 1..1000
  uint32_t quantum = kDefaultQuantum;    // bytes
  uint64_t rate_bps = 0;      // cap in bits/s; 0 = no cap of its own (up to link)
  uint64_t burst_bytes = 0;   // bucket depth for the cap; set (defaulted) whenever rate_bps != 0
  bool is_default = false;
  Isolation isolate;
  // `set dscp N;`: the TC program rewrites the DSCP of the class's IPv4/IPv6
  // packets to N (ECN bits kept); nullopt = left as it is.
  std::optional<uint8_t> set_dscp;
  Loc loc;
};

enum class Family : uint8_t { Any, V4, V6 };

// Closed intervals, sorted, disjoint and non-adjacent (merged), non-empty.
struct PortInterval { uint16_t lo, hi; friend bool operator==(const PortInterval&, const PortInterval&) = default; };
using PortSet = std::vector<PortInterval>;

// An address prefix. v4 uses addr[0..3] (network byte order); bits past len are zero.
struct Prefix {
  Family family = Family::V4;   // V4 or V6
  std::array<uint8_t, 16> addr{};
  uint8_t len = 0;
  friend bool operator==(const Prefix&, const Prefix&) = default;
};

// `ip saddr X`, `ip6 daddr != X`, ...: holds when the packet is of `family`
// and (its address is covered by some prefix) != negated.
struct AddrMatch {
  bool dst = false;
  Family family = Family::V4;
  bool negated = false;
  std::vector<Prefix> prefixes;   // normalised: no prefix covered by another, sorted
  friend bool operator==(const AddrMatch&, const AddrMatch&) = default;
};

struct Rule {
  uint32_t index = 0;     // position among the policy's rules in file order
  Loc loc;
  Family family = Family::Any;            // from ip/ip6/icmp/icmpv6/addresses
  // Allowed final L4 protocol numbers; nullopt = no constraint. A packet whose
  // protocol could not be determined matches no protocol set.
  std::optional<std::bitset<256>> protos;
  // Port sets (negation folded in). A port match requires the packet's TCP or
  // UDP header to be present (see PacketFields::l4).
  std::optional<PortSet> sport, dport;
  std::optional<std::bitset<64>> dscp;    // allowed DSCP values (negation folded in)
  std::vector<AddrMatch> addrs;           // all must hold
  int32_t target = kDrop;                 // class id or kDrop
  friend bool operator==(const Rule&, const Rule&) = default;
};

// PIFO rank expression, checked: fields are resolved to an enum.
enum class RankField : uint8_t { ClassPriority, ClassWeight, PktLen, FlowBytes, FlowPackets, NowUs };
const char* to_string(RankField f);      // "class.priority", ...
struct RankExpr {
  enum class Op : uint8_t { Const, Field, Add, Sub, Mul, Div, Min, Max, Neg } op = Op::Const;
  int64_t value = 0;        // Const
  RankField field{};        // Field
  std::vector<RankExpr> args;
  friend bool operator==(const RankExpr&, const RankExpr&) = default;
};
std::string to_string(const RankExpr& e);  // canonical text, re-parseable

struct Scheduler {
  SchedKind kind = SchedKind::StrictPriority;
  RankExpr rank;            // Pifo only; default: class.priority
  uint32_t pifo_bands = 8;  // number of strict-priority bands approximating the PIFO
};

// `adaptive MIN-MAX [start RATE] [delay DURATION]` of `link` or `download`:
// qosrun's controller moves the shaper between min and max, starting at
// start, and counts an RTT rise of `delay` over the reflectors' baseline as
// congestion (docs/language.md).
inline constexpr uint32_t kDefaultAdaptiveDelayUs = 5000;
inline constexpr uint32_t kMinAdaptiveDelayUs = 1000;      // 1ms: below it, jitter alone would cut the rate
inline constexpr uint32_t kMaxAdaptiveDelayUs = 1000000;   // 1s: above it, the queue the shaper is there to avoid
struct Adaptive {
  uint64_t min_bps = 0, max_bps = 0;
  uint64_t start_bps = 0;     // default: max_bps
  uint32_t delay_us = kDefaultAdaptiveDelayUs;
  friend bool operator==(const Adaptive&, const Adaptive&) = default;
};

// `plan NAME { ... }`: what a host of the host table gets (docs/language.md
// "Hosts and plans"; qosrun builds it, docs/hosts.md).
struct Plan {
  std::string name;
  uint64_t rate_bps = 0;
  uint64_t ceil_bps = 0;        // 0: the rate (the host never borrows)
  uint64_t burst_bytes = 0;     // 0: HTB's default for the rate
  std::vector<uint32_t> classes;   // class ids with a leaf in the host, ascending; empty: every class
  Loc loc;
  friend bool operator==(const Plan& a, const Plan& b) {
    return a.name == b.name && a.rate_bps == b.rate_bps && a.ceil_bps == b.ceil_bps && a.burst_bytes == b.burst_bytes &&
           a.classes == b.classes;
  }
};

// `hosts saddr|daddr [nat];`: the address the TC program looks up in qos_hosts.
struct Hosts {
  bool dst = false;             // daddr
  bool nat = false;             // the address before NAT, from conntrack
  friend bool operator==(const Hosts&, const Hosts&) = default;
};

struct Policy {
  std::string name;
  std::string source_name;    // file the policy came from
  // The link's nominal rate: the fixed rate, or MAX of an adaptive link (so
  // caps, bursts and the HTB tree are checked and built against it).
  uint64_t link_bps = 0;
  std::optional<Adaptive> link_adaptive;
  // `download`: the rate of the IFB's tree (--ingress-shape), 0 without the
  // item (the IFB is shaped to link_bps); MAX when adaptive.
  uint64_t download_bps = 0;
  std::optional<Adaptive> download_adaptive;
  bool adaptive() const { return link_adaptive.has_value() || download_adaptive.has_value(); }
  Scheduler scheduler;
  std::vector<Class> classes; // index == id
  uint32_t default_class = 0;
  std::vector<Rule> rules;    // first-match order
  std::vector<Plan> plans;    // declaration order; non-empty exactly when hosts is set
  std::optional<Hosts> hosts;
  // Set by the front end, which leaves out every rule no packet reaches (with
  // a warning): then the midend need not look for them again.
  bool unreachable_removed = false;
  const Class* find_class(std::string_view name) const;
};

}  // namespace qosc::ir
