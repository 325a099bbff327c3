// SourceFile: the text of one input, indexed by line for diagnostics.
#include "qosc/source.hpp"

namespace qosc {

SourceFile::SourceFile(std::string name, std::string text) : name_(std::move(name)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
}

std::string_view SourceFile::line(uint32_t n) const {
  if (n == 0 || n > line_starts_.size()) return {};
  size_t start = line_starts_[n - 1];
  if (start > text_.size()) return {};
  size_t end = n < line_starts_.size() ? line_starts_[n] - 1 : text_.size();
  std::string_view l(text_.data() + start, end - start);
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  return l;
}

}  // namespace qosc
