// Random and adversarial frames: see packet_gen.hpp.
#include "packet_gen.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace qosc::difftest {

namespace {

void put16(std::vector<uint8_t>& f, uint16_t v) {
  f.push_back(static_cast<uint8_t>(v >> 8));
  f.push_back(static_cast<uint8_t>(v));
}

constexpr uint8_t kExtHeaders[] = {0, 43, 44, 60};

}  // namespace

PolicyConstants constants_of(const ir::Policy& policy) {
  PolicyConstants c;
  for (const auto& r : policy.rules) {
    for (const auto& a : r.addrs)
      for (const auto& p : a.prefixes) (p.family == ir::Family::V6 ? c.v6 : c.v4).push_back(p);
    for (const auto* ps : {&r.sport, &r.dport}) {
      if (!*ps) continue;
      for (const auto& iv : **ps) {
        for (int d : {-1, 0, 1}) {
          c.ports.push_back(static_cast<uint16_t>(iv.lo + d));
          c.ports.push_back(static_cast<uint16_t>(iv.hi + d));
        }
        c.ports.push_back(static_cast<uint16_t>(iv.lo + (iv.hi - iv.lo) / 2));
      }
    }
    if (r.protos) {
      for (int p = 0; p < 256; ++p)
        if ((*r.protos)[static_cast<size_t>(p)] && c.protos.size() < 64) c.protos.push_back(static_cast<uint8_t>(p));
    }
    if (r.dscp) {
      for (int d = 0; d < 64; ++d)
        if ((*r.dscp)[static_cast<size_t>(d)]) c.dscps.push_back(static_cast<uint8_t>(d));
    }
  }
  return c;
}

PacketGen::PacketGen(const ir::Policy& policy, uint64_t seed) : c_(constants_of(policy)), rng_(seed) {}

std::array<uint8_t, 16> PacketGen::address(bool v6) {
  std::array<uint8_t, 16> a{};
  const size_t n = v6 ? 16 : 4;
  for (size_t i = 0; i < n; ++i) a[i] = static_cast<uint8_t>(rng_());
  const auto& pool = v6 ? c_.v6 : c_.v4;
  if (pool.empty() || chance(0.3)) return a;
  const ir::Prefix& p = pool[rnd(static_cast<uint32_t>(pool.size()))];
  // Inside the prefix: its bits, then random host bits; sometimes the first
  // or last address, or one bit flipped just inside/outside the prefix.
  const int mode = static_cast<int>(rnd(6));
  for (size_t i = 0; i < n; ++i) {
    const int bits_here = std::clamp(static_cast<int>(p.len) - static_cast<int>(i) * 8, 0, 8);
    const uint8_t mask = static_cast<uint8_t>(bits_here ? 0xff00u >> bits_here : 0);
    uint8_t host = a[i];
    if (mode == 1) host = 0;
    if (mode == 2) host = 0xff;
    a[i] = static_cast<uint8_t>((p.addr[i] & mask) | (host & ~mask));
  }
  if (mode == 3 && p.len > 0) {   // flip the last prefix bit: just outside
    const int bit = p.len - 1;
    a[static_cast<size_t>(bit / 8)] ^= static_cast<uint8_t>(0x80u >> (bit % 8));
  }
  return a;
}

uint16_t PacketGen::port() {
  if (!c_.ports.empty() && chance(0.65)) return c_.ports[rnd(static_cast<uint32_t>(c_.ports.size()))];
  static constexpr uint16_t kCommon[] = {0, 1, 22, 23, 53, 80, 443, 1024, 3074, 8080, 27015, 65535};
  if (chance(0.3)) return kCommon[rnd(std::size(kCommon))];
  return static_cast<uint16_t>(rng_());
}

uint8_t PacketGen::proto() {
  if (!c_.protos.empty() && chance(0.3)) return c_.protos[rnd(static_cast<uint32_t>(c_.protos.size()))];
  static constexpr uint8_t kCommon[] = {6, 6, 6, 17, 17, 17, 1, 58, 132, 47, 50, 51, 59, 0, 43, 44, 60, 255};
  if (chance(0.9)) return kCommon[rnd(std::size(kCommon))];
  return static_cast<uint8_t>(rng_());
}

uint8_t PacketGen::dscp() {
  if (!c_.dscps.empty() && chance(0.5)) return c_.dscps[rnd(static_cast<uint32_t>(c_.dscps.size()))];
  return static_cast<uint8_t>(rnd(64));
}

