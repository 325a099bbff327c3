// Host tables: see qosrun/host_table.hpp and docs/hosts.md.
#include "qosrun/host_table.hpp"

#include <arpa/inet.h>
#include <endian.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace qosrun::hosts {

namespace {

__extension__ typedef unsigned __int128 u128;

u128 to_u128(const std::array<uint8_t, 16>& a) {   // network order: two big-endian halves
  uint64_t hi, lo;
  std::memcpy(&hi, a.data(), 8);
  std::memcpy(&lo, a.data() + 8, 8);
  return u128{be64toh(hi)} << 64 | be64toh(lo);
}
std::array<uint8_t, 16> from_u128(u128 v) {
  std::array<uint8_t, 16> a{};
  for (int i = 15; i >= 0; --i) {
    a[static_cast<size_t>(i)] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
  return a;
}
u128 host_mask(uint8_t len) { return len >= 128 ? u128{0} : (~u128{0} >> len); }

std::string_view trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;
  return s.substr(a, b - a);
}

struct Problem {
  uint32_t line = 0;   // 0: the table as a whole
  std::string message;
};

// What a name may hold: printable, no control characters (it is shown in
// tables and written to the state file, one host a line).
std::string name_problem(const std::string& name, const char* what) {
  if (name.empty()) return fmt::format("the {} is empty: write a name", what);
  if (name.size() > 128) return fmt::format("the {} is {} characters long: use at most 128", what, name.size());
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return fmt::format("the {} holds a control character: use printable characters", what);
  return {};
}

// The checks every table gets, whatever its spelling.
class Checker {
 public:
  Checker(const TableRules& rules, std::vector<Problem>& problems) : rules_(rules), problems_(problems) {}

  // One host as read; `prefix_texts` as written (split already).
  void add(HostEntry h, const std::vector<std::string_view>& prefix_texts) {
    bool ok = true;
    if (std::string p = name_problem(h.name, "host name"); !p.empty()) {
      problem(h.line, p);
      ok = false;
    } else if (auto it = seen_.find(h.name); it != seen_.end()) {
      problem(h.line, fmt::format("host '{}' is listed twice (first at line {}): give each host one entry with all "
                                  "its prefixes",
                                  h.name, it->second));
      ok = false;
    } else {
      seen_.emplace(h.name, h.line);
    }
    if (std::find(rules_.plans.begin(), rules_.plans.end(), h.plan) == rules_.plans.end()) {
      std::string known;
      for (const auto& p : rules_.plans) known += (known.empty() ? "" : ", ") + p;
      if (h.plan.empty())
        problem(h.line, fmt::format("host '{}' has no plan: write one of the policy's plans ({})", h.name, known));
      else
        problem(h.line, fmt::format("unknown plan '{}' for host '{}': the policy's plans are {}; use one of them, or "
                                    "add `plan {} {{ rate ...; }}` to the policy",
                                    h.plan, h.name, known.empty() ? "none" : known, h.plan));
      ok = false;
    }
    if (prefix_texts.empty()) {
      problem(h.line, fmt::format("host '{}' has no prefixes: give at least one address or prefix", h.name));
      ok = false;
    }
    h.prefixes.reserve(prefix_texts.size());
    for (std::string_view t : prefix_texts) {
      auto p = parse_prefix(t);
      if (!p) {
        problem(h.line, fmt::format("host '{}': {}", h.name, p.error().message));
        ok = false;
        continue;
      }
      h.prefixes.push_back(*p);
    }
    (void)ok;
    hosts_.push_back(std::move(h));
  }

