#pragma once
// What every qosc command does with files and the terminal.
#include <filesystem>
#include <optional>
#include <string>

namespace qosc::cli {

inline constexpr int kOk = 0, kUserError = 1, kInternal = 2;

// The whole of a file, or standard input for "-"; nullopt with *error.
std::optional<std::string> read_input(const std::string& path, std::string* error);
// A regular file is written next to itself and renamed over (never half
// written); anything else (/dev/null, a pipe) is written into.
bool write_file(const std::filesystem::path& path, const void* data, size_t size, std::string* error);
// --color auto|always|never for standard error.
bool use_color(const std::string& mode);
// "qosc: error: MESSAGE" on standard error.
void usage_error(const std::string& msg);

}  // namespace qosc::cli
