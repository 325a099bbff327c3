// Boxes as match expressions; example packets (qosc/match_text.hpp).
#include "qosc/match_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bitset>
#include <map>
#include <optional>

namespace qosc::ir {

std::string format_address(Family family, const std::array<uint8_t, 16>& a) {
  if (family == Family::V4) return fmt::format("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
  // RFC 5952: the longest run (>= 2) of zero groups becomes "::".
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = uint16_t(a[size_t(2 * i)] << 8 | a[size_t(2 * i + 1)]);
  int best = -1, bestlen = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) { ++i; continue; }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > bestlen && j - i >= 2) best = i, bestlen = j - i;
    i = j;
  }
  std::string s;
  for (int i = 0; i < 8; ++i) {
    if (i == best) { s += "::"; i += bestlen - 1; continue; }
    if (!s.empty() && s.back() != ':') s += ':';
    s += fmt::format("{:x}", g[i]);
  }
  return s;
}

std::string format_prefix(const Prefix& p) { return fmt::format("{}/{}", format_address(p.family, p.addr), p.len); }

namespace {

const char* proto_name(int p) {
  switch (p) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 47: return "gre";
    case 50: return "esp";
    case 51: return "ah";
    case 58: return "icmpv6";
    case 132: return "sctp";
    default: return nullptr;
  }
}

// An interval set as the language writes a value: `80`, `1000-2000`,
// `{ 80, 443 }`, or with `!= ` when the complement (within `all`) is shorter.
template <class T, class Item>
std::string value_text(const IntervalSet<T>& set, const IntervalSet<T>& all, Item item) {
  auto list = [&](const IntervalSet<T>& s) {
    std::vector<std::string> items = item(s);
    if (items.size() == 1) return items[0];
    std::string r = "{ ";
    for (size_t i = 0; i < items.size(); ++i) r += (i ? ", " : "") + items[i];
    return r + " }";
  };
  IntervalSet<T> comp = all.minus(set);
  if (!comp.empty() && item(comp).size() < item(set).size()) return "!= " + list(comp);
  return list(set);
}

std::vector<std::string> number_items(const IntervalSet<uint32_t>& s) {
  std::vector<std::string> r;
  for (const auto& iv : s.intervals())
    r.push_back(iv.lo == iv.hi ? fmt::format("{}", iv.lo) : fmt::format("{}-{}", iv.lo, iv.hi));
  return r;
}

// DSCP values by the names a policy may use (ef, af41, cs1, le), else numbers.
const char* dscp_name(uint32_t v) {
  static const char* names[64] = {};
  static const bool init = [] {
    static const char* cs[] = {"cs0", "cs1", "cs2", "cs3", "cs4", "cs5", "cs6", "cs7"};
    static const char* af[] = {"af11", "af12", "af13", "af21", "af22", "af23", "af31", "af32", "af33", "af41", "af42", "af43"};
    for (int i = 0; i < 8; ++i) names[8 * i] = cs[i];
    for (int x = 1; x <= 4; ++x)
      for (int y = 1; y <= 3; ++y) names[8 * x + 2 * y] = af[(x - 1) * 3 + (y - 1)];
    names[46] = "ef";
    names[1] = "le";
    return true;
  }();
  (void)init;
  return v < 64 ? names[v] : nullptr;
}

std::vector<std::string> dscp_items(const IntervalSet<uint32_t>& s) {
  std::vector<std::string> r;
  for (const auto& iv : s.intervals()) {
    if (iv.lo == iv.hi && dscp_name(iv.lo) && iv.lo != 0) r.push_back(dscp_name(iv.lo));
    else r.push_back(iv.lo == iv.hi ? fmt::format("{}", iv.lo) : fmt::format("{}-{}", iv.lo, iv.hi));
  }
  return r;
}

