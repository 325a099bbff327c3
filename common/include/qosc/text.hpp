#pragma once
// Text helpers shared by qosc and qosrun.
#include <string_view>
#include <vector>

namespace qosc {

// The lines of `text` as views into it, without their newlines; a last line
// without a newline is a line, an empty text has none.
inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

}  // namespace qosc
