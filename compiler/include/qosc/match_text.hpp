#pragma once
// Regions of packet space written back in the policy language's own syntax
// (`ip saddr 10.0.0.0/8 tcp dport 80`), and example packets in the packet
// notation (`tcp 192.0.2.1:50000 > 198.51.100.1:80`).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "qosc/region.hpp"

namespace qosc::ir {

std::string format_address(Family family, const std::array<uint8_t, 16>& bytes);  // RFC 5952 for v6
std::string format_prefix(const Prefix& p);                                       // "10.0.0.0/8"

// The match expressions whose union is exactly `box` (usually one; a box
// with ports on both TCP and UDP needs one per protocol, since `sport`/`dport`
// follow `tcp` or `udp`). Two corners the language cannot write get a
// parenthesised remark instead: TCP/UDP packets without ports (fragments)
// and IPv6 packets whose protocol is unknown.
std::vector<std::string> match_texts(const Box& box);

// The same, each expression with the box of packets it stands for. A part's
// box may be wider than `box` in the ports of port-less packets only (which
// no rule can tell apart), so it decides exactly like `box`.
struct MatchPart {
  std::string text;
  Box box;
};
std::vector<MatchPart> match_parts(const Box& box);

// A region as lines to read: boxes merged, one line per match expression,
// and an IPv4 and an IPv6 line that say the same without addresses joined
// into one line without the family. `boxes`: exactly the packets of `text`
// (up to the ports of port-less packets, as for MatchPart). Sorted by text.
struct MatchLine {
  std::string text;
  std::vector<Box> boxes;
};
std::vector<MatchLine> match_lines(std::vector<Box> region);

// One packet of `box` (non-empty), with friendly values where the box allows
// them (documentation addresses, an ephemeral source port).
PacketFields example_packet(const Box& box);

// A packet in the notation `PROTO SRC > DST [dscp NAME|N] [frag]`:
// `udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef`, `[2001:db8::1]:443`
// for v6 with ports, a bare address for protocols without ports, `proto N`
// for protocols without a name in the notation; `frag` for a TCP/UDP packet
// without ports. Kept small and alone so that it joins the notation's parser.
std::string format_packet_example(const PacketFields& pkt);

}  // namespace qosc::ir
