// The packet notation and policy test files: grammar/packet_grammar.hpp plus
// actions that build NotatedPacket / Expectation, a control that turns
// grammar failures into clang-style diagnostics, the printer, and the frame
// builder. Names (DSCP, protocols) and addresses are the language's own
// (qosc/literals.hpp).
#include "qosc/packet_notation.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "packet_grammar.hpp"
#include "qosc/literals.hpp"

namespace qosc {

namespace pegtl = tao::pegtl;
namespace g = grammar;
namespace gp = grammar::packet;

namespace {

template <class M>
std::vector<std::string> keys(const M& m) {
  std::vector<std::string> r;
  for (const auto& [k, v] : m) r.push_back(k);
  return r;
}

bool is_ext_header(int proto) { return proto == 0 || proto == 43 || proto == 44 || proto == 60; }

struct Endpoint {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};
  std::optional<uint16_t> port;
  Loc loc;
  bool ok = true;
};

struct State {
  const SourceFile& file;
  Diagnostics& diags;
  // The packet being read.
  NotatedPacket pkt;
  bool ok = true;
  int proto = -1;
  Loc proto_loc;
  std::string proto_word;
  Endpoint cur, src, dst;
  std::optional<int> dscp;
  Loc dscp_loc, vlan_loc, frag_loc;
  std::optional<NotatedPacket> done;   // the last complete packet
  std::string done_text;
  // The test statement being read, and those read.
  Expectation exp;
  std::vector<Expectation> cases;

  State(const SourceFile& f, Diagnostics& d) : file(f), diags(d) {}

  Diagnostic& error(Loc loc, std::string msg) {
    ok = false;
    return diags.error(loc, std::move(msg));
  }
};

template <typename In>
Loc loc_of(const In& in) {
  auto p = in.position();
  std::string_view s(in.begin(), in.size());
  size_t nl = s.find('\n');
  size_t len = nl == std::string_view::npos ? s.size() : nl;
  return Loc{uint32_t(p.line), uint32_t(p.column), uint32_t(std::max<size_t>(len, 1))};
}

std::optional<uint64_t> small_number(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + unsigned(c - '0');
    if (v > 1'000'000) return std::nullopt;
  }
  return v;
}

std::string collapse_blanks(std::string_view s) {
  std::string r;
  bool blank = false;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      blank = true;
      continue;
    }
    if (blank && !r.empty()) r += ' ';
    blank = false;
    r += c;
  }
  return r;
}

// ---- actions ------------------------------------------------------------------
template <typename Rule>
struct action : pegtl::nothing<Rule> {};

template <>
struct action<gp::packet_begin> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.pkt = {};
    st.pkt.loc = loc_of(in);
    st.ok = true;
    st.proto = -1;
    st.proto_word.clear();
    st.src = st.dst = st.cur = {};
    st.dscp.reset();
    st.done.reset();
  }
};

template <int Proto>
struct set_proto {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.proto = Proto;
    st.proto_loc = loc_of(in);
    st.proto_word = in.string();
  }
};
template <> struct action<gp::proto_tcp> : set_proto<6> {};
template <> struct action<gp::proto_udp> : set_proto<17> {};
template <> struct action<gp::proto_icmp> : set_proto<1> {};
template <> struct action<gp::proto_icmpv6> : set_proto<58> {};

template <>
struct action<gp::proto_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.proto_loc = loc_of(in);
    std::string t = in.string();
    st.proto_word = "proto " + t;
    if (auto n = small_number(t)) {
      if (*n > 255) {
        st.error(st.proto_loc, fmt::format("protocol number {} is above 255", t));
        return;
      }
      st.proto = int(*n);
      return;
    }
    auto it = literals::proto_names().find(t);
    if (it == literals::proto_names().end()) {
      auto& d = st.error(st.proto_loc, fmt::format("unknown protocol name '{}'", t));
      std::string c = closest_match(t, keys(literals::proto_names()));
      d.hints.push_back(c.empty() ? "write the protocol number 0-255 instead" : fmt::format("did you mean '{}'?", c));
      return;
    }
    st.proto = it->second;
  }
};

template <>
struct action<gp::endpoint_begin> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.cur = {};
    st.cur.loc = loc_of(in);
  }
};

template <typename In>
std::string address_text(const In& in, State& st) {
  std::string t = in.string();
  size_t slash = t.find('/');
  if (slash != std::string::npos) {
    auto& d = st.error(loc_of(in), fmt::format("'{}' is a prefix; a packet has one address", t));
    d.hints.push_back(fmt::format("write the address alone, e.g. {}", t.substr(0, slash)));
    st.cur.ok = false;
  }
  return t.substr(0, slash);
}