  // Duplicates, overlaps and the map's room, across the whole table.
  void finish() {
    struct Item {
      u128 start, end;
      uint8_t len;
      size_t host;
      const Prefix* prefix;
    };
    std::vector<Item> items;
    size_t n = 0;
    for (const auto& h : hosts_) n += h.prefixes.size();
    items.reserve(n);
    for (size_t i = 0; i < hosts_.size(); ++i)
      for (const auto& p : hosts_[i].prefixes) {
        u128 s = to_u128(p.addr);
        items.push_back({s, s | host_mask(p.len), p.len, i, &p});
      }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      return a.start != b.start ? a.start < b.start : a.len != b.len ? a.len < b.len : a.host < b.host;
    });
    // Prefixes nest or are disjoint: the open ones form a stack of ancestors.
    std::vector<const Item*> open;
    for (const Item& it : items) {
      while (!open.empty() && open.back()->end < it.start) open.pop_back();
      if (!open.empty()) {
        const Item& outer = *open.back();
        const HostEntry& a = hosts_[outer.host];
        const HostEntry& b = hosts_[it.host];
        // Reported at the later line, naming the earlier.
        const bool b_later = b.line >= a.line;
        const HostEntry& later = b_later ? b : a;
        const HostEntry& earlier = b_later ? a : b;
        if (outer.len == it.len) {
          if (outer.host == it.host)
            problem(b.line, fmt::format("host '{}' lists prefix {} twice: remove one", b.name, it.prefix->text()));
          else
            problem(later.line, fmt::format("prefix {} is listed for host '{}' and for host '{}' (line {}): a prefix "
                                            "names one host; remove it from one of them",
                                            it.prefix->text(), later.name, earlier.name, earlier.line));
        } else if (outer.host == it.host) {
          problem(b.line, fmt::format("host '{}': prefix {} lies inside its own prefix {}: remove {}", b.name,
                                      it.prefix->text(), outer.prefix->text(), it.prefix->text()));
        } else {
          problem(later.line, fmt::format("prefix {} of host '{}' lies inside prefix {} of host '{}' (line {}): an "
                                          "address belongs to one host; split {} or remove {}",
                                          it.prefix->text(), b.name, outer.prefix->text(), a.name, a.line,
                                          outer.prefix->text(), it.prefix->text()));
        }
      }
      open.push_back(&it);
    }
    if (items.size() > rules_.max_prefixes)
      problem(0, fmt::format("the table has {} prefixes and the map {} holds {}: shard the hosts across interfaces "
                             "or machines, each with its own table (docs/hosts.md, \"Sharding\")",
                             items.size(), rules_.map_name, rules_.max_prefixes));
  }

  void problem(uint32_t line, std::string message) { problems_.push_back({line, std::move(message)}); }
  std::vector<HostEntry> take() { return std::move(hosts_); }
  void reserve(size_t n) {
    hosts_.reserve(n);
    seen_.reserve(n);
  }

 private:
  const TableRules& rules_;
  std::vector<Problem>& problems_;
  std::vector<HostEntry> hosts_;
  std::unordered_map<std::string, uint32_t> seen_;
};

// The prefixes of a field, separated by spaces or tabs, as views into it.
void split_prefixes(std::string_view s, std::vector<std::string_view>& out) {
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
}

// One CSV line into fields; quotes around a field, "" for a quote inside.
// False (and `why`) when a quote is left open or text follows a closing quote.
// A field is a view into the line, or (quoted) into `unquoted`, which holds
// the field's text with its quotes taken out.
bool split_csv(std::string_view line, std::vector<std::string_view>& fields, std::deque<std::string>& unquoted,
               std::string* why) {
  fields.clear();
  unquoted.clear();
  size_t i = 0;
  for (;;) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string_view field;
    if (i < line.size() && line[i] == '"') {
      std::string& f = unquoted.emplace_back();
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            f += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        f += line[i++];
      }
      if (!closed) {
        *why = "a quote is opened and never closed: close it on the same line";
        return false;
      }
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      if (i < line.size() && line[i] != ',') {
        *why = "text after a closing quote: put the whole field inside the quotes";
        return false;
      }
      field = f;
    } else {
      size_t j = line.find(',', i);
      if (j == std::string_view::npos) j = line.size();
      field = trim(line.substr(i, j - i));
      if (field.find('"') != std::string_view::npos) {
        *why = "a quote inside an unquoted field: quote the whole field and double the quote (\"\")";
        return false;
      }
      i = j;
    }
    fields.push_back(field);
    if (i >= line.size()) return true;
    ++i;   // the comma
  }
}

void parse_csv(std::string_view text, Checker& check) {
  check.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  uint32_t lineno = 0;
  bool header_seen = false;
  std::vector<std::string_view> fields, prefixes;
  std::deque<std::string> unquoted;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') {
      if (nl == text.size()) break;
      continue;
    }
    if (t.find('\0') != std::string_view::npos) {
      check.problem(lineno, "the line holds a NUL byte: a host table is text");
      if (nl == text.size()) break;
      continue;
    }
    std::string why;
    if (!split_csv(line, fields, unquoted, &why)) {
      check.problem(lineno, "malformed line: " + why);
      header_seen = true;
      if (nl == text.size()) break;
      continue;
    }
    if (!header_seen) {
      header_seen = true;
      std::string h;
      for (std::string_view f : fields) {
        std::string l(f);
        std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
        h += (h.empty() ? "" : ",") + l;
      }
      if (h == "host,plan,prefixes") {
        if (nl == text.size()) break;
        continue;
      }
      check.problem(lineno, fmt::format("the first line must be the header host,plan,prefixes (found '{}'): add it",
                                        t.substr(0, 60)));
      // ... and read this line as a host, so its own problems show too.
    }
    if (fields.size() != 3) {
      check.problem(lineno, fmt::format("malformed line: {} field(s) where host,plan,prefixes are 3: separate "
                                        "prefixes with spaces, and quote a field that holds a comma",
                                        fields.size()));
      if (nl == text.size()) break;
      continue;
    }
    HostEntry h;
    h.name = fields[0];
    h.plan = fields[1];
    h.line = lineno;
    split_prefixes(fields[2], prefixes);
    check.add(std::move(h), prefixes);
    if (nl == text.size()) break;
  }
}

