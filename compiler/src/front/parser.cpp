// The parser: PEGTL grammar (grammar/qos_grammar.hpp) + actions that build
// the AST + a control that turns grammar failures into diagnostics.
//
// Errors are collected, not thrown at the user: a failed `must<>` records a
// diagnostic and throws a parse_error that the nearest try_catch in the
// grammar turns into "skip this item / attribute" (see recover_item and
// recover_stmt), so one run reports every broken item. Lexical problems the
// grammar accepts but the language does not (a rate without a unit, an IPv4
// octet above 255) are recorded without interrupting the parse.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

#include "qos_grammar.hpp"
#include "qosc/frontend.hpp"
#include "qosc/literals.hpp"
#include "qosc/units.hpp"

namespace qosc {

namespace pegtl = tao::pegtl;
namespace g = grammar;

namespace {

const std::vector<std::string>& item_keywords() {
  static const std::vector<std::string> k = {"link", "download", "scheduler", "set", "class", "rule", "plan", "hosts"};
  return k;
}
const std::vector<std::string>& match_keywords() {
  static const std::vector<std::string> k = {"ip", "ip6", "tcp", "udp", "icmp", "icmpv6", "proto", "dscp", "saddr", "daddr", "sport", "dport"};
  return k;
}
const std::vector<std::string>& attr_keywords() {
  static const std::vector<std::string> k = {"priority", "weight", "quantum", "rate", "burst", "default", "set"};
  return k;
}
bool is_reserved(std::string_view w) {
  static const std::vector<std::string_view> k = {
      "policy", "link", "scheduler", "set", "class", "rule", "priority", "weight", "quantum", "rate", "burst",
      "default", "ip", "ip6", "saddr", "daddr", "tcp", "udp", "icmp", "icmpv6", "sport", "dport", "proto", "dscp"};
  return std::find(k.begin(), k.end(), w) != k.end();
}

// ---- parse state ---------------------------------------------------------------
struct State {
  const SourceFile& file;
  Diagnostics& diags;
  ast::Policy policy;

  // The item being parsed; committed to `policy` when the item succeeds.
  ast::ClassDecl cls;
  ast::ClassAttr attr;
  ast::SetDecl set;
  ast::RuleDecl rule;
  ast::Scheduler sched;
  ast::SchedParam param;
  ast::Value value;
  std::vector<ast::Element> elems;
  std::vector<ast::ExprPtr> exprs;
  ast::MatchKind l4 = ast::MatchKind::Tcp;
  ast::Rate rate;
  ast::Size size;
  ast::Duration duration;
  ast::LinkRate link;       // `link ...;` / `download ...;` being parsed
  ast::PlanDecl plan;
  ast::Number number;
  bool item_failed = false;

  State(const SourceFile& f, Diagnostics& d) : file(f), diags(d) {}

