#pragma once
// The maps strategy's bit tables (bitvector.hpp) as load-time tables: the
// maps the generated code declares and the section the loader fills them
// from (format in qos_abi.h, "Load-time tables"; qosc/load_tables.hpp).
#include <string>
#include <vector>

#include "bitvector.hpp"

namespace qosc::codegen {

std::string table_map_name(Dim d);            // "qos_t_dport", ...
uint32_t desc_value_size(const BitTables& t);  // bytes of struct qos_desc
std::vector<unsigned char> serialize_tables(const BitTables& t);

}  // namespace qosc::codegen