template <>
struct action<gp::v4_addr> {
  template <typename In>
  static void apply(const In& in, State& st) {
    std::string t = address_text(in, st), why;
    st.cur.v6 = false;
    if (auto v = literals::ipv4_address(t, &why)) {
      for (int i = 0; i < 4; ++i) st.cur.addr[size_t(i)] = uint8_t(*v >> (24 - 8 * i));
    } else {
      st.error(loc_of(in), why);
      st.cur.ok = false;
    }
  }
};
template <>
struct action<gp::v6_addr> {
  template <typename In>
  static void apply(const In& in, State& st) {
    std::string t = address_text(in, st), why, hint;
    st.cur.v6 = true;
    if (auto v = literals::ipv6_address(t, &why, &hint)) {
      st.cur.addr = *v;
    } else {
      st.error(loc_of(in), why).hints.push_back(hint);
      st.cur.ok = false;
    }
  }
};
template <>
struct action<gp::port_number> {
  template <typename In>
  static void apply(const In& in, State& st) {
    auto v = small_number(in.string());
    if (!v || *v > 65535) {
      st.error(loc_of(in), fmt::format("port {} is outside 0-65535", in.string()));
      st.cur.ok = false;
      return;
    }
    st.cur.port = uint16_t(*v);
  }
};
template <>
struct action<gp::src> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.cur.loc = loc_of(in);
    st.src = st.cur;
  }
};
template <>
struct action<gp::dst> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.cur.loc = loc_of(in);
    st.dst = st.cur;
  }
};

template <>
struct action<gp::dscp_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    Loc loc = loc_of(in);
    std::string t = in.string();
    if (st.dscp) {
      st.error(loc, "the packet's DSCP is given twice");
      return;
    }
    st.dscp_loc = loc;
    if (auto n = small_number(t)) {
      if (*n > 63) {
        st.error(loc, fmt::format("DSCP value {} is above 63", t));
        return;
      }
      st.dscp = int(*n);
      return;
    }
    auto it = literals::dscp_names().find(t);
    if (it == literals::dscp_names().end()) {
      auto& d = st.error(loc, fmt::format("unknown DSCP name '{}'", t));
      std::string c = closest_match(t, keys(literals::dscp_names()));
      d.hints.push_back(c.empty() ? "DSCP names are cs0-cs7, af11-af43, ef, le; or write a number 0-63"
                                  : fmt::format("did you mean '{}'?", c));
      return;
    }
    st.dscp = it->second;
  }
};
template <>
struct action<gp::vlan_value> {
  template <typename In>
  static void apply(const In& in, State& st) {
    Loc loc = loc_of(in);
    if (st.pkt.vlan) {
      st.error(loc, "the packet's VLAN is given twice");
      return;
    }
    auto v = small_number(in.string());
    if (!v || *v > 4095) {
      st.error(loc, fmt::format("VLAN id {} is outside 0-4095", in.string()));
      return;
    }
    st.pkt.vlan = uint16_t(*v);
  }
};
template <>
struct action<gp::opt_frag> {
  template <typename In>
  static void apply(const In& in, State& st) {
    if (st.pkt.frag) st.error(loc_of(in), "'frag' is given twice");
    st.pkt.frag = true;
    st.frag_loc = loc_of(in);
  }
};