  // 1-based line/column of a byte offset.
  Loc loc_at(size_t offset, uint32_t len = 1) const {
    const std::string& t = file.text();
    offset = std::min(offset, t.size());
    uint32_t line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset; ++i)
      if (t[i] == '\n') ++line, line_start = i + 1;
    return Loc{line, uint32_t(offset - line_start + 1), std::max<uint32_t>(len, 1)};
  }
};

template <typename ActionInput>
Loc loc_of(const ActionInput& in) {
  auto p = in.position();
  std::string_view s(in.begin(), in.size());
  size_t nl = s.find('\n');
  size_t len = nl == std::string_view::npos ? s.size() : nl;
  return Loc{uint32_t(p.line), uint32_t(p.column), uint32_t(std::max<size_t>(len, 1))};
}

// The token at `p` as the user sees it, for "found ..." in messages.
std::string token_at(const char* p, const char* end) {
  if (p >= end) return "end of file";
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' || c == '/'; };
  if (is_word(*p)) {
    const char* q = p;
    while (q < end && (is_word(*q) || (*q == '-' && q + 1 < end && q[1] != '>'))) ++q;
    return fmt::format("'{}'", std::string(p, size_t(std::min<ptrdiff_t>(q - p, 40))));
  }
  if (end - p >= 2 && ((p[0] == '-' && p[1] == '>') || (p[0] == '!' && p[1] == '='))) return fmt::format("'{}'", std::string(p, 2));
  return fmt::format("'{}'", *p);
}
std::string word_at(const char* p, const char* end) {
  const char* q = p;
  while (q < end && (std::isalnum(static_cast<unsigned char>(*q)) || *q == '_' || *q == '-')) ++q;
  return std::string(p, q);
}

// Records a diagnostic and abandons the current item (the grammar's
// try_catch catches the exception and skips to the next item).
template <typename Input>
[[noreturn]] void fail(State& st, const Input& in, Diagnostic d) {
  st.diags.add(std::move(d));
  throw pegtl::parse_error(st.diags.all().back().message, in);
}

// ---- quantities: rates and sizes (units and exact scaling: qosc/units.hpp) ----------
using units::Quantity;
using units::split_quantity;

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// When `u` is one of `table`: *out = the scaled value, or nullopt with *d
// saying why (too large, not whole); returns whether the unit was known.
bool apply_unit(const Quantity& q, const std::string& u, std::span<const units::Unit> table, std::string_view text,
                const char* what, const char* whole_of, Diagnostic* d, std::optional<uint64_t>* out) {
  const units::Unit* unit = units::find_unit(table, u);
  if (!unit) return false;
  bool whole = true;
  *out = units::scale(q, unit->multiplier, &whole);
  if (!*out) d->message = fmt::format("{} {} is too large", what, text);
  else if (!whole) d->message = fmt::format("{} {} is not a whole number of {}", what, text, whole_of), out->reset();
  return true;
}

// Returns the rate in bit/s, or nullopt with *d filled.
std::optional<uint64_t> rate_from_text(std::string_view text, Diagnostic* d) {
  Quantity q = split_quantity(text);
  std::string u = lower(q.unit);
  std::string num = q.frac.empty() ? q.digits : q.digits + "." + q.frac;
  d->severity = Severity::Error;
  if (u.empty()) {
    d->message = fmt::format("rate {} has no unit", text);
    d->hints.push_back(fmt::format("write {}mbit for megabits per second (units: bit, kbit, mbit, gbit, tbit)", num));
    return std::nullopt;
  }
  if (std::optional<uint64_t> v; apply_unit(q, u, units::kRateUnits, text, "rate", "bits per second", d, &v)) return v;
  if (u == "bps" || u == "kbps" || u == "mbps" || u == "gbps" || u == "tbps") {
    std::string bitunit = u == "bps" ? "bit" : u.substr(0, 1) + "bit";
    d->message = fmt::format("'{}' is ambiguous: tc reads '{}' as bytes per second, qosc rates are bits per second", text, q.unit);
    const std::string prefix = u == "bps" ? "" : u[0] == 'k' ? "kilo" : u[0] == 'm' ? "mega" : u[0] == 'g' ? "giga" : "tera";
    d->hints.push_back(fmt::format("write {}{} for {}bits per second (or 8 times that if you meant bytes)", num, bitunit, prefix));
    return std::nullopt;
  }
  if (u == "b" || u == "kb" || u == "mb" || u == "gb" || u == "k" || u == "m" || u == "g" || u == "t") {
    d->message = fmt::format("'{}' is not a rate unit", q.unit);
    std::string p = u.substr(0, 1) == "b" ? "" : u.substr(0, 1);
    d->hints.push_back(fmt::format("rates are bits per second: write {}{}bit", num, p));
    return std::nullopt;
  }
  d->message = fmt::format("unknown rate unit '{}'", q.unit);
  std::vector<std::string> names;
  for (const auto& unit : units::kRateUnits) names.emplace_back(unit.name);
  std::string c = closest_match(u, names);
  d->hints.push_back(c.empty() ? "rates are bits per second: bit, kbit, mbit, gbit, tbit (powers of 1000)"
                               : fmt::format("did you mean '{}{}'?", num, c));
  return std::nullopt;
}

std::optional<uint64_t> size_from_text(std::string_view text, Diagnostic* d) {
  Quantity q = split_quantity(text);
  std::string u = lower(q.unit);
  std::string num = q.frac.empty() ? q.digits : q.digits + "." + q.frac;
  d->severity = Severity::Error;
  if (u.empty()) {
    d->message = fmt::format("size {} has no unit", text);
    d->hints.push_back(fmt::format("write {}b for bytes (units: b, kb, mb, gb, powers of 1024)", num));
    return std::nullopt;
  }
  if (std::optional<uint64_t> v; apply_unit(q, u, units::kSizeUnits, text, "size", "bytes", d, &v)) return v;
  if (u.size() > 3 && u.substr(u.size() - 3) == "bit") {
    d->message = fmt::format("'{}' is a rate unit, but a size in bytes is expected here", q.unit);
    d->hints.push_back("sizes are bytes: b, kb, mb, gb (powers of 1024)");
    return std::nullopt;
  }
  d->message = fmt::format("unknown size unit '{}'", q.unit);
  if (u == "k" || u == "m" || u == "g" || u == "kib" || u == "mib" || u == "gib")
    d->hints.push_back(fmt::format("write {}{}b", num, u.substr(0, 1)));
  else
    d->hints.push_back("sizes are bytes: b, kb, mb, gb (powers of 1024)");
  return std::nullopt;
}

// Returns the duration in microseconds, or nullopt with *d filled.
std::optional<uint64_t> duration_from_text(std::string_view text, Diagnostic* d) {
  Quantity q = split_quantity(text);
  std::string u = lower(q.unit);
  std::string num = q.frac.empty() ? q.digits : q.digits + "." + q.frac;
  d->severity = Severity::Error;
  if (u.empty()) {
    d->message = fmt::format("duration {} has no unit", text);
    d->hints.push_back(fmt::format("write {}ms for milliseconds (units: us, ms, s)", num));
    return std::nullopt;
  }
  if (std::optional<uint64_t> v; apply_unit(q, u, units::kDurationUnits, text, "duration", "microseconds", d, &v)) return v;
  d->message = fmt::format("unknown duration unit '{}'", q.unit);
  std::vector<std::string> names;
  for (const auto& unit : units::kDurationUnits) names.emplace_back(unit.name);
  std::string c = closest_match(u, names);
  // Spellings of other tools (`5sec`, `5msec`, `5usec`): one letter apart is too far for closest_match.
  for (const char* prefix : {"sec", "second"})
    if (u.rfind(prefix, 0) == 0) c = "s";
  for (const char* prefix : {"msec", "milli"})
    if (u.rfind(prefix, 0) == 0) c = "ms";
  for (const char* prefix : {"usec", "micro"})
    if (u.rfind(prefix, 0) == 0) c = "us";
  d->hints.push_back(c.empty() ? "durations: us, ms, s (microseconds, milliseconds, seconds)"
                               : fmt::format("did you mean '{}{}'?", num, c));
  return std::nullopt;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    if (v > (std::numeric_limits<uint64_t>::max() - unsigned(c - '0')) / 10) return std::nullopt;
    v = v * 10 + unsigned(c - '0');
  }
  return v;
}

