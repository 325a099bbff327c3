// Packet capture files: see qosrun/pcap.hpp.
#include "qosrun/pcap.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

namespace qosrun {

namespace {

constexpr uint32_t kPcapMagicUs = 0xa1b2c3d4;
constexpr uint32_t kPcapMagicNs = 0xa1b23c4d;
constexpr uint32_t kPcapngShb = 0x0a0d0d0a;
constexpr uint32_t kPcapngBom = 0x1a2b3c4d;
constexpr uint32_t kMaxRecord = 256 * 1024;   // bigger than any snap length tcpdump uses

constexpr uint32_t kLinktypeRaw = 101, kLinktypeIpv4 = 228, kLinktypeIpv6 = 229;
constexpr uint32_t kLinktypeSll = 113, kLinktypeSll2 = 276, kLinktypeNull = 0, kLinktypeLoop = 108;

uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

class Reader {
 public:
  Reader(std::span<const uint8_t> b) : b_(b) {}
  bool have(size_t off, size_t n) const { return off <= b_.size() && n <= b_.size() - off; }
  uint16_t u16(size_t off) const {
    uint16_t v;
    std::memcpy(&v, b_.data() + off, 2);
    return swap_ ? __builtin_bswap16(v) : v;
  }
  uint32_t u32(size_t off) const {
    uint32_t v;
    std::memcpy(&v, b_.data() + off, 4);
    return swap_ ? bswap32(v) : v;
  }
  std::span<const uint8_t> bytes(size_t off, size_t n) const { return b_.subspan(off, n); }
  size_t size() const { return b_.size(); }
  void set_swap(bool s) { swap_ = s; }
  bool swapped() const { return swap_; }

