#pragma once
// A small C source builder: lines with indentation, blocks, and #line
// directives that map generated code back to the policy (and back again to
// the generated file itself).
#include <cstdint>
#include <string>
#include <string_view>

namespace qosc::codegen {

class SourceBuilder {
 public:
  explicit SourceBuilder(std::string gen_name = "qos_gen.c") : gen_name_(std::move(gen_name)) {}

  // One line at the current indentation ("" = empty line).
  SourceBuilder& line(std::string_view text);
  // Raw text (may contain newlines; each line is indented).
  SourceBuilder& raw(std::string_view text);
  // `head {` ... `}tail` with one more level of indentation inside.
  SourceBuilder& open(std::string_view head);
  SourceBuilder& close(std::string_view tail = "");
  void indent() { ++depth_; }
  void dedent() { if (depth_ > 0) --depth_; }
  int depth() const { return depth_; }

  // `#line N "file"`: following lines are attributed to the policy.
  SourceBuilder& line_directive(uint32_t line, std::string_view file);
  // Back to the generated file's own numbering.
  SourceBuilder& reset_line();

  uint32_t current_line() const { return lines_ + 1; }  // number the next line will have
  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void put(std::string_view text);
  std::string gen_name_;
  std::string out_;
  int depth_ = 0;
  uint32_t lines_ = 0;
  bool mapped_ = false;
};

// C string literal for arbitrary bytes.
std::string c_string_literal(std::string_view s);

}  // namespace qosc::codegen
