#pragma once
// Random and adversarial Ethernet frames for the differential test.
//
// Frames are built to hit the corners of the language contract's packet
// rules: 0-3 VLAN tags (802.1Q / 802.1ad, plus a TPID that must not be
// skipped), IPv4 with options (IHL 5..15, and broken IHL < 5), first and
// non-first fragments, IPv6 extension-header chains 0..8 deep (hop-by-hop,
// routing, fragment, destination options, in any order, fragments with zero
// and non-zero offsets), TCP/UDP/ICMP/ICMPv6/other protocols, TCP headers
// cut short, random DSCP, and truncation anywhere. Addresses, ports, DSCP
// values and protocols are drawn partly from the policy's own constants (so
// that rules match, and their edges: prefix boundaries, range ends +-1) and
// partly at random.
#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "qosc/ir.hpp"

namespace qosc::difftest {

struct PolicyConstants {
  std::vector<ir::Prefix> v4, v6;
  std::vector<uint16_t> ports;
  std::vector<uint8_t> protos;
  std::vector<uint8_t> dscps;
};
PolicyConstants constants_of(const ir::Policy& policy);

class PacketGen {
 public:
  PacketGen(const ir::Policy& policy, uint64_t seed);

  // A random or adversarial frame (at least 14 bytes: the kernel's test run
  // refuses shorter ones; at most max_len bytes).
  std::vector<uint8_t> next();
  // What the last frame was built as, e.g. "vlan x2 | ipv6 ext[0,44:off=3] | udp | cut 51/90".
  const std::string& description() const { return desc_; }

  void set_max_len(size_t n) { max_len_ = n; }

 private:
  std::vector<uint8_t> build();
  void l2(std::vector<uint8_t>& f, uint16_t ethertype);
  void ipv4(std::vector<uint8_t>& f);
  void ipv6(std::vector<uint8_t>& f);
  void l4(std::vector<uint8_t>& f, uint8_t proto, bool allow_ports);
  std::array<uint8_t, 16> address(bool v6);
  uint16_t port();
  uint8_t proto();
  uint8_t dscp();
  uint32_t rnd(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  PolicyConstants c_;
  std::mt19937_64 rng_;
  std::string desc_;
  size_t max_len_ = 1500;
};

std::string hex(std::span<const uint8_t> bytes);

}  // namespace qosc::difftest
