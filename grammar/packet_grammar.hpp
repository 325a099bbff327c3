#pragma once
// The packet notation (explain, test, diff examples) and policy test files,
// as PEGTL rules and nothing else. Lexical rules, addresses and keywords are
// the policy grammar's (qos_grammar.hpp): a packet is written with the same
// words as a match. compiler/src/front/packet_notation.cpp attaches actions.
//
//   packet:  PROTO SRC > DST [dscp NAME|N] [vlan N] [frag]
//   PROTO:   tcp | udp | icmp | icmpv6 | proto NAME|N
//   SRC/DST: 192.168.1.5:50000 | [2001:db8::1]:443 | 192.168.1.5 | 2001:db8::1
//   tests:   expect PACKET -> CLASS;   expect PACKET -> drop;   # comments
#include <string_view>

#include "qos_grammar.hpp"

namespace qosc::grammar::packet {

struct kw_vlan : kw<TAO_PEGTL_STRING("vlan")> {};
struct kw_frag : kw<TAO_PEGTL_STRING("frag")> {};
struct kw_expect : kw<TAO_PEGTL_STRING("expect")> {};

struct proto_tcp : kw_tcp {};
struct proto_udp : kw_udp {};
struct proto_icmp : kw_icmp {};
struct proto_icmpv6 : kw_icmpv6 {};
struct proto_value : sor<int_value, name> {};
struct proto_other : seq<kw_proto, ws, must<proto_value>> {};
struct protocol : sor<proto_tcp, proto_udp, proto_icmpv6, proto_icmp, proto_other> {};

// An address as in a policy (a prefix length is accepted here and refused
// with a message by the action).
struct v4_addr : ipv4_elem {};
struct v6_addr : ipv6_elem {};
struct port_number : seq<integer, not_at<name_char>> {};
struct port : seq<one<':'>, must<port_number>> {};
struct bracket_close : one<']'> {};
struct endpoint_v4 : seq<v4_addr, opt<port>> {};
struct endpoint_v6_bracketed : seq<one<'['>, must<v6_addr>, must<bracket_close>, opt<port>> {};
struct endpoint_v6 : seq<v6_addr> {};
struct endpoint : sor<endpoint_v4, endpoint_v6_bracketed, endpoint_v6> {};
struct endpoint_begin : success {};
struct src : seq<endpoint_begin, endpoint> {};
struct dst : seq<endpoint_begin, endpoint> {};
struct direction : one<'>'> {};

struct dscp_value : sor<int_value, name> {};
struct vlan_value : int_value {};
struct opt_dscp : seq<kw_dscp, ws, must<dscp_value>> {};
struct opt_vlan : seq<kw_vlan, ws, must<vlan_value>> {};
struct opt_frag : kw_frag {};
struct option : sor<opt_dscp, opt_vlan, opt_frag> {};

struct packet_begin : success {};
struct packet : seq<packet_begin, must<protocol>, ws, must<src>, ws, must<direction>, ws, must<dst>,
                    star<ws, option>> {};
struct packet_end : eof {};
// One packet and nothing else (the argument of `qosc explain`).
struct packet_only : seq<ws, must<packet>, ws, must<packet_end>> {};

// ---- test files ----------------------------------------------------------------
struct expect_arrow : arrow {};
struct expect_target : target {};
struct expect_semi : semi {};
struct expect_stmt : seq<kw_expect, ws, must<packet>, ws, must<expect_arrow>, ws, must<expect_target>, ws,
                         must<expect_semi>> {};

// Skips a broken statement: through its ';', or up to a line that starts a
// new `expect`, so that one run reports every broken case.
struct recover_expect {
  using rule_t = recover_expect;
  using subs_t = pegtl::empty_list;
  template <typename ParseInput>
  static bool match(ParseInput& in) {
    bool consumed = false;
    while (!in.empty()) {
      const char c = in.peek_char();
      in.bump(1);
      consumed = true;
      if (c == ';') return true;
      if (c == '\n') {
        const char* p = in.current();
        while (p < in.end() && (*p == ' ' || *p == '\t' || *p == '\r')) ++p;
        if (in.end() - p >= 6 && std::string_view(p, 6) == "expect") return true;
      }
    }
    return consumed;
  }
};
struct stmt_begin : success {};
struct stmt_any : sor<try_catch<stmt_begin, must<expect_stmt>>, recover_expect> {};
struct tests_file : seq<ws, star<not_at<eof>, stmt_any, ws>, eof> {};

}  // namespace qosc::grammar::packet
