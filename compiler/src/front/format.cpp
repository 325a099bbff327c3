// `qosc fmt`: the one canonical layout of a policy file, comments kept.
//
// The items come from the AST (printed by printer.cpp's pieces, so the text
// means what it meant); their order, the blank lines between them and the
// comments come from the source text. Layout:
// - `policy NAME {`, items indented by four spaces, one per line, `}`;
//   comments before and after the policy stay at column 0.
// - at most one blank line wherever the source had one or more; none at the
//   start or end of the body.
// - `class` lines in a run of consecutive class lines are a table: names and
//   each attribute padded to the widest in their column.
// - trailing comments (`... ; # why`) in a run of consecutive one-line items
//   start in one column, two spaces after the widest item that has one.
// - a class or set with comments inside is written one attribute or element
//   per line, each comment kept on its line; comments inside any other item
//   move to their own lines just above it.
// Because the layout depends only on the items and on where comments and
// blank lines are, formatting formatted text changes nothing.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "print_parts.hpp"
#include "qosc/frontend.hpp"

namespace qosc {
namespace {

using namespace printer;

struct Comment {
  size_t begin = 0;      // offset of '#'
  uint32_t line = 0;
  std::string text;      // '#' up to the end of the line, trailing blanks dropped
};

enum class ItemKind { Link, Scheduler, Set, Class, Rule, Download, Plan, Hosts };

struct ItemSpan {
  ItemKind kind;
  size_t index = 0;        // into the AST vector of its kind
  size_t begin = 0, end = 0;
};

// One line (or block) of output in the policy body.
struct Entry {
  enum Kind { Item, Comment, Blank } kind = Blank;
  size_t item = 0;                      // into spans
  std::string comment;                  // Comment: the text; Item: its trailing comment
  std::vector<std::string> hoisted;     // Item: comments from inside it, written above it
};

class Formatter {
 public:
  Formatter(const ast::Policy& p, const SourceFile& f) : p_(p), text_(f.text()) {
    for (size_t i = 0; i <= text_.size(); ++i)
      if (i == 0 || text_[i - 1] == '\n') line_starts_.push_back(i);
  }

  std::optional<std::string> run() {
    scan_comments();
    if (!scan_items()) return std::nullopt;
    std::string out;
    // Before `policy`: comments at column 0, blank lines kept (at most one).
    size_t last = 0;
    bool any = false;
    std::vector<std::string> header_hoisted;
    std::optional<std::string> header_trailing;
    for (const auto& c : comments_) {
      if (c.begin < policy_kw_) {
        if (any && blank_between(last, c.begin)) out += "\n";
        out += c.text + "\n";
        last = c.begin;
        any = true;
      } else if (c.begin < open_brace_) {
        header_hoisted.push_back(c.text);
      } else if (c.begin > open_brace_ && line_of(c.begin) == line_of(open_brace_) && c.begin < first_code_after(open_brace_ + 1)) {
        header_trailing = c.text;
      }
    }
    if (any && blank_between(last, policy_kw_)) out += "\n";
    for (const auto& h : header_hoisted) out += h + "\n";
    std::string head = fmt::format("policy {} {{", p_.name);
    out += header_trailing ? head + "  " + *header_trailing + "\n" : head + "\n";

    build_entries(header_trailing.has_value());
    out += render_body();
    out += "}";
    // After the closing brace: a comment on its line, then the rest.
    last = close_brace_;
    bool first = true;
    for (const auto& c : comments_) {
      if (c.begin < close_brace_) continue;
      if (first && line_of(c.begin) == line_of(close_brace_)) {
        out += "  " + c.text;
      } else {
        out += "\n";
        if (blank_between(last, c.begin)) out += "\n";
        out += c.text;
      }
      first = false;
      last = c.begin;
    }
    return out + "\n";
  }

 private:
  const ast::Policy& p_;
  const std::string& text_;
  std::vector<size_t> line_starts_;
  std::vector<Comment> comments_;
  std::vector<ItemSpan> spans_;
  std::vector<Entry> entries_;
  size_t policy_kw_ = 0, open_brace_ = 0, close_brace_ = 0;

  // The grammar's white space (PEGTL's `space`) other than the newline.
  static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