// The fewest prefixes whose union is the interval set (exact).
std::vector<Prefix> prefixes_of(Family family, const AddrValues& s) {
  const int width = family == Family::V4 ? 32 : 128;
  std::vector<Prefix> out;
  for (const auto& iv : s.intervals()) {
    u128 lo = iv.lo;
    for (;;) {
      int host = 0;  // largest aligned block at lo inside [lo, hi]
      while (host < width) {
        u128 span = host + 1 >= 128 ? ~u128(0) : (u128(1) << (host + 1)) - 1;
        if ((lo & span) != 0 || lo + span > iv.hi || lo + span < lo) break;
        ++host;
      }
      Prefix p;
      p.family = family;
      p.len = uint8_t(width - host);
      p.addr = address_bytes(family, lo);
      out.push_back(p);
      u128 span = host >= 128 ? ~u128(0) : (u128(1) << host) - 1;
      if (lo + span >= iv.hi) break;
      lo += span + 1;
    }
  }
  return out;
}

std::string addr_text(Family family, const AddrValues& s) {
  const int width = family == Family::V4 ? 32 : 128;
  return value_text(s, all_addresses(family), [&](const AddrValues& v) {
    std::vector<std::string> r;
    for (const auto& p : prefixes_of(family, v))
      r.push_back(p.len == width ? format_address(family, p.addr) : format_prefix(p));
    return r;
  });
}

std::string proto_text(const std::bitset<256>& k, Family family) {
  if (k.count() == 1) {
    for (int p = 0; p < 256; ++p) {
      if (!k.test(size_t(p))) continue;
      if (p == 6) return "tcp";
      if (p == 17) return "udp";
      if (p == 1 && family == Family::V4) return "icmp";
      if (p == 58 && family == Family::V6) return "icmpv6";
    }
  }
  IntervalSet<uint32_t> set;
  for (uint32_t p = 0; p < 256; ++p)
    if (k.test(p)) set.append(p, p);
  return "proto " + value_text(set, IntervalSet<uint32_t>::range(0, 255), [](const IntervalSet<uint32_t>& s) {
           std::vector<std::string> r;
           for (const auto& iv : s.intervals()) {
             if (iv.lo == iv.hi && proto_name(int(iv.lo))) r.push_back(proto_name(int(iv.lo)));
             else r.push_back(iv.lo == iv.hi ? fmt::format("{}", iv.lo) : fmt::format("{}-{}", iv.lo, iv.hi));
           }
           return r;
         });
}

}  // namespace

