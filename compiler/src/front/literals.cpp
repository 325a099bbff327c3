// Literal values of the language: see qosc/literals.hpp.
#include "qosc/literals.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

namespace qosc::literals {

const std::map<std::string, int>& dscp_names() {
  static const std::map<std::string, int> m = [] {
    std::map<std::string, int> r;
    for (int i = 0; i < 8; ++i) r[fmt::format("cs{}", i)] = i * 8;
    for (int x = 1; x <= 4; ++x)
      for (int y = 1; y <= 3; ++y) r[fmt::format("af{}{}", x, y)] = 8 * x + 2 * y;
    r["ef"] = 46;
    r["le"] = 1;
    return r;
  }();
  return m;
}

const std::map<std::string, int>& proto_names() {
  static const std::map<std::string, int> m = {
      {"icmp", 1},  {"igmp", 2},  {"ipip", 4},    {"tcp", 6},      {"egp", 8},     {"udp", 17},
      {"dccp", 33}, {"ipv6", 41}, {"rsvp", 46},   {"gre", 47},     {"esp", 50},    {"ah", 51},
      {"icmpv6", 58}, {"ipv6-icmp", 58}, {"eigrp", 88}, {"ospf", 89}, {"pim", 103}, {"vrrp", 112},
      {"l2tp", 115}, {"sctp", 132}, {"udplite", 136}, {"mpls-in-ip", 137},
  };
  return m;
}

namespace {
// Shortest name wins where a value has two (icmpv6 over ipv6-icmp).
std::string name_of(const std::map<std::string, int>& names, int value) {
  std::string best;
  for (const auto& [name, v] : names)
    if (v == value && (best.empty() || name.size() < best.size())) best = name;
  return best;
}
}  // namespace

std::string dscp_name(int value) { return name_of(dscp_names(), value); }
std::string proto_name(int value) { return name_of(proto_names(), value); }

std::optional<uint32_t> ipv4_address(std::string_view text, std::string* error) {
  uint32_t v = 0;
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    size_t dot = text.find('.', pos);
    std::string_view part = text.substr(pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos);
    uint64_t o = 0;
    bool digits = !part.empty();
    for (char c : part) {
      if (c < '0' || c > '9') digits = false;
      else if (o <= 255) o = o * 10 + unsigned(c - '0');
    }
    if (!digits || o > 255 || part.size() > 3) {
      if (error) *error = fmt::format("'{}' is not an IPv4 address: {} is above 255", text, part);
      return std::nullopt;
    }
    v = (v << 8) | uint32_t(o);
    if (i < 3 && dot == std::string_view::npos) {
      if (error) *error = fmt::format("'{}' is not an IPv4 address: it needs four octets", text);
      return std::nullopt;
    }
    pos = dot == std::string_view::npos ? text.size() : dot + 1;
  }
  return v;
}

std::optional<std::array<uint8_t, 16>> ipv6_address(std::string_view text, std::string* error, std::string* hint) {
  std::array<uint8_t, 16> a{};
  std::string s(text);
  if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1) {
    if (error) *error = fmt::format("'{}' is not a valid IPv6 address", text);
    if (hint) *hint = "IPv6 addresses are up to eight groups of hex digits separated by ':', with at most one '::'";
    return std::nullopt;
  }
  return a;
}

}  // namespace qosc::literals
