#pragma once
// The manifest: everything qosrun needs to attach, build queues and print
// statistics without the policy source. The compiler writes it as JSON into
// the object's QOS_MANIFEST_SECTION (".qosc.manifest"); qosrun reads it back.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "qos_abi.h"

namespace qosc {

inline constexpr const char* kManifestSection = QOS_MANIFEST_SECTION;
// Format 2: the object carries a digest (qosc/object_digest.hpp), which
// qosrun requires. Format 1 (before the digest) still reads, for the state
// records older qosruns wrote; the loader refuses format-1 objects, which have
// nothing to check them by.
inline constexpr uint32_t kManifestFormat = 2;
inline constexpr uint32_t kOldestManifestFormat = 1;
inline constexpr uint32_t kFirstDigestFormat = 2;   // objects of this format and later carry a digest

// A class's `isolate` and where its state lives (qos_abi.h, "isolation").
struct ManifestIsolation {
  std::string mode;            // "flows", "saddr", "daddr"
  bool nat = false;
  uint32_t slots = 0;          // flows or hosts isolated exactly
  uint32_t per_host = 1;       // saddr/daddr: flows inside each host (1: no flow level)
  uint32_t slot_base = 0;      // first entry in qos_iso_slots
  uint32_t index_base = 0, index_size = 0;   // its region of qos_iso_index
  uint64_t sparse_bps = 0;     // a flow under this rate is sparse
  uint32_t host_major = 0;     // per_host > 1: host h's own HTB qdisc is (host_major + h):
  // Sub-queues of the nested HTB: slots (flows, or hosts with per_host 1), or slots * per_host.
  uint32_t leaves() const { return per_host > 1 ? slots * per_host : slots; }
  uint32_t pool() const { return per_host > 1 ? slots + slots * per_host : slots; }
  friend bool operator==(const ManifestIsolation&, const ManifestIsolation&) = default;
};

struct ManifestClass {
  uint32_t id = 0;
  std::string name;
  uint32_t priority = 0, weight = 1, quantum = 1514;
  uint64_t rate_bps = 0;      // 0 = no cap of its own
  uint64_t burst_bytes = 0;
  bool is_default = false;
  uint32_t htb_minor = 0;     // HTB class 1:<htb_minor> (hex in tc's notation): QOS_HTB_MINOR_BASE + id
  std::optional<ManifestIsolation> isolate;
  // `set dscp`: the TC program rewrites the DSCP of the class's packets to this
  // value; absent (JSON: no "set_dscp" key, as in manifests before it) = no rewrite.
  std::optional<uint8_t> set_dscp;
  // The HTB leaf minor, also for manifests that do not record it.
  uint32_t leaf_minor() const { return htb_minor ? htb_minor : QOS_HTB_MINOR_BASE + id; }
};

// `adaptive MIN-MAX [start RATE] [delay DURATION]` of `link` or `download`:
// qosrun's controller moves the shaper's rate between min and max, starting at
// start, and counts a round-trip time delay_us above the reflectors' baseline
// as a queue in the link (docs/language.md).
struct ManifestAdaptive {
  uint64_t min_bps = 0, max_bps = 0, start_bps = 0;
  uint32_t delay_us = 5000;
  friend bool operator==(const ManifestAdaptive&, const ManifestAdaptive&) = default;
};

// `plan NAME { rate R; [ceil C;] [burst B;] [classes A, B, ...;] }`: what a host
// of the host table gets (docs/hosts.md). qosrun gives each listed host an HTB
// class at the plan's rate (ceiling `ceil_bps`) holding a leaf for each of the
// plan's classes, scheduled inside the host as the policy schedules its classes.
struct ManifestPlan {
  std::string name;
  uint64_t rate_bps = 0;
  uint64_t ceil_bps = 0;        // 0: the rate (the host never borrows)
  uint64_t burst_bytes = 0;     // 0: HTB's default for the rate
  std::vector<uint32_t> classes;   // class ids with a leaf in the host; empty: every class
  friend bool operator==(const ManifestPlan&, const ManifestPlan&) = default;
};

// `hosts saddr|daddr [nat];`: which address names a host on this interface.
struct ManifestHosts {
  std::string by;               // "saddr" or "daddr"
  bool nat = false;             // the address before NAT, from conntrack
  std::string map = "qos_hosts";   // the LPM trie qosrun fills (qos_abi.h "hosts")
  // "steer_prog" (absent: none): the XDP program that sends a listed host's
  // packets to the CPU of its TX queue (qosrun attach --steer-from); none with `nat`.
  std::string steer_prog{};
  friend bool operator==(const ManifestHosts&, const ManifestHosts&) = default;
};

struct Manifest {
  uint32_t format = kManifestFormat;
  std::string policy;             // policy name
  std::string source;             // file name as given to qosc
  std::string source_sha256;
  std::string compiler_version;
  uint64_t link_bps = 0;           // the link's nominal rate: MAX when adaptive
  // Absent in the JSON (and in manifests before them) when unused:
  std::optional<ManifestAdaptive> link_adaptive;      // "link_adaptive": a fixed link without
  uint64_t download_bps = 0;                          // "download_bps": 0 = no `download` item; adaptive: its MAX
  std::optional<ManifestAdaptive> download_adaptive;  // "download_adaptive"
  std::string scheduler;          // canonical kind, e.g. "strict_priority"
  std::string rank;               // pifo rank expression (canonical text), "" otherwise
  uint32_t pifo_bands = 0;
  // How PIFO ranks map to bands: "sp-pifo" (skb->priority = 1:(QOS_HTB_MINOR_BASE + band),
  // band 0 served first); "" when the scheduler is not pifo.
  std::string pifo_mapping;
  std::vector<ManifestClass> classes;   // index == id
  // Absent in the JSON (and in manifests before them) when the policy has none:
  std::vector<ManifestPlan> plans;       // "plans"
  std::optional<ManifestHosts> hosts;    // "hosts"
  uint32_t default_class = 0;
  uint32_t rule_count = 0;
  std::string strategy;           // how rules were compiled: "tree", "maps", ...
  // Program and map names inside the object.
  std::string xdp_prog = "qos_xdp";
  std::string tc_prog = "qos_tc";
  std::string stats_map = "qos_stats";
  std::string flows_map = "qos_flows";
  // "flow_sample" (absent: 1): N > 1: the flow table takes one sample per N x
  // QOS_FLOW_SAMPLE_UNIT bytes (a packet with probability len / (N x unit)),
  // so its packets/bytes are estimates (docs/qosrun-stats.md, docs/wire-cost.md).
  uint32_t flow_sample = 1;
  // Maps the loader must fill after load (when rules fell back to maps):
  // each entry's key/value bytes are stored in the section named here.
  std::string tables_section;     // "" when none

  const ManifestClass* find_class(std::string_view name) const;
  const ManifestPlan* find_plan(std::string_view name) const;
  // The rate of the IFB's tree (--ingress-shape): the download's, else the link's.
  uint64_t ifb_link_bps() const { return download_bps ? download_bps : link_bps; }
  bool adaptive() const { return link_adaptive.has_value() || download_adaptive.has_value(); }
};

nlohmann::json to_json(const Manifest& m);
// Throws std::runtime_error with a readable message on a malformed manifest.
Manifest manifest_from_json(const nlohmann::json& j);
// Reads the manifest section out of an ELF object in memory; nullopt with
// *error set when the object has none or it does not parse.
std::optional<Manifest> read_manifest(std::span<const unsigned char> elf, std::string* error);

}  // namespace qosc
