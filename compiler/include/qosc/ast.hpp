#pragma once
// The syntax tree of a policy file, exactly as written (names unresolved,
// values unchecked beyond what the grammar guarantees). Every node carries
// its source location. Semantic checks (sema) and lowering to IR read it.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "qosc/source.hpp"

namespace qosc::ast {

// ---- values -------------------------------------------------------------
// A number as written (port, DSCP value, protocol number, priority...). Kept
// 64-bit so that out-of-range values can be diagnosed rather than wrapped.
struct Number { uint64_t value = 0; Loc loc; };
// `a-b` (ports; also accepted for DSCP values).
struct Range { uint64_t lo = 0, hi = 0; Loc loc; };
// IPv4 address or prefix. addr in host byte order; len = 32 when no "/n".
struct Ipv4 { uint32_t addr = 0; uint32_t len = 32; bool has_len = false; Loc loc; };
// IPv6 address or prefix; addr in network byte order; len = 128 when no "/n".
struct Ipv6 { std::array<uint8_t, 16> addr{}; uint32_t len = 128; bool has_len = false; Loc loc; };
// A bare word used as a value: DSCP names (ef, af11, cs0...), protocol names
// (tcp, udp, icmp, gre...). Its meaning depends on the match it appears in.
struct Word { std::string text; Loc loc; };

using Element = std::variant<Number, Range, Ipv4, Ipv6, Word>;
Loc element_loc(const Element& e);

// What follows a match keyword: a single element, an inline set `{a, b}`, or
// a reference to a named set `@name`; optionally preceded by `!=`.
struct Value {
  Loc loc;                          // whole value including `!=` and braces
  bool negated = false;
  Loc negation_loc;                 // of the `!=`
  bool inline_set = false;          // written with braces
  std::vector<Element> elements;    // empty when set_ref is used
  std::optional<std::string> set_ref;  // name without '@'
  Loc set_ref_loc;
};

// ---- matches --------------------------------------------------------------
enum class MatchKind {
  Ip,        // `ip` alone (family only, extension) or before saddr/daddr
  Ip6,       // `ip6` alone (extension) or before saddr/daddr
  IpSaddr, IpDaddr, Ip6Saddr, Ip6Daddr,
  Tcp, Udp, Icmp, Icmpv6,
  Sport, Dport,  // always directly preceded by the Tcp/Udp match they belong to
  Proto, Dscp,
};
const char* to_string(MatchKind k);  // "ip saddr", "tcp", "sport", ...

struct Match {
  MatchKind kind;
  Loc loc;                      // of the keyword(s)
  std::optional<Value> value;   // for addr, sport/dport, proto, dscp
  // For Sport/Dport: the protocol keyword this port belongs to (Tcp or Udp).
  MatchKind l4 = MatchKind::Tcp;
};

// ---- items ------------------------------------------------------------------
struct Rate { uint64_t bps = 0; std::string text; Loc loc; };   // bits per second
struct Size { uint64_t bytes = 0; std::string text; Loc loc; };
struct Duration { uint64_t us = 0; std::string text; Loc loc; };  // microseconds

// `adaptive MIN-MAX [start RATE] [delay DURATION]` after `link` or `download`.
struct Adaptive {
  Loc loc;                          // of `adaptive`
  Rate min, max;
  std::optional<Rate> start;        // each knob at most once (the parser reports a second)
  std::optional<Duration> delay;
};

// `link RATE;` / `download RATE;`, or either with an adaptive range.
struct LinkRate {
  Loc loc;                          // of the keyword
  Rate rate;                        // the fixed rate; unset when adaptive
  std::optional<Adaptive> adaptive;
  // The rate the link is shaped to at most (the fixed rate or MAX), and where
  // it is written: what notes about "the link rate" point at.
  const Rate& nominal() const { return adaptive ? adaptive->max : rate; }
  // Where the item's value starts (the rate, or `adaptive`).
  Loc value_loc() const { return adaptive ? adaptive->loc : rate.loc; }
};

struct SetDecl {
  std::string name;
  Loc loc, name_loc;
  std::vector<Element> elements;
};

enum class ClassAttrKind { Priority, Weight, Quantum, Rate, Burst, Default, Isolate, SetDscp };
const char* to_string(ClassAttrKind k);
struct ClassAttr {
  ClassAttrKind kind;
  Loc loc;           // of the attribute keyword
  Loc value_loc;     // of the value (for Default: same as loc)
  uint64_t number = 0;  // Priority, Weight
  Size size;            // Quantum, Burst
  Rate rate;            // Rate
  std::string word;     // SetDscp: the DSCP name as written ("" when a number was written, in `number`)
  // Isolate: `isolate MODE [nat] [N] [flows M];` as written (sema checks it).
  struct Isolation {
    std::string mode;
    Loc mode_loc;
    std::optional<Loc> nat;                                    // where `nat` was written
    std::optional<std::pair<uint64_t, Loc>> size, per_host;   // N, and M after `flows`
  } isolate;
};

struct ClassDecl {
  std::string name;
  Loc loc, name_loc;
  std::vector<ClassAttr> attrs;  // in written order; duplicates are sema's to report
};

struct RuleDecl {
  Loc loc;                    // of the `rule` keyword
  std::vector<Match> matches;
  bool drop = false;          // target is `drop`
  std::string target;         // class name when !drop
  Loc target_loc;
};

// PIFO rank expressions: integer arithmetic.
struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
struct Expr {
  enum class Kind { Number, Field, Binary, Call, Neg } kind = Kind::Number;
  Loc loc;
  uint64_t number = 0;   // Number
  std::string name;      // Field: "class.priority", "pkt.len", "now_us"...; Call: "min"/"max"
  char op = 0;           // Binary: + - * /
  std::vector<ExprPtr> args;  // Binary: 2, Call: 2, Neg: 1
};

struct SchedParam {
  std::string name;      // "rank", or an extension parameter
  Loc loc;
  ExprPtr expr;          // rank = EXPR
  std::optional<Number> number;  // numeric parameters (extensions, e.g. bands 8)
};

struct Scheduler {
  std::string kind;      // as written (full name or alias)
  Loc loc, kind_loc;
  std::vector<SchedParam> params;
  bool has_block = false;
};

// `plan NAME { rate R; [ceil C;] [burst B;] [classes A, B, ...;] }`: what a
// host of the host table gets (docs/language.md "Hosts and plans").
enum class PlanAttrKind { Rate, Ceil, Burst, Classes };
const char* to_string(PlanAttrKind k);   // "rate", "ceil", ...
struct PlanAttr {
  PlanAttrKind kind;
  Loc loc;            // of the attribute keyword
  Rate rate;          // Rate, Ceil
  Size size;          // Burst
  std::vector<std::pair<std::string, Loc>> classes;   // Classes: the names as written
};
struct PlanDecl {
  std::string name;
  Loc loc, name_loc;
  std::vector<PlanAttr> attrs;   // in written order; duplicates are sema's to report
};

// `hosts saddr|daddr [nat];`: which address names a host on this interface.
struct HostsDecl {
  Loc loc;             // of `hosts`
  std::string by;      // as written; sema checks it is saddr or daddr
  Loc by_loc;
  std::optional<Loc> nat;   // where `nat` was written
};

struct Policy {
  std::string name;
  Loc loc, name_loc;
  std::vector<LinkRate> links;          // more than one is an error (sema)
  std::vector<LinkRate> downloads;      // optional, at most one (sema)
  std::vector<Scheduler> schedulers;    // more than one is an error (sema)
  std::vector<SetDecl> sets;
  std::vector<ClassDecl> classes;
  std::vector<RuleDecl> rules;          // file order
  std::vector<PlanDecl> plans;
  std::vector<HostsDecl> hosts;         // at most one (sema)
};

}  // namespace qosc::ast