 private:
  std::span<const uint8_t> b_;
  bool swap_ = false;
};

const char* linktype_name(uint32_t lt) {
  switch (lt) {
    case 0: return "BSD loopback";
    case 1: return "Ethernet";
    case 101: return "raw IP";
    case 105: return "802.11";
    case 113: return "Linux cooked (SLL)";
    case 127: return "802.11 radiotap";
    case 276: return "Linux cooked v2 (SLL2)";
    default: return "unknown";
  }
}

// Turns one captured record of link type `lt` into an Ethernet frame.
Result<std::vector<uint8_t>> to_ethernet(uint32_t lt, std::span<const uint8_t> rec, const std::string& name,
                                         size_t index) {
  auto with_header = [&](uint16_t ethertype, std::span<const uint8_t> payload) {
    std::vector<uint8_t> f(14, 0);
    f[12] = static_cast<uint8_t>(ethertype >> 8);
    f[13] = static_cast<uint8_t>(ethertype);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
  };
  auto ip_ethertype = [](std::span<const uint8_t> p) -> uint16_t {
    if (p.empty()) return 0;
    return (p[0] >> 4) == 6 ? 0x86dd : 0x0800;
  };
  switch (lt) {
    case kLinktypeEthernet:
      return std::vector<uint8_t>(rec.begin(), rec.end());
    case kLinktypeRaw:
      return with_header(ip_ethertype(rec), rec);
    case kLinktypeIpv4:
      return with_header(0x0800, rec);
    case kLinktypeIpv6:
      return with_header(0x86dd, rec);
    case kLinktypeSll:
      if (rec.size() < 16) break;
      return with_header(static_cast<uint16_t>(rec[14] << 8 | rec[15]), rec.subspan(16));
    case kLinktypeSll2:
      if (rec.size() < 20) break;
      return with_header(static_cast<uint16_t>(rec[0] << 8 | rec[1]), rec.subspan(20));
    case kLinktypeNull:
    case kLinktypeLoop:
      if (rec.size() < 4) break;
      return with_header(ip_ethertype(rec.subspan(4)), rec.subspan(4));
    default:
      return Error{fmt::format("{}: packet {} has link type {} ({}); qosrun classify reads Ethernet captures "
                               "(and Linux cooked / raw IP ones): capture on an Ethernet interface, e.g. "
                               "tcpdump -i eth0 -w FILE",
                               name, index, lt, linktype_name(lt))};
  }
  return Error{fmt::format("{}: packet {} is too short for its {} link header", name, index, linktype_name(lt))};
}

Result<Capture> parse_classic(Reader& r, const std::string& name) {
  Capture cap;
  uint32_t magic = r.u32(0);
  if (magic == bswap32(kPcapMagicUs) || magic == bswap32(kPcapMagicNs)) {
    r.set_swap(true);
    magic = r.u32(0);
  }
  cap.swapped = r.swapped();
  cap.nanosecond = magic == kPcapMagicNs;
  if (!r.have(0, 24)) return Error{fmt::format("{}: the pcap file header is cut off (24 bytes needed)", name)};
  uint16_t major = r.u16(4);
  if (major != 2)
    return Error{fmt::format("{}: pcap version {}.{} is not supported (2.4 expected)", name, major, r.u16(6))};
  // The link type lives in the low 28 bits (the rest are FCS flags).
  uint32_t lt = r.u32(20) & 0x0fffffffu;
  size_t off = 24;
  for (size_t index = 0; off < r.size(); ++index) {
    if (!r.have(off, 16))
      return Error{fmt::format("{}: the header of packet {} is cut off at byte {}: the capture is truncated "
                               "(was it still being written?)",
                               name, index, off)};
    uint32_t sec = r.u32(off), frac = r.u32(off + 4), incl = r.u32(off + 8), orig = r.u32(off + 12);
    if (incl > kMaxRecord)
      return Error{fmt::format("{}: packet {} claims {} captured bytes at byte {}: the file is damaged", name, index,
                               incl, off)};
    if (!r.have(off + 16, incl))
      return Error{fmt::format("{}: packet {} is cut off ({} of {} bytes present): the capture is truncated", name,
                               index, r.size() - off - 16, incl)};
    auto frame = to_ethernet(lt, r.bytes(off + 16, incl), name, index);
    if (!frame) return frame.error();
    CapturedPacket p;
    p.frame = std::move(frame.value());
    p.orig_len = orig;
    p.linktype = lt;
    p.ts_ns = uint64_t{sec} * 1000000000u + (cap.nanosecond ? frac : uint64_t{frac} * 1000u);
    cap.packets.push_back(std::move(p));
    off += 16 + incl;
  }
  return cap;
}

Result<Capture> parse_pcapng(Reader& r, const std::string& name) {
  Capture cap;
  cap.pcapng = true;
  struct Iface {
    uint32_t linktype;
    uint32_t snaplen;
    uint64_t ts_div;   // units per second
  };
  std::vector<Iface> ifaces;
  size_t off = 0;
  size_t index = 0;
  while (off < r.size()) {
    if (!r.have(off, 12)) return Error{fmt::format("{}: the pcapng block at byte {} is cut off", name, off)};
    uint32_t type = r.u32(off);
    if (type == kPcapngShb) {
      // The byte-order magic decides how to read this section.
      uint32_t bom;
      std::memcpy(&bom, r.bytes(off + 8, 4).data(), 4);
      if (bom == kPcapngBom) r.set_swap(false);
      else if (bom == bswap32(kPcapngBom)) r.set_swap(true);
      else return Error{fmt::format("{}: pcapng section at byte {} has a bad byte-order magic", name, off)};
      cap.swapped = r.swapped();
      ifaces.clear();
    }
    uint32_t len = r.u32(off + 4);
    if (len < 12 || len % 4 != 0 || !r.have(off, len))
      return Error{fmt::format("{}: the pcapng block at byte {} has length {}: the file is truncated or damaged", name,
                               off, len)};
    if (r.u32(off + len - 4) != len)
      return Error{fmt::format("{}: the pcapng block at byte {} does not end with its length: the file is damaged",
                               name, off)};
    const size_t body = off + 8, body_len = len - 12;
    if (type == 1) {   // interface description
      if (body_len < 8) return Error{fmt::format("{}: interface block at byte {} is too short", name, off)};
      Iface ifc{r.u16(body), r.u32(body + 4), 1000000};
      // Options: if_tsresol (9).
      size_t o = body + 8;
      while (o + 4 <= body + body_len) {
        uint16_t code = r.u16(o), olen = r.u16(o + 2);
        if (code == 0) break;
        if (code == 9 && olen >= 1 && r.have(o + 4, 1)) {
          uint8_t v = r.bytes(o + 4, 1)[0];
          uint64_t div = 1;
          int exp = v & 0x7f;
          if (exp > 19) exp = 19;
          for (int i = 0; i < exp; ++i) div *= (v & 0x80) ? 2 : 10;
          ifc.ts_div = div;
        }
        o += 4 + (olen + 3u) / 4u * 4u;
      }
      ifaces.push_back(ifc);
    } else if (type == 6 || type == 3 || type == 2) {   // enhanced / simple / obsolete packet
      uint32_t ifid = 0, caplen = 0, orig = 0;
      uint64_t ts = 0;
      size_t data = 0;
      if (type == 6) {
        if (body_len < 20) return Error{fmt::format("{}: packet block at byte {} is too short", name, off)};
        ifid = r.u32(body);
        ts = (uint64_t{r.u32(body + 4)} << 32) | r.u32(body + 8);
        caplen = r.u32(body + 12);
        orig = r.u32(body + 16);
        data = body + 20;
      } else if (type == 2) {
        if (body_len < 20) return Error{fmt::format("{}: packet block at byte {} is too short", name, off)};
        ifid = r.u16(body);
        ts = (uint64_t{r.u32(body + 4)} << 32) | r.u32(body + 8);
        caplen = r.u32(body + 12);
        orig = r.u32(body + 16);
        data = body + 20;
      } else {
        if (body_len < 4) return Error{fmt::format("{}: packet block at byte {} is too short", name, off)};
        orig = r.u32(body);
        caplen = static_cast<uint32_t>(std::min<size_t>(orig, body_len - 4));
        if (!ifaces.empty() && ifaces[0].snaplen) caplen = std::min(caplen, ifaces[0].snaplen);
        data = body + 4;
      }
      if (ifid >= ifaces.size())
        return Error{fmt::format("{}: packet {} refers to interface {} which the file never describes", name, index,
                                 ifid)};
      if (caplen > body_len || data + caplen > off + len - 4)
        return Error{fmt::format("{}: packet {} claims {} bytes, more than its block holds: the file is damaged", name,
                                 index, caplen)};
      auto frame = to_ethernet(ifaces[ifid].linktype, r.bytes(data, caplen), name, index);
      if (!frame) return frame.error();
      CapturedPacket p;
      p.frame = std::move(frame.value());
      p.orig_len = orig;
      p.linktype = ifaces[ifid].linktype;
      const uint64_t div = ifaces[ifid].ts_div;
      p.ts_ns = div == 1000000000u ? ts : static_cast<uint64_t>(static_cast<long double>(ts) * 1e9L / div);
      cap.packets.push_back(std::move(p));
      ++index;
    }
    off += len;
  }
  return cap;
}

}  // namespace

Result<Capture> parse_capture(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < 4)
    return Error{fmt::format("{}: {} bytes is too short for a capture file (pcap or pcapng expected)", name,
                             bytes.size())};
  Reader r(bytes);
  uint32_t magic = r.u32(0);
  if (magic == kPcapngShb) return parse_pcapng(r, name);
  if (magic == kPcapMagicUs || magic == kPcapMagicNs || magic == bswap32(kPcapMagicUs) ||
      magic == bswap32(kPcapMagicNs))
    return parse_classic(r, name);
  return Error{fmt::format("{} is not a packet capture (magic {:02x} {:02x} {:02x} {:02x}): qosrun reads pcap and "
                           "pcapng files, e.g. from tcpdump -w FILE",
                           name, bytes[0], bytes[1], bytes[2], bytes[3])};
}

