#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "qosc/source.hpp"

namespace qosc {

enum class Severity { Error, Warning, Note };

// One diagnostic: "FILE:LINE:COL: error: MESSAGE", then the source line and a
// caret, then each note (with its own location when it has one) and
// "hint: ..." lines.
struct Diagnostic {
  Severity severity = Severity::Error;
  Loc loc;
  std::string message;
  struct Note {
    Loc loc;             // may be invalid: then printed as "note: ..." without a location
    std::string message;
  };
  std::vector<Note> notes;
  std::vector<std::string> hints;
};

// Diagnostics are collected, never thrown. Passes add to this and the driver
// stops after the first pass that reported an error.
class Diagnostics {
 public:
  explicit Diagnostics(const SourceFile* file = nullptr) : file_(file) {}
  void set_file(const SourceFile* file) { file_ = file; }
  const SourceFile* file() const { return file_; }

  Diagnostic& error(Loc loc, std::string message);
  Diagnostic& warning(Loc loc, std::string message);
  Diagnostic& add(Diagnostic d);

  bool has_errors() const { return errors_ > 0; }
  size_t error_count() const { return errors_; }
  size_t warning_count() const { return warnings_; }
  const std::vector<Diagnostic>& all() const { return diags_; }

  // Render every diagnostic in order, clang style. `color` adds ANSI colours.
  void print(std::ostream& os, bool color = false) const;
  std::string str() const;  // print() into a string, no colour

 private:
  const SourceFile* file_;
  std::vector<Diagnostic> diags_;
  size_t errors_ = 0, warnings_ = 0;
};

// Edit distance based suggestion: the closest of `candidates` to `word`, or ""
// when nothing is close enough to be a plausible typo.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace qosc