  uint32_t line_of(size_t off) const {
    return uint32_t(std::upper_bound(line_starts_.begin(), line_starts_.end(), off) - line_starts_.begin());
  }
  size_t offset_of(Loc l) const {
    return l.line == 0 || l.line > line_starts_.size() ? 0 : line_starts_[l.line - 1] + (l.col ? l.col - 1 : 0);
  }
  // A blank line somewhere in [a, b): two newlines with only blanks between.
  bool blank_between(size_t a, size_t b) const {
    bool seen_nl = false;
    for (size_t i = a; i < b && i < text_.size(); ++i) {
      char c = text_[i];
      if (c == '\n') {
        if (seen_nl) return true;
        seen_nl = true;
      } else if (c == '#') {
        seen_nl = false;
        while (i + 1 < b && text_[i + 1] != '\n') ++i;
      } else if (!blank(c)) {
        seen_nl = false;
      }
    }
    return false;
  }
  bool in_comment(size_t off) const {
    for (const auto& c : comments_)
      if (off >= c.begin && off < c.begin + c.text.size()) return true;
    return false;
  }
  // First offset at or after `i` that is code (not blank, not comment).
  size_t first_code_after(size_t i) const {
    while (i < text_.size()) {
      char c = text_[i];
      if (c == '#') {
        while (i < text_.size() && text_[i] != '\n') ++i;
        continue;
      }
      if (!blank(c) && c != '\n') return i;
      ++i;
    }
    return text_.size();
  }

  void scan_comments() {
    for (size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] != '#') continue;
      size_t e = text_.find('\n', i);
      if (e == std::string::npos) e = text_.size();
      std::string t = text_.substr(i, e - i);
      while (!t.empty() && blank(t.back())) t.pop_back();
      comments_.push_back({i, line_of(i), t});
      i = e;
    }
  }

  bool starts_word(size_t i, std::string_view w) const {
    if (text_.compare(i, w.size(), w) != 0) return false;
    size_t j = i + w.size();
    return j >= text_.size() || !(std::isalnum(static_cast<unsigned char>(text_[j])) || text_[j] == '_' || text_[j] == '-');
  }

