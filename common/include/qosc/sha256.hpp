#pragma once
// SHA-256 (FIPS 180-4): the manifest's source hash and the object digest
// (qosc/object_digest.hpp). Incremental, so the digest hashes an object's
// sections where they lie instead of copying them into one string.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace qosc {

class Sha256 {
 public:
  void update(std::span<const unsigned char> data);
  void update(std::string_view data);
  // Lowercase hex of the digest of everything given to update(); ends the hash.
  std::string hex_digest();

 private:
  void compress(const unsigned char* block);
  std::array<uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<unsigned char, 64> pending_{};   // the start of a block not yet compressed
  size_t pending_size_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lowercase hex SHA-256 of `data` (the manifest's source_sha256).
std::string sha256_hex(std::string_view data);

}  // namespace qosc
