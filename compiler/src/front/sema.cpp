// Semantic checks and lowering: ast::Policy -> ir::Policy.
//
// One pass over the AST that both diagnoses and builds the IR; diagnostics
// are collected (several per run) and the IR is returned only when there
// were no errors. Rules that can never match (contradictory matches, or every
// packet taken by the union of earlier rules: the rule algebra in ir/ decides)
// are warnings and are left out of the IR.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "qos_abi.h"
#include "qosc/frontend.hpp"
#include "qosc/literals.hpp"
#include "qosc/match_text.hpp"
#include "qosc/reach.hpp"
#include "qosc/units.hpp"
#include "sema_hosts.hpp"

namespace qosc {
namespace {

using ast::MatchKind;

// ---- names and constants ----------------------------------------------------

// Names as written in a policy (ast::to_string, printer.cpp).
const char* match_name(MatchKind k) { return ast::to_string(k); }
const char* attr_name(ast::ClassAttrKind k) { return ast::to_string(k); }

const std::map<std::string, ir::SchedKind>& sched_names() {
  static const std::map<std::string, ir::SchedKind> m = {
      {"strict_priority", ir::SchedKind::StrictPriority},
      {"sp", ir::SchedKind::StrictPriority},
      {"round_robin", ir::SchedKind::RoundRobin},
      {"rr", ir::SchedKind::RoundRobin},
      {"deficit_round_robin", ir::SchedKind::DeficitRoundRobin},
      {"drr", ir::SchedKind::DeficitRoundRobin},
      {"weighted_fair_queuing", ir::SchedKind::WeightedFairQueuing},
      {"wfq", ir::SchedKind::WeightedFairQueuing},
      {"pifo", ir::SchedKind::Pifo},
  };
  return m;
}

using literals::dscp_names;
using literals::proto_names;

const std::map<std::string, ir::RankField>& rank_fields() {
  static const std::map<std::string, ir::RankField> m = {
      {"class.priority", ir::RankField::ClassPriority}, {"class.weight", ir::RankField::ClassWeight},
      {"pkt.len", ir::RankField::PktLen},               {"flow.bytes", ir::RankField::FlowBytes},
      {"flow.packets", ir::RankField::FlowPackets},     {"now_us", ir::RankField::NowUs},
  };
  return m;
}

template <class M>
std::vector<std::string> keys(const M& m) {
  std::vector<std::string> r;
  for (const auto& [k, v] : m) r.push_back(k);
  return r;
}

std::string fmt_prefix(const ir::Prefix& p) { return ir::format_prefix(p); }

Loc elem_loc(const ast::Element& e) {
  return std::visit([](const auto& x) { return x.loc; }, e);
}

// ---- value helpers ------------------------------------------------------------

using ir::prefix_contains;
bool prefixes_overlap(const ir::Prefix& a, const ir::Prefix& b) {
  return a.family == b.family && ir::prefix_values(a).overlaps(ir::prefix_values(b));
}

// Sorted, covered prefixes removed.
std::vector<ir::Prefix> normalise(std::vector<ir::Prefix> v) {
  std::sort(v.begin(), v.end(), [](const ir::Prefix& a, const ir::Prefix& b) {
    return a.addr != b.addr ? a.addr < b.addr : a.len < b.len;
  });
  std::vector<ir::Prefix> out;
  for (const auto& p : v) {
    bool covered = false;
    for (const auto& q : out)
      if (prefix_contains(q, p)) { covered = true; break; }
    if (!covered) out.push_back(p);
  }
  return out;
}

ir::PortSet make_portset(std::vector<ir::PortInterval> v) {
  std::sort(v.begin(), v.end(), [](auto a, auto b) { return a.lo < b.lo; });
  ir::PortSet out;
  for (auto iv : v) {
    if (!out.empty() && uint32_t(iv.lo) <= uint32_t(out.back().hi) + 1) {
      out.back().hi = std::max(out.back().hi, iv.hi);
    } else {
      out.push_back(iv);
    }
  }
  return out;
}

ir::PortSet complement(const ir::PortSet& s) {
  ir::PortSet out;
  uint32_t next = 0;
  for (auto iv : s) {
    if (iv.lo > next) out.push_back({uint16_t(next), uint16_t(iv.lo - 1)});
    next = uint32_t(iv.hi) + 1;
  }
  if (next <= 65535) out.push_back({uint16_t(next), 65535});
  return out;
}

ir::PortSet intersect(const ir::PortSet& a, const ir::PortSet& b) {
  std::vector<ir::PortInterval> v;
  for (auto x : a)
    for (auto y : b) {
      uint16_t lo = std::max(x.lo, y.lo), hi = std::min(x.hi, y.hi);
      if (lo <= hi) v.push_back({lo, hi});
    }
  return make_portset(v);
}

// ---- the checker ----------------------------------------------------------------

enum class SetKind { Numbers, Words, V4, V6, Mixed, Empty };

const char* set_kind_name(SetKind k) {
  switch (k) {
    case SetKind::Numbers: return "numbers (ports or DSCP values)";
    case SetKind::Words: return "names (DSCP or protocol names)";
    case SetKind::V4: return "IPv4 prefixes";
    case SetKind::V6: return "IPv6 prefixes";
    case SetKind::Mixed: return "mixed elements";
    case SetKind::Empty: return "nothing";
  }
  return "?";
}

SetKind element_kind(const ast::Element& e) {
  if (std::holds_alternative<ast::Number>(e) || std::holds_alternative<ast::Range>(e)) return SetKind::Numbers;
  if (std::holds_alternative<ast::Word>(e)) return SetKind::Words;
  if (std::holds_alternative<ast::Ipv4>(e)) return SetKind::V4;
  return SetKind::V6;
}

// Where a rule's lowered constraint came from, for "can never match" notes.
struct Origin {
  Loc loc;
  std::string what;
};

class Checker {
 public:
  Checker(const ast::Policy& p, const SourceFile& f, Diagnostics& d, bool keep_dead = false)
      : ast_(p), file_(f), diags_(d), keep_dead_(keep_dead) {}

