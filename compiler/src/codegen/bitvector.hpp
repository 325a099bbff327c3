#pragma once
// The "maps" strategy: rules as bit vectors in maps filled at load time.
//
// Classification is split into independent dimensions (the packet's kind =
// family/protocol/L4 presence, sport, dport, DSCP, and each address field per
// family). For a dimension, a lookup maps the packet's value to an
// equivalence class (array map for kinds/ports/DSCP, LPM trie for addresses)
// and every class has a bit vector over the live rules: bit r is set when
// rule r's constraints on that dimension hold for every value in the class.
// The AND over all dimensions is the set of matching rules; its lowest set
// bit is the first match.
//
// With N rules a vector has W = ceil(N/64) words. To keep the per-packet
// cost independent of N for the common case, every class also has a
// summary: bit w of `eff` says word w of its vector may be non-zero; the
// packet ANDs the S = ceil(W/64) summary words of its classes and only
// looks at words whose summary bit survived, lowest first (first match).
//
// To keep memory near-linear, a class's vector is stored as a delta
// against a per-dimension base vector B (bit r of B is set when rule r holds
// in most classes of the dimension, e.g. rules that do not constrain it):
// vector(c) = B XOR delta(c), and only delta's non-zero words are stored
// (in a pool, located through `dsum` and the running counts `dbase`).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "qosc/ir.hpp"
#include "qosc/packet.hpp"

namespace qosc::codegen {

enum class Dim : uint8_t { Kind, Sport, Dport, Dscp, Saddr4, Daddr4, Saddr6, Daddr6 };
inline constexpr size_t kNumDims = 8;
const char* dim_name(Dim d);   // "kind", "sport", ... (map qos_t_<name>)

// The kind key: family (4 -> 0, 6 -> 1), protocol (-1..255), L4 present.
inline constexpr uint32_t kKindKeys = 2 * 257 * 2;
inline uint32_t kind_key(int family, int proto, bool l4) {
  return uint32_t(family == 6 ? 1 : 0) * 514u + uint32_t(proto + 1) * 2u + (l4 ? 1u : 0u);
}

// Largest policy the maps strategy takes (live rules): S <= 16 summary words.
inline constexpr uint32_t kMaxBitvectorRules = 65536;

struct ClassDesc {            // layout of struct qos_desc in the generated C (S = summary words)
  std::vector<uint64_t> eff;    // S words: bit w = word w of the class's vector is non-zero
  std::vector<uint64_t> dsum;   // S words: bit w = delta word w is stored in the pool
  std::vector<uint64_t> dbase;  // S words: stored delta words before summary word s
  uint64_t off = 0;             // pool index of the class's first delta word
};

struct DimTables {
  bool used = false;            // some live rule does not hold for every value of this dimension
  uint32_t nclasses = 0;
  uint32_t desc_base = 0;       // descriptor index of class 0
  uint32_t base_off = 0;        // pool index of the base vector; 0 = the base is all zero (not stored)
  // Kind / Sport / Dport / Dscp: value -> class (kKindKeys, 65536 or 64 entries).
  std::vector<uint32_t> value_class;
  // Address dimensions: prefix -> class; an address no prefix covers is class 0.
  std::vector<std::pair<ir::Prefix, uint32_t>> prefix_class;
  // How the generated code finds the longest matching prefix: with few
  // distinct lengths, one hash lookup per length (longest first) in a hash
  // map keyed like the LPM trie (prefixlen + masked address); else an LPM
  // trie. A /0 prefix is never looked up: it is the fallback class.
  std::vector<uint8_t> hash_lengths;   // descending, without 0; empty = LPM trie
  uint32_t fallback_class = 0;         // class when no (longer) prefix matches
};

// Hash lookups per address dimension at most (else an LPM trie).
inline constexpr size_t kMaxHashLengths = 2;

struct BitTables {
  uint32_t nrules = 0;          // live rules (bit positions)
  uint32_t words = 0;           // W
  uint32_t summary_words = 0;   // S
  std::vector<uint32_t> rule_index;     // bit -> index in Policy::rules
  std::vector<int32_t> rule_target;     // bit -> class id or kDrop
  std::array<DimTables, kNumDims> dims;
  std::vector<ClassDesc> descs;
  std::vector<uint64_t> pool;           // pool[0] == 0 (the "no delta" word)

  size_t bytes() const;         // map memory the tables take (values only)
  // Reference evaluation, exactly as the generated code does it: the index
  // (in Policy::rules) of the first matching rule, or -1.
  int first_match(const PacketFields& pkt) const;
  // How many candidate words the evaluation looked at (for tests/bench).
  mutable uint32_t last_words_examined = 0;
};

// `dead` lists rules proven unreachable (not given bits). Throws
// std::length_error above kMaxBitvectorRules live rules.
BitTables build_bit_tables(const ir::Policy& policy, const std::vector<uint32_t>& dead);

// The class a value falls into (what the generated code's lookups return).
uint32_t lookup_class(const DimTables& t, Dim d, const PacketFields& pkt);

}  // namespace qosc::codegen
