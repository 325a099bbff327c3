// The maps strategy's bit tables as load-time tables (qosc/load_tables.hpp).
#include "tables_section.hpp"

#include "bitvector.hpp"
#include "qos_abi.h"
#include "qosc/load_tables.hpp"

namespace qosc::codegen {
namespace {

template <class T>
void put(std::vector<unsigned char>& out, const T& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

LoadTable dense(std::string name, uint32_t value_size, uint32_t count) {
  return LoadTable{std::move(name), 4, value_size, count, QOS_TABLE_DENSE, {}};
}

}  // namespace

std::string table_map_name(Dim d) { return std::string("qos_t_") + dim_name(d); }

uint32_t desc_value_size(const BitTables& t) { return (3 * t.summary_words + 1) * 8; }

std::vector<unsigned char> serialize_tables(const BitTables& t) {
  std::vector<LoadTable> tables;
  {
    LoadTable d = dense("qos_t_desc", desc_value_size(t), uint32_t(t.descs.size()));
    for (const auto& c : t.descs) {
      for (uint64_t w : c.eff) put(d.data, w);
      for (uint64_t w : c.dsum) put(d.data, w);
      for (uint64_t w : c.dbase) put(d.data, w);
      put(d.data, c.off);
    }
    tables.push_back(std::move(d));
  }
  {
    LoadTable p = dense("qos_t_pool", 8, uint32_t(t.pool.size()));
    for (uint64_t w : t.pool) put(p.data, w);
    tables.push_back(std::move(p));
  }
  {
    LoadTable r = dense("qos_t_rules", 8, t.nrules);
    for (uint32_t i = 0; i < t.nrules; ++i) {
      put(r.data, int32_t(t.rule_index[i]));
      put(r.data, t.rule_target[i]);
    }
    tables.push_back(std::move(r));
  }
  for (size_t di = 0; di < kNumDims; ++di) {
    const auto& dt = t.dims[di];
    if (!dt.used) continue;
    const Dim d = Dim(di);
    if (!dt.value_class.empty()) {
      LoadTable v = dense(table_map_name(d), 4, uint32_t(dt.value_class.size()));
      for (uint32_t c : dt.value_class) put(v.data, c);
      tables.push_back(std::move(v));
      continue;
    }
    const uint32_t abytes = (d == Dim::Saddr4 || d == Dim::Daddr4) ? 4 : 16;
    LoadTable l{table_map_name(d), 4 + abytes, 4, uint32_t(dt.prefix_class.size()), 0, {}};
    for (const auto& [p, c] : dt.prefix_class) {
      put(l.data, uint32_t(p.len));
      l.data.insert(l.data.end(), p.addr.begin(), p.addr.begin() + abytes);
      put(l.data, c);
    }
    tables.push_back(std::move(l));
  }
  return encode_load_tables(tables);
}

}  // namespace qosc::codegen
