#pragma once
// One notation for a packet, shared by `qosc explain`, `qosc test` and the
// examples `qosc diff` prints (docs/review.md):
//
//   PROTO SRC > DST [dscp NAME|N] [vlan N] [frag]
//
// e.g. `udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef`. PROTO is tcp,
// udp, icmp, icmpv6 or `proto NAME|N`; SRC/DST carry ports (`[v6]:443`)
// exactly when the protocol has them (TCP/UDP, not a `frag`ment). A packet
// is also a frame (build_frame) that the reference parser reads back to the
// same fields, so the compiled programs can be run on it.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qosc/diag.hpp"
#include "qosc/packet.hpp"
#include "qosc/source.hpp"

namespace qosc {

struct NotatedPacket {
  PacketFields fields;            // what classification sees (len: the frame's)
  std::optional<uint16_t> vlan;   // one 802.1Q tag (classification skips it)
  bool frag = false;              // a non-first fragment: protocol known, no ports
  Loc loc;                        // where it was written
};

// The whole of `file` is one packet (the argument of `qosc explain`).
std::optional<NotatedPacket> parse_packet_notation(const SourceFile& file, Diagnostics& diags);

// A policy test file: `expect PACKET -> CLASS;` / `expect PACKET -> drop;`.
struct Expectation {
  NotatedPacket packet;
  std::string packet_text;   // as written, blanks collapsed
  bool drop = false;
  std::string target;        // class name ("drop" when drop)
  Loc loc;                   // of `expect`
  Loc target_loc;
};
// The cases that read; syntax and packet errors go to diags (with the test
// file's locations) and their cases are left out. Class names are checked
// against a policy by the caller.
std::vector<Expectation> parse_test_file(const SourceFile& file, Diagnostics& diags);

// The notation of a packet; re-parses to the same fields. Non-IP frames and
// packets whose protocol the parser could not determine have no notation:
// they are printed as "(non-IP frame)" / "(IP packet of unknown protocol)".
std::string format_packet(const PacketFields& fields);
std::string format_packet(const NotatedPacket& packet);

// An Ethernet frame for the packet: parse_packet(build_frame(p)) == p.fields.
std::vector<uint8_t> build_frame(const NotatedPacket& packet);

}  // namespace qosc
