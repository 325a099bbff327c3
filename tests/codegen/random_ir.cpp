#include "random_ir.hpp"

#include <algorithm>

namespace qosc::cgtest {
namespace {

template <class T>
T pick(std::mt19937_64& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}
bool coin(std::mt19937_64& rng, double p) { return std::bernoulli_distribution(p)(rng); }

const std::vector<uint16_t> kPorts = {0, 22, 53, 80, 443, 1000, 1024, 3074, 8080, 27015, 65535};
const std::vector<int> kProtos = {6, 17, 1, 58, 47};

ir::PortSet random_ports(std::mt19937_64& rng, bool narrow) {
  std::vector<ir::PortInterval> ivs;
  int n = std::uniform_int_distribution<int>(1, 3)(rng);
  for (int i = 0; i < n; ++i) {
    uint16_t a = narrow ? pick(rng, kPorts) : uint16_t(rng());
    uint16_t b = coin(rng, 0.5) ? a : (narrow ? pick(rng, kPorts) : uint16_t(rng()));
    if (a > b) std::swap(a, b);
    ivs.push_back({a, b});
  }
  std::sort(ivs.begin(), ivs.end(), [](auto x, auto y) { return x.lo < y.lo; });
  ir::PortSet out;
  for (auto iv : ivs) {
    if (!out.empty() && uint32_t(iv.lo) <= uint32_t(out.back().hi) + 1) out.back().hi = std::max(out.back().hi, iv.hi);
    else out.push_back(iv);
  }
  return out;
}

ir::Prefix random_prefix(std::mt19937_64& rng, ir::Family fam) {
  ir::Prefix p;
  p.family = fam;
  unsigned bytes = fam == ir::Family::V4 ? 4 : 16;
  // Pools: 10.x / 192.168.x / 2001:db8::
  if (fam == ir::Family::V4) {
    p.addr[0] = coin(rng, 0.5) ? 10 : 192;
    p.addr[1] = p.addr[0] == 10 ? uint8_t(rng() % 3) : 168;
    p.addr[2] = uint8_t(rng() % 3);
    p.addr[3] = uint8_t(rng() % 4);
  } else {
    p.addr[0] = 0x20; p.addr[1] = 0x01; p.addr[2] = 0x0d; p.addr[3] = 0xb8;
    p.addr[4] = uint8_t(rng() % 2);
    p.addr[15] = uint8_t(rng() % 4);
  }
  p.len = uint8_t(std::uniform_int_distribution<unsigned>(0, bytes * 8)(rng));
  for (unsigned bit = p.len; bit < bytes * 8; ++bit) p.addr[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
  return p;
}

}  // namespace

ir::Policy random_ir(std::mt19937_64& rng, const RandomIrOptions& o) {
  ir::Policy p;
  p.name = "random";
  p.source_name = "random.qos";
  p.link_bps = 100'000'000;
  for (size_t i = 0; i < o.classes; ++i) {
    ir::Class c;
    c.id = uint32_t(i);
    c.name = "c" + std::to_string(i);
    c.priority = uint32_t(i % 8);
    if (coin(rng, 0.3)) { c.rate_bps = 1'000'000; c.burst_bytes = 15000; }
    p.classes.push_back(c);
  }
  p.default_class = uint32_t(o.classes - 1);
  p.classes.back().is_default = true;
  for (size_t i = 0; i < o.rules; ++i) {
    ir::Rule r;
    r.index = uint32_t(i);
    r.loc.line = uint32_t(10 + i);
    if (o.specific) {
      r.family = ir::Family::V4;
      std::bitset<256> b;
      b.set(coin(rng, 0.5) ? 6 : 17);
      r.protos = b;
      uint16_t port = uint16_t(rng());
      r.dport = ir::PortSet{{port, uint16_t(coin(rng, 0.8) ? port : std::min(65535, port + 100))}};
      ir::AddrMatch m;
      m.family = ir::Family::V4;
      ir::Prefix pf;
      pf.addr = {10, uint8_t(rng() % 4), uint8_t(rng()), 0};
      pf.len = 24;
      m.prefixes.push_back(pf);
      r.addrs.push_back(m);
      r.target = int32_t(rng() % o.classes);
      p.rules.push_back(r);
      continue;
    }
    int fam = std::uniform_int_distribution<int>(0, 2)(rng);
    r.family = fam == 0 ? ir::Family::Any : fam == 1 ? ir::Family::V4 : ir::Family::V6;
    if (coin(rng, 0.6)) {
      std::bitset<256> b;
      b.set(size_t(pick(rng, kProtos)));
      if (coin(rng, 0.3)) b.set(size_t(pick(rng, kProtos)));
      if (coin(rng, 0.1)) { b.set(); b.reset(6); }  // negated set
      r.protos = b;
      bool tcpudp = b.test(6) || b.test(17);
      if (tcpudp && coin(rng, 0.6)) r.dport = random_ports(rng, o.narrow);
      if (tcpudp && coin(rng, 0.3)) r.sport = random_ports(rng, o.narrow);
    }
    if (coin(rng, 0.2)) {
      std::bitset<64> d;
      d.set(size_t(pick(rng, std::vector<int>{0, 10, 26, 46})));
      if (coin(rng, 0.3)) d = ~d;
      r.dscp = d;
    }
    if (r.family != ir::Family::Any && coin(rng, 0.4)) {
      ir::AddrMatch m;
      m.dst = coin(rng, 0.5);
      m.family = r.family;
      m.negated = coin(rng, 0.2);
      int n = std::uniform_int_distribution<int>(1, 3)(rng);
      for (int k = 0; k < n; ++k) m.prefixes.push_back(random_prefix(rng, r.family));
      r.addrs.push_back(m);
    }
    r.target = coin(rng, 0.1) ? ir::kDrop : int32_t(rng() % o.classes);
    p.rules.push_back(r);
  }
  return p;
}

PacketFields random_fields(std::mt19937_64& rng, const ir::Policy& p) {
  PacketFields f;
  f.ip = true;
  f.family = coin(rng, 0.5) ? ir::Family::V4 : ir::Family::V6;
  f.proto = coin(rng, 0.8) ? pick(rng, std::vector<int>{6, 17, 6, 17, 1, 58, 47}) : int(rng() % 256);
  if (f.family == ir::Family::V6 && (f.proto == 0 || f.proto == 43 || f.proto == 44 || f.proto == 60)) f.proto = 17;
  f.dscp = uint8_t(coin(rng, 0.7) ? pick(rng, std::vector<int>{0, 10, 26, 46}) : int(rng() % 64));
  auto addr = [&](std::array<uint8_t, 16>& a) {
    // Take a rule's prefix when there is one and randomise the tail.
    std::vector<ir::Prefix> pool;
    for (const auto& r : p.rules)
      for (const auto& m : r.addrs)
        for (const auto& x : m.prefixes)
          if (x.family == f.family) pool.push_back(x);
    if (!pool.empty() && coin(rng, 0.7)) {
      auto x = pick(rng, pool);
      a = x.addr;
      unsigned bytes = f.family == ir::Family::V4 ? 4 : 16;
      for (unsigned bit = x.len; bit < bytes * 8; ++bit)
        if (coin(rng, 0.1)) a[bit / 8] ^= uint8_t(0x80u >> (bit % 8));
    } else {
      for (unsigned i = 0; i < (f.family == ir::Family::V4 ? 4u : 16u); ++i) a[i] = uint8_t(rng());
    }
  };
  addr(f.saddr);
  addr(f.daddr);
  if ((f.proto == 6 || f.proto == 17) && coin(rng, 0.95)) {
    f.l4 = true;
    auto port = [&]() -> uint16_t {
      if (coin(rng, 0.7)) {
        uint16_t v = pick(rng, kPorts);
        int d = std::uniform_int_distribution<int>(-1, 1)(rng);
        return uint16_t(v + d);
      }
      return uint16_t(rng());
    };
    f.sport = port();
    f.dport = port();
  }
  return f;
}

std::vector<uint8_t> build_frame(const PacketFields& f, bool vlan) {
  std::vector<uint8_t> b(12, 0);
  b[0] = 0x02; b[6] = 0x02; b[11] = 1;
  auto put16 = [&](uint16_t v) { b.push_back(uint8_t(v >> 8)); b.push_back(uint8_t(v)); };
  if (vlan) { put16(0x8100); put16(5); }
  size_t l4len = f.proto == 6 ? 20 : f.proto == 17 ? 8 : 8;
  if (f.family == ir::Family::V4) {
    put16(0x0800);
    size_t ip = b.size();
    b.resize(ip + 20, 0);
    b[ip] = 0x45;
    b[ip + 1] = uint8_t(f.dscp << 2);
    uint16_t tot = uint16_t(20 + l4len);
    b[ip + 2] = uint8_t(tot >> 8); b[ip + 3] = uint8_t(tot);
    b[ip + 8] = 64;
    b[ip + 9] = uint8_t(f.proto);
    for (int i = 0; i < 4; ++i) { b[ip + 12 + size_t(i)] = f.saddr[size_t(i)]; b[ip + 16 + size_t(i)] = f.daddr[size_t(i)]; }
    if (!f.l4 && (f.proto == 6 || f.proto == 17)) { b[ip + 6] = 0x00; b[ip + 7] = 0x10; }  // non-first fragment
  } else {
    put16(0x86dd);
    size_t ip = b.size();
    b.resize(ip + 40, 0);
    uint8_t tc = uint8_t(f.dscp << 2);
    b[ip] = uint8_t(0x60 | tc >> 4);
    b[ip + 1] = uint8_t(tc << 4);
    b[ip + 5] = uint8_t(l4len);
    b[ip + 6] = uint8_t(f.proto);
    b[ip + 7] = 64;
    for (int i = 0; i < 16; ++i) { b[ip + 8 + size_t(i)] = f.saddr[size_t(i)]; b[ip + 24 + size_t(i)] = f.daddr[size_t(i)]; }
    if (!f.l4 && (f.proto == 6 || f.proto == 17)) {  // fragment header, offset 8
      b[ip + 6] = 44;
      b.push_back(uint8_t(f.proto)); b.push_back(0); b.push_back(0); b.push_back(8);
      b.push_back(0); b.push_back(0); b.push_back(0); b.push_back(1);
    }
  }
  size_t l4 = b.size();
  b.resize(l4 + l4len, 0);
  if (f.l4) {
    b[l4] = uint8_t(f.sport >> 8); b[l4 + 1] = uint8_t(f.sport);
    b[l4 + 2] = uint8_t(f.dport >> 8); b[l4 + 3] = uint8_t(f.dport);
    if (f.proto == 6) b[l4 + 12] = 0x50;
  }
  while (b.size() < 60) b.push_back(0);
  return b;
}

}  // namespace qosc::cgtest