  // Item boundaries from the text; the AST says what each item is.
  bool scan_items() {
    size_t i = first_code_after(0);
    policy_kw_ = i;
    while (i < text_.size() && (text_[i] != '{' || in_comment(i))) ++i;
    if (i >= text_.size()) return false;
    open_brace_ = i;
    size_t counts[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (i = first_code_after(i + 1); i < text_.size(); i = first_code_after(i)) {
      if (text_[i] == '}') {
        close_brace_ = i;
        return counts[0] == p_.links.size() && counts[1] == p_.schedulers.size() && counts[2] == p_.sets.size() &&
               counts[3] == p_.classes.size() && counts[4] == p_.rules.size() && counts[5] == p_.downloads.size() &&
               counts[6] == p_.plans.size() && counts[7] == p_.hosts.size();
      }
      ItemSpan s;
      if (starts_word(i, "link")) s.kind = ItemKind::Link;
      else if (starts_word(i, "scheduler")) s.kind = ItemKind::Scheduler;
      else if (starts_word(i, "set")) s.kind = ItemKind::Set;
      else if (starts_word(i, "class")) s.kind = ItemKind::Class;
      else if (starts_word(i, "rule")) s.kind = ItemKind::Rule;
      else if (starts_word(i, "download")) s.kind = ItemKind::Download;
      else if (starts_word(i, "plan")) s.kind = ItemKind::Plan;
      else if (starts_word(i, "hosts")) s.kind = ItemKind::Hosts;
      else return false;
      s.index = counts[int(s.kind)]++;
      s.begin = i;
      const bool block = s.kind == ItemKind::Class || s.kind == ItemKind::Scheduler || s.kind == ItemKind::Plan;
      int depth = 0;
      size_t j = i;
      for (; j < text_.size(); ++j) {
        char c = text_[j];
        if (c == '#') {
          while (j < text_.size() && text_[j] != '\n') ++j;
          continue;
        }
        if (c == '{') ++depth;
        if (c == '}' && --depth == 0 && block) {
          size_t k = first_code_after(j + 1);
          if (k < text_.size() && text_[k] == ';') j = k;
          break;
        }
        if (c == ';' && depth == 0) break;
      }
      if (j >= text_.size()) return false;
      s.end = j + 1;
      spans_.push_back(s);
      i = s.end;
    }
    return false;
  }

  // Comments inside a class or set that stay with an attribute or element.
  struct Inner {
    std::vector<size_t> offsets;                     // of each attribute / element
    std::vector<std::vector<std::string>> above;     // own-line comments before each (last: before '}')
    std::vector<std::string> trailing;               // on the line of each
    std::string header_trailing;                     // on the line of `{`
  };

  bool lays_out_inner(const ItemSpan& s) const { return s.kind == ItemKind::Class || s.kind == ItemKind::Set; }

  std::vector<size_t> inner_offsets(const ItemSpan& s) const {
    std::vector<size_t> r;
    if (s.kind == ItemKind::Class)
      for (const auto& a : p_.classes[s.index].attrs) r.push_back(offset_of(a.loc));
    if (s.kind == ItemKind::Set)
      for (const auto& e : p_.sets[s.index].elements) r.push_back(offset_of(ast::element_loc(e)));
    return r;
  }

  // Places a comment inside item `s`; false when it must move above the item.
  bool place_inner(const ItemSpan& s, const Comment& c, Inner& in) const {
    if (!lays_out_inner(s)) return false;
    size_t brace = text_.find('{', s.begin);
    if (brace == std::string::npos || c.begin < brace) return false;
    size_t close = s.end;
    while (close > s.begin && text_[close - 1] != '}') --close;
    if (c.begin >= close) return false;
    const auto& offs = in.offsets;
    // The last attribute/element starting before the comment on its line.
    for (size_t k = offs.size(); k-- > 0;) {
      if (offs[k] < c.begin && line_of(offs[k]) == c.line) {
        if (!in.trailing[k].empty()) in.trailing[k] += " ";
        in.trailing[k] += c.text;
        return true;
      }
    }
    if (c.line == line_of(brace) && (offs.empty() || line_of(offs[0]) != c.line)) {
      if (!in.header_trailing.empty()) in.header_trailing += " ";
      in.header_trailing += c.text;
      return true;
    }
    size_t k = 0;
    while (k < offs.size() && offs[k] < c.begin) ++k;
    in.above[k].push_back(c.text);
    return true;
  }

  std::vector<Inner> inners_;

  void build_entries(bool header_took_first) {
    inners_.resize(spans_.size());
    for (size_t i = 0; i < spans_.size(); ++i) {
      inners_[i].offsets = inner_offsets(spans_[i]);
      inners_[i].above.resize(inners_[i].offsets.size() + 1);
      inners_[i].trailing.resize(inners_[i].offsets.size());
    }
    // Body events in source order.
    size_t ci = 0;
    while (ci < comments_.size() && comments_[ci].begin <= open_brace_) ++ci;
    if (header_took_first && ci < comments_.size()) ++ci;
    size_t last_end = open_brace_ + 1;
    auto push_blank_if = [&](size_t until) {
      if (!entries_.empty() && entries_.back().kind != Entry::Blank && blank_between(last_end, until))
        entries_.push_back(Entry{Entry::Blank, 0, {}, {}});
    };
    for (size_t si = 0; si <= spans_.size(); ++si) {
      size_t limit = si < spans_.size() ? spans_[si].begin : close_brace_;
      // Comments between the previous item and this one.
      for (; ci < comments_.size() && comments_[ci].begin < limit; ++ci) {
        const auto& c = comments_[ci];
        if (!entries_.empty() && entries_.back().kind == Entry::Item && entries_.back().comment.empty() &&
            c.line == line_of(spans_[entries_.back().item].end - 1)) {
          entries_.back().comment = c.text;
        } else {
          push_blank_if(c.begin);
          entries_.push_back(Entry{Entry::Comment, 0, c.text, {}});
        }
        last_end = c.begin + c.text.size();
      }
      if (si == spans_.size()) break;
      const auto& s = spans_[si];
      push_blank_if(s.begin);
      Entry e{Entry::Item, si, {}, {}};
      for (; ci < comments_.size() && comments_[ci].begin < s.end; ++ci)
        if (!place_inner(s, comments_[ci], inners_[si])) e.hoisted.push_back(comments_[ci].text);
      entries_.push_back(std::move(e));
      last_end = s.end;
    }
    while (!entries_.empty() && entries_.back().kind == Entry::Blank) entries_.pop_back();
  }

  bool multi_line(size_t si) const {
    const auto& in = inners_[si];
    if (!in.header_trailing.empty()) return true;
    for (const auto& a : in.above)
      if (!a.empty()) return true;
    for (const auto& t : in.trailing)
      if (!t.empty()) return true;
    return false;
  }

  // The cells of a one-line item: for classes, name and attributes (a table
  // row); for the rest a single cell.
  std::vector<std::string> cells(size_t si) const {
    const auto& s = spans_[si];
    switch (s.kind) {
      case ItemKind::Link: return {link_text("link", p_.links[s.index])};
      case ItemKind::Download: return {link_text("download", p_.downloads[s.index])};
      case ItemKind::Plan: return {plan_text(p_.plans[s.index])};
      case ItemKind::Hosts: return {hosts_text(p_.hosts[s.index])};
      case ItemKind::Scheduler: return {scheduler_text(p_.schedulers[s.index])};
      case ItemKind::Set: {
        const auto& st = p_.sets[s.index];
        return {fmt::format("set {} = {};", st.name, elements_text(st.elements))};
      }
      case ItemKind::Rule: return {rule_text(p_.rules[s.index])};
      case ItemKind::Class: {
        const auto& c = p_.classes[s.index];
        std::vector<std::string> r = {fmt::format("class {}", c.name)};
        for (const auto& a : c.attrs) r.push_back(attr_text(a));
        return r;
      }
    }
    return {};
  }

  static std::string pad(std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
  }

  // Aligned trailing comments over lines [code, comment].
  static std::string align_comments(const std::vector<std::pair<std::string, std::string>>& lines,
                                    const std::string& indent) {
    size_t w = 0;
    for (const auto& [code, comment] : lines)
      if (!comment.empty()) w = std::max(w, code.size());
    std::string out;
    for (const auto& [code, comment] : lines)
      out += indent + (comment.empty() ? code : pad(code, w) + "  " + comment) + "\n";
    return out;
  }

  std::string render_multi(size_t si) const {
    const auto& s = spans_[si];
    const auto& in = inners_[si];
    std::vector<std::pair<std::string, std::string>> rows;
    std::string out;
    auto flush = [&] {
      out += align_comments(rows, "        ");
      rows.clear();
    };
    std::vector<std::string> parts;
    std::string head, tail;
    if (s.kind == ItemKind::Class) {
      const auto& c = p_.classes[s.index];
      head = fmt::format("class {} {{", c.name);
      for (const auto& a : c.attrs) parts.push_back(attr_text(a));
      tail = "}";
    } else {
      const auto& st = p_.sets[s.index];
      head = fmt::format("set {} = {{", st.name);
      for (const auto& e : st.elements) parts.push_back(element_text(e) + ",");
      tail = "};";
    }
    out += "    " + head + (in.header_trailing.empty() ? "" : "  " + in.header_trailing) + "\n";
    for (size_t k = 0; k <= parts.size(); ++k) {
      if (!in.above[k].empty()) {
        flush();
        for (const auto& c : in.above[k]) out += "        " + c + "\n";
      }
      if (k < parts.size()) rows.push_back({parts[k], in.trailing[k]});
    }
    flush();
    return out + "    " + tail;
  }

  std::string render_body() const {
    std::string out;
    size_t i = 0;
    while (i < entries_.size()) {
      const Entry& e = entries_[i];
      if (e.kind == Entry::Blank) {
        out += "\n";
        ++i;
        continue;
      }
      if (e.kind == Entry::Comment) {
        out += "    " + e.comment + "\n";
        ++i;
        continue;
      }
      if (multi_line(e.item)) {
        for (const auto& h : e.hoisted) out += "    " + h + "\n";
        std::string block = render_multi(e.item);
        out += block + (e.comment.empty() ? "" : "  " + e.comment) + "\n";
        ++i;
        continue;
      }
      // A paragraph: consecutive one-line items (hoisted comments end it).
      size_t j = i;
      std::vector<std::vector<std::string>> rows;
      while (j < entries_.size() && entries_[j].kind == Entry::Item && !multi_line(entries_[j].item) &&
             (j == i || entries_[j].hoisted.empty())) {
        rows.push_back(cells(entries_[j].item));
        ++j;
      }
      for (const auto& h : e.hoisted) out += "    " + h + "\n";
      // Class rows are a table within each run of consecutive class lines.
      std::vector<std::string> lines(rows.size());
      for (size_t a = 0; a < rows.size();) {
        size_t b = a;
        const bool is_class = spans_[entries_[i + a].item].kind == ItemKind::Class;
        while (b < rows.size() && (spans_[entries_[i + b].item].kind == ItemKind::Class) == is_class) ++b;
        if (!is_class) {
          for (size_t r = a; r < b; ++r) lines[r] = rows[r][0];
        } else {
          std::vector<size_t> width;
          for (size_t r = a; r < b; ++r)
            for (size_t k = 0; k < rows[r].size(); ++k) {
              if (width.size() <= k) width.push_back(0);
              width[k] = std::max(width[k], rows[r][k].size());
            }
          for (size_t r = a; r < b; ++r) {
            std::string l = pad(rows[r][0], width[0]) + " {";
            for (size_t k = 1; k < rows[r].size(); ++k)
              l += " " + (k + 1 < rows[r].size() ? pad(rows[r][k], width[k]) : rows[r][k]);
            lines[r] = l + " }";
          }
        }
        a = b;
      }
      std::vector<std::pair<std::string, std::string>> with_comments;
      for (size_t r = 0; r < rows.size(); ++r) with_comments.push_back({lines[r], entries_[i + r].comment});
      out += align_comments(with_comments, "    ");
      i = j;
    }
    return out;
  }
};

}  // namespace

std::optional<std::string> format_policy_file(const ast::Policy& policy, const SourceFile& file) {
  return Formatter(policy, file).run();
}

}  // namespace qosc