std::vector<MatchPart> match_parts(const Box& b) {
  const bool v4 = b.family == Family::V4;
  const char* fam = v4 ? "ip" : "ip6";
  std::string addrs;
  if (b.saddr != all_addresses(b.family)) addrs += fmt::format("{} saddr {}", fam, addr_text(b.family, b.saddr));
  if (b.daddr != all_addresses(b.family))
    addrs += fmt::format("{}{} daddr {}", addrs.empty() ? "" : " ", fam, addr_text(b.family, b.daddr));
  std::string dscp;
  if (b.dscp != ~uint64_t(0)) {
    IntervalSet<uint32_t> d;
    for (uint32_t i = 0; i < 64; ++i)
      if (b.dscp >> i & 1) d.append(i, i);
    dscp = "dscp " + value_text(d, IntervalSet<uint32_t>::range(0, 63), dscp_items);
  }
  const bool ports_full = b.sport == all_ports() && b.dport == all_ports();

  // Protocols whose every packet (with or without ports) is in the box.
  // Port-less packets never depend on their port coordinates, so their atoms
  // count whole whatever the ports say (the part's box widens them).
  std::bitset<256> whole;
  for (int p = 0; p < 256; ++p) {
    bool bare = b.atoms.test(atom_without_ports(p));
    if (p == 6) whole.set(6, bare && b.atoms.test(kAtomTcpPorts) && ports_full);
    else if (p == 17) whole.set(17, bare && b.atoms.test(kAtomUdpPorts) && ports_full);
    else whole.set(size_t(p), bare);
  }
  struct Alt {
    std::string proto;
    bool implies_family;
    AtomSet atoms;
    bool keep_ports;   // the part keeps the box's ports (TCP/UDP with ports)
  };
  std::vector<Alt> alts;
  AtomSet whole_atoms;
  for (int p = 0; p < 256; ++p) {
    if (!whole.test(size_t(p))) continue;
    whole_atoms.set(atom_without_ports(p));
    if (p == 6) whole_atoms.set(kAtomTcpPorts);
    if (p == 17) whole_atoms.set(kAtomUdpPorts);
  }
  if (whole.all()) {
    if (b.atoms.test(kAtomUnknown)) whole_atoms.set(kAtomUnknown);
    if (v4 || b.atoms.test(kAtomUnknown)) alts.push_back({"", false, whole_atoms, false});
    else alts.push_back({"proto 0-255", false, whole_atoms, false});
  } else if (whole.any()) {
    std::string t = proto_text(whole, b.family);
    alts.push_back({t, t == "icmp" || t == "icmpv6", whole_atoms, false});
  }
  for (int p : {6, 17}) {
    if (whole.test(size_t(p))) continue;
    const char* name = p == 6 ? "tcp" : "udp";
    const size_t with_ports = p == 6 ? kAtomTcpPorts : kAtomUdpPorts;
    if (b.atoms.test(with_ports)) {
      // With ports: `tcp dport 0-65535` when no port is restricted (plain
      // `tcp` would take fragments too).
      std::string t = name;
      if (b.sport != all_ports()) t += " sport " + value_text(b.sport, all_ports(), number_items);
      if (b.dport != all_ports() || ports_full) t += " dport " + value_text(b.dport, all_ports(), number_items);
      alts.push_back({t, false, AtomSet().set(with_ports), true});
    }
    if (b.atoms.test(atom_without_ports(p)))
      alts.push_back({std::string(name) + " (no ports: fragments)", false, AtomSet().set(atom_without_ports(p)), false});
  }
  if (!whole.all() && b.atoms.test(kAtomUnknown))
    alts.push_back({"(protocol unknown)", false, AtomSet().set(kAtomUnknown), false});

  std::vector<MatchPart> out;
  for (const auto& a : alts) {
    std::string t = addrs;
    if (t.empty() && !a.implies_family) t = fam;
    if (!a.proto.empty()) t += (t.empty() ? "" : " ") + a.proto;
    if (!dscp.empty()) t += " " + dscp;
    Box part = b;
    part.atoms = a.atoms;
    if (!a.keep_ports) part.sport = part.dport = all_ports();
    out.push_back({std::move(t), std::move(part)});
  }
  return out;
}

std::vector<std::string> match_texts(const Box& b) {
  std::vector<std::string> out;
  for (auto& p : match_parts(b)) out.push_back(std::move(p.text));
  return out;
}

std::vector<MatchLine> match_lines(std::vector<Box> region) {
  std::vector<MatchPart> parts;
  for (const auto& b : merge_boxes(std::move(region)))
    for (auto& p : match_parts(b)) parts.push_back(std::move(p));
  auto rest_of = [](const std::string& text, const std::string& fam) -> std::optional<std::string> {
    if (text.find("saddr") != std::string::npos || text.find("daddr") != std::string::npos) return std::nullopt;
    if (text == fam) return std::string();
    if (text.rfind(fam + " ", 0) == 0) return text.substr(fam.size() + 1);
    return std::nullopt;
  };
  std::map<std::string, size_t> v6_without_family;
  for (size_t i = 0; i < parts.size(); ++i)
    if (parts[i].box.family == Family::V6)
      if (auto r = rest_of(parts[i].text, "ip6")) v6_without_family.emplace(*r, i);
  std::vector<bool> joined(parts.size());
  std::vector<MatchLine> lines;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (joined[i]) continue;
    MatchLine l{parts[i].text, {parts[i].box}};
    if (parts[i].box.family == Family::V4) {
      if (auto r = rest_of(parts[i].text, "ip")) {
        if (auto it = v6_without_family.find(*r); it != v6_without_family.end() && !joined[it->second]) {
          joined[it->second] = true;
          l.boxes.push_back(parts[it->second].box);
          l.text = r->empty() ? "ip, ip6 (every IP packet)" : *r;
        }
      }
    }
    lines.push_back(std::move(l));
  }
  std::sort(lines.begin(), lines.end(), [](const MatchLine& x, const MatchLine& y) { return x.text < y.text; });
  return lines;
}

