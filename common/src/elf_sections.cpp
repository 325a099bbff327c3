// ELF sections through libelf: see qosc/elf_sections.hpp.
#include "qosc/elf_sections.hpp"

#include <gelf.h>
#include <libelf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace qosc {
namespace {

bool init_libelf(std::string* error) {
  if (elf_version(EV_CURRENT) != EV_NONE) return true;
  if (error) *error = "libelf initialisation failed";
  return false;
}

struct ElfHandle {
  Elf* e = nullptr;
  ~ElfHandle() {
    if (e) elf_end(e);
  }
};

struct FdHandle {
  int fd = -1;
  ~FdHandle() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, const unsigned char* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

std::optional<std::vector<unsigned char>> read_elf_section(std::span<const unsigned char> bytes, std::string_view want,
                                                           std::string* error, bool* absent) {
  auto fail = [&](std::string msg, bool missing) -> std::optional<std::vector<unsigned char>> {
    if (error) *error = std::move(msg);
    if (absent) *absent = missing;
    return std::nullopt;
  };
  if (!init_libelf(error)) return fail(error ? *error : "", false);
  // elf_memory takes a mutable image; libelf may convert it in place, so it gets a copy.
  std::vector<char> image(bytes.begin(), bytes.end());
  ElfHandle h{elf_memory(image.data(), image.size())};
  if (!h.e) return fail(fmt::format("not an ELF object: {}", elf_errmsg(-1)), false);
  if (elf_kind(h.e) != ELF_K_ELF) return fail("not an ELF object", false);
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(h.e, &shstrndx) != 0) return fail(fmt::format("bad ELF object: {}", elf_errmsg(-1)), false);
  for (Elf_Scn* scn = elf_nextscn(h.e, nullptr); scn; scn = elf_nextscn(h.e, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* n = elf_strptr(h.e, shstrndx, sh.sh_name);
    if (!n || want != n) continue;
    std::vector<unsigned char> out;
    if (sh.sh_type == SHT_NOBITS) {
      out.assign(sh.sh_size, 0);
    } else if (Elf_Data* d = elf_getdata(scn, nullptr); d && d->d_buf) {
      auto* p = static_cast<const unsigned char*>(d->d_buf);
      out.assign(p, p + d->d_size);
    }
    if (absent) *absent = false;
    return out;
  }
  return fail(fmt::format("no section '{}'", want), true);
}

bool append_elf_section(std::vector<unsigned char>& elf, std::string_view name, std::span<const unsigned char> data,
                        std::string* error) {
  auto fail = [&](std::string msg) {
    if (error) *error = std::move(msg);
    return false;
  };
  if (!init_libelf(error)) return false;
  // libelf writes objects through a file descriptor: an anonymous memory file.
  FdHandle f{::memfd_create("qosc-object", MFD_CLOEXEC)};
  if (f.fd < 0) return fail(fmt::format("memfd_create: {}", std::strerror(errno)));
  if (!write_all(f.fd, elf.data(), elf.size())) return fail(fmt::format("write: {}", std::strerror(errno)));
  ElfHandle h{elf_begin(f.fd, ELF_C_RDWR, nullptr)};
  if (!h.e || elf_kind(h.e) != ELF_K_ELF) return fail(fmt::format("not an ELF object: {}", elf_errmsg(-1)));
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(h.e, &shstrndx) != 0) return fail(fmt::format("bad ELF object: {}", elf_errmsg(-1)));

  // The name goes at the end of the section name table.
  Elf_Scn* strscn = elf_getscn(h.e, shstrndx);
  GElf_Shdr strsh;
  if (!strscn || !gelf_getshdr(strscn, &strsh)) return fail(fmt::format("bad section name table: {}", elf_errmsg(-1)));
  const std::string name_z(name);   // with its NUL, alive until elf_update
  Elf_Data* nd = elf_newdata(strscn);
  if (!nd) return fail(fmt::format("elf_newdata: {}", elf_errmsg(-1)));
  nd->d_buf = const_cast<char*>(name_z.c_str());
  nd->d_size = name_z.size() + 1;
  nd->d_type = ELF_T_BYTE;
  nd->d_align = 1;
  const uint64_t name_off = strsh.sh_size;

  Elf_Scn* scn = elf_newscn(h.e);
  if (!scn) return fail(fmt::format("elf_newscn: {}", elf_errmsg(-1)));
  Elf_Data* d = elf_newdata(scn);
  if (!d) return fail(fmt::format("elf_newdata: {}", elf_errmsg(-1)));
  d->d_buf = const_cast<unsigned char*>(data.data());
  d->d_size = data.size();
  d->d_type = ELF_T_BYTE;
  d->d_align = 8;
  GElf_Shdr sh;
  if (!gelf_getshdr(scn, &sh)) return fail(fmt::format("gelf_getshdr: {}", elf_errmsg(-1)));
  sh.sh_name = uint32_t(name_off);
  sh.sh_type = SHT_PROGBITS;
  sh.sh_flags = 0;
  sh.sh_addralign = 8;
  if (!gelf_update_shdr(scn, &sh)) return fail(fmt::format("gelf_update_shdr: {}", elf_errmsg(-1)));

  const off_t size = elf_update(h.e, ELF_C_WRITE);
  if (size < 0) return fail(fmt::format("elf_update: {}", elf_errmsg(-1)));
  elf_end(h.e);
  h.e = nullptr;
  std::vector<unsigned char> out(static_cast<size_t>(size));
  for (size_t at = 0; at < out.size();) {
    ssize_t r = ::pread(f.fd, out.data() + at, out.size() - at, off_t(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fail(fmt::format("read back: {}", r < 0 ? std::strerror(errno) : "short file"));
    at += size_t(r);
  }
  elf = std::move(out);
  return true;
}

}  // namespace qosc