// A number in an element; numbers too large for 64 bits are clamped (and
// therefore diagnosed as out of range by the checks).
uint64_t number_or_huge(std::string_view s) {
  auto v = parse_u64(s);
  return v ? *v : std::numeric_limits<uint64_t>::max();
}

// ---- actions ----------------------------------------------------------------------
template <typename Rule>
struct action : pegtl::nothing<Rule> {};

template <>
struct action<g::policy_head> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.policy.loc = loc_of(in);
    st.policy.loc.len = 6;
  }
};

void check_name(State& st, const std::string& name, Loc loc, const char* what) {
  if (is_reserved(name)) {
    auto& d = st.diags.error(loc, fmt::format("'{}' is a reserved word and cannot name a {}", name, what));
    d.hints.push_back(fmt::format("pick another name, e.g. '{}_{}'", name, what));
  }
}

template <>
struct action<g::policy_name> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.policy.name = in.string();
    st.policy.name_loc = loc_of(in);
    check_name(st, st.policy.name, st.policy.name_loc, "policy");
  }
};

template <>
struct action<g::item_begin> {
  template <typename In>
  static void apply(const In&, State& st) {
    st.cls = {};
    st.set = {};
    st.rule = {};
    st.sched = {};
    st.link = {};
    st.plan = {};
    st.elems.clear();
    st.exprs.clear();
  }
};

// A quantity with a unit (ast::Rate, ast::Size): its text and location, and
// its value when `parse` accepts the text, else the diagnostic saying why.
template <typename Q, typename In>
void read_quantity(const In& in, State& st, Q& q, uint64_t Q::*value,
                   std::optional<uint64_t> (*parse)(std::string_view, Diagnostic*)) {
  Diagnostic d;
  d.loc = loc_of(in);
  q = {};
  q.text = in.string();
  q.loc = d.loc;
  if (auto v = parse(q.text, &d))
    q.*value = *v;
  else
    st.diags.add(std::move(d));
}

template <>
struct action<g::rate_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    read_quantity(in, st, st.rate, &ast::Rate::bps, rate_from_text);
  }
};

template <>
struct action<g::size_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    read_quantity(in, st, st.size, &ast::Size::bytes, size_from_text);
  }
};

template <>
struct action<g::int_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.number.loc = loc_of(in);
    auto v = parse_u64(in.string());
    if (!v) st.diags.error(st.number.loc, fmt::format("number {} is too large", in.string()));
    st.number.value = v.value_or(0);
  }
};

template <>
struct action<g::duration_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    read_quantity(in, st, st.duration, &ast::Duration::us, duration_from_text);
  }
};

// ---- link and download ---------------------------------------------------------------
template <>
struct action<g::fixed_rate> {
  template <typename In>
  static void apply(const In&, State& st) { st.link.rate = st.rate; }
};
template <>
struct action<g::adaptive_kw> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.link.adaptive.emplace();
    st.link.adaptive->loc = loc_of(in);
  }
};
template <>
struct action<g::adaptive_min> {
  template <typename In>
  static void apply(const In& in, State& st) {
    read_quantity(in, st, st.link.adaptive->min, &ast::Rate::bps, rate_from_text);
  }
};
template <>
struct action<g::adaptive_max> {
  template <typename In>
  static void apply(const In& in, State& st) {
    read_quantity(in, st, st.link.adaptive->max, &ast::Rate::bps, rate_from_text);
  }
};
// A knob given twice is reported here: the AST holds one of each.
template <typename In, typename T>
void set_knob(const In& in, State& st, std::optional<T>& slot, const T& value, const char* name) {
  Loc at = loc_of(in);
  at.len = uint32_t(std::strlen(name));
  if (slot) {
    auto& d = st.diags.error(at, fmt::format("'{}' is given twice", name));
    d.notes.push_back({slot->loc, "first given here"});
    d.hints.push_back(fmt::format("keep one `{}`", name));
    return;
  }
  slot = value;
}
template <>
struct action<g::adaptive_start> {
  template <typename In>
  static void apply(const In& in, State& st) { set_knob(in, st, st.link.adaptive->start, st.rate, "start"); }
};
template <>
struct action<g::adaptive_delay> {
  template <typename In>
  static void apply(const In& in, State& st) { set_knob(in, st, st.link.adaptive->delay, st.duration, "delay"); }
};
template <>
struct action<g::link_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    // The item's location is the keyword; the values keep their own.
    st.link.loc = loc_of(in);
    st.link.loc.len = 4;
    st.policy.links.push_back(std::move(st.link));
    st.link = {};
  }
};
template <>
struct action<g::download_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.link.loc = loc_of(in);
    st.link.loc.len = 8;
    st.policy.downloads.push_back(std::move(st.link));
    st.link = {};
  }
};

