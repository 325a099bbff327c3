#pragma once
// Host tables: which host is on which plan, and which addresses are the host
// (docs/hosts.md). Two spellings of one table:
//
//   CSV   host,plan,prefixes                 (the header, first line that is not a comment)
//         alice,basic,10.0.0.5               a bare address is /32 (IPv4) or /128 (IPv6)
//         "bob, 2nd floor",premium,"10.0.1.0/24 2001:db8:1::/48"
//         # comment lines and blank lines are skipped; any field may be quoted ("" is a quote)
//   JSON  [{"host": "alice", "plan": "basic", "prefixes": ["10.0.0.5"]}, ...]
//
// A table is taken whole or not at all: read_host_table() returns every
// problem it finds, each as "FILE:LINE: what is wrong: what to do", never
// the first one only. A table never reaches the kernel before it is clean.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qosrun/loader.hpp"   // Error, Result

namespace qosrun::hosts {

// One IPv4 or IPv6 prefix, kept in the form the qos_hosts trie uses
// (qos_abi.h): 16 address bytes in network order, IPv4 as ::ffff:a.b.c.d
// with its length counted from bit 0 of that form (96 + the IPv4 length).
struct Prefix {
  std::array<uint8_t, 16> addr{};
  uint8_t len = 0;      // 0..128 over the 16 bytes
  bool v4 = false;
  uint8_t family_len() const { return v4 ? static_cast<uint8_t>(len - 96) : len; }   // as written
  std::string text() const;                                                         // "10.0.0.0/24"
  // The same text into `out` (no allocation: a placement writes thousands);
  // returns its length. IPv4 without inet_ntop, which costs more than the rest.
  static constexpr size_t kTextMax = 50;   // an IPv6 address (45, INET6_ADDRSTRLEN 46 with its NUL) + "/128"
  size_t write_text(char (&out)[kTextMax]) const;
  // Do the two share an address (one lies inside the other, or they are equal)?
  bool overlaps(const Prefix& other) const;
  friend bool operator==(const Prefix&, const Prefix&) = default;
  friend auto operator<=>(const Prefix&, const Prefix&) = default;
};

// Parses "10.0.0.0/24", "2001:db8::/32" or a bare address. On failure the
// message says what is wrong; when only host bits are set, `canonical`
// gets the form to write instead ("10.0.0.0/24" for "10.0.0.1/24").
Result<Prefix> parse_prefix(std::string_view text, std::string* canonical = nullptr);

struct HostEntry {
  std::string name;
  std::string plan;
  std::vector<Prefix> prefixes;
  uint32_t line = 0;    // where the host is written (JSON: the line of its object)
};

struct HostTable {
  std::string source;             // the file's path, for messages
  std::vector<HostEntry> hosts;   // in the table's order
  std::string text;               // a CSV file's bytes as read (read_host_table): the next apply compares with them
  size_t prefix_count() const;
};

// What a table is checked against: the policy's plans and the map's room.
struct TableRules {
  std::vector<std::string> plans;   // names of the policy's plans
  size_t max_prefixes = 0;          // entries the qos_hosts map holds
  std::string map_name = "qos_hosts";
};

enum class TableFormat : uint8_t { Auto, Csv, Json };

// `text` as a table named `source`. Auto: JSON when the first character that
// is not white space is '[', else CSV.
Result<HostTable> parse_host_table(std::string_view text, const std::string& source, const TableRules& rules,
                                   TableFormat format = TableFormat::Auto);
// The file at `path`: JSON for *.json, CSV for *.csv, else by its content.
Result<HostTable> read_host_table(const std::string& path, const TableRules& rules);
TableFormat table_format_of(const std::string& path);   // Json, Csv or Auto, by the name
// `hint`, or (Auto) JSON when the first character that is not white space is '[', else CSV.
TableFormat table_format(std::string_view text, TableFormat hint);

}  // namespace qosrun::hosts
