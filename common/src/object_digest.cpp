// The object digest: see qosc/object_digest.hpp.
#include "qosc/object_digest.hpp"

#include <elf.h>

#include <bit>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "qosc/elf_sections.hpp"
#include "qosc/sha256.hpp"

namespace qosc {
namespace {

// The headers are read by copying them into <elf.h>'s structs: objects are
// little endian (bpfel), like every host qosc runs on.
static_assert(std::endian::native == std::endian::little, "the object walk reads little-endian ELF in host order");
static_assert(sizeof(Elf64_Ehdr) == 64 && sizeof(Elf64_Shdr) == 64, "ELF64 headers have no padding");

constexpr std::string_view kDigestPrefix = "sha256:";
constexpr size_t kDigestSize = kDigestPrefix.size() + 64;   // "sha256:" + 64 hex digits

bool has_contents(uint32_t type) { return type != SHT_NULL && type != SHT_NOBITS; }

// Offsets and sizes come from the file, so they are checked without
// overflowing: [off, off + len) inside a file of `size` bytes.
bool inside(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

struct Walk {
  Elf64_Ehdr header;
  std::vector<Elf64_Shdr> raw;           // the section headers as in the file
  std::vector<ObjectSection> sections;   // the same, with names
};

std::optional<Walk> walk(std::span<const unsigned char> elf, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Walk> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  const uint64_t size = elf.size();
  Walk w;
  if (size < sizeof w.header)
    return fail(fmt::format("truncated: {} bytes, shorter than an ELF header ({} bytes)", size, sizeof w.header));
  std::memcpy(&w.header, elf.data(), sizeof w.header);
  const Elf64_Ehdr& eh = w.header;
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return fail("no ELF magic");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return fail("not a 64-bit little-endian ELF object");
  if (eh.e_shentsize != sizeof(Elf64_Shdr))
    return fail(fmt::format("section headers of {} bytes, expected {}", eh.e_shentsize, sizeof(Elf64_Shdr)));
  // e_shnum 0 would mean "more than 65279 sections, counted elsewhere": qosc never writes that many.
  if (eh.e_shnum == 0) return fail("no section header table");
  const uint64_t table_bytes = uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr);
  if (!inside(eh.e_shoff, table_bytes, size))
    return fail(fmt::format("the section header table ({} bytes at byte {}) lies past the end of the {}-byte file",
                            table_bytes, eh.e_shoff, size));
  if (eh.e_shstrndx >= eh.e_shnum)
    return fail(fmt::format("section name table {} of {} sections", eh.e_shstrndx, eh.e_shnum));

  w.raw.resize(eh.e_shnum);
  for (uint32_t i = 0; i < eh.e_shnum; ++i)
    std::memcpy(&w.raw[i], elf.data() + eh.e_shoff + uint64_t(i) * sizeof(Elf64_Shdr), sizeof(Elf64_Shdr));
  const Elf64_Shdr& names = w.raw[eh.e_shstrndx];
  if (names.sh_type != SHT_STRTAB || !inside(names.sh_offset, names.sh_size, size))
    return fail(fmt::format("the section name table (section {}) is not a string table inside the file",
                            eh.e_shstrndx));
  const auto* name_bytes = reinterpret_cast<const char*>(elf.data() + names.sh_offset);

  w.sections.reserve(eh.e_shnum);
  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr& sh = w.raw[i];
    const void* nul = sh.sh_name < names.sh_size ? std::memchr(name_bytes + sh.sh_name, 0, names.sh_size - sh.sh_name)
                                                 : nullptr;
    if (!nul) return fail(fmt::format("the name of section {} lies outside the section name table", i));
    ObjectSection s;
    s.index = i;
    s.name.assign(name_bytes + sh.sh_name, static_cast<const char*>(nul));
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.header_offset = eh.e_shoff + uint64_t(i) * sizeof(Elf64_Shdr);
    if (has_contents(sh.sh_type)) {
      if (!inside(sh.sh_offset, sh.sh_size, size))
        return fail(fmt::format("section {} ({}, {} bytes at byte {}) lies past the end of the {}-byte file", i,
                                s.name, sh.sh_size, sh.sh_offset, size));
      s.offset = sh.sh_offset;
      s.size = sh.sh_size;
    }
    w.sections.push_back(std::move(s));
  }
  return w;
}

// The digest section's index; nullopt when there is none, *twice when there are two.
std::optional<uint32_t> digest_index(const Walk& w, bool* twice) {
  std::optional<uint32_t> at;
  for (const auto& s : w.sections) {
    if (s.name != kDigestSection) continue;
    if (at) *twice = true;
    at = s.index;
  }
  return at;
}

// The canonical contents (see object_digest.hpp), hashed.
std::string canonical_digest(std::span<const unsigned char> elf, const Walk& w, uint32_t digest_at) {
  Sha256 h;
  auto put = [&](const auto& header) {
    h.update(std::span(reinterpret_cast<const unsigned char*>(&header), sizeof header));
  };
  Elf64_Ehdr eh = w.header;
  eh.e_shoff = 0;
  eh.e_shnum = 0;
  put(eh);
  for (const ObjectSection& s : w.sections) {
    if (s.index == digest_at) continue;
    Elf64_Shdr sh = w.raw[s.index];
    sh.sh_offset = 0;
    put(sh);
    h.update(elf.subspan(s.offset, s.size));
  }
  return h.hex_digest();
}

}  // namespace