// ---- scheduler -------------------------------------------------------------------
template <>
struct action<g::sched_kind> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.sched.kind = in.string();
    st.sched.kind_loc = loc_of(in);
  }
};
template <>
struct action<g::sched_block> {
  template <typename In>
  static void apply(const In&, State& st) { st.sched.has_block = true; }
};
template <>
struct action<g::sched_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.sched.loc = loc_of(in);
    st.sched.loc.len = 9;
    st.policy.schedulers.push_back(std::move(st.sched));
    st.sched = {};
  }
};
template <>
struct action<g::param_begin> {
  template <typename In>
  static void apply(const In&, State& st) {
    st.param = {};
    st.exprs.clear();
  }
};
template <>
struct action<g::rank_param> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.param.name = "rank";
    st.param.loc = loc_of(in);
    st.param.loc.len = 4;
    if (!st.exprs.empty()) {
      st.param.expr = std::move(st.exprs.back());
      st.exprs.pop_back();
    }
    st.sched.params.push_back(std::move(st.param));
  }
};
template <>
struct action<g::param_name> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.param.name = in.string();
    st.param.loc = loc_of(in);
  }
};
template <>
struct action<g::numeric_param> {
  template <typename In>
  static void apply(const In&, State& st) {
    st.param.number = st.number;
    st.sched.params.push_back(std::move(st.param));
  }
};

// ---- rank expressions --------------------------------------------------------------
ast::ExprPtr pop(State& st) {
  if (st.exprs.empty()) return std::make_unique<ast::Expr>();
  auto e = std::move(st.exprs.back());
  st.exprs.pop_back();
  return e;
}
template <>
struct action<g::expr_number> {
  template <typename In>
  static void apply(const In& in, State& st) {
    auto e = std::make_unique<ast::Expr>();
    e->kind = ast::Expr::Kind::Number;
    e->loc = loc_of(in);
    auto v = parse_u64(in.string());
    if (!v) st.diags.error(e->loc, fmt::format("number {} is too large", in.string()));
    e->number = v.value_or(0);
    st.exprs.push_back(std::move(e));
  }
};
template <>
struct action<g::expr_field> {
  template <typename In>
  static void apply(const In& in, State& st) {
    auto e = std::make_unique<ast::Expr>();
    e->kind = ast::Expr::Kind::Field;
    e->loc = loc_of(in);
    e->name = in.string();
    st.exprs.push_back(std::move(e));
  }
};
template <>
struct action<g::expr_call> {
  template <typename In>
  static void apply(const In& in, State& st) {
    auto e = std::make_unique<ast::Expr>();
    e->kind = ast::Expr::Kind::Call;
    std::string text = in.string();
    e->name = text.substr(0, text.find_first_of(" \t\r\n("));
    e->loc = loc_of(in);
    e->loc.len = uint32_t(e->name.size());
    auto b = pop(st);
    auto a = pop(st);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    st.exprs.push_back(std::move(e));
  }
};
template <>
struct action<g::expr_neg> {
  template <typename In>
  static void apply(const In& in, State& st) {
    auto e = std::make_unique<ast::Expr>();
    e->kind = ast::Expr::Kind::Neg;
    e->loc = loc_of(in);
    e->args.push_back(pop(st));
    st.exprs.push_back(std::move(e));
  }
};
template <typename In>
void binary(const In& in, State& st) {
  auto e = std::make_unique<ast::Expr>();
  e->kind = ast::Expr::Kind::Binary;
  std::string text = in.string();
  size_t at = text.find_first_of("+-*/");
  e->op = at == std::string::npos ? '+' : text[at];
  e->loc = loc_of(in);
  e->loc.col += uint32_t(at == std::string::npos ? 0 : at);  // the operator (same line in practice)
  e->loc.len = 1;
  auto b = pop(st);
  auto a = pop(st);
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  st.exprs.push_back(std::move(e));
}
template <>
struct action<g::expr_mul> {
  template <typename In>
  static void apply(const In& in, State& st) { binary(in, st); }
};
template <>
struct action<g::expr_add> {
  template <typename In>
  static void apply(const In& in, State& st) { binary(in, st); }
};

// ---- elements and values ----------------------------------------------------------
template <>
struct action<g::number_elem> {
  template <typename In>
  static void apply(const In& in, State& st) { st.elems.push_back(ast::Number{number_or_huge(in.string()), loc_of(in)}); }
};
template <>
struct action<g::range_elem> {
  template <typename In>
  static void apply(const In& in, State& st) {
    std::string t = in.string();
    size_t dash = t.find('-');
    auto trim = [](std::string s) {
      s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }), s.end());
      return s;
    };
    st.elems.push_back(ast::Range{number_or_huge(trim(t.substr(0, dash))), number_or_huge(trim(t.substr(dash + 1))), loc_of(in)});
  }
};
template <>
struct action<g::ipv4_elem> {
  template <typename In>
  static void apply(const In& in, State& st) {
    std::string t = in.string();
    ast::Ipv4 a;
    a.loc = loc_of(in);
    size_t slash = t.find('/');
    std::string addr = t.substr(0, slash);
    if (slash != std::string::npos) {
      a.has_len = true;
      a.len = uint32_t(std::min<uint64_t>(number_or_huge(t.substr(slash + 1)), 1000));
    }
    std::string why;
    auto v = literals::ipv4_address(addr, &why);
    if (!v) st.diags.error(a.loc, why);
    a.addr = v.value_or(0);
    st.elems.push_back(a);
  }
};
template <>
struct action<g::ipv6_elem> {
  template <typename In>
  static void apply(const In& in, State& st) {
    std::string t = in.string();
    ast::Ipv6 a;
    a.loc = loc_of(in);
    size_t slash = t.find('/');
    std::string addr = t.substr(0, slash);
    if (slash != std::string::npos) {
      a.has_len = true;
      a.len = uint32_t(std::min<uint64_t>(number_or_huge(t.substr(slash + 1)), 1000));
    }
    std::string why, hint;
    if (auto v6 = literals::ipv6_address(addr, &why, &hint)) {
      a.addr = *v6;
    } else {
      auto& d = st.diags.error(a.loc, why);
      d.hints.push_back(hint);
    }
    st.elems.push_back(a);
  }
};
template <>
struct action<g::word_elem> {
  template <typename In>
  static void apply(const In& in, State& st) { st.elems.push_back(ast::Word{in.string(), loc_of(in)}); }
};

