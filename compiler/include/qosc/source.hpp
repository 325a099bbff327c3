#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qosc {

// A position in a policy file. line/col are 1-based; len is the number of
// characters the caret underline covers (at least 1 when printed).
struct Loc {
  uint32_t line = 0;
  uint32_t col = 0;
  uint32_t len = 1;
  bool valid() const { return line != 0; }
  friend bool operator==(const Loc&, const Loc&) = default;
};

// The text of one input file, kept for diagnostics.
class SourceFile {
 public:
  SourceFile(std::string name, std::string text);
  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  // The text of a 1-based line without its newline ("" if out of range).
  std::string_view line(uint32_t n) const;

 private:
  std::string name_;
  std::string text_;
  std::vector<size_t> line_starts_;
};

}  // namespace qosc
