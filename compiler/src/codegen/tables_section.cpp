// The maps strategy's load-time tables as an ELF section (format in
// templates/qos_abi.h) and the small ELF64 editor that appends it to the
// object clang produced.
#include <cstring>

#include <fmt/format.h>

#include "bitvector.hpp"
#include "qos_abi.h"
#include "tables_section.hpp"

namespace qosc::codegen {
namespace {

template <class T>
void put(std::vector<unsigned char>& out, const T& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

void pad8(std::vector<unsigned char>& out) {
  while (out.size() % 8) out.push_back(0);
}

struct Table {
  std::string name;
  uint32_t key_size, value_size, count, flags;
  std::vector<unsigned char> data;
};

Table dense(std::string name, uint32_t value_size, uint32_t count) {
  return Table{std::move(name), 4, value_size, count, QOS_TABLE_DENSE, {}};
}

}  // namespace

std::string table_map_name(Dim d) { return std::string("qos_t_") + dim_name(d); }

uint32_t desc_value_size(const BitTables& t) { return (3 * t.summary_words + 1) * 8; }

std::vector<unsigned char> serialize_tables(const BitTables& t) {
  std::vector<Table> tables;
  {
    Table d = dense("qos_t_desc", desc_value_size(t), uint32_t(t.descs.size()));
    for (const auto& c : t.descs) {
      for (uint64_t w : c.eff) put(d.data, w);
      for (uint64_t w : c.dsum) put(d.data, w);
      for (uint64_t w : c.dbase) put(d.data, w);
      put(d.data, c.off);
    }
    tables.push_back(std::move(d));
  }
  {
    Table p = dense("qos_t_pool", 8, uint32_t(t.pool.size()));
    for (uint64_t w : t.pool) put(p.data, w);
    tables.push_back(std::move(p));
  }
  {
    Table r = dense("qos_t_rules", 8, t.nrules);
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
      Table v = dense(table_map_name(d), 4, uint32_t(dt.value_class.size()));
      for (uint32_t c : dt.value_class) put(v.data, c);
      tables.push_back(std::move(v));
      continue;
    }
    const uint32_t abytes = (d == Dim::Saddr4 || d == Dim::Daddr4) ? 4 : 16;
    Table l{table_map_name(d), 4 + abytes, 4, uint32_t(dt.prefix_class.size()), 0, {}};
    for (const auto& [p, c] : dt.prefix_class) {
      put(l.data, uint32_t(p.len));
      l.data.insert(l.data.end(), p.addr.begin(), p.addr.begin() + abytes);
      put(l.data, c);
    }
    tables.push_back(std::move(l));
  }

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
    pad8(out);
  }
  return out;
}

// ELF64 little endian, as produced by clang for bpfel. Layout offsets from
// the ELF specification (Elf64_Ehdr / Elf64_Shdr).
bool append_elf_section(std::vector<unsigned char>& elf, std::string_view name, std::span<const unsigned char> data,
                        std::string* error) {
  auto fail = [&](std::string m) {
    if (error) *error = std::move(m);
    return false;
  };
  auto rd16 = [&](size_t o) { uint16_t v; std::memcpy(&v, elf.data() + o, 2); return v; };
  auto rd64 = [&](size_t o) { uint64_t v; std::memcpy(&v, elf.data() + o, 8); return v; };
  if (elf.size() < 64 || std::memcmp(elf.data(), "\x7f" "ELF", 4) != 0 || elf[4] != 2 /*ELFCLASS64*/ ||
      elf[5] != 1 /*ELFDATA2LSB*/)
    return fail("not a little-endian ELF64 object");
  const uint64_t shoff = rd64(0x28);
  const uint16_t shentsize = rd16(0x3a), shnum = rd16(0x3c), shstrndx = rd16(0x3e);
  if (shentsize != 64 || shnum == 0 || shnum >= 0xff00 - 1 || shstrndx >= shnum ||
      shoff + uint64_t(shnum) * 64 > elf.size())
    return fail("unexpected ELF section header table");
  std::vector<unsigned char> shdrs(elf.begin() + long(shoff), elf.begin() + long(shoff + uint64_t(shnum) * 64));
  auto sh = [&](size_t i, size_t field) { return shdrs.data() + i * 64 + field; };
  uint64_t str_off, str_size;
  std::memcpy(&str_off, sh(shstrndx, 0x18), 8);
  std::memcpy(&str_size, sh(shstrndx, 0x20), 8);
  if (str_off + str_size > elf.size()) return fail("bad section name table");
  // New section name table: the old one plus our name, at the end of the file.
  std::vector<unsigned char> strtab(elf.begin() + long(str_off), elf.begin() + long(str_off + str_size));
  const uint32_t name_off = uint32_t(strtab.size());
  strtab.insert(strtab.end(), name.begin(), name.end());
  strtab.push_back(0);
  pad8(elf);
  const uint64_t new_str_off = elf.size();
  elf.insert(elf.end(), strtab.begin(), strtab.end());
  const uint64_t new_str_size = strtab.size();
  std::memcpy(sh(shstrndx, 0x18), &new_str_off, 8);
  std::memcpy(sh(shstrndx, 0x20), &new_str_size, 8);
  // The section's data.
  pad8(elf);
  const uint64_t data_off = elf.size();
  elf.insert(elf.end(), data.begin(), data.end());
  // Section headers: the old ones plus ours.
  unsigned char nh[64] = {};
  const uint32_t sht_progbits = 1;
  const uint64_t size = data.size(), align = 8;
  std::memcpy(nh + 0x00, &name_off, 4);
  std::memcpy(nh + 0x04, &sht_progbits, 4);
  std::memcpy(nh + 0x18, &data_off, 8);
  std::memcpy(nh + 0x20, &size, 8);
  std::memcpy(nh + 0x30, &align, 8);
  shdrs.insert(shdrs.end(), nh, nh + 64);
  pad8(elf);
  const uint64_t new_shoff = elf.size();
  elf.insert(elf.end(), shdrs.begin(), shdrs.end());
  const uint16_t new_shnum = uint16_t(shnum + 1);
  std::memcpy(elf.data() + 0x28, &new_shoff, 8);
  std::memcpy(elf.data() + 0x3c, &new_shnum, 2);
  return true;
}

}  // namespace qosc::codegen
