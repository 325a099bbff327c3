#pragma once
// A unified diff of two texts (for `qosc fmt --check`): lines compared
// exactly, three lines of context, hunks as diff -u writes them.
#include <cstdint>
#include <string>

namespace qosc::cli {

std::string unified_diff(const std::string& a, const std::string& b, const std::string& a_name,
                         const std::string& b_name);
// The first line (1-based) where the two texts differ.
uint32_t first_different_line(const std::string& a, const std::string& b);

}  // namespace qosc::cli
