#pragma once
// Tiny frame builders for the loader tests (the differential test has the
// full adversarial generator), and the fixture objects, whole or damaged.
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "qosc/object_digest.hpp"

namespace qosrun::test {

inline std::vector<uint8_t> ipv4_frame(uint8_t proto, uint16_t sport, uint16_t dport, size_t payload = 18) {
  const size_t l4 = proto == 6 ? 20 : proto == 17 ? 8 : 0;
  const size_t total = 20 + l4 + payload;
  std::vector<uint8_t> f(14 + total, 0xab);
  auto put = [&](size_t off, std::initializer_list<uint8_t> bytes) {
    for (uint8_t b : bytes) f[off++] = b;
  };
  put(0, {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00});   // locally administered MACs, IPv4
  put(14, {0x45, 0, static_cast<uint8_t>(total >> 8), static_cast<uint8_t>(total), 0, 1, 0, 0, 64, proto, 0, 0, 10,
           0, 0, 1, 10, 0, 0, 2});
  if (l4) {
    for (size_t i = 0; i < l4; ++i) f[34 + i] = 0;
    put(34, {static_cast<uint8_t>(sport >> 8), static_cast<uint8_t>(sport), static_cast<uint8_t>(dport >> 8),
             static_cast<uint8_t>(dport)});
    if (proto == 6) f[34 + 12] = 0x50;
    if (proto == 17) put(38, {static_cast<uint8_t>((8 + payload) >> 8), static_cast<uint8_t>(8 + payload)});
  }
  return f;
}
inline std::vector<uint8_t> udp4(uint16_t dport) { return ipv4_frame(17, 40000, dport); }
inline std::vector<uint8_t> tcp4(uint16_t dport) { return ipv4_frame(6, 40000, dport); }

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string fixture(const char* name) { return std::string(QOSC_FIXTURE_DIR) + "/" + name; }

// `bytes` with one bit flipped in byte `at` of section `section` (unchanged
// when the object has no such section or it is shorter).
inline std::vector<unsigned char> with_flipped_byte(std::vector<unsigned char> bytes, const char* section, uint64_t at) {
  std::string err;
  auto sections = qosc::object_sections(bytes, &err);
  for (const auto& s : sections.value_or(std::vector<qosc::ObjectSection>{}))
    if (s.name == section && at < s.size) bytes[s.offset + at] ^= 0x01;
  return bytes;
}

inline void write_file(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

}  // namespace qosrun::test