void PacketGen::l2(std::vector<uint8_t>& f, uint16_t ethertype) {
  for (int i = 0; i < 12; ++i) f.push_back(static_cast<uint8_t>(rng_()));
  f[0] &= 0xfe;   // unicast destination (does not matter to the classifier)
  // 0..3 tags; a third tag must make the frame non-IP.
  const uint32_t r = rnd(100);
  const int tags = r < 55 ? 0 : r < 75 ? 1 : r < 90 ? 2 : 3;
  std::string tagdesc;
  for (int t = 0; t < tags; ++t) {
    uint16_t tpid = chance(0.5) ? 0x8100 : 0x88a8;
    if (chance(0.04)) tpid = 0x9100;   // an old QinQ TPID: not in the contract, so not skipped
    put16(f, tpid);
    put16(f, static_cast<uint16_t>(rng_()));
    tagdesc += fmt::format("{}{:04x}", tagdesc.empty() ? "" : ",", tpid);
  }
  put16(f, ethertype);
  desc_ = tags ? fmt::format("vlan[{}] | ", tagdesc) : "";
}

void PacketGen::l4(std::vector<uint8_t>& f, uint8_t proto, bool allow_ports) {
  const size_t start = f.size();
  if (proto == 6) {
    put16(f, port());
    put16(f, port());
    for (int i = 0; i < 8; ++i) f.push_back(static_cast<uint8_t>(rng_()));   // seq, ack
    uint8_t doff = static_cast<uint8_t>(chance(0.8) ? 5 : rnd(16));
    f.push_back(static_cast<uint8_t>(doff << 4));
    f.push_back(0x18);
    for (int i = 0; i < 6; ++i) f.push_back(static_cast<uint8_t>(rng_()));
    for (int i = 20; i < doff * 4; ++i) f.push_back(1);   // NOP options
    desc_ += fmt::format("tcp doff={}", doff);
  } else if (proto == 17) {
    put16(f, port());
    put16(f, port());
    put16(f, static_cast<uint16_t>(8 + rnd(64)));
    put16(f, 0);
    desc_ += "udp";
  } else if (proto == 1 || proto == 58) {
    for (int i = 0; i < 8; ++i) f.push_back(static_cast<uint8_t>(rng_()));
    desc_ += proto == 1 ? "icmp" : "icmpv6";
  } else {
    desc_ += fmt::format("proto {}", proto);
    for (int i = 0; i < 8; ++i) f.push_back(static_cast<uint8_t>(rng_()));
  }
  if (!allow_ports) desc_ += " (no L4: fragment)";
  const uint32_t payload = chance(0.3) ? 0 : rnd(80);
  for (uint32_t i = 0; i < payload; ++i) f.push_back(static_cast<uint8_t>(rng_()));
  (void)start;
}

void PacketGen::ipv4(std::vector<uint8_t>& f) {
  const size_t ip = f.size();
  uint8_t ihl = 5;
  const uint32_t r = rnd(100);
  if (r < 30) ihl = static_cast<uint8_t>(6 + rnd(10));   // options
  else if (r < 33) ihl = static_cast<uint8_t>(rnd(5));   // broken
  uint8_t version = chance(0.02) ? 6 : 4;
  f.push_back(static_cast<uint8_t>(version << 4 | ihl));
  f.push_back(static_cast<uint8_t>(dscp() << 2 | rnd(4)));
  put16(f, 0);   // total length, set below
  put16(f, static_cast<uint16_t>(rng_()));
  // Fragments: none, first (MF, offset 0), non-first (offset != 0, MF or not).
  uint16_t frag = 0;
  const uint32_t fr = rnd(100);
  std::string fdesc;
  if (fr < 12) {
    frag = 0x2000;
    fdesc = " frag first";
  } else if (fr < 27) {
    frag = static_cast<uint16_t>((chance(0.5) ? 0x2000 : 0) | (1 + rnd(0x1fff)));
    fdesc = fmt::format(" frag off={}", frag & 0x1fff);
  }
  if (chance(0.3)) frag |= 0x4000;   // DF
  put16(f, frag);
  f.push_back(64);
  const uint8_t p = proto();
  f.push_back(p);
  put16(f, 0);
  auto s = address(false), d = address(false);
  f.insert(f.end(), s.begin(), s.begin() + 4);
  f.insert(f.end(), d.begin(), d.begin() + 4);
  for (int i = 20; i < ihl * 4; ++i) f.push_back(i == 20 ? 0x07 : static_cast<uint8_t>(rng_()));
  desc_ += fmt::format("ipv4{} ihl={} dscp={} proto={}{} | ", version != 4 ? " (version 6!)" : "", ihl,
                       f[ip + 1] >> 2, p, fdesc);
  l4(f, p, (frag & 0x1fff) == 0);
  uint16_t total = static_cast<uint16_t>(f.size() - ip);
  if (chance(0.1)) total = static_cast<uint16_t>(rng_());   // lies: the contract ignores it
  f[ip + 2] = static_cast<uint8_t>(total >> 8);
  f[ip + 3] = static_cast<uint8_t>(total);
}