// The packet is complete: check what the grammar cannot, then fill the fields.
template <>
struct action<gp::packet> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.pkt.loc = loc_of(in);
    if (!st.src.ok || !st.dst.ok || st.proto < 0) st.ok = false;
    if (!st.ok) return;
    if (st.src.v6 != st.dst.v6) {
      auto& d = st.error(st.dst.loc, fmt::format("the source is an {} address but the destination is an {} address",
                                                 st.src.v6 ? "IPv6" : "IPv4", st.dst.v6 ? "IPv6" : "IPv4"));
      d.hints.push_back("a packet is either IPv4 or IPv6");
      return;
    }
    const bool v6 = st.src.v6;
    if (st.proto == 1 && st.proto_word == "icmp" && v6) {
      st.error(st.proto_loc, "'icmp' is ICMP for IPv4, but the addresses are IPv6").hints.push_back("write 'icmpv6'");
      return;
    }
    if (st.proto == 58 && st.proto_word == "icmpv6" && !v6) {
      st.error(st.proto_loc, "'icmpv6' is ICMP for IPv6, but the addresses are IPv4").hints.push_back("write 'icmp'");
      return;
    }
    if (v6 && is_ext_header(st.proto)) {
      auto& d = st.error(st.proto_loc, fmt::format("protocol {} is an IPv6 extension header, never a packet's final "
                                                   "protocol",
                                                   st.proto));
      d.hints.push_back("classification walks extension headers to the protocol after them; write that one");
      return;
    }
    const bool ports = (st.proto == 6 || st.proto == 17) && !st.pkt.frag;
    for (const Endpoint* e : {&st.src, &st.dst}) {
      const char* which = e == &st.src ? "source" : "destination";
      if (ports && !e->port) {
        auto& d = st.error(e->loc, fmt::format("the {} needs a port: a {} packet has ports", which,
                                               st.proto == 6 ? "TCP" : "UDP"));
        d.hints.push_back(v6 ? "write [ADDRESS]:PORT, e.g. [2001:db8::1]:443" : "write ADDRESS:PORT, e.g. 192.168.1.5:443");
        d.hints.push_back("or add 'frag' for a non-first fragment, which carries no ports");
        return;
      }
      if (!ports && e->port) {
        auto& d = st.error(e->loc, fmt::format("the {} has a port, but {} carries none", which,
                                               st.pkt.frag ? "a non-first fragment ('frag')" : "'" + st.proto_word + "'"));
        d.hints.push_back("write the address without ':PORT'");
        return;
      }
    }
    PacketFields& f = st.pkt.fields;
    f.ip = true;
    f.family = v6 ? ir::Family::V6 : ir::Family::V4;
    f.saddr = st.src.addr;
    f.daddr = st.dst.addr;
    f.dscp = uint8_t(st.dscp.value_or(0));
    f.proto = st.proto;
    f.l4 = ports;
    f.sport = st.src.port.value_or(0);
    f.dport = st.dst.port.value_or(0);
    f.len = uint32_t(build_frame(st.pkt).size());
    st.done = st.pkt;
    st.done_text = collapse_blanks(in.string());
  }
};

// ---- test statements ---------------------------------------------------------
template <>
struct action<gp::stmt_begin> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.exp = {};
    st.exp.loc = loc_of(in);
    st.exp.loc.len = 6;
    st.done.reset();
  }
};
template <>
struct action<g::target_drop> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.exp.drop = true;
    st.exp.target = "drop";
    st.exp.target_loc = loc_of(in);
  }
};
template <>
struct action<g::target_class> {
  template <typename In>
  static void apply(const In& in, State& st) {
    st.exp.target = in.string();
    st.exp.target_loc = loc_of(in);
  }
};
template <>
struct action<gp::expect_stmt> {
  template <typename In>
  static void apply(const In&, State& st) {
    if (!st.done) return;   // the packet's error is reported
    st.exp.packet = *st.done;
    st.exp.packet_text = st.done_text;
    st.cases.push_back(std::move(st.exp));
  }
};

// ---- errors from the grammar --------------------------------------------------
template <typename Rule> struct expected { static constexpr const char* what = nullptr; };
#define QOSC_EXPECTED(rule, text) \
  template <> struct expected<rule> { static constexpr const char* what = text; };
QOSC_EXPECTED(gp::protocol, "expected the packet's protocol (tcp, udp, icmp, icmpv6 or proto N)")
QOSC_EXPECTED(gp::proto_value, "expected a protocol number or name after 'proto'")
QOSC_EXPECTED(gp::src, "expected the source address (e.g. 192.168.1.5:50000 or [2001:db8::1]:443)")
QOSC_EXPECTED(gp::dst, "expected the destination address (e.g. 203.0.113.9:3074 or [2001:db8::2]:443)")
QOSC_EXPECTED(gp::direction, "expected '>' between the source and the destination")
QOSC_EXPECTED(gp::port_number, "expected a port number after ':'")
QOSC_EXPECTED(gp::v6_addr, "expected an IPv6 address after '['")
QOSC_EXPECTED(gp::bracket_close, "expected ']' after the IPv6 address")
QOSC_EXPECTED(gp::dscp_value, "expected a DSCP value after 'dscp' (0-63 or a name such as ef, af41, cs1)")
QOSC_EXPECTED(gp::vlan_value, "expected a VLAN id (0-4095) after 'vlan'")
QOSC_EXPECTED(gp::packet_end, "expected 'dscp', 'vlan', 'frag' or the end of the packet")
QOSC_EXPECTED(gp::expect_stmt, "expected 'expect PACKET -> CLASS;'")
QOSC_EXPECTED(gp::expect_arrow, "expected 'dscp', 'vlan', 'frag', or '->' and the expected class")
QOSC_EXPECTED(gp::expect_target, "expected a class name or 'drop' after '->'")
QOSC_EXPECTED(gp::expect_semi, "expected ';' after the expected class")
#undef QOSC_EXPECTED

