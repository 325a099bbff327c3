#pragma once
// Random ir::Policy values (straight to IR, no parser needed) and random
// packets that hit their values often.
#include <random>
#include <vector>

#include "qosc/ir.hpp"
#include "qosc/packet.hpp"

namespace qosc::cgtest {

struct RandomIrOptions {
  size_t rules = 12;
  size_t classes = 4;
  bool narrow = true;   // small value pools: rules overlap often
  bool specific = false; // every rule: tcp/udp + one dport + an IPv4 /24 or /32 (few dead rules; scaling)
};

ir::Policy random_ir(std::mt19937_64& rng, const RandomIrOptions& o = {});
// Fields drawn from the policy's own constants (and a few others).
PacketFields random_fields(std::mt19937_64& rng, const ir::Policy& p);
// A frame with those fields (Ethernet + IPv4/IPv6 + TCP/UDP/other), for BPF test runs.
std::vector<uint8_t> build_frame(const PacketFields& f, bool vlan = false);

}  // namespace qosc::cgtest
