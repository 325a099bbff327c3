#pragma once
// The language's literal values in one place: DSCP and protocol names, and
// the text of IPv4/IPv6 addresses. Used by the policy parser and checks, and
// by the packet notation (explain, test, diff), so that a name or an address
// means the same thing in a policy and in a packet.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace qosc::literals {

// cs0-cs7, af11-af43, ef, le -> DSCP value (0-63).
const std::map<std::string, int>& dscp_names();
// tcp, udp, icmp, gre, ... -> IP protocol number (0-255).
const std::map<std::string, int>& proto_names();
// The canonical name of a value ("ef", "tcp"), or "" when it has none.
std::string dscp_name(int value);
std::string proto_name(int value);

// "192.168.1.5" (four decimal octets, as the grammar's ipv4_elem matched
// them) in host byte order; nullopt with *error saying why.
std::optional<uint32_t> ipv4_address(std::string_view text, std::string* error);
// An IPv6 address in network byte order; nullopt with *error (and *hint).
std::optional<std::array<uint8_t, 16>> ipv6_address(std::string_view text, std::string* error, std::string* hint);

}  // namespace qosc::literals
