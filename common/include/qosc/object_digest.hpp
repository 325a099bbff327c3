#pragma once
// The object digest: qosc seals every object it writes with a SHA-256 of its
// contents, kept in a section of its own (kDigestSection), and qosrun's
// loader checks it before libbpf reads the object. libbpf 1.1.2 crashes on
// some damaged objects and hands others to the verifier, whose rejection then
// reads as a bug in qosc; a digest that does not match says what happened:
// the file was damaged or changed after qosc wrote it (docs/codegen.md, "The
// object digest").
//
// What is hashed is the object's meaning, not its file layout: the ELF header
// and, for every section but the digest's own, its section header and its
// contents, with the fields that only say where things lie in the file
// (e_shoff, e_shnum, sh_offset) taken as zero. Appending the digest section
// moves things in the file and changes nothing hashed but the section name
// table, which gets the digest's name before the hash is taken
// (add_object_digest appends a placeholder first, then fills it in place).
//
// Everything here reads the object through a walk that checks every offset
// and size against the file first: a truncated or damaged object gives an
// error, never a read outside the bytes.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace qosc {

inline constexpr const char* kDigestSection = ".qosc.digest";

// One section as the walk found it.
struct ObjectSection {
  uint32_t index = 0;
  std::string name;
  uint32_t type = 0;               // SHT_*
  uint64_t flags = 0;              // SHF_*
  uint64_t header_offset = 0;      // where its section header lies in the file
  uint64_t offset = 0, size = 0;   // its contents in the file (size 0 when it has none: SHT_NULL, SHT_NOBITS)
};

// The sections of a 64-bit little-endian ELF object (what clang writes for
// -target bpf on the hosts qosc runs on), every header, name and content
// checked to lie inside the file. nullopt with *error saying what does not
// ("section 5 (.text, 4096 bytes at byte 9000) lies past the end of the
// 8192-byte file").
std::optional<std::vector<ObjectSection>> object_sections(std::span<const unsigned char> elf, std::string* error);

enum class DigestVerdict : uint8_t {
  Intact,      // the digest matches: the object is as qosc wrote it
  Missing,     // a well-formed object without a digest section (older qosc, or not qosc's)
  Mismatch,    // the contents are not what the digest was taken of
  Malformed,   // the walk failed (truncated, a header out of bounds) or the digest section is unreadable
};

struct DigestCheck {
  DigestVerdict verdict = DigestVerdict::Malformed;
  std::string detail;   // Mismatch, Malformed: what is wrong, for the message ("digest mismatch", ...)
};

DigestCheck check_object_digest(std::span<const unsigned char> elf);

// Seals an object that has no digest yet: appends kDigestSection holding
// "sha256:" and the hex digest. False with *error when the object cannot be
// walked, already has a digest, or libelf cannot append the section.
bool add_object_digest(std::vector<unsigned char>& elf, std::string* error);

}  // namespace qosc
