// The AST printed back as canonical .qos text (print_policy: re-parses to
// the same meaning; used by the property test and `qosc convert`) and as a
// tree with locations (dump_ast, for `qosc --dump ast`).
#include <arpa/inet.h>

#include <fmt/format.h>

#include "print_parts.hpp"
#include "qosc/frontend.hpp"

namespace qosc {

namespace ast {

const char* to_string(MatchKind k) {
  switch (k) {
    case MatchKind::Ip: return "ip";
    case MatchKind::Ip6: return "ip6";
    case MatchKind::IpSaddr: return "ip saddr";
    case MatchKind::IpDaddr: return "ip daddr";
    case MatchKind::Ip6Saddr: return "ip6 saddr";
    case MatchKind::Ip6Daddr: return "ip6 daddr";
    case MatchKind::Tcp: return "tcp";
    case MatchKind::Udp: return "udp";
    case MatchKind::Icmp: return "icmp";
    case MatchKind::Icmpv6: return "icmpv6";
    case MatchKind::Sport: return "sport";
    case MatchKind::Dport: return "dport";
    case MatchKind::Proto: return "proto";
    case MatchKind::Dscp: return "dscp";
  }
  return "?";
}

const char* to_string(ClassAttrKind k) {
  switch (k) {
    case ClassAttrKind::Priority: return "priority";
    case ClassAttrKind::Weight: return "weight";
    case ClassAttrKind::Quantum: return "quantum";
    case ClassAttrKind::Rate: return "rate";
    case ClassAttrKind::Burst: return "burst";
    case ClassAttrKind::Default: return "default";
    case ClassAttrKind::Isolate: return "isolate";
    case ClassAttrKind::SetDscp: return "set dscp";
  }
  return "?";
}

const char* to_string(PlanAttrKind k) {
  switch (k) {
    case PlanAttrKind::Rate: return "rate";
    case PlanAttrKind::Ceil: return "ceil";
    case PlanAttrKind::Burst: return "burst";
    case PlanAttrKind::Classes: return "classes";
  }
  return "?";
}

Loc element_loc(const Element& e) {
  return std::visit([](const auto& x) { return x.loc; }, e);
}

}  // namespace ast

namespace printer {

std::string element_text(const ast::Element& e) {
  struct V {
    std::string operator()(const ast::Number& n) const { return fmt::format("{}", n.value); }
    std::string operator()(const ast::Range& r) const { return fmt::format("{}-{}", r.lo, r.hi); }
    std::string operator()(const ast::Ipv4& a) const {
      std::string s = fmt::format("{}.{}.{}.{}", a.addr >> 24, (a.addr >> 16) & 255, (a.addr >> 8) & 255, a.addr & 255);
      return a.has_len ? fmt::format("{}/{}", s, a.len) : s;
    }
    std::string operator()(const ast::Ipv6& a) const {
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(AF_INET6, a.addr.data(), buf, sizeof buf);
      return a.has_len ? fmt::format("{}/{}", buf, a.len) : std::string(buf);
    }
    std::string operator()(const ast::Word& w) const { return w.text; }
  };
  return std::visit(V{}, e);
}

std::string elements_text(const std::vector<ast::Element>& els) {
  std::string s;
  for (const auto& e : els) s += (s.empty() ? "" : ", ") + element_text(e);
  return "{ " + s + " }";
}

std::string value_text(const ast::Value& v) {
  std::string s = v.negated ? "!= " : "";
  if (v.set_ref) return s + "@" + *v.set_ref;
  if (v.inline_set || v.elements.size() != 1) return s + elements_text(v.elements);
  return s + element_text(v.elements[0]);
}

namespace {
// Binding strength: sums 1, products 2, operands 3. Operators associate to
// the left, so an equally strong right operand keeps its parentheses: the
// text re-parses to the same tree.
int strength(const ast::Expr* e) {
  if (!e || e->kind != ast::Expr::Kind::Binary) return 3;
  return e->op == '*' || e->op == '/' ? 2 : 1;
}
std::string expr_in(const ast::Expr* e, int need, bool right);
}  // namespace

std::string expr_text(const ast::Expr* e) { return expr_in(e, 0, false); }

namespace {
std::string expr_in(const ast::Expr* e, int need, bool right) {
  if (!e) return "0";
  using K = ast::Expr::Kind;
  auto arg = [&](size_t i) { return i < e->args.size() ? e->args[i].get() : nullptr; };
  switch (e->kind) {
    case K::Number: return fmt::format("{}", e->number);
    case K::Field: return e->name;
    case K::Call: return fmt::format("{}({}, {})", e->name, expr_text(arg(0)), expr_text(arg(1)));
    case K::Neg: return "-" + expr_in(arg(0), 3, false);
    case K::Binary: {
      int p = strength(e);
      std::string s = fmt::format("{} {} {}", expr_in(arg(0), p, false), e->op, expr_in(arg(1), p, true));
      return p < need || (p == need && right) ? "(" + s + ")" : s;
    }
  }
  return "0";
}
}  // namespace

std::string attr_text(const ast::ClassAttr& a) {
  switch (a.kind) {
    case ast::ClassAttrKind::Priority:
    case ast::ClassAttrKind::Weight: return fmt::format("{} {};", ast::to_string(a.kind), a.number);
    case ast::ClassAttrKind::Quantum:
    case ast::ClassAttrKind::Burst:
      return fmt::format("{} {};", ast::to_string(a.kind), a.size.text.empty() ? fmt::format("{}b", a.size.bytes) : a.size.text);
    case ast::ClassAttrKind::Rate:
      return fmt::format("rate {};", a.rate.text.empty() ? fmt::format("{}bit", a.rate.bps) : a.rate.text);
    case ast::ClassAttrKind::Default: return "default;";
    case ast::ClassAttrKind::Isolate: {
      const auto& i = a.isolate;
      std::string s = "isolate " + i.mode;
      if (i.nat) s += " nat";
      if (i.size) s += fmt::format(" {}", i.size->first);
      if (i.per_host) s += fmt::format(" flows {}", i.per_host->first);
      return s + ";";
    }
    case ast::ClassAttrKind::SetDscp: return a.word.empty() ? fmt::format("set dscp {};", a.number) : fmt::format("set dscp {};", a.word);
  }
  return "";
}

std::string rate_text(const ast::Rate& r) { return r.text.empty() ? fmt::format("{}bit", r.bps) : r.text; }
std::string duration_text(const ast::Duration& d) { return d.text.empty() ? fmt::format("{}us", d.us) : d.text; }

std::string link_text(const char* keyword, const ast::LinkRate& l) {
  if (!l.adaptive) return fmt::format("{} {};", keyword, rate_text(l.rate));
  const auto& a = *l.adaptive;
  std::string s = fmt::format("{} adaptive {}-{}", keyword, rate_text(a.min), rate_text(a.max));
  if (a.start) s += " start " + rate_text(*a.start);
  if (a.delay) s += " delay " + duration_text(*a.delay);
  return s + ";";
}

std::string plan_attr_text(const ast::PlanAttr& a) {
  switch (a.kind) {
    case ast::PlanAttrKind::Rate:
    case ast::PlanAttrKind::Ceil: return fmt::format("{} {};", ast::to_string(a.kind), rate_text(a.rate));
    case ast::PlanAttrKind::Burst:
      return fmt::format("burst {};", a.size.text.empty() ? fmt::format("{}b", a.size.bytes) : a.size.text);
    case ast::PlanAttrKind::Classes: {
      std::string s = "classes";
      for (size_t i = 0; i < a.classes.size(); ++i) s += (i ? ", " : " ") + a.classes[i].first;
      return s + ";";
    }
  }
  return "";
}

std::string plan_text(const ast::PlanDecl& p) {
  std::string s = fmt::format("plan {} {{", p.name);
  for (const auto& a : p.attrs) s += " " + plan_attr_text(a);
  return s + " }";
}

std::string hosts_text(const ast::HostsDecl& h) { return fmt::format("hosts {}{};", h.by, h.nat ? " nat" : ""); }

std::string match_text(const ast::Match& m) {
  std::string s = ast::to_string(m.kind);
  if (m.value) s += " " + value_text(*m.value);
  return s;
}

std::string scheduler_text(const ast::Scheduler& sc) {
  if (!sc.has_block && sc.params.empty()) return fmt::format("scheduler {};", sc.kind);
  std::string s = fmt::format("scheduler {} {{", sc.kind);
  for (const auto& prm : sc.params) {
    if (prm.expr)
      s += fmt::format(" {} = {};", prm.name, expr_text(prm.expr.get()));
    else
      s += fmt::format(" {} {};", prm.name, prm.number ? prm.number->value : 0);
  }
  return s + " }";
}

std::string rule_text(const ast::RuleDecl& r) {
  std::string s = "rule";
  for (const auto& m : r.matches) s += " " + match_text(m);
  return s + fmt::format(" -> {};", r.drop ? std::string("drop") : r.target);
}

}  // namespace printer

namespace {
using namespace printer;
std::string loc_text(Loc l) { return fmt::format("@{}:{}", l.line, l.col); }
}  // namespace

std::string print_rule(const ast::RuleDecl& rule) { return rule_text(rule); }
std::string print_match(const ast::Match& match) { return match_text(match); }

std::string print_policy(const ast::Policy& p) {
  std::string s = fmt::format("policy {} {{\n", p.name);
  for (const auto& l : p.links) s += "    " + link_text("link", l) + "\n";
  for (const auto& l : p.downloads) s += "    " + link_text("download", l) + "\n";
  for (const auto& sc : p.schedulers) s += "    " + scheduler_text(sc) + "\n";
  for (const auto& st : p.sets) s += fmt::format("    set {} = {};\n", st.name, elements_text(st.elements));
  for (const auto& c : p.classes) {
    s += fmt::format("    class {} {{", c.name);
    for (const auto& a : c.attrs) s += " " + attr_text(a);
    s += " }\n";
  }
  for (const auto& r : p.rules) s += "    " + rule_text(r) + "\n";
  for (const auto& pl : p.plans) s += "    " + plan_text(pl) + "\n";
  for (const auto& h : p.hosts) s += "    " + hosts_text(h) + "\n";
  s += "}\n";
  return s;
}

std::string dump_ast(const ast::Policy& p) {
  std::string s = fmt::format("policy '{}' {}\n", p.name, loc_text(p.loc));
  auto link = [&](const char* keyword, const ast::LinkRate& l) {
    if (!l.adaptive) return fmt::format("  {} {} = {} bit/s {}\n", keyword, l.rate.text, l.rate.bps, loc_text(l.rate.loc));
    const auto& a = *l.adaptive;
    std::string r = fmt::format("  {} adaptive {}\n    min {} = {} bit/s {}\n    max {} = {} bit/s {}\n", keyword,
                                loc_text(a.loc), a.min.text, a.min.bps, loc_text(a.min.loc), a.max.text,
                                a.max.bps, loc_text(a.max.loc));
    if (a.start) r += fmt::format("    start {} = {} bit/s {}\n", a.start->text, a.start->bps, loc_text(a.start->loc));
    if (a.delay) r += fmt::format("    delay {} = {} us {}\n", a.delay->text, a.delay->us, loc_text(a.delay->loc));
    return r;
  };
  for (const auto& l : p.links) s += link("link", l);
  for (const auto& l : p.downloads) s += link("download", l);
  for (const auto& sc : p.schedulers) {
    s += fmt::format("  scheduler '{}' {}\n", sc.kind, loc_text(sc.kind_loc));
    for (const auto& prm : sc.params)
      s += fmt::format("    param {} = {} {}\n", prm.name,
                       prm.expr ? expr_text(prm.expr.get()) : fmt::format("{}", prm.number ? prm.number->value : 0),
                       loc_text(prm.loc));
  }
  for (const auto& st : p.sets) {
    s += fmt::format("  set '{}' {}\n", st.name, loc_text(st.name_loc));
    for (const auto& e : st.elements) s += fmt::format("    element {} {}\n", element_text(e), loc_text(ast::element_loc(e)));
  }
  for (const auto& c : p.classes) {
    s += fmt::format("  class '{}' {}\n", c.name, loc_text(c.name_loc));
    for (const auto& a : c.attrs) s += fmt::format("    {} {}\n", attr_text(a), loc_text(a.loc));
  }
  for (const auto& r : p.rules) {
    s += fmt::format("  rule {} -> {} {}\n", loc_text(r.loc), r.drop ? std::string("drop") : "'" + r.target + "'",
                     loc_text(r.target_loc));
    for (const auto& m : r.matches) s += fmt::format("    match {} {}\n", match_text(m), loc_text(m.loc));
  }
  for (const auto& pl : p.plans) {
    s += fmt::format("  plan '{}' {}\n", pl.name, loc_text(pl.name_loc));
    for (const auto& a : pl.attrs) s += fmt::format("    {} {}\n", plan_attr_text(a), loc_text(a.loc));
  }
  for (const auto& h : p.hosts)
    s += fmt::format("  hosts '{}'{} {}\n", h.by, h.nat ? " nat" : "", loc_text(h.by_loc));
  return s;
}

}  // namespace qosc