void PacketGen::ipv6(std::vector<uint8_t>& f) {
  const size_t ip = f.size();
  const uint8_t tc = static_cast<uint8_t>(dscp() << 2 | rnd(4));
  f.push_back(static_cast<uint8_t>(0x60 | tc >> 4));
  f.push_back(static_cast<uint8_t>(tc << 4 | rnd(16)));
  put16(f, static_cast<uint16_t>(rng_()));
  put16(f, 0);   // payload length, set below
  const size_t nh_at = f.size();
  f.push_back(0);
  f.push_back(64);
  auto s = address(true), d = address(true);
  f.insert(f.end(), s.begin(), s.end());
  f.insert(f.end(), d.begin(), d.end());
  // Extension headers: none (half the time) or a chain of 1..8.
  const int depth = chance(0.5) ? 0 : static_cast<int>(1 + rnd(8));
  std::string chain;
  bool l4_ok = true;
  size_t prev_nh = nh_at;
  for (int i = 0; i < depth; ++i) {
    const uint8_t type = kExtHeaders[rnd(4)];
    f[prev_nh] = type;
    prev_nh = f.size();
    f.push_back(0);   // next header, patched by the next round / the end
    if (type == 44) {
      f.push_back(0);
      uint16_t off = chance(0.5) ? 0 : static_cast<uint16_t>(1 + rnd(0x1fff));
      uint16_t fo = static_cast<uint16_t>(off << 3 | (chance(0.5) ? 1 : 0));
      put16(f, fo);
      for (int k = 0; k < 4; ++k) f.push_back(static_cast<uint8_t>(rng_()));
      chain += fmt::format("{}44:off={}", chain.empty() ? "" : ",", off);
      if (off) l4_ok = false;
    } else {
      const uint8_t len = static_cast<uint8_t>(chance(0.7) ? 0 : rnd(4));
      f.push_back(len);
      for (int k = 2; k < (len + 1) * 8; ++k) f.push_back(type == 43 && k == 2 ? 0 : static_cast<uint8_t>(rng_()));
      chain += fmt::format("{}{}:len={}", chain.empty() ? "" : ",", type, len);
    }
  }
  const uint8_t p = proto();
  f[prev_nh] = p;
  desc_ += fmt::format("ipv6 dscp={} ext[{}] proto={} | ", tc >> 2, chain, p);
  l4(f, p, l4_ok);
  uint16_t plen = static_cast<uint16_t>(f.size() - ip - 40);
  if (chance(0.1)) plen = static_cast<uint16_t>(rng_());
  f[ip + 4] = static_cast<uint8_t>(plen >> 8);
  f[ip + 5] = static_cast<uint8_t>(plen);
}

std::vector<uint8_t> PacketGen::build() {
  std::vector<uint8_t> f;
  f.reserve(256);
  const uint32_t r = rnd(100);
  if (r < 45) {
    l2(f, 0x0800);
    ipv4(f);
  } else if (r < 92) {
    l2(f, 0x86dd);
    ipv6(f);
  } else {
    static constexpr uint16_t kOther[] = {0x0806, 0x8847, 0x88cc, 0x0000, 0x05dc, 0xffff};
    uint16_t et = kOther[rnd(std::size(kOther))];
    l2(f, et);
    desc_ += fmt::format("ethertype {:04x}", et);
    // Sometimes an IPv4 header behind a non-IP EtherType: must stay non-IP.
    if (chance(0.5)) ipv4(f);
    else for (int i = 0; i < 46; ++i) f.push_back(static_cast<uint8_t>(rng_()));
  }
  return f;
}

std::vector<uint8_t> PacketGen::next() {
  std::vector<uint8_t> f = build();
  if (f.size() > max_len_) f.resize(max_len_);
  // Truncation anywhere after the Ethernet header (and right inside headers).
  if (chance(0.2) && f.size() > 14) {
    const size_t full = f.size();
    f.resize(14 + rnd(static_cast<uint32_t>(full - 14)));
    desc_ += fmt::format(" | cut {}/{}", f.size(), full);
  }
  return f;
}

std::string hex(std::span<const uint8_t> bytes) {
  std::string s;
  s.reserve(bytes.size() * 3);
  for (size_t i = 0; i < bytes.size(); ++i) {
    s += fmt::format("{:02x}", bytes[i]);
    if (i + 1 < bytes.size()) s += (i % 16 == 15) ? '\n' : ' ';
  }
  return s;
}

}  // namespace qosc::difftest