  std::optional<ir::Policy> run() {
    out_.name = ast_.name;
    out_.source_name = file_.name();
    check_link();
    check_scheduler();
    check_sets();
    check_classes();
    check_rules();
    check_plans_and_hosts(ast_, out_, diags_);
    out_.unreachable_removed = !keep_dead_;
    check_reachability();
    check_caps();
    if (diags_.has_errors()) return std::nullopt;
    return std::move(out_);
  }

 private:
  const ast::Policy& ast_;
  const SourceFile& file_;
  Diagnostics& diags_;
  bool keep_dead_;  // tests only: keep dead rules (a contradictory one as a rule matching nothing)
  ir::Policy out_;
  std::map<std::string, const ast::SetDecl*> sets_;
  std::map<std::string, SetKind> set_kinds_;
  std::map<std::string, uint32_t> class_ids_;
  std::vector<Loc> rule_locs_;  // per IR rule
  ir::FirstMatchIndex reach_;   // the live rules so far, for "can this rule still match?"

  // -- link and download -----------------------------------------------------------
  void check_link() {
    if (ast_.links.empty()) {
      auto& d = diags_.error(ast_.name_loc, fmt::format("policy '{}' has no link rate", ast_.name));
      d.hints.push_back("add the egress rate this host shapes to, e.g. `link 100mbit;`");
    } else {
      out_.link_bps = check_rate_item(ast_.links[0], "link", &out_.link_adaptive);
      for (size_t i = 1; i < ast_.links.size(); ++i) {
        auto& d = diags_.error(ast_.links[i].value_loc(), "a policy has exactly one link rate");
        d.notes.push_back({ast_.links[0].value_loc(), "first link rate given here"});
      }
    }
    if (ast_.downloads.empty()) return;
    out_.download_bps = check_rate_item(ast_.downloads[0], "download", &out_.download_adaptive);
    for (size_t i = 1; i < ast_.downloads.size(); ++i) {
      auto& d = diags_.error(ast_.downloads[i].value_loc(), "a policy has at most one download rate");
      d.notes.push_back({ast_.downloads[0].value_loc(), "first download rate given here"});
    }
  }

  // A `link` or `download` item: its nominal rate (fixed, or MAX), and *adaptive
  // with every knob resolved. `what` is the keyword.
  uint64_t check_rate_item(const ast::LinkRate& l, const char* what, std::optional<ir::Adaptive>* adaptive) {
    if (!l.adaptive) {
      if (l.rate.bps == 0) diags_.error(l.rate.loc, fmt::format("{} rate must be greater than zero", what));
      return l.rate.bps;
    }
    const ast::Adaptive& a = *l.adaptive;
    bool ok = true;
    if (a.min.bps == 0) {
      auto& d = diags_.error(a.min.loc, fmt::format("the lowest rate of an adaptive {} must be greater than zero", what));
      d.hints.push_back(fmt::format("write the slowest rate the link is expected to fall to, e.g. `{} adaptive 10mbit-{};`",
                                    what, a.max.text));
      ok = false;
    } else if (a.min.bps > a.max.bps) {
      auto& d = diags_.error(a.min.loc, fmt::format("adaptive range {}-{} is out of order: the lowest rate comes first",
                                                    a.min.text, a.max.text));
      d.hints.push_back(fmt::format("did you mean `adaptive {}-{}`?", a.max.text, a.min.text));
      ok = false;
    } else if (a.min.bps == a.max.bps) {
      auto& d = diags_.error(a.min.loc, fmt::format("adaptive range {}-{} leaves the rate nowhere to move: the lowest "
                                                    "rate must be below the highest", a.min.text, a.max.text));
      d.hints.push_back(fmt::format("for a link that does not change, write `{} {};`", what, a.max.text));
      ok = false;
    }
    ir::Adaptive out;
    out.min_bps = a.min.bps;
    out.max_bps = a.max.bps;
    out.start_bps = a.max.bps;
    if (a.start) {
      if (ok && (a.start->bps < a.min.bps || a.start->bps > a.max.bps)) {
        auto& d = diags_.error(a.start->loc, fmt::format("start rate {} is outside the adaptive range {}-{}",
                                                         a.start->text, a.min.text, a.max.text));
        d.hints.push_back("the shaper starts there and moves between the two; without `start` it starts at the highest");
        ok = false;
      }
      out.start_bps = a.start->bps;
    }
    if (a.delay) {
      if (a.delay->us < ir::kMinAdaptiveDelayUs || a.delay->us > ir::kMaxAdaptiveDelayUs) {
        auto& d = diags_.error(a.delay->loc, fmt::format("delay {} is outside 1ms-1s", a.delay->text));
        d.hints.push_back("the rise of the round-trip time over its baseline that counts as a queue in the link; "
                          "the default 5ms suits most links");
        ok = false;
      } else {
        out.delay_us = uint32_t(a.delay->us);
      }
    }
    if (ok) *adaptive = out;
    return a.max.bps;
  }

  // A class cap above the lowest rate of an adaptive link (or above the
  // download's rate) is valid: it is a cap, and the link may still reach it;
  // but while the shaper runs below it the cap does nothing, which the author
  // of the rate may not expect.
  void warn_rate_above_adaptive(const ast::ClassDecl& c, const ast::ClassAttr& a) {
    auto warn = [&](const ast::LinkRate& l, const char* what) {
      if (a.rate.bps > l.nominal().bps) {   // `download` only: above the link's MAX is an error
        auto& d = diags_.warning(a.value_loc, fmt::format("rate {} of class '{}' is above the {} rate {}: on that side "
                                                          "the cap is never reached", a.rate.text, c.name, what,
                                                          l.nominal().text));
        d.notes.push_back({l.nominal().loc, fmt::format("{} rate given here", what)});
        return;
      }
      if (!l.adaptive || a.rate.bps <= l.adaptive->min.bps) return;
      auto& d = diags_.warning(a.value_loc, fmt::format("rate {} of class '{}' is above the lowest rate {} of the "
                                                        "adaptive {}: the {} may shrink below it", a.rate.text, c.name,
                                                        l.adaptive->min.text, what, what));
      d.notes.push_back({l.adaptive->min.loc, "lowest rate given here"});
      d.hints.push_back(fmt::format("while the {} runs slower than {} the class is limited by the {} alone; a rate of at "
                                    "most {} caps it at every rate", what, a.rate.text, what, l.adaptive->min.text));
    };
    if (out_.link_adaptive && !ast_.links.empty()) warn(ast_.links[0], "link");
    if (out_.download_bps && !ast_.downloads.empty()) warn(ast_.downloads[0], "download");
  }