template <>
struct action<g::value_begin> {
  template <typename In>
  static void apply(const In&, State& st) {
    st.value = {};
    st.elems.clear();
  }
};
template <>
struct action<g::negation> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.value.negated = true;
    st.value.negation_loc = loc_of(in);
  }
};
template <>
struct action<g::inline_set> {
  template <typename In>
  static void apply(const In&, State& st) { st.value.inline_set = true; }
};
template <>
struct action<g::set_ref> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.value.set_ref = in.string().substr(1);
    st.value.set_ref_loc = loc_of(in);
  }
};
template <>
struct action<g::value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.value.loc = loc_of(in);
    if (!st.value.set_ref) st.value.elements = std::move(st.elems);
    st.elems.clear();
    if (!st.rule.matches.empty()) st.rule.matches.back().value = std::move(st.value);
    st.value = {};
  }
};

// ---- matches -------------------------------------------------------------------------
template <ast::MatchKind K>
struct push_match {
  template <typename In>
  static void apply(const In& in, State& st) {
    ast::Match m;
    m.kind = K;
    m.loc = loc_of(in);
    m.l4 = st.l4;
    if constexpr (K == ast::MatchKind::Tcp || K == ast::MatchKind::Udp) st.l4 = K;
    st.rule.matches.push_back(std::move(m));
  }
};
template <> struct action<g::ip_saddr> : push_match<ast::MatchKind::IpSaddr> {};
template <> struct action<g::ip_daddr> : push_match<ast::MatchKind::IpDaddr> {};
template <> struct action<g::ip_bare> : push_match<ast::MatchKind::Ip> {};
template <> struct action<g::ip6_saddr> : push_match<ast::MatchKind::Ip6Saddr> {};
template <> struct action<g::ip6_daddr> : push_match<ast::MatchKind::Ip6Daddr> {};
template <> struct action<g::ip6_bare> : push_match<ast::MatchKind::Ip6> {};
template <> struct action<g::tcp_kw> : push_match<ast::MatchKind::Tcp> {};
template <> struct action<g::udp_kw> : push_match<ast::MatchKind::Udp> {};
template <> struct action<g::sport_kw> : push_match<ast::MatchKind::Sport> {};
template <> struct action<g::dport_kw> : push_match<ast::MatchKind::Dport> {};
template <> struct action<g::icmp_kw> : push_match<ast::MatchKind::Icmp> {};
template <> struct action<g::icmpv6_kw> : push_match<ast::MatchKind::Icmpv6> {};
template <> struct action<g::proto_kw> : push_match<ast::MatchKind::Proto> {};
template <> struct action<g::dscp_kw> : push_match<ast::MatchKind::Dscp> {};

template <>
struct action<g::stray_port> {
  template <typename In>
  static void apply(const In& in, State& st) {
    std::string kw = in.string();
    Diagnostic d;
    d.loc = loc_of(in);
    d.message = fmt::format("'{}' must directly follow 'tcp' or 'udp'", kw);
    d.hints.push_back(fmt::format("write `tcp {0} ...` or `udp {0} ...`", kw));
    fail(st, in, std::move(d));
  }
};

template <>
struct action<g::target_drop> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.rule.drop = true;
    st.rule.target = "drop";
    st.rule.target_loc = loc_of(in);
  }
};
template <>
struct action<g::target_class> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.rule.target = in.string();
    st.rule.target_loc = loc_of(in);
  }
};
template <>
struct action<g::rule_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.rule.loc = loc_of(in);
    st.rule.loc.len = 4;
    st.policy.rules.push_back(std::move(st.rule));
    st.rule = {};
  }
};

// ---- sets ------------------------------------------------------------------------------
template <>
struct action<g::set_name> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.set.name = in.string();
    st.set.name_loc = loc_of(in);
    check_name(st, st.set.name, st.set.name_loc, "set");
    st.elems.clear();
  }
};
template <>
struct action<g::set_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.set.loc = loc_of(in);
    st.set.loc.len = 3;
    st.set.elements = std::move(st.elems);
    st.elems.clear();
    st.policy.sets.push_back(std::move(st.set));
    st.set = {};
  }
};