PacketFields example_packet(const Box& b) {
  PacketFields f;
  f.ip = true;
  f.family = b.family;
  // Protocol: a common one with ports first, then any known one.
  int atom = -1;
  for (size_t a : {kAtomUdpPorts, kAtomTcpPorts, atom_without_ports(1), atom_without_ports(58)})
    if (atom < 0 && b.atoms.test(a)) atom = int(a);
  for (size_t a = 1; a < kAtoms && atom < 0; ++a)
    if (b.atoms.test(a)) atom = int(a);
  if (atom < 0) atom = int(kAtomUnknown);
  f.proto = atom == int(kAtomTcpPorts) ? 6 : atom == int(kAtomUdpPorts) ? 17 : atom - 1;
  f.l4 = atom == int(kAtomTcpPorts) || atom == int(kAtomUdpPorts);
  auto pick_port = [](const PortValues& s, uint32_t nice) { return uint16_t(s.contains(nice) ? nice : s.lowest()); };
  f.sport = pick_port(b.sport, 50000);
  f.dport = pick_port(b.dport, 443);
  auto pick_addr = [&](const AddrValues& s, u128 nice) {
    if (s.contains(nice)) return nice;
    u128 lo = s.lowest();
    for (const auto& iv : s.intervals())  // prefer a host address over a network address
      if (iv.hi > iv.lo) return iv.lo + 1;
    return lo;
  };
  const bool v4 = b.family == Family::V4;
  u128 doc_s = v4 ? u128(0xc0000201u) : (u128(0x20010db8u) << 96 | 1);   // 192.0.2.1, 2001:db8::1
  u128 doc_d = v4 ? u128(0xc6336401u) : (u128(0x20010db8u) << 96 | 2);   // 198.51.100.1, 2001:db8::2
  f.saddr = address_bytes(b.family, pick_addr(b.saddr, doc_s));
  f.daddr = address_bytes(b.family, pick_addr(b.daddr, doc_d));
  f.dscp = 0;
  while (!(b.dscp >> f.dscp & 1)) ++f.dscp;
  return f;
}

std::string format_packet_example(const PacketFields& f) {
  const bool v6 = f.family == Family::V6;
  std::string proto;
  if (f.proto == 6) proto = "tcp";
  else if (f.proto == 17) proto = "udp";
  else if (f.proto == 1 && !v6) proto = "icmp";
  else if (f.proto == 58 && v6) proto = "icmpv6";
  else if (f.proto < 0) proto = "proto unknown";
  else proto = fmt::format("proto {}", f.proto);
  auto end = [&](const std::array<uint8_t, 16>& a, uint16_t port) {
    std::string s = format_address(f.family, a);
    if (!f.l4) return s;
    return v6 ? fmt::format("[{}]:{}", s, port) : fmt::format("{}:{}", s, port);
  };
  std::string s = fmt::format("{} {} > {}", proto, end(f.saddr, f.sport), end(f.daddr, f.dport));
  if (f.dscp != 0) s += dscp_name(f.dscp) ? fmt::format(" dscp {}", dscp_name(f.dscp)) : fmt::format(" dscp {}", f.dscp);
  if ((f.proto == 6 || f.proto == 17) && !f.l4) s += " frag";
  return s;
}

}  // namespace qosc::ir
