// Diagnostics: collected, then printed clang-style:
//
//   gaming.qos:14:28: error: unknown class 'gamng'
//      14 |     rule udp dport 3074 -> gamng;
//         |                            ^~~~~
//   hint: did you mean 'gaming'?
//   gaming.qos:8:11: note: ...
#include "qosc/diag.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ostream>
#include <sstream>
#include <vector>

namespace qosc {

namespace {
Diagnostic make(Severity severity, Loc loc, std::string message) {
  Diagnostic d;
  d.severity = severity;
  d.loc = loc;
  d.message = std::move(message);
  return d;
}
}  // namespace

Diagnostic& Diagnostics::error(Loc loc, std::string message) { return add(make(Severity::Error, loc, std::move(message))); }

Diagnostic& Diagnostics::warning(Loc loc, std::string message) {
  return add(make(Severity::Warning, loc, std::move(message)));
}

Diagnostic& Diagnostics::add(Diagnostic d) {
  if (d.severity == Severity::Error) ++errors_;
  if (d.severity == Severity::Warning) ++warnings_;
  diags_.push_back(std::move(d));
  return diags_.back();
}

namespace {

struct Style {
  bool on;
  std::string bold() const { return on ? "\033[1m" : ""; }
  std::string reset() const { return on ? "\033[0m" : ""; }
  std::string sev(Severity s) const {
    if (!on) return "";
    switch (s) {
      case Severity::Error: return "\033[1;31m";
      case Severity::Warning: return "\033[1;35m";
      case Severity::Note: return "\033[1;36m";
    }
    return "";
  }
  std::string caret() const { return on ? "\033[1;32m" : ""; }
};

const char* sev_name(Severity s) {
  switch (s) {
    case Severity::Error: return "error";
    case Severity::Warning: return "warning";
    case Severity::Note: return "note";
  }
  return "?";
}

void print_one(std::ostream& os, const SourceFile* file, Severity sev, Loc loc, const std::string& msg, const Style& st) {
  std::string name = file ? file->name() : std::string("<input>");
  if (loc.valid())
    os << st.bold() << fmt::format("{}:{}:{}: ", name, loc.line, loc.col) << st.reset();
  else
    os << st.bold() << name << ": " << st.reset();
  os << st.sev(sev) << sev_name(sev) << ":" << st.reset() << " " << st.bold() << msg << st.reset() << "\n";
  if (!loc.valid() || !file) return;
  std::string_view line = file->line(loc.line);
  if (line.empty() && loc.line > 1 && file->text().size() > 0 && loc.col <= 1) {
    // An error at the very end of the file: show nothing rather than an empty line.
  }
  std::string num = fmt::format("{}", loc.line);
  std::string gutter(std::max<size_t>(num.size(), 4), ' ');
  os << fmt::format("{:>{}} | ", num, gutter.size()) << line << "\n";
  // Caret line: keep tabs where the source has them so the caret lines up.
  std::string pad;
  size_t col = loc.col ? loc.col - 1 : 0;
  for (size_t i = 0; i < col; ++i) pad += (i < line.size() && line[i] == '\t') ? '\t' : ' ';
  size_t len = std::max<uint32_t>(loc.len, 1);
  if (col < line.size()) len = std::min(len, line.size() - col);
  else len = 1;
  std::string mark = "^" + std::string(len > 0 ? len - 1 : 0, '~');
  os << gutter << " | " << pad << st.caret() << mark << st.reset() << "\n";
}

}  // namespace

void Diagnostics::print(std::ostream& os, bool color) const {
  Style st{color};
  for (const auto& d : diags_) {
    print_one(os, file_, d.severity, d.loc, d.message, st);
    for (const auto& h : d.hints) os << st.bold() << "hint:" << st.reset() << " " << h << "\n";
    for (const auto& n : d.notes) print_one(os, file_, Severity::Note, n.loc, n.message, st);
  }
}

std::string Diagnostics::str() const {
  std::ostringstream os;
  print(os, false);
  return os.str();
}

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  auto eq = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (eq(a[i - 1], b[j - 1]) ? 0 : 1)});
      // Two swapped neighbours count as one edit ("tpc" -> "tcp").
      if (i > 1 && j > 1 && eq(a[i - 1], b[j - 2]) && eq(a[i - 2], b[j - 1])) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}
}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.empty()) return "";
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  // Plausible typo: at most a third of the longer word, at least one edit allowed.
  size_t limit = std::max<size_t>(1, std::max(word.size(), best.size()) / 3);
  if (best_d > limit) return "";
  return best;
}

}  // namespace qosc
