#pragma once
// The reference packet parser: what the language contract says a packet's
// classification fields are. Generated XDP/TC code must extract exactly the
// same fields; differential tests compare the two.
//
// Rules (docs/language.md, "Packets"):
// - Ethernet II; up to two VLAN tags (0x8100 / 0x88a8) are skipped. A third
//   tag, an unknown EtherType or a frame shorter than its headers -> non-IP.
// - IPv4: IHL >= 5 and the whole IP header (with options) inside the packet,
//   else non-IP. Non-first fragment (offset != 0): protocol known, no L4.
// - IPv6: the 40-byte header inside the packet, else non-IP. Extension headers
//   hop-by-hop (0), routing (43), fragment (44), destination options (60) are
//   walked, at most kMaxIpv6ExtHeaders of them; a longer chain or one cut by
//   the end of the packet leaves the protocol unknown (proto = -1, no L4).
//   A fragment header with non-zero offset: protocol = its next header, no L4.
// - L4 (ports) is present only for TCP (full 20-byte header) and UDP (full
//   8-byte header) inside the packet. Bytes are bounded by the packet's end
//   (the IP total length field is not consulted).
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qosc/ir.hpp"

namespace qosc {

inline constexpr int kMaxVlanTags = 2;
inline constexpr int kMaxIpv6ExtHeaders = 6;

struct PacketFields {
  bool ip = false;                 // false: non-IP (goes to the default class)
  ir::Family family = ir::Family::Any;
  std::array<uint8_t, 16> saddr{}, daddr{};   // v4 in [0..3], network order
  uint8_t dscp = 0;
  int proto = -1;                  // final L4 protocol, -1 unknown
  bool l4 = false;                 // ports valid (TCP/UDP header present, first fragment)
  uint16_t sport = 0, dport = 0;
  uint32_t len = 0;                // whole frame length in bytes
  // Fields for PIFO rank / flow table (not used by rule matching).
  friend bool operator==(const PacketFields&, const PacketFields&) = default;
};

PacketFields parse_packet(std::span<const uint8_t> frame);
std::string to_string(const PacketFields& f);   // for test failure messages

// The reference interpreter: the class id the policy picks, or ir::kDrop.
int32_t classify(const ir::Policy& policy, const PacketFields& pkt);
// Index of the first matching rule, or -1 (default class).
int first_match(const ir::Policy& policy, const PacketFields& pkt);
bool rule_matches(const ir::Rule& rule, const PacketFields& pkt);

// `set dscp`: the frame with the DSCP of its IPv4/IPv6 header (as parse_packet
// finds it) set to `dscp`, the two ECN bits kept, the IPv4 header checksum
// adjusted by the change (RFC 1624: a valid checksum stays valid, a wrong one
// stays wrong by as much); a non-IP frame is returned unchanged.
std::vector<uint8_t> rewrite_dscp(std::span<const uint8_t> frame, uint8_t dscp);
// The frame as the TC program sends it: rewritten when the class the policy
// picks has `set dscp`, else unchanged (also for drops).
std::vector<uint8_t> egress_frame(const ir::Policy& policy, std::span<const uint8_t> frame);
// The IPv4 header checksum of an IP frame verifies (true for non-IPv4 frames).
bool ipv4_checksum_ok(std::span<const uint8_t> frame);

}  // namespace qosc
