// The reference packet parser, written straight from the rules in
// qosc/packet.hpp. It is the oracle for the generated XDP/TC code: keep it
// small and obviously right rather than fast.
#include "qosc/packet.hpp"

#include <fmt/format.h>

namespace qosc {
namespace {

uint16_t be16(std::span<const uint8_t> f, size_t off) { return uint16_t(f[off] << 8 | f[off + 1]); }

// L4 ports at `off` for protocol `proto`, when the full header is present.
void parse_l4(std::span<const uint8_t> f, size_t off, PacketFields& p) {
  size_t need = p.proto == 6 ? 20 : p.proto == 17 ? 8 : 0;
  if (need == 0 || off + need > f.size()) return;
  p.l4 = true;
  p.sport = be16(f, off);
  p.dport = be16(f, off + 2);
}

}  // namespace

PacketFields parse_packet(std::span<const uint8_t> f) {
  PacketFields p;
  p.len = uint32_t(f.size());
  if (f.size() < 14) return p;
  size_t off = 12;
  uint16_t type = be16(f, off);
  int tags = 0;
  while (type == 0x8100 || type == 0x88a8) {
    if (tags == kMaxVlanTags) return p;           // a third tag: non-IP
    ++tags;
    if (off + 4 + 2 > f.size()) return p;         // tag + next EtherType
    off += 4;
    type = be16(f, off);
  }
  off += 2;  // start of the network header

  if (type == 0x0800) {
    if (off + 20 > f.size()) return p;
    // The version nibble is not consulted (packet.hpp): the EtherType decides.
    size_t ihl = size_t(f[off] & 0x0f) * 4;
    if (ihl < 20 || off + ihl > f.size()) return p;
    p.ip = true;
    p.family = ir::Family::V4;
    p.dscp = f[off + 1] >> 2;
    p.proto = f[off + 9];
    for (int i = 0; i < 4; ++i) {
      p.saddr[i] = f[off + 12 + i];
      p.daddr[i] = f[off + 16 + i];
    }
    uint16_t frag_off = be16(f, off + 6) & 0x1fff;
    if (frag_off != 0) return p;                  // non-first fragment: no L4
    parse_l4(f, off + ihl, p);
    return p;
  }
  if (type == 0x86dd) {
    if (off + 40 > f.size()) return p;
    p.ip = true;
    p.family = ir::Family::V6;
    uint8_t tc = uint8_t((f[off] & 0x0f) << 4 | f[off + 1] >> 4);
    p.dscp = tc >> 2;
    for (int i = 0; i < 16; ++i) {
      p.saddr[i] = f[off + 8 + i];
      p.daddr[i] = f[off + 24 + i];
    }
    int nh = f[off + 6];
    size_t pos = off + 40;
    int walked = 0;
    while (nh == 0 || nh == 43 || nh == 44 || nh == 60) {
      if (walked == kMaxIpv6ExtHeaders) return p;  // chain too long: proto unknown
      ++walked;
      if (nh == 44) {
        if (pos + 8 > f.size()) return p;          // cut: proto unknown
        uint16_t fo = be16(f, pos + 2) >> 3;
        nh = f[pos];
        pos += 8;
        if (fo != 0) { p.proto = nh; return p; }   // non-first fragment
      } else {
        if (pos + 2 > f.size()) return p;
        size_t hlen = (size_t(f[pos + 1]) + 1) * 8;
        if (pos + hlen > f.size()) return p;       // cut: proto unknown
        nh = f[pos];
        pos += hlen;
      }
    }
    p.proto = nh;
    parse_l4(f, pos, p);
    return p;
  }
  return p;  // unknown EtherType
}

std::string to_string(const PacketFields& f) {
  if (!f.ip) return fmt::format("non-ip len={}", f.len);
  std::string s, d;
  if (f.family == ir::Family::V4) {
    s = fmt::format("{}.{}.{}.{}", f.saddr[0], f.saddr[1], f.saddr[2], f.saddr[3]);
    d = fmt::format("{}.{}.{}.{}", f.daddr[0], f.daddr[1], f.daddr[2], f.daddr[3]);
  } else {
    for (int i = 0; i < 16; i += 2) {
      s += fmt::format("{}{:x}", i ? ":" : "", f.saddr[i] << 8 | f.saddr[i + 1]);
      d += fmt::format("{}{:x}", i ? ":" : "", f.daddr[i] << 8 | f.daddr[i + 1]);
    }
  }
  std::string r = fmt::format("{} {} -> {} dscp={} proto={} len={}", f.family == ir::Family::V4 ? "ip" : "ip6", s, d,
                              f.dscp, f.proto, f.len);
  if (f.l4) r += fmt::format(" sport={} dport={}", f.sport, f.dport);
  else r += " no-l4";
  return r;
}

// ---- set dscp ----------------------------------------------------------------------
namespace {
// Offset of the network header of an IP frame (parse_packet's walk over at
// most two VLAN tags); only called for frames parse_packet calls IP.
size_t l3_offset(std::span<const uint8_t> f) {
  size_t off = 12;
  while (be16(f, off) == 0x8100 || be16(f, off) == 0x88a8) off += 4;
  return off + 2;
}
uint32_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return s;
}
}  // namespace

std::vector<uint8_t> rewrite_dscp(std::span<const uint8_t> frame, uint8_t dscp) {
  std::vector<uint8_t> out(frame.begin(), frame.end());
  const PacketFields p = parse_packet(frame);
  if (!p.ip) return out;
  const size_t ip = l3_offset(frame);
  if (p.family == ir::Family::V4) {
    const uint16_t old_word = be16(frame, ip);
    out[ip + 1] = uint8_t(dscp << 2 | (frame[ip + 1] & 3));
    const uint16_t new_word = be16(out, ip);
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')
    const uint16_t hc = be16(frame, ip + 10);
    const uint16_t sum = uint16_t(~fold(uint32_t(uint16_t(~hc)) + uint16_t(~old_word) + new_word));
    if (old_word != new_word) {
      out[ip + 10] = uint8_t(sum >> 8);
      out[ip + 11] = uint8_t(sum);
    }
  } else {
    // Traffic class: the low 4 bits of byte 0 and the high 4 bits of byte 1.
    const uint8_t tc = uint8_t((frame[ip] & 0x0f) << 4 | frame[ip + 1] >> 4);
    const uint8_t ntc = uint8_t(dscp << 2 | (tc & 3));
    out[ip] = uint8_t((frame[ip] & 0xf0) | ntc >> 4);
    out[ip + 1] = uint8_t((ntc & 0x0f) << 4 | (frame[ip + 1] & 0x0f));
  }
  return out;
}

std::vector<uint8_t> egress_frame(const ir::Policy& policy, std::span<const uint8_t> frame) {
  const int32_t cls = classify(policy, parse_packet(frame));
  if (cls < 0 || size_t(cls) >= policy.classes.size() || !policy.classes[size_t(cls)].set_dscp)
    return {frame.begin(), frame.end()};
  return rewrite_dscp(frame, *policy.classes[size_t(cls)].set_dscp);
}

bool ipv4_checksum_ok(std::span<const uint8_t> frame) {
  const PacketFields p = parse_packet(frame);
  if (!p.ip || p.family != ir::Family::V4) return true;
  const size_t ip = l3_offset(frame);
  const size_t ihl = size_t(frame[ip] & 0x0f) * 4;
  uint32_t s = 0;
  for (size_t i = 0; i < ihl; i += 2) s += be16(frame, ip + i);
  return fold(s) == 0xffff;
}

}  // namespace qosc