// ---- classes -------------------------------------------------------------------------
template <>
struct action<g::class_name> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.cls.name = in.string();
    st.cls.name_loc = loc_of(in);
    check_name(st, st.cls.name, st.cls.name_loc, "class");
  }
};
template <>
struct action<g::attr_begin> {
  template <typename In>
  static void apply(const In&, State& st) { st.attr = {}; }
};
template <ast::ClassAttrKind K>
struct push_attr {
  template <typename In>
  static void apply(const In& in, State& st) {
    ast::ClassAttr a;
    a.kind = K;
    a.loc = loc_of(in);
    a.loc.len = uint32_t(std::string_view(ast::to_string(K)).size());
    a.value_loc = a.loc;
    if constexpr (K == ast::ClassAttrKind::Priority || K == ast::ClassAttrKind::Weight) {
      a.number = st.number.value;
      a.value_loc = st.number.loc;
    } else if constexpr (K == ast::ClassAttrKind::Quantum || K == ast::ClassAttrKind::Burst) {
      a.size = st.size;
      a.value_loc = st.size.loc;
    } else if constexpr (K == ast::ClassAttrKind::Rate) {
      a.rate = st.rate;
      a.value_loc = st.rate.loc;
    } else if constexpr (K == ast::ClassAttrKind::Isolate) {
      a.isolate = std::move(st.attr.isolate);
      a.value_loc = a.isolate.mode_loc;
    }
    st.cls.attrs.push_back(std::move(a));
  }
};
template <> struct action<g::attr_priority> : push_attr<ast::ClassAttrKind::Priority> {};
template <> struct action<g::attr_weight> : push_attr<ast::ClassAttrKind::Weight> {};
template <> struct action<g::attr_quantum> : push_attr<ast::ClassAttrKind::Quantum> {};
template <> struct action<g::attr_rate> : push_attr<ast::ClassAttrKind::Rate> {};
template <> struct action<g::attr_burst> : push_attr<ast::ClassAttrKind::Burst> {};
template <> struct action<g::attr_default> : push_attr<ast::ClassAttrKind::Default> {};
template <> struct action<g::attr_isolate> : push_attr<ast::ClassAttrKind::Isolate> {};
template <>
struct action<g::isolate_mode> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.attr.isolate.mode = in.string();
    st.attr.isolate.mode_loc = loc_of(in);
  }
};
template <>
struct action<g::isolate_nat> {
  template <typename In>
  static void apply(const In& in, State& st) { st.attr.isolate.nat = loc_of(in); }
};
template <>
struct action<g::isolate_size> {
  template <typename In>
  static void apply(const In&, State& st) { st.attr.isolate.size = {st.number.value, st.number.loc}; }
};
template <>
struct action<g::isolate_per_host> {
  template <typename In>
  static void apply(const In&, State& st) { st.attr.isolate.per_host = {st.number.value, st.number.loc}; }
};
// `set dscp NAME|N;`: the value is a number (set_dscp_number) or a
// name, checked by sema.
template <>
struct action<g::set_dscp_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.attr.value_loc = loc_of(in);
    st.attr.word.clear();
    st.attr.number = 0;
    if (!in.empty() && !std::isdigit(static_cast<unsigned char>(*in.begin()))) {
      st.attr.word = in.string();
    } else if (auto v = parse_u64(in.string())) {
      st.attr.number = *v;
    } else {
      st.diags.error(st.attr.value_loc, fmt::format("number {} is too large", in.string()));
    }
  }
};
template <>
struct action<g::attr_set_dscp> {
  template <typename In>
  static void apply(const In& in, State& st) {
    ast::ClassAttr a;
    a.kind = ast::ClassAttrKind::SetDscp;
    a.loc = loc_of(in);
    a.loc.len = 3;
    a.value_loc = st.attr.value_loc;
    a.word = st.attr.word;
    a.number = st.attr.number;
    st.cls.attrs.push_back(std::move(a));
  }
};
template <>
struct action<g::class_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.cls.loc = loc_of(in);
    st.cls.loc.len = 5;
    st.policy.classes.push_back(std::move(st.cls));
    st.cls = {};
  }
};

// ---- plans and hosts -------------------------------------------------------------------
template <>
struct action<g::plan_name> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.plan.name = in.string();
    st.plan.name_loc = loc_of(in);
    check_name(st, st.plan.name, st.plan.name_loc, "plan");
  }
};
template <ast::PlanAttrKind K>
struct push_plan_attr {
  template <typename In>
  static void apply(const In& in, State& st) {
    ast::PlanAttr a;
    a.kind = K;
    a.loc = loc_of(in);
    a.loc.len = uint32_t(std::string_view(ast::to_string(K)).size());
    if constexpr (K == ast::PlanAttrKind::Rate || K == ast::PlanAttrKind::Ceil) a.rate = st.rate;
    if constexpr (K == ast::PlanAttrKind::Burst) a.size = st.size;
    st.plan.attrs.push_back(std::move(a));
  }
};
template <> struct action<g::plan_rate> : push_plan_attr<ast::PlanAttrKind::Rate> {};
template <> struct action<g::plan_ceil> : push_plan_attr<ast::PlanAttrKind::Ceil> {};
template <> struct action<g::plan_burst> : push_plan_attr<ast::PlanAttrKind::Burst> {};
template <>
struct action<g::kw_classes> {
  template <typename In>
  static void apply(const In& in, State& st) {
    ast::PlanAttr a;
    a.kind = ast::PlanAttrKind::Classes;
    a.loc = loc_of(in);
    a.loc.len = 7;
    st.plan.attrs.push_back(std::move(a));
  }
};
template <>
struct action<g::plan_class> {
  template <typename In>
  static void apply(const In& in, State& st) {
    if (!st.plan.attrs.empty()) st.plan.attrs.back().classes.push_back({in.string(), loc_of(in)});
  }
};
template <>
struct action<g::plan_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.plan.loc = loc_of(in);
    st.plan.loc.len = 4;
    st.policy.plans.push_back(std::move(st.plan));
    st.plan = {};
  }
};
template <>
struct action<g::hosts_by> {
  template <typename In>
  static void apply(const In& in, State& st) {
    ast::HostsDecl h;
    h.by = in.string();
    h.by_loc = loc_of(in);
    st.policy.hosts.push_back(std::move(h));
  }
};
template <>
struct action<g::hosts_nat> {
  template <typename In>
  static void apply(const In& in, State& st) { st.policy.hosts.back().nat = loc_of(in); }
};
template <>
struct action<g::hosts_item> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.policy.hosts.back().loc = loc_of(in);
    st.policy.hosts.back().loc.len = 5;
  }
};