  // -- scheduler ------------------------------------------------------------------
  void check_scheduler() {
    // Optional: without a `scheduler` item the policy uses strict_priority.
    out_.scheduler.kind = ir::SchedKind::StrictPriority;
    out_.scheduler.rank = default_rank();
    if (ast_.schedulers.empty()) return;
    for (size_t i = 1; i < ast_.schedulers.size(); ++i) {
      auto& d = diags_.error(ast_.schedulers[i].loc, "a policy has at most one scheduler");
      d.notes.push_back({ast_.schedulers[0].loc, "first scheduler given here"});
    }
    const auto& s = ast_.schedulers[0];
    auto it = sched_names().find(s.kind);
    if (it == sched_names().end()) {
      auto& d = diags_.error(s.kind_loc, fmt::format("unknown scheduler '{}'", s.kind));
      std::string c = closest_match(s.kind, keys(sched_names()));
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
      d.notes.push_back({Loc{}, "schedulers: strict_priority (sp), round_robin (rr), deficit_round_robin (drr), "
                                "weighted_fair_queuing (wfq), pifo"});
      return;
    }
    out_.scheduler.kind = it->second;
    bool pifo = it->second == ir::SchedKind::Pifo;
    std::map<std::string, Loc> seen;
    for (const auto& p : s.params) {
      if (auto [pos, fresh] = seen.emplace(p.name, p.loc); !fresh) {
        auto& d = diags_.error(p.loc, fmt::format("scheduler parameter '{}' given twice", p.name));
        d.notes.push_back({pos->second, "first given here"});
        continue;
      }
      if (p.name == "rank" || p.name == "bands") {
        if (!pifo) {
          auto& d = diags_.error(p.loc, fmt::format("'{}' is a parameter of the pifo scheduler, not of {}", p.name,
                                                    ir::to_string(it->second)));
          d.hints.push_back("use `scheduler pifo { rank = EXPR; }` or remove the parameter");
          continue;
        }
        if (p.name == "rank") {
          if (!p.expr) {
            diags_.error(p.loc, "'rank' needs an expression: `rank = EXPR;`");
            continue;
          }
          if (auto r = lower_rank(*p.expr)) out_.scheduler.rank = std::move(*r);
        } else {
          if (!p.number) {
            diags_.error(p.loc, "'bands' needs a number from 1 to 8: `bands 8;`");
          } else if (p.number->value < 1 || p.number->value > 8) {
            diags_.error(p.number->loc, fmt::format("pifo bands must be 1 to 8, not {}", p.number->value));
          } else {
            out_.scheduler.pifo_bands = uint32_t(p.number->value);
          }
        }
        continue;
      }
      auto& d = diags_.error(p.loc, fmt::format("unknown scheduler parameter '{}'", p.name));
      std::string c = closest_match(p.name, {"rank", "bands"});
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
    }
  }

  static ir::RankExpr default_rank() {
    ir::RankExpr e;
    e.op = ir::RankExpr::Op::Field;
    e.field = ir::RankField::ClassPriority;
    return e;
  }

  std::optional<ir::RankExpr> lower_rank(const ast::Expr& e) {
    ir::RankExpr r;
    using K = ast::Expr::Kind;
    using Op = ir::RankExpr::Op;
    switch (e.kind) {
      case K::Number:
        if (e.number > uint64_t(INT64_MAX)) {
          diags_.error(e.loc, "rank constant is too large");
          return std::nullopt;
        }
        r.op = Op::Const;
        r.value = int64_t(e.number);
        return r;
      case K::Field: {
        auto it = rank_fields().find(e.name);
        if (it == rank_fields().end()) {
          auto& d = diags_.error(e.loc, fmt::format("unknown rank field '{}'", e.name));
          std::string c = closest_match(e.name, keys(rank_fields()));
          if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
          d.notes.push_back({Loc{}, "rank fields: class.priority, class.weight, pkt.len, flow.bytes, flow.packets, now_us"});
          return std::nullopt;
        }
        r.op = Op::Field;
        r.field = it->second;
        return r;
      }
      case K::Neg: {
        if (e.args.size() != 1 || !e.args[0]) return std::nullopt;
        auto a = lower_rank(*e.args[0]);
        if (!a) return std::nullopt;
        r.op = Op::Neg;
        r.args.push_back(std::move(*a));
        return r;
      }
      case K::Call:
      case K::Binary: {
        if (e.kind == K::Call) {
          if (e.name == "min") r.op = Op::Min;
          else if (e.name == "max") r.op = Op::Max;
          else {
            auto& d = diags_.error(e.loc, fmt::format("unknown rank function '{}'", e.name));
            std::string c = closest_match(e.name, {"min", "max"});
            if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
            return std::nullopt;
          }
          if (e.args.size() != 2) {
            diags_.error(e.loc, fmt::format("'{}' takes two arguments", e.name));
            return std::nullopt;
          }
        } else {
          switch (e.op) {
            case '+': r.op = Op::Add; break;
            case '-': r.op = Op::Sub; break;
            case '*': r.op = Op::Mul; break;
            case '/': r.op = Op::Div; break;
            default: diags_.error(e.loc, fmt::format("unknown operator '{}' in rank", e.op)); return std::nullopt;
          }
          if (e.args.size() != 2) return std::nullopt;
        }
        auto a = e.args[0] ? lower_rank(*e.args[0]) : std::nullopt;
        auto b = e.args[1] ? lower_rank(*e.args[1]) : std::nullopt;
        if (!a || !b) return std::nullopt;
        if (r.op == Op::Div && b->op == Op::Const && b->value == 0) {
          diags_.error(e.args[1]->loc, "division by zero in rank expression");
          return std::nullopt;
        }
        r.args.push_back(std::move(*a));
        r.args.push_back(std::move(*b));
        return r;
      }
    }
    return std::nullopt;
  }