std::optional<std::vector<ObjectSection>> object_sections(std::span<const unsigned char> elf, std::string* error) {
  auto w = walk(elf, error);
  if (!w) return std::nullopt;
  return std::move(w->sections);
}

DigestCheck check_object_digest(std::span<const unsigned char> elf) {
  std::string err;
  auto w = walk(elf, &err);
  if (!w) return {DigestVerdict::Malformed, err};
  bool twice = false;
  auto at = digest_index(*w, &twice);
  if (!at) return {DigestVerdict::Missing, {}};
  if (twice) return {DigestVerdict::Malformed, fmt::format("two {} sections", kDigestSection)};
  // The digest's own header is not hashed: it must be the one
  // append_elf_section wrote (libbpf would take the section for code, say,
  // with SHF_EXECINSTR set).
  const Elf64_Shdr& dh = w->raw[*at];
  if (dh.sh_type != SHT_PROGBITS || dh.sh_flags != 0 || dh.sh_addr != 0 || dh.sh_size != kDigestSize ||
      dh.sh_link != 0 || dh.sh_info != 0 || dh.sh_addralign != 8 || dh.sh_entsize != 0)
    return {DigestVerdict::Malformed, fmt::format("its {} section header is damaged", kDigestSection)};
  const ObjectSection& d = w->sections[*at];
  const std::string_view stored(reinterpret_cast<const char*>(elf.data() + d.offset), d.size);
  if (!stored.starts_with(kDigestPrefix))
    return {DigestVerdict::Malformed, fmt::format("its {} section holds no SHA-256", kDigestSection)};
  if (stored.substr(kDigestPrefix.size()) != canonical_digest(elf, *w, *at))
    return {DigestVerdict::Mismatch, "digest mismatch"};
  return {DigestVerdict::Intact, {}};
}

bool add_object_digest(std::vector<unsigned char>& elf, std::string* error) {
  auto fail = [&](std::string msg) {
    if (error) *error = std::move(msg);
    return false;
  };
  if (DigestCheck before = check_object_digest(elf); before.verdict != DigestVerdict::Missing)
    return fail(before.verdict == DigestVerdict::Malformed ? "not an object to seal: " + before.detail
                                                           : fmt::format("the object already has a {} section",
                                                                         kDigestSection));
  // The placeholder puts the section's name into the name table, which is
  // hashed; its contents, which are not, are then filled in where they lie.
  std::string placeholder(kDigestPrefix);
  placeholder.resize(kDigestSize, '0');
  const std::span<const unsigned char> placeholder_bytes(reinterpret_cast<const unsigned char*>(placeholder.data()),
                                                         placeholder.size());
  if (!append_elf_section(elf, kDigestSection, placeholder_bytes, error)) return false;
  std::string err;
  auto w = walk(elf, &err);
  if (!w) return fail("the object does not read back after appending the digest section: " + err);
  bool twice = false;
  auto at = digest_index(*w, &twice);
  if (!at || twice || w->sections[*at].size != kDigestSize)
    return fail(fmt::format("the appended {} section does not read back", kDigestSection));
  const std::string hex = canonical_digest(elf, *w, *at);
  std::memcpy(elf.data() + w->sections[*at].offset + kDigestPrefix.size(), hex.data(), hex.size());
  return true;
}

}  // namespace qosc