// ---- errors from the grammar ------------------------------------------------------------
// The message for a failed must<Rule>; "found ..." is appended.
template <typename Rule> struct expected { static constexpr const char* what = nullptr; };
#define QOSC_EXPECTED(rule, text) \
  template <> struct expected<g::rule> { static constexpr const char* what = text; };
QOSC_EXPECTED(kw_policy, "expected 'policy NAME { ... }' at the start of the file")
QOSC_EXPECTED(policy_name, "expected the policy's name after 'policy'")
QOSC_EXPECTED(lbrace, "expected '{'")
QOSC_EXPECTED(rbrace, "expected '}'")
QOSC_EXPECTED(policy_close, "expected '}' to close the policy")
QOSC_EXPECTED(trailing, "unexpected text after the end of the policy")
QOSC_EXPECTED(item, "expected 'link', 'download', 'scheduler', 'set', 'class', 'rule', 'plan' or 'hosts'")
QOSC_EXPECTED(rate_value, "expected a rate such as 100mbit")
QOSC_EXPECTED(size_value, "expected a size such as 64kb")
QOSC_EXPECTED(duration_value, "expected a duration such as 5ms")
QOSC_EXPECTED(link_body, "expected a rate such as 100mbit, or `adaptive MIN-MAX` such as `adaptive 10mbit-100mbit`")
QOSC_EXPECTED(adaptive_range, "expected the range MIN-MAX after 'adaptive', such as 10mbit-100mbit")
QOSC_EXPECTED(adaptive_dash, "expected '-' and the highest rate after the lowest (`adaptive MIN-MAX`)")
QOSC_EXPECTED(adaptive_max, "expected the highest rate after '-', such as 100mbit")
QOSC_EXPECTED(adaptive_end, "expected 'start RATE', 'delay DURATION' or ';' after the adaptive range")
QOSC_EXPECTED(int_value, "expected a whole number")
QOSC_EXPECTED(semi, "expected ';'")
QOSC_EXPECTED(equals, "expected '='")
QOSC_EXPECTED(sched_kind, "expected a scheduler kind after 'scheduler'")
QOSC_EXPECTED(sched_param, "expected a scheduler parameter ('rank = EXPR;' or 'bands N;')")
QOSC_EXPECTED(expr, "expected an expression")
QOSC_EXPECTED(expr_unary, "expected an operand after '-'")
QOSC_EXPECTED(expr_operand, "expected an operand")
QOSC_EXPECTED(expr_term, "expected an operand")
QOSC_EXPECTED(rparen, "expected ')'")
QOSC_EXPECTED(comma, "expected ',' between the two arguments")
QOSC_EXPECTED(set_name, "expected the set's name after 'set'")
QOSC_EXPECTED(set_element, "expected a set element (a number, range, address, prefix or name)")
QOSC_EXPECTED(element, "expected a set element (a number, range, address, prefix or name)")
QOSC_EXPECTED(set_close, "expected ',' or '}' in the set")
QOSC_EXPECTED(class_name, "expected the class's name after 'class'")
QOSC_EXPECTED(class_attr, "expected a class attribute (priority, weight, quantum, rate, burst, default, isolate or set dscp)")
QOSC_EXPECTED(isolate_mode, "expected what to isolate after 'isolate': flows, saddr or daddr")
QOSC_EXPECTED(plan_name, "expected the plan's name after 'plan'")
QOSC_EXPECTED(plan_attr, "expected a plan attribute (rate, ceil, burst or classes)")
QOSC_EXPECTED(plan_class, "expected a class name after 'classes' or ','")
QOSC_EXPECTED(hosts_by, "expected which address names a host after 'hosts': saddr or daddr")
QOSC_EXPECTED(set_dscp_kw, "expected 'dscp' after 'set' in a class (`set dscp ef;`)")
QOSC_EXPECTED(set_dscp_value, "expected a DSCP value after 'set dscp' (0-63 or a name such as ef, af41, cs1)")
QOSC_EXPECTED(first_match, "expected a match after 'rule' (ip, ip6, tcp, udp, icmp, icmpv6, proto or dscp)")
QOSC_EXPECTED(arrow, "expected another match, or '->' and the rule's target")
QOSC_EXPECTED(target, "expected a class name or 'drop' after '->'")
QOSC_EXPECTED(value, "expected a value")
QOSC_EXPECTED(value_body, "expected a value (a number, range, address, name, '{ ... }' set or @set)")
QOSC_EXPECTED(name, "expected a name")
QOSC_EXPECTED(sched_end, "expected ';' or '{' after the scheduler kind")
#undef QOSC_EXPECTED

