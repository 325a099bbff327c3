// Load-time tables: see qosc/load_tables.hpp; format in qos_abi.h.
#include "qosc/load_tables.hpp"

#include <cstring>

#include <fmt/format.h>

#include "qos_abi.h"

namespace qosc {
namespace {

template <class T>
void put(std::vector<unsigned char>& out, const T& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

size_t padded8(size_t n) { return (n + 7) / 8 * 8; }

}  // namespace

bool LoadTable::dense() const { return flags & QOS_TABLE_DENSE; }

std::vector<unsigned char> encode_load_tables(const std::vector<LoadTable>& tables) {
  std::vector<unsigned char> out;
  qos_tables_header h{};
  std::memcpy(h.magic, QOS_TABLES_MAGIC, sizeof(QOS_TABLES_MAGIC));
  h.nmaps = uint32_t(tables.size());
  put(out, h);
  for (const auto& tb : tables) {
    qos_table_header th{};
    std::strncpy(th.name, tb.name.c_str(), sizeof(th.name) - 1);
    th.key_size = tb.key_size;
    th.value_size = tb.value_size;
    th.count = tb.count;
    th.flags = tb.flags;
    put(out, th);
    out.insert(out.end(), tb.data.begin(), tb.data.end());
    out.resize(padded8(out.size()), 0);
  }
  return out;
}

std::optional<std::vector<LoadTable>> decode_load_tables(std::span<const unsigned char> t, std::string* error) {
  auto fail = [&](std::string m) -> std::optional<std::vector<LoadTable>> {
    if (error) *error = std::move(m);
    return std::nullopt;
  };
  qos_tables_header h;
  if (t.size() < sizeof h) return fail("section too short");
  std::memcpy(&h, t.data(), sizeof h);
  if (std::memcmp(h.magic, QOS_TABLES_MAGIC, sizeof(QOS_TABLES_MAGIC)) != 0) return fail("bad magic");
  std::vector<LoadTable> out;
  size_t at = sizeof h;
  for (uint32_t i = 0; i < h.nmaps; ++i) {
    qos_table_header th;
    if (at + sizeof th > t.size()) return fail("truncated table header");
    std::memcpy(&th, t.data() + at, sizeof th);
    at += sizeof th;
    LoadTable tb;
    tb.name.assign(th.name, strnlen(th.name, sizeof th.name));
    tb.key_size = th.key_size;
    tb.value_size = th.value_size;
    tb.count = th.count;
    tb.flags = th.flags;
    const size_t bytes = size_t(th.count) * (th.value_size + (tb.dense() ? 0 : th.key_size));
    if (at + bytes > t.size()) return fail(fmt::format("table {} truncated", tb.name));
    tb.data.assign(t.begin() + long(at), t.begin() + long(at + bytes));
    at += padded8(bytes);
    out.push_back(std::move(tb));
  }
  return out;
}

std::string describe_load_tables(const std::vector<LoadTable>& tables) {
  std::string out = fmt::format("# section {}: {} maps the loader fills after load\n", QOS_TABLES_SECTION, tables.size());
  for (const auto& tb : tables)
    out += fmt::format("{:<16} {:>8} entries  key {:>2} B  value {:>4} B  {}\n", tb.name, tb.count, tb.key_size,
                       tb.value_size, tb.dense() ? "array (dense)" : "key/value pairs");
  return out;
}

}  // namespace qosc