uint32_t line_at(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return static_cast<uint32_t>(1 + std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n'));
}

// The line of each element of the top-level array (nlohmann keeps no
// positions): a scan that skips strings and counts brackets.
std::vector<uint32_t> json_element_lines(std::string_view text) {
  std::vector<uint32_t> lines;
  uint32_t line = 1;
  int depth = 0;
  bool expect_element = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') continue;
    if (depth == 1 && expect_element && c != ']') {
      lines.push_back(line);
      expect_element = false;
    }
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
        else if (text[i] == '\n') ++line;
      }
      continue;
    }
    if (c == '[' || c == '{') {
      ++depth;
      if (depth == 1 && c == '[') expect_element = true;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_element = true;
    }
  }
  return lines;
}

void parse_json(std::string_view text, Checker& check) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    if (auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
    check.problem(line_at(text, e.byte ? e.byte - 1 : 0), fmt::format("not valid JSON ({}): fix the syntax", what));
    return;
  }
  if (!j.is_array()) {
    check.problem(1, "a JSON host table is an array of {\"host\": ..., \"plan\": ..., \"prefixes\": [...]} objects");
    return;
  }
  std::vector<uint32_t> lines = json_element_lines(text);
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    uint32_t line = i < lines.size() ? lines[i] : 1;
    if (!e.is_object()) {
      check.problem(line, fmt::format("entry {} is not an object: write {{\"host\": ..., \"plan\": ..., "
                                      "\"prefixes\": [...]}}",
                                      i + 1));
      continue;
    }
    bool ok = true;
    for (const auto& [k, v] : e.items())
      if (k != "host" && k != "plan" && k != "prefixes") {
        check.problem(line, fmt::format("entry {}: unknown key \"{}\": the keys are host, plan and prefixes", i + 1, k));
        ok = false;
      }
    auto str = [&](const char* key) -> std::string {
      auto it = e.find(key);
      if (it == e.end()) {
        check.problem(line, fmt::format("entry {}: \"{}\" is missing: add it", i + 1, key));
        ok = false;
        return {};
      }
      if (!it->is_string()) {
        check.problem(line, fmt::format("entry {}: \"{}\" must be a string", i + 1, key));
        ok = false;
        return {};
      }
      return it->get<std::string>();
    };
    HostEntry h;
    h.name = str("host");
    h.plan = str("plan");
    h.line = line;
    std::vector<std::string> texts;   // the prefixes' own strings; `prefixes` views into them
    std::vector<std::string_view> prefixes;
    auto pj = e.find("prefixes");
    if (pj == e.end()) {
      check.problem(line, fmt::format("entry {}: \"prefixes\" is missing: add a list of addresses or prefixes", i + 1));
      ok = false;
    } else if (pj->is_string()) {
      split_prefixes(pj->get_ref<const std::string&>(), prefixes);
    } else if (pj->is_array()) {
      for (const auto& p : *pj) {
        if (!p.is_string()) {
          check.problem(line, fmt::format("entry {}: every prefix is a string (\"10.0.0.0/24\")", i + 1));
          ok = false;
          continue;
        }
        texts.push_back(p.get<std::string>());
      }
      prefixes.assign(texts.begin(), texts.end());
    } else {
      check.problem(line, fmt::format("entry {}: \"prefixes\" must be a list of strings", i + 1));
      ok = false;
    }
    if (!ok) continue;
    check.add(std::move(h), prefixes);
  }
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// ---- Prefix ----------------------------------------------------------------------------------

size_t Prefix::write_text(char (&out)[kTextMax]) const {
  char* p = out;
  char* const end = out + kTextMax;
  if (v4) {
    for (int i = 0; i < 4; ++i) {
      if (i) *p++ = '.';
      p = std::to_chars(p, end, addr[12 + static_cast<size_t>(i)]).ptr;
    }
  } else {
    inet_ntop(AF_INET6, addr.data(), out, INET6_ADDRSTRLEN);
    p += std::strlen(out);
  }
  *p++ = '/';
  p = std::to_chars(p, end, family_len()).ptr;
  return static_cast<size_t>(p - out);
}

