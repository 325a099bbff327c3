#pragma once
// Reading (and, for tests, writing) packet captures: classic pcap in either
// byte order with micro- or nanosecond timestamps, and pcapng (section
// header, interface description, enhanced/simple/obsolete packet blocks).
// Every packet comes out as an Ethernet frame: captures of other link types
// that carry IP (Linux cooked SLL/SLL2 from `tcpdump -i any`, raw IP) get a
// synthetic Ethernet header; other link types are refused with a clear error.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qosrun/loader.hpp"

namespace qosrun {

inline constexpr uint32_t kLinktypeEthernet = 1;

struct CapturedPacket {
  std::vector<uint8_t> frame;   // Ethernet frame (synthesised header for non-Ethernet captures)
  uint32_t orig_len = 0;        // length on the wire as recorded (before snaplen truncation)
  uint64_t ts_ns = 0;           // timestamp, nanoseconds since the epoch
  uint32_t linktype = kLinktypeEthernet;   // the capture's link type for this packet
};

struct Capture {
  bool pcapng = false;
  bool nanosecond = false;      // classic pcap: nanosecond magic
  bool swapped = false;         // written in the other byte order
  std::vector<CapturedPacket> packets;
};

Result<Capture> read_capture(const std::string& path);
Result<Capture> parse_capture(std::span<const uint8_t> bytes, const std::string& name);

// Writes a classic pcap (microsecond, host byte order, Ethernet) file; the
// packets are stamped 1 ms apart. For tests and examples.
Status write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames);
std::vector<uint8_t> pcap_bytes(const std::vector<std::vector<uint8_t>>& frames, bool nanosecond = false,
                                bool swapped = false);

}  // namespace qosrun
