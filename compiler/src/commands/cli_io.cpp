// File and terminal helpers shared by the qosc commands (cli_io.hpp).
#include "cli_io.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace qosc::cli {

bool use_color(const std::string& mode) {
  if (mode == "always") return true;
  if (mode == "never") return false;
  return isatty(STDERR_FILENO) && !std::getenv("NO_COLOR");
}

std::optional<std::string> read_input(const std::string& path, std::string* error) {
  std::ostringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *error = fmt::format("{} is a directory, not a policy file", path);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = fmt::format("cannot open {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  ss << in.rdbuf();
  return ss.str();
}

bool write_file(const fs::path& path, const void* data, size_t size, std::string* error) {
  // Something that is not a regular file (/dev/null, a pipe, a terminal) is
  // written into, never replaced: renaming over /dev/null would replace the
  // device with a plain file.
  std::error_code sec;
  if (auto st = fs::status(path, sec); !sec && fs::exists(st) && !fs::is_regular_file(st)) {
    if (fs::is_directory(st)) {
      *error = fmt::format("cannot write {}: it is a directory", path.string());
      return false;
    }
    std::ofstream out(path, std::ios::binary);
    if (out) out.write(static_cast<const char*>(data), std::streamsize(size));
    if (out) out.flush();
    if (!out) *error = fmt::format("cannot write {}: {}", path.string(), std::strerror(errno));
    return bool(out);
  }
  // A regular file: write next to the target and rename, so a failed run never leaves half an object.
  fs::path tmp = path;
  tmp += fmt::format(".tmp{}", getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      *error = fmt::format("cannot write {}: {}", path.string(), std::strerror(errno));
      return false;
    }
    out.write(static_cast<const char*>(data), std::streamsize(size));
    if (!out) {
      *error = fmt::format("cannot write {}: {}", path.string(), std::strerror(errno));
      std::error_code ec;
      fs::remove(tmp, ec);
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    *error = fmt::format("cannot write {}: {}", path.string(), ec.message());
    fs::remove(tmp, ec);
    return false;
  }
  return true;
}

void usage_error(const std::string& msg) { std::cerr << "qosc: error: " << msg << "\n"; }

}  // namespace qosc::cli
