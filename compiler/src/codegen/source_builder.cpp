#include "source_builder.hpp"

#include <fmt/format.h>

namespace qosc::codegen {

void SourceBuilder::put(std::string_view text) {
  if (!text.empty()) out_.append(size_t(depth_), '\t');
  out_.append(text);
  out_.push_back('\n');
  ++lines_;
}

SourceBuilder& SourceBuilder::line(std::string_view text) {
  put(text);
  return *this;
}

SourceBuilder& SourceBuilder::raw(std::string_view text) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (pos < text.size()) put(text.substr(pos));
      break;
    }
    put(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return *this;
}

SourceBuilder& SourceBuilder::open(std::string_view head) {
  put(fmt::format("{}{}{{", head, head.empty() ? "" : " "));
  ++depth_;
  return *this;
}

SourceBuilder& SourceBuilder::close(std::string_view tail) {
  dedent();
  put(fmt::format("}}{}", tail));
  return *this;
}

SourceBuilder& SourceBuilder::line_directive(uint32_t line, std::string_view file) {
  out_ += fmt::format("#line {} {}\n", line, c_string_literal(file));
  ++lines_;
  mapped_ = true;
  return *this;
}

SourceBuilder& SourceBuilder::reset_line() {
  if (!mapped_) return *this;
  // The directive names the number of the line that follows it.
  out_ += fmt::format("#line {} {}\n", lines_ + 2, c_string_literal(gen_name_));
  ++lines_;
  mapped_ = false;
  return *this;
}

std::string c_string_literal(std::string_view s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\t': r += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) r += fmt::format("\\{:03o}", c);
        else r.push_back(char(c));
    }
  }
  r += "\"";
  return r;
}

}  // namespace qosc::codegen