Result<Capture> read_capture(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error(errno ? errno : ENOENT, fmt::format("cannot open capture {}", path));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return errno_error(EIO, fmt::format("cannot read capture {}", path));
  return parse_capture(bytes, path);
}

std::vector<uint8_t> pcap_bytes(const std::vector<std::vector<uint8_t>>& frames, bool nanosecond, bool swapped) {
  std::vector<uint8_t> out;
  auto put32 = [&](uint32_t v) {
    if (swapped) v = bswap32(v);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + 4);
  };
  auto put16 = [&](uint16_t v) {
    if (swapped) v = __builtin_bswap16(v);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + 2);
  };
  put32(nanosecond ? kPcapMagicNs : kPcapMagicUs);
  put16(2);
  put16(4);
  put32(0);
  put32(0);
  put32(65535);
  put32(kLinktypeEthernet);
  uint64_t t_us = 1700000000ull * 1000000u;
  for (const auto& f : frames) {
    put32(static_cast<uint32_t>(t_us / 1000000u));
    put32(static_cast<uint32_t>(nanosecond ? (t_us % 1000000u) * 1000u : t_us % 1000000u));
    put32(static_cast<uint32_t>(f.size()));
    put32(static_cast<uint32_t>(f.size()));
    out.insert(out.end(), f.begin(), f.end());
    t_us += 1000;
  }
  return out;
}

Status write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames) {
  std::vector<uint8_t> b = pcap_bytes(frames);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return errno_error(errno ? errno : EIO, fmt::format("cannot create {}", path));
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) return errno_error(errno ? errno : EIO, fmt::format("cannot write {}", path));
  return {};
}

}  // namespace qosrun
