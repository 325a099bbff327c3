#pragma once
// Diagnostics for people or for review tools (`--diagnostics-format` of
// check, fmt --check and diff): clang-style text, one JSON document, or
// SARIF 2.1.0 (what code review systems read to show warnings on the changed
// lines). One report collects the diagnostics of every file of a run.
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qosc/diag.hpp"

namespace qosc {

enum class DiagnosticsFormat { Text, Json, Sarif };
std::optional<DiagnosticsFormat> diagnostics_format_from(std::string_view name);   // "text", "json", "sarif"

class DiagnosticsReport {
 public:
  // Text goes to `text_out` as diagnostics are added (with colour when asked);
  // JSON and SARIF are written whole by finish().
  DiagnosticsReport(DiagnosticsFormat format, std::ostream& text_out, bool color = false);
  DiagnosticsFormat format() const { return format_; }
  bool structured() const { return format_ != DiagnosticsFormat::Text; }

  // Every diagnostic of `diags`, located in diags.file().
  void add(const Diagnostics& diags);
  // One diagnostic outside the language's own (e.g. "not formatted") in `file`.
  void add(const SourceFile& file, const Diagnostic& d);

  // Writes the JSON or SARIF document (nothing for text).
  void finish(std::ostream& out) const;

 private:
  struct Item {
    std::string file;
    Diagnostic diag;
  };
  DiagnosticsFormat format_;
  std::ostream& text_out_;
  bool color_;
  std::vector<Item> items_;
};

}  // namespace qosc
