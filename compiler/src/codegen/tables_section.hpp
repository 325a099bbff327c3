#pragma once
// Load-time tables of the maps strategy as an ELF section (the format is
// documented in templates/qos_abi.h, "Load-time tables").
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitvector.hpp"

namespace qosc::codegen {

std::string table_map_name(Dim d);            // "qos_t_dport", ...
uint32_t desc_value_size(const BitTables& t);  // bytes of struct qos_desc
std::vector<unsigned char> serialize_tables(const BitTables& t);

// Appends a non-allocated PROGBITS section `name` holding `data` to a
// relocatable little-endian ELF64 object (moves the section name table and
// the section header table to the end of the file).
bool append_elf_section(std::vector<unsigned char>& elf, std::string_view name, std::span<const unsigned char> data,
                        std::string* error);

}  // namespace qosc::codegen