std::string token_at(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) ++p;
  if (p >= end) return "end of input";
  const char* q = p;
  while (q < end && !std::isspace(static_cast<unsigned char>(*q)) && q - p < 40) ++q;
  if (q == p) q = p + 1;
  return fmt::format("'{}'", std::string(p, q));
}

template <typename Rule>
struct control : pegtl::normal<Rule> {
  template <typename ParseInput, typename... States>
  [[noreturn]] static void raise(const ParseInput& in, State& st, States&&...) {
    const char* p = in.current();
    const char* end = in.end();
    const char* what = expected<Rule>::what;
    Diagnostic d;
    d.message = fmt::format("{}, found {}", what ? what : "syntax error", token_at(p, end));
    auto pos = in.position();
    size_t len = 1;
    while (p + len < end && !std::isspace(static_cast<unsigned char>(p[len]))) ++len;
    d.loc = Loc{uint32_t(pos.line), uint32_t(pos.column), uint32_t(p < end ? len : 1)};
    // A missing ';' belongs right after what came before it, as in clang.
    if constexpr (std::is_same_v<Rule, gp::expect_semi>) {
      const char* base = in.begin();
      const char* q = p;
      while (q > base && std::isspace(static_cast<unsigned char>(q[-1]))) --q;
      uint32_t line = 1, col = 1;
      for (const char* c = base; c < q; ++c) {
        if (*c == '\n') ++line, col = 1;
        else ++col;
      }
      d.loc = Loc{line, col, 1};
    }
    if constexpr (std::is_same_v<Rule, gp::protocol>) {
      std::string word(p, std::find_if(p, end, [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }));
      std::string c = closest_match(word, {"tcp", "udp", "icmp", "icmpv6", "proto"});
      if (!c.empty()) d.hints.push_back(fmt::format("did you mean '{}'?", c));
    } else if constexpr (std::is_same_v<Rule, gp::src> || std::is_same_v<Rule, gp::dst>) {
      d.hints.push_back("a packet is written PROTO SRC > DST, e.g. udp 192.168.1.5:50000 > 203.0.113.9:3074");
    } else if constexpr (std::is_same_v<Rule, gp::expect_stmt>) {
      d.hints.push_back("a test is `expect udp 192.168.1.5:50000 > 203.0.113.9:3074 -> gaming;`");
    }
    st.ok = false;
    st.diags.add(std::move(d));
    throw pegtl::parse_error(st.diags.all().back().message, in);
  }
};

template <typename Grammar>
bool run(const SourceFile& file, State& st) {
  const size_t before = st.diags.error_count();
  pegtl::memory_input<> in(file.text(), file.name());
  try {
    if (!pegtl::parse<Grammar, action, control>(in, st)) st.diags.error(Loc{1, 1, 1}, "syntax error");
  } catch (const pegtl::parse_error&) {
    if (st.diags.error_count() == before) st.diags.error(Loc{1, 1, 1}, "syntax error");
  }
  return st.diags.error_count() == before;
}

}  // namespace

std::optional<NotatedPacket> parse_packet_notation(const SourceFile& file, Diagnostics& diags) {
  State st(file, diags);
  if (!run<gp::packet_only>(file, st) || !st.done) return std::nullopt;
  return st.done;
}

std::vector<Expectation> parse_test_file(const SourceFile& file, Diagnostics& diags) {
  State st(file, diags);
  run<gp::tests_file>(file, st);
  return std::move(st.cases);
}

// ---- printing -------------------------------------------------------------------
namespace {
std::string address_text(const std::array<uint8_t, 16>& a, bool v6) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, a.data(), buf, sizeof buf);
  return buf;
}
}  // namespace