  // -- sets -----------------------------------------------------------------------
  void check_sets() {
    for (const auto& s : ast_.sets) {
      if (auto [it, fresh] = sets_.emplace(s.name, &s); !fresh) {
        auto& d = diags_.error(s.name_loc, fmt::format("set '{}' is declared twice", s.name));
        d.notes.push_back({it->second->name_loc, "first declared here"});
        continue;
      }
      if (s.elements.empty()) {
        diags_.error(s.name_loc, fmt::format("set '{}' is empty", s.name));
        set_kinds_[s.name] = SetKind::Empty;
        continue;
      }
      SetKind k = element_kind(s.elements[0]);
      // Names may mix with numbers (DSCP `ef` with 46, protocol `gre` with 47).
      for (const auto& e : s.elements) {
        SetKind ek = element_kind(e);
        if (ek == k) continue;
        bool numeric_mix = (ek == SetKind::Numbers || ek == SetKind::Words) && (k == SetKind::Numbers || k == SetKind::Words);
        if (numeric_mix) { k = SetKind::Words; continue; }
        auto& d = diags_.error(elem_loc(e), fmt::format("set '{}' mixes {} with {}", s.name, set_kind_name(k),
                                                        set_kind_name(ek)));
        d.notes.push_back({elem_loc(s.elements[0]), "the set's kind comes from its first element"});
        d.hints.push_back("a set holds one kind of element: ports, IPv4 prefixes, IPv6 prefixes or DSCP values");
        k = SetKind::Mixed;
        break;
      }
      set_kinds_[s.name] = k;
    }
  }

  // The elements a value stands for, resolving @set. nullopt on error.
  std::optional<std::vector<ast::Element>> elements_of(const ast::Value& v, const char* expected,
                                                        std::initializer_list<SetKind> allowed) {
    if (!v.set_ref) return v.elements;
    auto it = sets_.find(*v.set_ref);
    if (it == sets_.end()) {
      auto& d = diags_.error(v.set_ref_loc, fmt::format("unknown set '@{}'", *v.set_ref));
      std::string c = closest_match(*v.set_ref, keys(sets_));
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '@{}'?", c));
      return std::nullopt;
    }
    SetKind k = set_kinds_[*v.set_ref];
    if (k == SetKind::Mixed || k == SetKind::Empty) return std::nullopt;  // already reported
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      auto& d = diags_.error(v.set_ref_loc, fmt::format("set '@{}' holds {}, where {} are expected", *v.set_ref,
                                                        set_kind_name(k), expected));
      d.notes.push_back({it->second->name_loc, "set declared here"});
      return std::nullopt;
    }
    return it->second->elements;
  }

