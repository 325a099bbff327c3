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
inline constexpr uint32_t kManifestFormat = 1;

struct ManifestClass {
  uint32_t id = 0;
  std::string name;
  uint32_t priority = 0, weight = 1, quantum = 1514;
  uint64_t rate_bps = 0;      // 0 = no cap of its own
  uint64_t burst_bytes = 0;
  bool is_default = false;
  uint32_t htb_minor = 0;     // HTB class 1:<htb_minor> (hex in tc's notation): QOS_HTB_MINOR_BASE + id
  // `set dscp`: the TC program rewrites the DSCP of the class's packets to this
  // value; absent (JSON: no "set_dscp" key, as in manifests before it) = no rewrite.
  std::optional<uint8_t> set_dscp;
  // The HTB leaf minor, also for manifests that do not record it.
  uint32_t leaf_minor() const { return htb_minor ? htb_minor : QOS_HTB_MINOR_BASE + id; }
};

struct Manifest {
  uint32_t format = kManifestFormat;
  std::string policy;             // policy name
  std::string source;             // file name as given to qosc
  std::string source_sha256;
  std::string compiler_version;
  uint64_t link_bps = 0;
  std::string scheduler;          // canonical kind, e.g. "strict_priority"
  std::string rank;               // pifo rank expression (canonical text), "" otherwise
  uint32_t pifo_bands = 0;
  // How PIFO ranks map to bands: "sp-pifo" (skb->priority = 1:(QOS_HTB_MINOR_BASE + band),
  // band 0 served first); "" when the scheduler is not pifo.
  std::string pifo_mapping;
  std::vector<ManifestClass> classes;   // index == id
  uint32_t default_class = 0;
  uint32_t rule_count = 0;
  std::string strategy;           // how rules were compiled: "tree", "maps", ...
  // Program and map names inside the object.
  std::string xdp_prog = "qos_xdp";
  std::string tc_prog = "qos_tc";
  std::string stats_map = "qos_stats";
  std::string flows_map = "qos_flows";
  // Maps the loader must fill after load (when rules fell back to maps):
  // each entry's key/value bytes are stored in the section named here.
  std::string tables_section;     // "" when none

  const ManifestClass* find_class(std::string_view name) const;
};

nlohmann::json to_json(const Manifest& m);
// Throws std::runtime_error with a readable message on a malformed manifest.
Manifest manifest_from_json(const nlohmann::json& j);
// Reads the manifest section out of an ELF object in memory; nullopt with
// *error set when the object has none or it does not parse.
std::optional<Manifest> read_manifest(std::span<const unsigned char> elf, std::string* error);

}  // namespace qosc