template <typename Rule>
struct control : pegtl::normal<Rule> {
  template <typename ParseInput, typename... States>
  [[noreturn]] static void raise(const ParseInput& in, State& st, States&&...) {
    const char* p = in.current();
    const char* end = in.end();
    const char* base = in.begin();
    Diagnostic d;
    std::string found = token_at(p, end);
    std::string word = word_at(p, end);
    const char* what = expected<Rule>::what;
    d.message = what ? what : "syntax error";
    d.loc = st.loc_at(size_t(p - base), uint32_t(p < end ? std::max<size_t>(word.size(), 1) : 1));
    if (p >= end) {
      // At the end of the file: point just after the last thing written.
      const char* q = p;
      while (q > base && std::isspace(static_cast<unsigned char>(q[-1]))) --q;
      d.loc = st.loc_at(size_t(q - base), 1);
    }

    // A missing ';' (or '->') belongs right after the previous token, as in clang.
    if constexpr (std::is_same_v<Rule, g::semi> || std::is_same_v<Rule, g::arrow> || std::is_same_v<Rule, g::adaptive_end>) {
      const char* q = p;
      while (q > base && std::isspace(static_cast<unsigned char>(q[-1]))) --q;
      if (q < p && std::memchr(q, '\n', size_t(p - q))) {
        d.loc = st.loc_at(size_t(q - base), 1);
        // After an adaptive range, as after anything else, a new line means the ';' is missing.
        if constexpr (std::is_same_v<Rule, g::adaptive_end>) d.message = "expected ';'";
        d.message += fmt::format(" at the end of the line (the next line starts with {})", found);
        found.clear();
      }
    }
    if (!found.empty()) d.message += ", found " + found;

    if constexpr (std::is_same_v<Rule, g::item>) {
      std::string c = closest_match(word, item_keywords());
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
      else if (std::find(match_keywords().begin(), match_keywords().end(), word) != match_keywords().end())
        d.hints.push_back(fmt::format("rules start with 'rule': `rule {} ... -> CLASS;`", word));
      else if (p < end && *p == '}')
        d.hints.push_back("there is one '}' too many before this point");
    } else if constexpr (std::is_same_v<Rule, g::first_match> || std::is_same_v<Rule, g::arrow>) {
      std::string c = closest_match(word, match_keywords());
      if (!c.empty() && c != word) d.hints.push_back(fmt::format("did you mean '{}'?", c));
      if constexpr (std::is_same_v<Rule, g::arrow>)
        if (p < end && *p == ';') d.hints.push_back("a rule ends with `-> CLASS;` (or `-> drop;`)");
    } else if constexpr (std::is_same_v<Rule, g::adaptive_end>) {
      if (!found.empty()) {
        std::string c = closest_match(word, {"start", "delay"});
        if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
      }
    } else if constexpr (std::is_same_v<Rule, g::plan_attr>) {
      std::string c = closest_match(word, {"rate", "ceil", "burst", "classes"});
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
    } else if constexpr (std::is_same_v<Rule, g::class_attr>) {
      std::string c = closest_match(word, attr_keywords());
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
    } else if constexpr (std::is_same_v<Rule, g::set_dscp_kw>) {
      if (!closest_match(word, {"dscp"}).empty()) d.hints.push_back("did you mean 'dscp'?");
      else d.hints.push_back("a class can set the DSCP of its packets: `set dscp ef;` (named sets are items of the policy)");
    } else if constexpr (std::is_same_v<Rule, g::kw_policy>) {
      d.hints.push_back("a policy file is `policy NAME { ... }` with every item inside the braces");
    } else if constexpr (std::is_same_v<Rule, g::policy_close>) {
      d.notes.push_back({st.policy.loc, "the policy starts here"});
    } else if constexpr (std::is_same_v<Rule, g::trailing>) {
      d.hints.push_back("a file holds exactly one policy; everything goes inside its braces");
    } else if constexpr (std::is_same_v<Rule, g::value_body>) {
      if (p < end && *p == '!') d.hints.push_back("negation is written `!=`, e.g. `tcp dport != 22`");
    }
    st.diags.add(std::move(d));
    throw pegtl::parse_error(st.diags.all().back().message, in);
  }
};

}  // namespace

std::optional<ast::Policy> parse_policy(const SourceFile& file, Diagnostics& diags) {
  State st(file, diags);
  const size_t before = diags.error_count();
  pegtl::memory_input<> in(file.text(), file.name());
  try {
    if (!pegtl::parse<g::file, action, control>(in, st)) {
      diags.error(Loc{1, 1, 1}, "this file is not a policy");
    }
  } catch (const pegtl::parse_error&) {
    // Already reported by control::raise or an action.
    if (diags.error_count() == before) diags.error(Loc{1, 1, 1}, "syntax error");
  } catch (const std::exception& e) {
    diags.error(Loc{1, 1, 1}, fmt::format("cannot parse this file: {}", e.what()));
  }
  if (diags.error_count() > before) return std::nullopt;
  return std::move(st.policy);
}

std::optional<uint64_t> parse_rate_text(std::string_view text, std::string* error) {
  Diagnostic d;
  auto v = rate_from_text(text, &d);
  if (!v && error) {
    *error = d.message;
    for (auto& h : d.hints) *error += " (" + h + ")";
  }
  return v;
}

}  // namespace qosc