  // -- classes ----------------------------------------------------------------------
  void check_classes() {
    const ast::ClassDecl* first_default = nullptr;
    for (const auto& c : ast_.classes) {
      if (auto it = class_ids_.find(c.name); it != class_ids_.end()) {
        auto& d = diags_.error(c.name_loc, fmt::format("class '{}' is declared twice", c.name));
        d.notes.push_back({out_.classes[it->second].loc, "first declared here"});
        continue;
      }
      if (c.name == "drop") {
        diags_.error(c.name_loc, "'drop' is a reserved target and cannot name a class");
        continue;
      }
      ir::Class k;
      k.id = uint32_t(out_.classes.size());
      k.name = c.name;
      k.loc = c.name_loc;
      std::map<ast::ClassAttrKind, Loc> seen;
      bool burst_given = false;
      for (const auto& a : c.attrs) {
        if (auto [pos, fresh] = seen.emplace(a.kind, a.loc); !fresh) {
          auto& d = diags_.error(a.loc, a.kind == ast::ClassAttrKind::SetDscp
                                            ? fmt::format("class '{}' sets its DSCP twice", c.name)
                                            : fmt::format("class '{}' sets '{}' twice", c.name, attr_name(a.kind)));
          if (a.kind == ast::ClassAttrKind::SetDscp) d.hints.push_back("a class's packets leave with one DSCP: keep one `set dscp`");
          d.notes.push_back({pos->second, "first set here"});
          continue;
        }
        switch (a.kind) {
          case ast::ClassAttrKind::Priority:
            if (a.number > 7) diags_.error(a.value_loc, fmt::format("priority must be 0 to 7 (0 is served first), not {}", a.number));
            else k.priority = uint32_t(a.number);
            break;
          case ast::ClassAttrKind::Weight:
            if (a.number < 1 || a.number > 1000) diags_.error(a.value_loc, fmt::format("weight must be 1 to 1000, not {}", a.number));
            else k.weight = uint32_t(a.number);
            break;
          case ast::ClassAttrKind::Quantum:
            if (a.size.bytes == 0) {
              diags_.error(a.value_loc, "quantum must be at least 1 byte");
            } else if (a.size.bytes > kMaxQuantum) {
              auto& d = diags_.error(a.value_loc, fmt::format("quantum {} is absurdly large (at most 1mb)", a.size.text));
              d.hints.push_back("a quantum is the bytes a class may send per round, typically one to a few frames, e.g. `quantum 1514b;`");
            } else {
              k.quantum = uint32_t(a.size.bytes);
            }
            break;
          case ast::ClassAttrKind::Rate:
            if (a.rate.bps == 0) {
              auto& d = diags_.error(a.value_loc, "rate must be greater than zero");
              d.hints.push_back("omit `rate` for a class without a cap of its own; use a `drop` rule to discard traffic");
            } else if (out_.link_bps != 0 && a.rate.bps > out_.link_bps) {
              auto& d = diags_.error(a.value_loc, fmt::format("rate {} of class '{}' is above the link rate {}", a.rate.text,
                                                              c.name, units::format_rate(out_.link_bps)));
              d.notes.push_back({ast_.links[0].nominal().loc, "link rate given here"});
            } else {
              k.rate_bps = a.rate.bps;
              warn_rate_above_adaptive(c, a);
            }
            break;
          case ast::ClassAttrKind::Burst:
            burst_given = true;
            if (a.size.bytes == 0) diags_.error(a.value_loc, "burst must be at least 1 byte");
            else k.burst_bytes = a.size.bytes;
            break;
          case ast::ClassAttrKind::Isolate:
            k.isolate = check_isolate(c, a.isolate);
            break;
          case ast::ClassAttrKind::Default:
            k.is_default = true;
            if (first_default) {
              auto& d = diags_.error(a.loc, fmt::format("class '{}' is marked default, but '{}' already is", c.name,
                                                        first_default->name));
              d.notes.push_back({first_default->name_loc, "first default class here"});
              d.hints.push_back("exactly one class is the default");
            } else {
              first_default = &c;
              out_.default_class = k.id;
            }
            break;
          case ast::ClassAttrKind::SetDscp:
            if (a.word.empty()) {
              if (a.number > 63) {
                auto& d = diags_.error(a.value_loc, fmt::format("DSCP value {} is above 63", a.number));
                d.hints.push_back("the DSCP is the top 6 bits of the IPv4 TOS / IPv6 traffic class: 0-63, or a name such as ef, af41, cs1");
              } else {
                k.set_dscp = uint8_t(a.number);
              }
            } else if (auto it = dscp_names().find(a.word); it != dscp_names().end()) {
              k.set_dscp = uint8_t(it->second);
            } else {
              auto& d = diags_.error(a.value_loc, fmt::format("unknown DSCP name '{}'", a.word));
              std::string near = closest_match(a.word, keys(dscp_names()));
              if (!near.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", near));
              else d.hints.push_back("DSCP names are cs0-cs7, af11-af43, ef, le; or write a number 0-63");
            }
            break;
        }
      }
      if (burst_given && k.rate_bps == 0 && !seen.count(ast::ClassAttrKind::Rate)) {
        auto& d = diags_.warning(seen[ast::ClassAttrKind::Burst], fmt::format("class '{}' has a burst but no rate; the burst is ignored", c.name));
        d.hints.push_back("burst is the bucket depth of the `rate` cap");
        k.burst_bytes = 0;
      }
      if (k.rate_bps != 0 && k.burst_bytes == 0) k.burst_bytes = default_burst(k.rate_bps);
      class_ids_[c.name] = k.id;
      out_.classes.push_back(std::move(k));
    }
    // Every host with flows of its own gets an HTB qdisc, and qdisc handles are 16 bits.
    uint64_t host_qdiscs = 0;
    for (const auto& k : out_.classes)
      if (k.isolate.per_host > 1) host_qdiscs += k.isolate.slots;
    if (host_qdiscs > kMaxHostQdiscs) {
      auto& d = diags_.error(ast_.name_loc, fmt::format("the policy isolates {} hosts with flows of their own; an "
                                                        "interface has room for {}",
                                                        host_qdiscs, kMaxHostQdiscs));
      d.hints.push_back("give fewer hosts, or `flows 1` (no flow level inside a host) to some classes");
    }
    if (!first_default) {
      auto& d = diags_.error(ast_.name_loc, fmt::format("policy '{}' has no default class", ast_.name));
      d.hints.push_back("add `default;` to the class that unmatched and non-IP packets should go to");
    }
  }

 public:
  static constexpr uint64_t kMaxQuantum = 1 << 20;
  static constexpr uint64_t kMaxHostQdiscs = 0xffff - QOS_HOST_QDISC_MAJOR_BASE;
  // Burst default when a rate is given without one: 10 ms of traffic at the
  // rate, but at least two full Ethernet frames (2 x 1514 bytes).
  static uint64_t default_burst(uint64_t rate_bps) { return std::max<uint64_t>(rate_bps / 800, 2 * 1514); }

 private:
  // `isolate MODE [nat] [N] [flows M];` -> the class's isolation, or none
  // (with an error) when the attribute is wrong.
  ir::Isolation check_isolate(const ast::ClassDecl& c, const ast::ClassAttr::Isolation& a) {
    static const std::map<std::string, ir::IsolateMode> modes = {
        {"flows", ir::IsolateMode::Flows}, {"saddr", ir::IsolateMode::Saddr}, {"daddr", ir::IsolateMode::Daddr}};
    ir::Isolation iso;
    auto it = modes.find(a.mode);
    if (it == modes.end()) {
      auto& d = diags_.error(a.mode_loc, fmt::format("unknown isolation mode '{}'", a.mode));
      std::string m = closest_match(a.mode, keys(modes));
      if (!m.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", m));
      d.notes.push_back({Loc{}, "modes: flows (every flow an equal share), saddr / daddr (every source / destination "
                                "host an equal share, its flows equal inside it)"});
      return {};
    }
    if (out_.scheduler.kind == ir::SchedKind::Pifo) {
      auto& d = diags_.error(a.mode_loc, fmt::format("class '{}' cannot isolate under the pifo scheduler", c.name));
      d.hints.push_back("pifo's bands mix classes, so a class has no queue of its own to divide; use another "
                        "scheduler or remove `isolate`");
      return {};
    }
    bool ok = true;
    const bool hosts = it->second != ir::IsolateMode::Flows;
    if (a.nat && !hosts) {
      auto& d = diags_.error(*a.nat, "`nat` only applies to `isolate saddr` and `isolate daddr`");
      d.hints.push_back("a flow is the same before and after NAT as far as fairness goes: write `isolate flows;`");
      ok = false;
    }
    uint32_t slots = ir::kDefaultIsolateSlots;
    if (a.size) {
      if (a.size->first == 0 || a.size->first > ir::kMaxIsolateSlots) {
        auto& d = diags_.error(a.size->second, fmt::format("isolate: the number of {} isolated exactly must be 1 to {}, "
                                                           "not {}",
                                                           hosts ? "hosts" : "flows", ir::kMaxIsolateSlots,
                                                           a.size->first));
        d.hints.push_back(fmt::format("omit it for the default of {}", ir::kDefaultIsolateSlots));
        ok = false;
      } else {
        slots = uint32_t(a.size->first);
      }
    }
    uint32_t per_host = hosts ? ir::kDefaultIsolatePerHost : 1;
    if (a.per_host) {
      if (!hosts) {
        auto& d = diags_.error(a.per_host->second, "`flows M` sets the flows isolated inside each host of "
                                                   "`isolate saddr|daddr`");
        d.hints.push_back("for per-flow isolation give the number of flows directly: `isolate flows N;`");
        ok = false;
      } else if (a.per_host->first == 0 || a.per_host->first > ir::kMaxIsolatePerHost) {
        diags_.error(a.per_host->second, fmt::format("isolate: flows per host must be 1 to {}, not {}",
                                                     ir::kMaxIsolatePerHost, a.per_host->first));
        ok = false;
      } else {
        per_host = uint32_t(a.per_host->first);
      }
    }
    if (!ok) return {};
    iso.mode = it->second;
    iso.nat = a.nat.has_value();
    iso.slots = slots;
    iso.per_host = per_host;
    return iso;
  }

  // -- rules --------------------------------------------------------------------
  struct Lowering {
    ir::Rule rule;
    std::optional<Origin> family_from, protos_from, sport_from, dport_from, dscp_from;
    std::optional<std::string> never;  // why the rule can never match
    std::vector<Origin> never_notes;
  };

  void set_family(Lowering& L, ir::Family f, Loc loc, const char* what) {
    if (L.never) return;
    if (L.rule.family == ir::Family::Any) {
      L.rule.family = f;
      L.family_from = Origin{loc, what};
    } else if (L.rule.family != f) {
      L.never = fmt::format("'{}' needs {} but '{}' needs {}", L.family_from->what,
                            L.rule.family == ir::Family::V4 ? "IPv4" : "IPv6", what, f == ir::Family::V4 ? "IPv4" : "IPv6");
      L.never_notes = {*L.family_from};
    }
  }

  void and_protos(Lowering& L, std::bitset<256> b, Loc loc, const std::string& what) {
    if (L.never) return;
    if (!L.rule.protos) {
      L.rule.protos = b;
      L.protos_from = Origin{loc, what};
      return;
    }
    auto r = *L.rule.protos & b;
    if (r.none()) {
      L.never = fmt::format("'{}' and '{}' allow no common protocol", L.protos_from->what, what);
      L.never_notes = {*L.protos_from};
      return;
    }
    L.rule.protos = r;
  }

  std::optional<ir::PortSet> port_value(const ast::Value& v, const char* what) {
    auto els = elements_of(v, "ports", {SetKind::Numbers});
    if (!els) return std::nullopt;
    std::vector<ir::PortInterval> iv;
    bool ok = true;
    for (const auto& e : *els) {
      if (auto* n = std::get_if<ast::Number>(&e)) {
        if (n->value > 65535) { diags_.error(n->loc, fmt::format("port {} is outside 0-65535", n->value)); ok = false; continue; }
        iv.push_back({uint16_t(n->value), uint16_t(n->value)});
      } else if (auto* r = std::get_if<ast::Range>(&e)) {
        if (r->lo > r->hi) {
          auto& d = diags_.error(r->loc, fmt::format("port range {}-{} is out of order", r->lo, r->hi));
          d.hints.push_back(fmt::format("did you mean {}-{}?", r->hi, r->lo));
          ok = false;
          continue;
        }
        if (r->hi > 65535) { diags_.error(r->loc, fmt::format("port range {}-{} goes outside 0-65535", r->lo, r->hi)); ok = false; continue; }
        iv.push_back({uint16_t(r->lo), uint16_t(r->hi)});
      } else {
        diags_.error(elem_loc(e), fmt::format("'{}' expects ports (numbers or ranges a-b)", what));
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    auto s = make_portset(iv);
    if (v.negated) s = complement(s);
    return s;
  }

  std::optional<std::bitset<64>> dscp_value(const ast::Value& v) {
    auto els = elements_of(v, "DSCP values", {SetKind::Numbers, SetKind::Words});
    if (!els) return std::nullopt;
    std::bitset<64> b;
    bool ok = true;
    for (const auto& e : *els) {
      if (auto* n = std::get_if<ast::Number>(&e)) {
        if (n->value > 63) { diags_.error(n->loc, fmt::format("DSCP value {} is above 63", n->value)); ok = false; continue; }
        b.set(n->value);
      } else if (auto* r = std::get_if<ast::Range>(&e)) {
        if (r->lo > r->hi || r->hi > 63) { diags_.error(r->loc, fmt::format("DSCP range {}-{} must be ascending within 0-63", r->lo, r->hi)); ok = false; continue; }
        for (uint64_t i = r->lo; i <= r->hi; ++i) b.set(i);
      } else if (auto* w = std::get_if<ast::Word>(&e)) {
        auto it = dscp_names().find(w->text);
        if (it == dscp_names().end()) {
          auto& d = diags_.error(w->loc, fmt::format("unknown DSCP name '{}'", w->text));
          std::string c = closest_match(w->text, keys(dscp_names()));
          if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
          else d.hints.push_back("DSCP names are cs0-cs7, af11-af43, ef, le; or write a number 0-63");
          ok = false;
          continue;
        }
        b.set(size_t(it->second));
      } else {
        diags_.error(elem_loc(e), "'dscp' expects DSCP values (0-63 or names like ef, af41, cs1)");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    if (v.negated) b = ~b;
    return b;
  }

  std::optional<std::bitset<256>> proto_value(const ast::Value& v) {
    auto els = elements_of(v, "protocols", {SetKind::Numbers, SetKind::Words});
    if (!els) return std::nullopt;
    std::bitset<256> b;
    bool ok = true;
    for (const auto& e : *els) {
      if (auto* n = std::get_if<ast::Number>(&e)) {
        if (n->value > 255) { diags_.error(n->loc, fmt::format("protocol number {} is above 255", n->value)); ok = false; continue; }
        b.set(n->value);
      } else if (auto* r = std::get_if<ast::Range>(&e)) {
        if (r->lo > r->hi || r->hi > 255) { diags_.error(r->loc, fmt::format("protocol range {}-{} must be ascending within 0-255", r->lo, r->hi)); ok = false; continue; }
        for (uint64_t i = r->lo; i <= r->hi; ++i) b.set(i);
      } else if (auto* w = std::get_if<ast::Word>(&e)) {
        auto it = proto_names().find(w->text);
        if (it == proto_names().end()) {
          auto& d = diags_.error(w->loc, fmt::format("unknown protocol name '{}'", w->text));
          std::string c = closest_match(w->text, keys(proto_names()));
          if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
          else d.hints.push_back("write the protocol number 0-255 instead");
          ok = false;
          continue;
        }
        b.set(size_t(it->second));
      } else {
        diags_.error(elem_loc(e), "'proto' expects protocol numbers or names");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    if (v.negated) b = ~b;
    return b;
  }

  std::optional<ir::AddrMatch> addr_value(const ast::Value& v, bool v6, bool dst, const char* what) {
    auto els = elements_of(v, v6 ? "IPv6 prefixes" : "IPv4 prefixes", {v6 ? SetKind::V6 : SetKind::V4});
    if (!els) return std::nullopt;
    ir::AddrMatch m;
    m.dst = dst;
    m.family = v6 ? ir::Family::V6 : ir::Family::V4;
    m.negated = v.negated;
    bool ok = true;
    for (const auto& e : *els) {
      ir::Prefix p;
      p.family = m.family;
      Loc loc = elem_loc(e);
      unsigned maxlen = v6 ? 128 : 32;
      unsigned len = 0;
      if (auto* a = std::get_if<ast::Ipv4>(&e); a && !v6) {
        len = a->len;
        for (int i = 0; i < 4; ++i) p.addr[size_t(i)] = uint8_t(a->addr >> (24 - 8 * i));
      } else if (auto* a6 = std::get_if<ast::Ipv6>(&e); a6 && v6) {
        len = a6->len;
        p.addr = a6->addr;
      } else {
        auto& d = diags_.error(loc, fmt::format("'{}' expects {} addresses or prefixes", what, v6 ? "IPv6" : "IPv4"));
        if (std::holds_alternative<ast::Ipv4>(e)) d.hints.push_back("IPv4 addresses go with `ip saddr` / `ip daddr`");
        if (std::holds_alternative<ast::Ipv6>(e)) d.hints.push_back("IPv6 addresses go with `ip6 saddr` / `ip6 daddr`");
        ok = false;
        continue;
      }
      if (len > maxlen) {
        diags_.error(loc, fmt::format("prefix length /{} is out of range for {} (0-{})", len, v6 ? "IPv6" : "IPv4", maxlen));
        ok = false;
        continue;
      }
      p.len = uint8_t(len);
      ir::Prefix net = p;
      for (unsigned bit = len; bit < maxlen; ++bit) net.addr[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
      if (net.addr != p.addr) {
        auto& d = diags_.error(loc, fmt::format("{} has host bits set: the last {} bits of a /{} prefix must be zero",
                                                fmt_prefix(p), maxlen - len, len));
        d.hints.push_back(fmt::format("did you mean {}?", fmt_prefix(net)));
        ok = false;
        continue;
      }
      m.prefixes.push_back(p);
    }
    if (!ok) return std::nullopt;
    m.prefixes = normalise(std::move(m.prefixes));
    return m;
  }

  void check_rules() {
    for (size_t ri = 0; ri < ast_.rules.size(); ++ri) {
      const auto& r = ast_.rules[ri];
      Lowering L;
      L.rule.index = uint32_t(ri);
      L.rule.loc = r.loc;
      bool ok = true;
      for (const auto& m : r.matches) {
        const char* name = match_name(m.kind);
        switch (m.kind) {
          case MatchKind::Ip: set_family(L, ir::Family::V4, m.loc, "ip"); break;
          case MatchKind::Ip6: set_family(L, ir::Family::V6, m.loc, "ip6"); break;
          case MatchKind::IpSaddr:
          case MatchKind::IpDaddr:
          case MatchKind::Ip6Saddr:
          case MatchKind::Ip6Daddr: {
            bool v6 = m.kind == MatchKind::Ip6Saddr || m.kind == MatchKind::Ip6Daddr;
            bool dst = m.kind == MatchKind::IpDaddr || m.kind == MatchKind::Ip6Daddr;
            if (!m.value) { ok = false; break; }
            auto a = addr_value(*m.value, v6, dst, name);
            if (!a) { ok = false; break; }
            set_family(L, a->family, m.loc, name);
            add_addr(L, std::move(*a), m.loc, name);
            break;
          }
          case MatchKind::Tcp:
          case MatchKind::Udp: {
            std::bitset<256> b;
            b.set(m.kind == MatchKind::Tcp ? 6 : 17);
            and_protos(L, b, m.loc, name);
            break;
          }
          case MatchKind::Icmp:
          case MatchKind::Icmpv6: {
            std::bitset<256> b;
            b.set(m.kind == MatchKind::Icmp ? 1 : 58);
            set_family(L, m.kind == MatchKind::Icmp ? ir::Family::V4 : ir::Family::V6, m.loc, name);
            and_protos(L, b, m.loc, name);
            break;
          }
          case MatchKind::Sport:
          case MatchKind::Dport: {
            if (!m.value) { ok = false; break; }
            std::string what = fmt::format("{} {}", m.l4 == MatchKind::Udp ? "udp" : "tcp", name);
            auto s = port_value(*m.value, what.c_str());
            if (!s) { ok = false; break; }
            auto& slot = m.kind == MatchKind::Sport ? L.rule.sport : L.rule.dport;
            auto& from = m.kind == MatchKind::Sport ? L.sport_from : L.dport_from;
            if (L.never) break;
            if (s->empty()) {
              L.never = fmt::format("'{}' excludes every port", what);
              break;
            }
            if (!slot) {
              slot = *s;
              from = Origin{m.loc, what};
            } else {
              auto x = intersect(*slot, *s);
              if (x.empty()) {
                L.never = fmt::format("'{}' and '{}' have no port in common", from->what, what);
                L.never_notes = {*from};
              }
              slot = x;
            }
            break;
          }
          case MatchKind::Proto: {
            if (!m.value) { ok = false; break; }
            auto b = proto_value(*m.value);
            if (!b) { ok = false; break; }
            if (b->none()) { if (!L.never) L.never = "'proto' excludes every protocol"; break; }
            and_protos(L, *b, m.loc, "proto");
            break;
          }
          case MatchKind::Dscp: {
            if (!m.value) { ok = false; break; }
            auto b = dscp_value(*m.value);
            if (!b) { ok = false; break; }
            if (L.never) break;
            if (b->none()) { L.never = "'dscp' excludes every DSCP value"; break; }
            if (!L.rule.dscp) {
              L.rule.dscp = *b;
              L.dscp_from = Origin{m.loc, "dscp"};
            } else {
              auto x = *L.rule.dscp & *b;
              if (x.none()) {
                L.never = "the 'dscp' matches have no value in common";
                L.never_notes = {*L.dscp_from};
              }
              L.rule.dscp = x;
            }
            break;
          }
        }
      }
      // The target last, so that diagnostics come in source order.
      if (r.drop) {
        L.rule.target = ir::kDrop;
      } else if (auto it = class_ids_.find(r.target); it != class_ids_.end()) {
        L.rule.target = int32_t(it->second);
      } else {
        auto& d = diags_.error(r.target_loc, fmt::format("unknown class '{}'", r.target));
        std::string c = closest_match(r.target, keys(class_ids_));
        if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
        ok = false;
      }
      if (!ok) continue;
      if (L.never) {
        auto& d = diags_.warning(r.loc, fmt::format("rule can never match: {}; it is left out", *L.never));
        for (const auto& o : L.never_notes) d.notes.push_back({o.loc, fmt::format("'{}' is here", o.what)});
        if (keep_dead_) {
          L.rule.protos = std::bitset<256>();  // matches no packet
          rule_locs_.push_back(r.loc);
          out_.rules.push_back(std::move(L.rule));
        }
        continue;
      }
      // What the union of the earlier rules leaves of this one (exact).
      ir::Reach reach = reach_.reach(L.rule);
      if (reach.never()) {
        warn_unreachable(r.loc, reach.taken_by);
        if (!keep_dead_) continue;
      } else {
        reach_.add(uint32_t(out_.rules.size()), L.rule);
      }
      rule_locs_.push_back(r.loc);
      out_.rules.push_back(std::move(L.rule));
    }
  }

  // `taken_by`: positions in out_.rules of the earlier rules that take its
  // packets; the first few are named, the rest counted.
  void warn_unreachable(Loc loc, const std::vector<uint32_t>& taken_by) {
    constexpr size_t kNamed = 3;
    if (taken_by.empty()) {
      diags_.warning(loc, "rule can never match: no packet satisfies all of its matches together; it is left out");
      return;
    }
    if (taken_by.size() == 1) {
      auto& d = diags_.warning(loc, fmt::format("rule can never match: every packet it matches is taken by the earlier rule at line {}; it is left out",
                                                rule_locs_[taken_by[0]].line));
      d.notes.push_back({rule_locs_[taken_by[0]], "covering rule is here"});
      return;
    }
    std::string lines;
    const size_t named = taken_by.size() <= kNamed + 1 ? taken_by.size() : kNamed;
    for (size_t i = 0; i < named; ++i) {
      if (i) lines += i + 1 == named && named == taken_by.size() ? " and " : ", ";
      lines += std::to_string(rule_locs_[taken_by[i]].line);
    }
    if (named < taken_by.size()) lines += fmt::format(" and {} more", taken_by.size() - named);
    auto& d = diags_.warning(loc, fmt::format("rule can never match: every packet it matches is taken by the earlier rules at lines {}; it is left out", lines));
    for (size_t i = 0; i < named; ++i) d.notes.push_back({rule_locs_[taken_by[i]], "covering rule is here"});
  }

  void add_addr(Lowering& L, ir::AddrMatch a, Loc loc, const char* what) {
    if (L.never) return;
    if (!a.negated && a.prefixes.empty()) {
      L.never = fmt::format("'{}' matches no address", what);
      return;
    }
    // Two positive matches on the same address that share no prefix.
    for (const auto& b : L.rule.addrs) {
      if (b.dst != a.dst || b.family != a.family || a.negated || b.negated) continue;
      bool any = false;
      for (const auto& p : a.prefixes)
        for (const auto& q : b.prefixes) any = any || prefixes_overlap(p, q);
      if (!any) {
        L.never = fmt::format("the '{}' matches have no address in common", what);
        L.never_notes = {};
        (void)loc;
        return;
      }
    }
    L.rule.addrs.push_back(std::move(a));
  }

  // -- whole-policy warnings ----------------------------------------------------
  void check_reachability() {
    if (diags_.has_errors()) return;
    std::vector<bool> used(out_.classes.size());
    for (const auto& r : out_.rules)
      if (r.target >= 0) used[size_t(r.target)] = true;
    for (const auto& c : out_.classes) {
      if (c.is_default || used[c.id]) continue;
      auto& d = diags_.warning(c.loc, fmt::format("no rule sends traffic to class '{}'", c.name));
      d.hints.push_back(fmt::format("add a rule `rule ... -> {};` or remove the class", c.name));
    }
  }

  // Caps summing above the link are only worth a warning for the share-based
  // schedulers (rr, drr, wfq): there the user describes how the link is split,
  // and caps adding up to more than the link suggest they were meant as
  // guaranteed shares, which they are not (the quantum/weight decides). With
  // strict_priority (and pifo, which is priority-like) caps above the link
  // in sum are normal: the higher class takes what it needs up to its cap and
  // lower classes get the rest.
  void check_caps() {
    if (diags_.has_errors() || out_.link_bps == 0) return;
    auto k = out_.scheduler.kind;
    if (k == ir::SchedKind::StrictPriority || k == ir::SchedKind::Pifo) return;
    uint64_t sum = 0;
    for (const auto& c : out_.classes) sum += c.rate_bps;
    bool all_capped = std::all_of(out_.classes.begin(), out_.classes.end(), [](const auto& c) { return c.rate_bps != 0; });
    if (sum <= out_.link_bps || !all_capped) return;
    auto& d = diags_.warning(ast_.links[0].value_loc(), fmt::format("the class rates add up to {}, above the link rate {}",
                                                            units::format_rate(sum), units::format_rate(out_.link_bps)));
    d.notes.push_back({Loc{}, fmt::format("rates are caps, not guarantees: with {} the shares come from {}",
                                          ir::to_string(k), k == ir::SchedKind::WeightedFairQueuing ? "`weight`"
                                          : k == ir::SchedKind::DeficitRoundRobin ? "`quantum`" : "equal turns")});
  }
};

}  // namespace

std::optional<ir::Policy> check_and_lower(const ast::Policy& policy, const SourceFile& file, Diagnostics& diags) {
  return Checker(policy, file, diags).run();
}

namespace detail {
// For tests: the same lowering, but rules that can never match stay in the IR
// (a contradictory one as a rule that matches nothing), so that a test can
// check that leaving them out changes no decision.
std::optional<ir::Policy> check_and_lower_keep_dead(const ast::Policy& policy, const SourceFile& file, Diagnostics& diags) {
  return Checker(policy, file, diags, true).run();
}
}  // namespace detail

}  // namespace qosc
