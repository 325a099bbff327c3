#pragma once
// Sections of an ELF object held in memory, read and appended through libelf:
// the compiler appends the load-time tables, qosrun reads the manifest and
// the tables back.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qosc {

// The contents of section `name` (zeros for SHT_NOBITS). nullopt with *error
// set when `elf` is not an ELF object or has no such section; *absent tells
// the two apart (true: the object is fine, the section is not there).
std::optional<std::vector<unsigned char>> read_elf_section(std::span<const unsigned char> elf, std::string_view name,
                                                           std::string* error, bool* absent = nullptr);

// Appends a non-allocated SHT_PROGBITS section `name` (8-byte aligned)
// holding `data` to the object in `elf`; libelf lays the file out again.
bool append_elf_section(std::vector<unsigned char>& elf, std::string_view name, std::span<const unsigned char> data,
                        std::string* error);

}  // namespace qosc
