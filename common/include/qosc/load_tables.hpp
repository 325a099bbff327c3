#pragma once
// The load-time tables of the maps strategy: the contents of maps that the
// loader fills after load, carried in the object's QOS_TABLES_SECTION. The
// byte format is documented in qos_abi.h ("Load-time tables"); this is its
// one writer (the code generator) and its one reader (qosrun, qosc --emit-c).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace qosc {

struct LoadTable {
  std::string name;          // the map's name (at most 15 bytes)
  uint32_t key_size = 4, value_size = 0, count = 0, flags = 0;   // flags: QOS_TABLE_DENSE
  std::vector<unsigned char> data;   // count values (dense) or count key/value pairs
  bool dense() const;
};

// The section's bytes for `tables`, in order.
std::vector<unsigned char> encode_load_tables(const std::vector<LoadTable>& tables);

// The tables held in a section; nullopt with *error saying what is damaged.
std::optional<std::vector<LoadTable>> decode_load_tables(std::span<const unsigned char> section, std::string* error);

// One line per table ("qos_t_desc  12 entries  key  4 B  value  56 B  array (dense)"), for --emit-c.
std::string describe_load_tables(const std::vector<LoadTable>& tables);

}  // namespace qosc