std::string Prefix::text() const {
  char buf[kTextMax];
  return std::string(buf, write_text(buf));
}

bool Prefix::overlaps(const Prefix& o) const {   // prefixes nest or are disjoint: equal up to the shorter's length
  const u128 m = ~host_mask(std::min(len, o.len));
  return (to_u128(addr) & m) == (to_u128(o.addr) & m);
}

Result<Prefix> parse_prefix(std::string_view t, std::string* canonical) {
  // No allocation on the way to a valid prefix: a table holds thousands.
  std::string_view addr = t, lenstr;
  const bool has_len = t.find('/') != std::string_view::npos;
  if (has_len) {
    addr = t.substr(0, t.find('/'));
    lenstr = t.substr(t.find('/') + 1);
  }
  char a[INET6_ADDRSTRLEN + 1];
  const bool fits = addr.size() < sizeof a && addr.find('\0') == std::string_view::npos;
  if (fits) {
    std::memcpy(a, addr.data(), addr.size());
    a[addr.size()] = 0;
  }
  Prefix p;
  int maxlen = 0;
  if (addr.find(':') != std::string_view::npos) {
    if (!fits || inet_pton(AF_INET6, a, p.addr.data()) != 1)
      return Error{fmt::format("'{}' is not an IPv6 address or prefix: write it as 2001:db8::/48 or 2001:db8::1", t)};
    maxlen = 128;
  } else {
    uint8_t a4[4];
    if (!fits || inet_pton(AF_INET, a, a4) != 1)
      return Error{fmt::format("'{}' is not an IPv4 or IPv6 address or prefix: write it as 10.0.0.0/24 or 10.0.0.5", t)};
    p.v4 = true;
    p.addr[10] = p.addr[11] = 0xff;
    std::memcpy(p.addr.data() + 12, a4, 4);
    maxlen = 32;
  }
  int len = maxlen;
  if (has_len) {
    auto [end, ec] = std::from_chars(lenstr.data(), lenstr.data() + lenstr.size(), len);
    if (ec != std::errc() || end != lenstr.data() + lenstr.size() || lenstr.empty() || len < 0 || len > maxlen)
      return Error{fmt::format("'{}': the prefix length must be a number from 0 to {}", t, maxlen)};
  }
  p.len = static_cast<uint8_t>(p.v4 ? 96 + len : len);
  u128 v = to_u128(p.addr);
  if (v & host_mask(p.len)) {
    Prefix c = p;
    c.addr = from_u128(v & ~host_mask(p.len));
    if (canonical) *canonical = c.text();
    return Error{fmt::format("'{}' has host bits set: write {} (or {}/{} for the one address)", t, c.text(), addr,
                             maxlen)};
  }
  return p;
}

size_t HostTable::prefix_count() const {
  size_t n = 0;
  for (const auto& h : hosts) n += h.prefixes.size();
  return n;
}

Result<HostTable> parse_host_table(std::string_view text, const std::string& source, const TableRules& rules,
                                   TableFormat format) {
  std::vector<Problem> problems;
  Checker check(rules, problems);
  format = table_format(text, format);
  if (format == TableFormat::Json) parse_json(text, check);
  else parse_csv(text, check);
  // Duplicates and overlaps among the hosts that did parse are listed too.
  check.finish();
  if (problems.empty()) {
    HostTable t;
    t.source = source;
    t.hosts = check.take();
    return t;
  }
  std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) { return a.line < b.line; });
  std::string msg = fmt::format("the host table {} is refused: {} problem{}, nothing was changed", source,
                                problems.size(), problems.size() == 1 ? "" : "s");
  for (const auto& p : problems)
    msg += p.line ? fmt::format("\n  {}:{}: {}", source, p.line, p.message) : fmt::format("\n  {}: {}", source, p.message);
  return Error{msg, "", EINVAL};
}

TableFormat table_format(std::string_view text, TableFormat hint) {
  if (hint != TableFormat::Auto) return hint;
  size_t i = text.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && text[i] == '[' ? TableFormat::Json : TableFormat::Csv;
}

TableFormat table_format_of(const std::string& path) {
  return ends_with(path, ".json") ? TableFormat::Json : ends_with(path, ".csv") ? TableFormat::Csv : TableFormat::Auto;
}

Result<HostTable> read_host_table(const std::string& path, const TableRules& rules) {
  auto text = read_file_text(path);
  if (!text) return errno_error(text.error().code, fmt::format("cannot read the host table {}", path));
  const TableFormat f = table_format(*text, table_format_of(path));
  auto t = parse_host_table(*text, path, rules, f);
  if (t && f == TableFormat::Csv) t->text = std::move(*text);
  return t;
}

}  // namespace qosrun::hosts