std::string format_packet(const PacketFields& f) {
  if (!f.ip) return "(non-IP frame)";
  if (f.proto < 0) return "(IP packet of unknown protocol)";
  const bool v6 = f.family == ir::Family::V6;
  std::string proto;
  if (f.proto == 6) proto = "tcp";
  else if (f.proto == 17) proto = "udp";
  else if (f.proto == 1 && !v6) proto = "icmp";
  else if (f.proto == 58 && v6) proto = "icmpv6";
  else {
    std::string n = literals::proto_name(f.proto);
    proto = "proto " + (n.empty() || n == "tcp" || n == "udp" ? std::to_string(f.proto) : n);
  }
  auto end = [&](const std::array<uint8_t, 16>& a, uint16_t port) {
    std::string s = address_text(a, v6);
    if (!f.l4) return s;
    return v6 ? fmt::format("[{}]:{}", s, port) : fmt::format("{}:{}", s, port);
  };
  std::string s = fmt::format("{} {} > {}", proto, end(f.saddr, f.sport), end(f.daddr, f.dport));
  if (f.dscp != 0) {
    std::string n = literals::dscp_name(f.dscp & 63);
    s += " dscp " + (n.empty() ? std::to_string(f.dscp & 63) : n);
  }
  if ((f.proto == 6 || f.proto == 17) && !f.l4) s += " frag";
  return s;
}

std::string format_packet(const NotatedPacket& p) {
  std::string s = format_packet(p.fields);
  if (p.vlan) s += fmt::format(" vlan {}", *p.vlan);
  if (p.frag && p.fields.proto != 6 && p.fields.proto != 17) s += " frag";
  return s;
}

// ---- frames ------------------------------------------------------------------------
std::vector<uint8_t> build_frame(const NotatedPacket& p) {
  const PacketFields& f = p.fields;
  const bool v6 = f.family == ir::Family::V6;
  std::vector<uint8_t> b;
  auto u8 = [&](unsigned v) { b.push_back(uint8_t(v)); };
  auto u16 = [&](unsigned v) { u8(v >> 8), u8(v); };
  auto bytes = [&](const uint8_t* a, size_t n) { b.insert(b.end(), a, a + n); };
  // Ethernet: locally administered MACs, an optional 802.1Q tag.
  for (unsigned m : {0x02u, 0u, 0u, 0u, 0u, 2u, 0x02u, 0u, 0u, 0u, 0u, 1u}) u8(m);
  if (p.vlan) u16(0x8100), u16(*p.vlan);
  u16(v6 ? 0x86dd : 0x0800);

  // L4 (or what follows the IP header of a non-first fragment): 8 bytes
  // except TCP's 20-byte header.
  std::vector<uint8_t> l4;
  const bool ports = f.l4;
  if (ports && f.proto == 6) {
    l4 = {uint8_t(f.sport >> 8), uint8_t(f.sport), uint8_t(f.dport >> 8), uint8_t(f.dport), 0, 0, 0, 1, 0, 0, 0, 0,
          0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0};
  } else if (ports && f.proto == 17) {
    l4 = {uint8_t(f.sport >> 8), uint8_t(f.sport), uint8_t(f.dport >> 8), uint8_t(f.dport), 0, 8, 0, 0};
  } else if (!p.frag && f.proto == 1) {
    l4 = {8, 0, 0xf7, 0xff, 0, 0, 0, 0};      // echo request
  } else if (!p.frag && f.proto == 58) {
    l4 = {128, 0, 0, 0, 0, 0, 0, 0};          // echo request
  } else {
    l4.assign(8, 0);
  }
  constexpr unsigned kFragOffset = 185;       // any non-zero offset (in 8-byte units)
  const uint8_t tclass = uint8_t((f.dscp & 63) << 2);
  if (!v6) {
    const size_t start = b.size();
    u8(0x45), u8(tclass), u16(unsigned(20 + l4.size())), u16(1);
    u16(p.frag ? kFragOffset : 0x4000);       // non-first fragment, or don't-fragment
    u8(64), u8(unsigned(f.proto)), u16(0);
    bytes(f.saddr.data(), 4), bytes(f.daddr.data(), 4);
    uint32_t sum = 0;
    for (size_t i = start; i < start + 20; i += 2) sum += uint32_t(b[i] << 8 | b[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    b[start + 10] = uint8_t(~sum >> 8), b[start + 11] = uint8_t(~sum);
  } else {
    const size_t payload = l4.size() + (p.frag ? 8 : 0);
    u8(0x60 | tclass >> 4), u8(uint8_t(tclass << 4)), u16(0), u16(unsigned(payload));
    u8(p.frag ? 44 : unsigned(f.proto)), u8(64);
    bytes(f.saddr.data(), 16), bytes(f.daddr.data(), 16);
    if (p.frag) u8(unsigned(f.proto)), u8(0), u16(kFragOffset << 3), u16(0), u16(1);
  }
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

}  // namespace qosc
