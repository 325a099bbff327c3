// See shell.hpp.
#include "shell.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>

namespace qt_support {

std::string shell(const std::string& cmd, int* code) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return "popen failed";
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int st = pclose(f);
  if (code) *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return out;
}

}  // namespace qt_support
