#pragma once
// The grammar of .qos policy files (see docs/language.md), as PEGTL rules and
// nothing else: no actions, no AST. compiler/src/front/parser.cpp attaches
// actions to the rules it needs and turns failures of `must<>` into
// diagnostics (messages keyed by the rule that failed).
//
// Error recovery is part of the grammar because it decides how many errors a
// user sees in one run: a broken item is skipped to its ';' (or past its
// block), a broken class attribute or scheduler parameter to its own ';'.
#include <cctype>

#include <tao/pegtl.hpp>

namespace qosc::grammar {

namespace pegtl = tao::pegtl;
using pegtl::alpha;
using pegtl::at;
using pegtl::digit;
using pegtl::eof;
using pegtl::eolf;
using pegtl::must;
using pegtl::not_at;
using pegtl::one;
using pegtl::opt;
using pegtl::plus;
using pegtl::ranges;
using pegtl::seq;
using pegtl::sor;
using pegtl::space;
using pegtl::star;
using pegtl::success;
using pegtl::try_catch;
using pegtl::until;
using pegtl::xdigit;

// ---- lexical ----------------------------------------------------------------
struct comment : seq<one<'#'>, until<eolf>> {};
struct ws : star<sor<plus<space>, comment>> {};

struct name_first : ranges<'a', 'z', 'A', 'Z', '_'> {};
// '-' belongs to names, except in front of '>' (so that `a->b` reads as an arrow).
struct name_char : sor<ranges<'a', 'z', 'A', 'Z', '0', '9', '_'>, seq<one<'-'>, not_at<one<'>'>>>> {};
struct name : seq<name_first, star<name_char>> {};

template <typename Str>
struct kw : seq<Str, not_at<name_char>> {};
#define QOSC_KW(word) kw<TAO_PEGTL_STRING(word)>

struct kw_policy : QOSC_KW("policy") {};
struct kw_link : QOSC_KW("link") {};
struct kw_scheduler : QOSC_KW("scheduler") {};
struct kw_set : QOSC_KW("set") {};
struct kw_class : QOSC_KW("class") {};
struct kw_rule : QOSC_KW("rule") {};
struct kw_priority : QOSC_KW("priority") {};
struct kw_weight : QOSC_KW("weight") {};
struct kw_quantum : QOSC_KW("quantum") {};
struct kw_rate : QOSC_KW("rate") {};
struct kw_burst : QOSC_KW("burst") {};
struct kw_default : QOSC_KW("default") {};
struct kw_drop : QOSC_KW("drop") {};
struct kw_ip : QOSC_KW("ip") {};
struct kw_ip6 : QOSC_KW("ip6") {};
struct kw_saddr : QOSC_KW("saddr") {};
struct kw_daddr : QOSC_KW("daddr") {};
struct kw_tcp : QOSC_KW("tcp") {};
struct kw_udp : QOSC_KW("udp") {};
struct kw_icmp : QOSC_KW("icmp") {};
struct kw_icmpv6 : QOSC_KW("icmpv6") {};
struct kw_sport : QOSC_KW("sport") {};
struct kw_dport : QOSC_KW("dport") {};
struct kw_proto : QOSC_KW("proto") {};
struct kw_dscp : QOSC_KW("dscp") {};
struct kw_rank : QOSC_KW("rank") {};
struct kw_isolate : QOSC_KW("isolate") {};
struct kw_nat : QOSC_KW("nat") {};
struct kw_flows : QOSC_KW("flows") {};
struct kw_download : QOSC_KW("download") {};
struct kw_adaptive : QOSC_KW("adaptive") {};
struct kw_start : QOSC_KW("start") {};
struct kw_delay : QOSC_KW("delay") {};
struct kw_plan : QOSC_KW("plan") {};
struct kw_hosts : QOSC_KW("hosts") {};
struct kw_ceil : QOSC_KW("ceil") {};
struct kw_classes : QOSC_KW("classes") {};
#undef QOSC_KW

struct semi : one<';'> {};
struct lbrace : one<'{'> {};
struct rbrace : one<'}'> {};
struct arrow : TAO_PEGTL_STRING("->") {};
struct neq : TAO_PEGTL_STRING("!=") {};
struct equals : one<'='> {};

// ---- numbers, rates, sizes ---------------------------------------------------
struct integer : plus<digit> {};
// `2.5mbit`, `100kb`: digits, optional fraction, unit letters (checked by the
// parser so that a missing or wrong unit gets a message that says what to write).
struct quantity : seq<plus<digit>, opt<one<'.'>, plus<digit>>, star<alpha>, not_at<name_char>> {};
struct rate_value : quantity {};
struct size_value : quantity {};
// `5ms`, `1s`, `500us`: the same shape; the parser checks the unit.
struct duration_value : quantity {};
struct int_value : seq<integer, not_at<name_char>> {};

// ---- set elements -----------------------------------------------------------
struct prefix_len : seq<one<'/'>, integer> {};
// Anything made of hex digits, ':' and '.' that has a ':' before any other
// character is an IPv6 address; inet_pton decides whether it is a valid one.
struct ipv6_elem : seq<at<star<sor<xdigit, one<'.'>>>, one<':'>>, plus<sor<xdigit, one<':', '.'>>>, opt<prefix_len>,
                       not_at<name_char>> {};
struct ipv4_elem : seq<integer, one<'.'>, integer, one<'.'>, integer, one<'.'>, integer, opt<prefix_len>,
                       not_at<name_char>> {};
struct range_elem : seq<integer, ws, one<'-'>, not_at<one<'>'>>, ws, integer, not_at<name_char>> {};
struct number_elem : seq<integer, not_at<name_char>, not_at<one<'.'>>> {};
struct word_elem : name {};
struct element : sor<ipv6_elem, ipv4_elem, range_elem, number_elem, word_elem> {};

// ---- values after a match keyword: X, { X, Y }, @name, each after an optional != --
struct value_begin : success {};
struct set_ref : seq<one<'@'>, must<name>> {};
struct set_close : rbrace {};
struct inline_set : seq<lbrace, ws, must<element>, ws, star<one<','>, ws, sor<at<rbrace>, must<element>>, ws>, must<set_close>> {};
struct negation : neq {};
struct value_body : sor<inline_set, set_ref, element> {};
struct value : seq<value_begin, opt<negation, ws>, must<value_body>> {};

// ---- matches ---------------------------------------------------------------
struct ip_saddr : seq<kw_ip, ws, kw_saddr> {};
struct ip_daddr : seq<kw_ip, ws, kw_daddr> {};
struct ip_bare : kw_ip {};
struct ip6_saddr : seq<kw_ip6, ws, kw_saddr> {};
struct ip6_daddr : seq<kw_ip6, ws, kw_daddr> {};
struct ip6_bare : kw_ip6 {};
struct tcp_kw : kw_tcp {};
struct udp_kw : kw_udp {};
struct sport_kw : kw_sport {};
struct dport_kw : kw_dport {};
struct icmp_kw : kw_icmp {};
struct icmpv6_kw : kw_icmpv6 {};
struct proto_kw : kw_proto {};
struct dscp_kw : kw_dscp {};
// `sport`/`dport` not directly after `tcp`/`udp` (reported by the parser).
struct stray_port : sor<kw_sport, kw_dport> {};

struct port_match : seq<sor<sport_kw, dport_kw>, ws, must<value>> {};
struct ip_match : sor<seq<ip_saddr, ws, must<value>>, seq<ip_daddr, ws, must<value>>, ip_bare> {};
struct ip6_match : sor<seq<ip6_saddr, ws, must<value>>, seq<ip6_daddr, ws, must<value>>, ip6_bare> {};
struct l4_match : seq<sor<tcp_kw, udp_kw>, star<ws, port_match>> {};
struct match_item : sor<ip6_match, ip_match, l4_match, icmpv6_kw, icmp_kw, seq<proto_kw, ws, must<value>>,
                   seq<dscp_kw, ws, must<value>>, stray_port> {};
struct first_match : match_item {};

struct target_drop : kw_drop {};
struct target_class : name {};
struct target : sor<target_drop, target_class> {};

// ---- items -------------------------------------------------------------------
struct policy_name : name {};
// `link` and `download` take a fixed rate or an adaptive range:
//   RATE ';'  |  'adaptive' MIN '-' MAX ( 'start' RATE | 'delay' DURATION )* ';'
// The range's lower end is a quantity that a '-' follows directly, which
// `quantity` would refuse (a '-' continues a name), hence its own rule.
struct adaptive_kw : kw_adaptive {};
struct adaptive_min : seq<plus<digit>, opt<one<'.'>, plus<digit>>, star<alpha>> {};
struct adaptive_dash : one<'-'> {};
struct adaptive_max : quantity {};
struct adaptive_range : seq<adaptive_min, ws, must<adaptive_dash>, ws, must<adaptive_max>> {};
struct adaptive_start : seq<kw_start, ws, must<rate_value>> {};
struct adaptive_delay : seq<kw_delay, ws, must<duration_value>> {};
struct adaptive_knob : sor<adaptive_start, adaptive_delay> {};
struct adaptive_end : semi {};
struct adaptive_spec : seq<adaptive_kw, ws, must<adaptive_range>, star<ws, adaptive_knob>, ws, must<adaptive_end>> {};
struct fixed_rate : seq<rate_value, ws, must<semi>> {};
struct link_body : sor<adaptive_spec, fixed_rate> {};
struct link_item : seq<kw_link, ws, must<link_body>> {};
struct download_item : seq<kw_download, ws, must<link_body>> {};

// pifo rank expressions: integer arithmetic.
struct expr;
struct rparen : one<')'> {};
struct comma : one<','> {};
struct expr_number : seq<integer, not_at<name_char>> {};
struct expr_field : seq<name, opt<one<'.'>, name>> {};
struct expr_call : seq<name, ws, one<'('>, ws, must<expr>, ws, must<comma>, ws, must<expr>, ws, must<rparen>> {};
struct expr_paren : seq<one<'('>, ws, must<expr>, ws, must<rparen>> {};
struct expr_unary;
struct expr_neg : seq<one<'-'>, ws, must<expr_unary>> {};
struct expr_primary : sor<expr_number, expr_paren, expr_call, expr_field> {};
struct expr_unary : sor<expr_neg, expr_primary> {};
struct expr_operand : expr_unary {};
struct expr_mul : seq<ws, one<'*', '/'>, ws, must<expr_operand>> {};
struct expr_product : seq<expr_unary, star<expr_mul>> {};
struct expr_term : expr_product {};
struct expr_add : seq<ws, one<'+', '-'>, ws, must<expr_term>> {};
struct expr : seq<expr_product, star<expr_add>> {};

struct param_begin : success {};
struct rank_param : seq<kw_rank, ws, must<equals>, ws, must<expr>, ws, must<semi>> {};
struct param_name : name {};
struct numeric_param : seq<param_name, ws, must<int_value>, ws, must<semi>> {};
struct sched_param : sor<rank_param, numeric_param> {};

// Skips a broken statement inside a block: up to and including its ';', or
// up to (not including) the block's '}'. Consumes at least one character.
struct recover_stmt {
  using rule_t = recover_stmt;
  using subs_t = pegtl::empty_list;
  template <typename ParseInput>
  static bool match(ParseInput& in) {
    bool consumed = false;
    while (!in.empty()) {
      const char c = in.peek_char();
      if (c == '}') return consumed;
      if (c == '#') {
        while (!in.empty() && in.peek_char() != '\n') in.bump(1);
        consumed = true;
        continue;
      }
      in.bump(1);
      consumed = true;
      if (c == ';') return true;
    }
    return consumed;
  }
};

// True when [p, end) starts (after blanks) with an item keyword.
inline bool item_starts_at(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
  for (const char* k : {"link", "download", "scheduler", "set", "class", "rule", "plan", "hosts"}) {
    const char* q = p;
    const char* w = k;
    while (*w && q < end && *q == *w) ++q, ++w;
    if (*w) continue;
    if (q == end || !(std::isalnum(static_cast<unsigned char>(*q)) || *q == '_' || *q == '-')) return true;
  }
  return false;
}

// Skips a broken item: to its ';' or past its `{ ... }` block (and a ';'
// after it), never past the '}' that closes the policy.
struct recover_item {
  using rule_t = recover_item;
  using subs_t = pegtl::empty_list;
  template <typename ParseInput>
  static bool match(ParseInput& in) {
    bool consumed = false;
    int depth = 0;
    while (!in.empty()) {
      const char c = in.peek_char();
      if (c == '#') {
        while (!in.empty() && in.peek_char() != '\n') in.bump(1);
        consumed = true;
        continue;
      }
      if (c == '}' && depth == 0) return consumed;
      in.bump(1);
      consumed = true;
      // A line that starts with an item keyword starts the next item, even when
      // the broken one left a brace open (`set x = { 1, 2` without its '}').
      if (c == '\n' && item_starts_at(in.current(), in.end())) return true;
      if (c == '{') ++depth;
      if (c == ';' && depth == 0) return true;
      if (c == '}' && --depth == 0) {
        while (!in.empty() && (in.peek_char() == ' ' || in.peek_char() == '\t')) in.bump(1);
        if (!in.empty() && in.peek_char() == ';') in.bump(1);
        return true;
      }
    }
    return consumed;
  }
};

struct sched_param_any : sor<try_catch<param_begin, must<sched_param>>, recover_stmt> {};
struct sched_kind : name {};
struct sched_block : seq<lbrace, ws, star<not_at<rbrace>, not_at<eof>, sched_param_any, ws>, must<rbrace>> {};
struct sched_end : sor<semi, seq<sched_block, opt<ws, semi>>> {};
struct sched_item : seq<kw_scheduler, ws, must<sched_kind>, ws, must<sched_end>> {};

struct set_name : name {};
struct set_element : element {};
struct set_item : seq<kw_set, ws, must<set_name>, ws, must<equals>, ws, must<lbrace>, ws, must<set_element>, ws,
                      star<one<','>, ws, sor<at<rbrace>, must<set_element>>, ws>, must<set_close>, ws, must<semi>> {};

struct attr_begin : success {};
struct attr_priority : seq<kw_priority, ws, must<int_value>, ws, must<semi>> {};
struct attr_weight : seq<kw_weight, ws, must<int_value>, ws, must<semi>> {};
struct attr_quantum : seq<kw_quantum, ws, must<size_value>, ws, must<semi>> {};
struct attr_rate : seq<kw_rate, ws, must<rate_value>, ws, must<semi>> {};
struct attr_burst : seq<kw_burst, ws, must<size_value>, ws, must<semi>> {};
struct attr_default : seq<kw_default, ws, must<semi>> {};
// `isolate MODE [nat] [N] [flows M];` -- the mode is a name so that sema can
// say which modes exist; the numbers are checked there too.
struct isolate_mode : name {};
struct isolate_nat : kw_nat {};
struct isolate_size : seq<int_value> {};
struct isolate_per_host : seq<kw_flows, ws, must<int_value>> {};
struct attr_isolate : seq<kw_isolate, ws, must<isolate_mode>, ws, opt<isolate_nat, ws>, opt<isolate_size, ws>,
                          opt<isolate_per_host, ws>, must<semi>> {};
// `set dscp NAME|N;`: rewrite the DSCP of the class's packets on egress.
struct set_dscp_kw : kw_dscp {};
// A number (not the start of an address: `10.0.0.1` is reported whole) or a name.
struct set_dscp_number : seq<integer, not_at<name_char>, not_at<one<'.'>>> {};
struct set_dscp_value : sor<set_dscp_number, name> {};
struct attr_set_dscp : seq<kw_set, ws, must<set_dscp_kw>, ws, must<set_dscp_value>, ws, must<semi>> {};
struct class_attr : sor<attr_priority, attr_weight, attr_quantum, attr_rate, attr_burst, attr_default, attr_isolate,
                        attr_set_dscp> {};
struct class_attr_any : sor<try_catch<attr_begin, must<class_attr>>, recover_stmt> {};
struct class_name : name {};
struct class_item : seq<kw_class, ws, must<class_name>, ws, must<lbrace>, ws,
                        star<not_at<rbrace>, not_at<eof>, class_attr_any, ws>, must<rbrace>, opt<ws, semi>> {};

// `plan NAME { rate R; ceil C; burst B; classes A, B; }` and `hosts saddr|daddr [nat];`.
// Their words are keywords only where an item or a plan attribute starts, so a
// class may still be called `plan`, `hosts`, `ceil` or `classes`.
struct plan_name : name {};
struct plan_attr_begin : success {};
struct plan_rate : seq<kw_rate, ws, must<rate_value>, ws, must<semi>> {};
struct plan_ceil : seq<kw_ceil, ws, must<rate_value>, ws, must<semi>> {};
struct plan_burst : seq<kw_burst, ws, must<size_value>, ws, must<semi>> {};
struct plan_class : name {};
struct plan_classes : seq<kw_classes, ws, must<plan_class>, ws, star<one<','>, ws, must<plan_class>, ws>, must<semi>> {};
struct plan_attr : sor<plan_rate, plan_ceil, plan_burst, plan_classes> {};
struct plan_attr_any : sor<try_catch<plan_attr_begin, must<plan_attr>>, recover_stmt> {};
struct plan_item : seq<kw_plan, ws, must<plan_name>, ws, must<lbrace>, ws,
                       star<not_at<rbrace>, not_at<eof>, plan_attr_any, ws>, must<rbrace>, opt<ws, semi>> {};
struct hosts_by : name {};
struct hosts_nat : kw_nat {};
struct hosts_item : seq<kw_hosts, ws, must<hosts_by>, ws, opt<hosts_nat, ws>, must<semi>> {};

struct rule_begin : success {};
struct rule_item : seq<kw_rule, rule_begin, ws, must<first_match>, ws, star<match_item, ws>, must<arrow>, ws, must<target>, ws,
                       must<semi>> {};

struct item_begin : success {};
struct item : sor<link_item, download_item, sched_item, set_item, class_item, rule_item, plan_item, hosts_item> {};
struct item_any : sor<try_catch<item_begin, must<item>>, recover_item> {};

struct policy_close : rbrace {};
struct policy_head : seq<must<kw_policy>, ws, must<policy_name>, ws, must<lbrace>> {};
struct trailing : eof {};
struct file : seq<ws, policy_head, ws, star<not_at<rbrace>, not_at<eof>, item_any, ws>, must<policy_close>, ws,
                  must<trailing>> {};

}  // namespace qosc::grammar
