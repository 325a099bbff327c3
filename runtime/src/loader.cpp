// The libbpf loader core: see qosrun/loader.hpp.
#include "qosrun/loader.hpp"

#include "qos_abi.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>

#include <fmt/format.h>

#include "qosc/elf_sections.hpp"
#include "qosc/load_tables.hpp"
#include "qosc/object_digest.hpp"

namespace qosrun {

// ---- errors ---------------------------------------------------------------

Error errno_error(int err, std::string what) {
  if (err < 0) err = -err;
  Error e;
  e.code = err;
  e.message = fmt::format("{}: {}", what, std::strerror(err));
  if ((err == EPERM || err == EACCES) && geteuid() != 0)
    e.message += "\n  loading BPF programs needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON): run it with sudo";
  return e;
}

void print_error(std::ostream& os, const Error& e, int verbosity) {
  os << "qosrun: error: " << e.message << "\n";
  if (e.detail.empty()) return;
  if (verbosity >= 2)
    os << e.detail << (e.detail.back() == '\n' ? "" : "\n");
  else
    os << "  (run with -vv for the full log)\n";
}

void print_error(const Error& e, int verbosity) { print_error(std::cerr, e, verbosity); }

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

// ---- whole files -------------------------------------------------------------

Result<std::string> read_file_text(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(errno, fmt::format("cannot read {}", path));
  std::string text;
  struct stat st{};
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0) text.reserve(static_cast<size_t>(st.st_size) + 1);
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, fmt::format("cannot read {}", path));
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

Status replace_file(const std::string& path, std::string_view text) {
  const std::string_view parts[] = {text};
  return replace_file(path, parts);
}

Status replace_file(const std::string& path, std::span<const std::string_view> parts) {
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return errno_error(errno, fmt::format("cannot write {}", tmp));
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  for (std::string_view p : parts)
    if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
  for (size_t i = 0; i < iov.size();) {
    ssize_t n = ::writev(fd.get(), iov.data() + i, static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, fmt::format("cannot write {}", tmp));
    // Past what was written: whole parts, then into the next one.
    auto done = static_cast<size_t>(n);
    while (i < iov.size() && done >= iov[i].iov_len) done -= iov[i++].iov_len;
    if (done) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + done;
      iov[i].iov_len -= done;
    }
  }
  fd.reset();
  // Swapped with the old file, then the old one unlinked, rather than renamed
  // over it: ext4 starts writing back a file renamed over another
  // (auto_da_alloc; ~1 ms for a 1 MB host placement on this project's
  // machines, whose /run is on disk), a durability that state about the
  // running kernel, meaningless after a reboot, has no use for. Both are
  // atomic for a reader. No old file (ENOENT), or a file system without
  // the exchange (EINVAL): renamed.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
    ::unlink(tmp.c_str());
    return {};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error(errno, fmt::format("cannot replace {}", path));
  return {};
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    this->~MappedFile();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

Result<MappedFile> map_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(errno, fmt::format("cannot read {}", path));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return errno_error(errno, fmt::format("cannot read {}", path));
  MappedFile m;
  if (st.st_size == 0) return m;
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
  if (p == MAP_FAILED) return errno_error(errno, fmt::format("cannot map {}", path));
  m.data_ = p;
  m.size_ = static_cast<size_t>(st.st_size);
  return m;
}

// ---- libbpf messages --------------------------------------------------------

namespace {

std::mutex g_print_mu;
int g_libbpf_verbosity = 0;
std::vector<std::string> g_libbpf_warnings;   // recent warnings, for error messages

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  std::lock_guard lock(g_print_mu);
  if (g_libbpf_verbosity >= 2) return std::vfprintf(stderr, format, args);
  if (level != LIBBPF_WARN) return 0;
  char buf[512];
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  if (n <= 0) return 0;
  std::string line(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  // libbpf prints the whole verifier log as one warning; we keep our own copy.
  if (line.find("-- BEGIN PROG LOAD LOG --") != std::string::npos) return 0;
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  if (g_libbpf_warnings.size() >= 32) g_libbpf_warnings.erase(g_libbpf_warnings.begin());
  g_libbpf_warnings.push_back(std::move(line));
  return 0;
}

struct PrintInit {
  PrintInit() { libbpf_set_print(libbpf_print); }
};
const PrintInit g_print_init;

void clear_warnings() {
  std::lock_guard lock(g_print_mu);
  g_libbpf_warnings.clear();
}

// The most telling libbpf warning: libbpf ends with generic lines such as
// "failed to load object 'x'"; the cause is usually the one before.
std::string last_warning() {
  std::lock_guard lock(g_print_mu);
  for (auto it = g_libbpf_warnings.rbegin(); it != g_libbpf_warnings.rend(); ++it) {
    const std::string& w = *it;
    if (w.find("failed to load object") != std::string::npos) continue;
    if (w.find("failed to load BPF skeleton") != std::string::npos) continue;
    return w.rfind("libbpf: ", 0) == 0 ? w.substr(8) : w;
  }
  return {};
}

std::string all_warnings() {
  std::lock_guard lock(g_print_mu);
  std::string s;
  for (const auto& w : g_libbpf_warnings) s += w + "\n";
  return s;
}

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

void set_libbpf_verbosity(int level) {
  std::lock_guard lock(g_print_mu);
  g_libbpf_verbosity = level;
}

const char* to_string(Hook h) {
  switch (h) {
    case Hook::Xdp: return "xdp";
    case Hook::Tc: return "tc";
    case Hook::Steer: return "steer";
  }
  return "?";
}

void BpfObjectDeleter::operator()(bpf_object* obj) const { bpf_object__close(obj); }

// ---- verifier log -------------------------------------------------------------

std::string verifier_summary(std::string_view log) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return s;
  };
  auto boring = [](std::string_view l) {
    static constexpr std::string_view kSkip[] = {
        "processed ", "verification time", "stack depth", "-- END PROG LOAD LOG", "-- BEGIN PROG LOAD LOG",
        "mark_precise", "last_idx", "parent didn't have regs", "regs=", "Func#"};
    if (l.empty()) return true;
    for (auto p : kSkip)
      if (l.rfind(p, 0) == 0) return true;
    return false;
  };
  // Walk the lines backwards.
  size_t end = log.size();
  while (end > 0) {
    size_t start = log.rfind('\n', end - 1);
    size_t from = (start == std::string_view::npos) ? 0 : start + 1;
    std::string_view line = trim(log.substr(from, end - from));
    if (!boring(line)) return std::string(line.substr(0, 300));
    if (start == std::string_view::npos) break;
    end = start;
  }
  return {};
}

// ---- LoadedPolicy ------------------------------------------------------------------

LoadedPolicy::LoadedPolicy(LoadedPolicy&&) noexcept = default;
LoadedPolicy& LoadedPolicy::operator=(LoadedPolicy&&) noexcept = default;
LoadedPolicy::~LoadedPolicy() {
  obj_.reset();   // close programs/maps before the log buffers they point into go
}

Result<LoadedPolicy> LoadedPolicy::open_file(const std::string& path, const LoadOptions& opts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno ? errno : ENOENT;
    Error e = errno_error(err, fmt::format("cannot open {}", path));
    if (err == ENOENT) e.message += "\n  compile a policy first: qosc POLICY.qos -o OUT.bpf.o";
    return e;
  }
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return errno_error(EIO, fmt::format("cannot read {}", path));
  return open_bytes(std::move(bytes), basename_of(path), path, opts);
}

Result<LoadedPolicy> LoadedPolicy::open_memory(std::span<const unsigned char> bytes, std::string name,
                                               const LoadOptions& opts) {
  std::string shown = name;
  return open_bytes({bytes.begin(), bytes.end()}, std::move(name), std::move(shown), opts);
}

Result<LoadedPolicy> LoadedPolicy::open_bytes(std::vector<unsigned char> bytes, std::string name, std::string shown,
                                              const LoadOptions& opts) {
  LoadedPolicy p;
  p.name_ = std::move(name);
  p.opts_ = opts;
  p.elf_ = std::move(bytes);

  static constexpr unsigned char kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
  if (p.elf_.size() < sizeof kElfMagic || std::memcmp(p.elf_.data(), kElfMagic, sizeof kElfMagic) != 0)
    return Error{fmt::format("{} is not a BPF object (no ELF header): give the .bpf.o that qosc wrote", shown)};

  // The digest before anything else reads the object: libbpf 1.1.2 crashes on
  // some damaged objects and takes others as far as the verifier, whose
  // rejection would then read as a bug in qosc. Objects without a digest are
  // walked all the same (every offset inside the file) before libelf and
  // libbpf see them.
  auto damaged = [&](const std::string& why) {
    return Error{fmt::format("{} was damaged or changed after qosc wrote it ({}): recompile it with `qosc POLICY -o {}`",
                             shown, why, shown),
                 {}, 0, ErrorKind::Damaged};
  };
  const qosc::DigestCheck integrity = qosc::check_object_digest(p.elf_);
  if (integrity.verdict == qosc::DigestVerdict::Mismatch || integrity.verdict == qosc::DigestVerdict::Malformed)
    return damaged(integrity.detail);
  p.intact_ = integrity.verdict == qosc::DigestVerdict::Intact;

  std::string merr;
  if (auto m = qosc::read_manifest(p.elf_, &merr)) {
    p.manifest_ = std::move(*m);
    p.has_manifest_ = true;
  } else if (opts.require_manifest) {
    // Without a digest nothing tells a damaged qosc object from somebody else's.
    return Error{fmt::format("{} has no usable qosc manifest ({}){}; compile the policy with `qosc POLICY -o {}`", shown,
                             merr, p.intact_ ? "" : " and no digest: qosc did not write it, or it was damaged or changed "
                                                    "after qosc wrote it",
                             shown)};
  }
  // A qosc object without its digest: from before digests (the manifest's
  // format says so), else the section went missing since.
  if (p.has_manifest_ && !p.intact_) {
    if (p.manifest_.format < qosc::kFirstDigestFormat)
      return Error{fmt::format("{} was compiled by an older qosc (manifest format {}), which wrote no digest to check "
                               "it by: recompile it with `qosc POLICY -o {}`",
                               shown, p.manifest_.format, shown)};
    return damaged(fmt::format("its {} section is missing", qosc::kDigestSection));
  }
  if (p.has_manifest_ && p.manifest_.format != qosc::kManifestFormat)
    return Error{fmt::format("{} has manifest format {}, this qosrun reads format {}: recompile it with this "
                             "version of qosc",
                             shown, p.manifest_.format, qosc::kManifestFormat)};

  clear_warnings();
  LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = p.name_.c_str());
  bpf_object* obj = bpf_object__open_mem(p.elf_.data(), p.elf_.size(), &oo);
  if (!obj) {
    int err = errno;
    Error e = errno_error(err, fmt::format("libbpf cannot open {}", shown));
    if (auto w = last_warning(); !w.empty()) e.message += "\n  libbpf: " + w;
    return e;
  }
  p.obj_.reset(obj);

  // Programs: load only what was asked for.
  for (Hook h : kHooks) {
    bpf_program* prog = p.program(h);
    bool want = h == Hook::Xdp ? opts.load_xdp : h == Hook::Tc ? opts.load_tc : opts.load_steer;
    if (!prog) {
      // (No steering program is the policy's own matter: attach --steer-from says why.)
      if (want && p.has_manifest_ && h != Hook::Steer)
        return Error{fmt::format("{} has no program '{}' although its manifest names it: the object is damaged, "
                                 "recompile it",
                                 shown, h == Hook::Xdp ? p.manifest_.xdp_prog : p.manifest_.tc_prog)};
      continue;
    }
    if (!want) {
      bpf_program__set_autoload(prog, false);
      continue;
    }
    p.log_[static_cast<int>(h)] = std::make_unique<char[]>(opts.log_size);
    p.log_[static_cast<int>(h)][0] = '\0';
    // log_level 0: libbpf loads without a log and, only if the load fails,
    // retries with log level 1 into this buffer.
    bpf_program__set_log_buf(prog, p.log_[static_cast<int>(h)].get(), opts.log_size);
  }
  // Any other program in the object is not ours to load.
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, obj) {
    if (prog != p.program(Hook::Xdp) && prog != p.program(Hook::Tc) && prog != p.program(Hook::Steer))
      bpf_program__set_autoload(prog, false);
  }
  // The steering cpumap (qos_hosts.h) has an entry per CPU the kernel may have.
  if (bpf_map* cpus = bpf_object__find_map_by_name(obj, QOS_STEER_CPUS_MAP)) {
    int n = libbpf_num_possible_cpus();
    if (n > 0) (void)bpf_map__set_max_entries(cpus, static_cast<uint32_t>(n));
  }

  // Pinning: off unless a bpffs directory was given.
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    if (opts.pin_root.empty()) {
      bpf_map__set_pin_path(map, nullptr);
    } else if (bpf_map__pin_path(map)) {
      std::string path = opts.pin_root + "/" + bpf_map__name(map);
      bpf_map__set_pin_path(map, path.c_str());
    }
  }
  return p;
}

namespace {
// The member `name` of struct/union `id` in `b`: its byte offset and type
// (typedefs and modifiers skipped); nullopt when there is none.
std::optional<std::pair<uint32_t, int32_t>> member_of(const btf* b, int32_t id, const char* name) {
  const btf_type* t = btf__type_by_id(b, static_cast<uint32_t>(id));
  if (!t || !(btf_is_struct(t) || btf_is_union(t))) return std::nullopt;
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
    const char* n = btf__name_by_offset(b, m->name_off);
    if (n && std::strcmp(n, name) == 0)
      return std::make_pair(btf_member_bit_offset(t, i) / 8, btf__resolve_type(b, m->type));
  }
  return std::nullopt;
}
}  // namespace

Result<uint32_t> conntrack_source_offset() {
  // Conntrack built in (vmlinux) or a module (split BTF on top of vmlinux's).
  std::unique_ptr<btf, void (*)(btf*)> vmlinux(btf__load_vmlinux_btf(), btf__free);
  if (!vmlinux) return Error{"`isolate ... nat` needs the kernel's BTF (/sys/kernel/btf/vmlinux), which cannot be read"};
  std::unique_ptr<btf, void (*)(btf*)> module(nullptr, btf__free);
  const btf* b = vmlinux.get();
  int32_t conn = btf__find_by_name_kind(b, "nf_conn", BTF_KIND_STRUCT);
  if (conn < 0) {
    module.reset(btf__parse_split("/sys/kernel/btf/nf_conntrack", vmlinux.get()));
    if (module) {
      b = module.get();
      conn = btf__find_by_name_kind(b, "nf_conn", BTF_KIND_STRUCT);
    }
  }
  if (conn < 0)
    return Error{"`isolate ... nat` reads conntrack, but this kernel's BTF has no struct nf_conn: load the "
                 "nf_conntrack module (modprobe nf_conntrack) or drop `nat` from the policy"};
  auto hash = member_of(b, conn, "tuplehash");
  const btf_type* arr = hash ? btf__type_by_id(b, static_cast<uint32_t>(hash->second)) : nullptr;
  if (!arr || !btf_is_array(arr)) return Error{"struct nf_conn in this kernel's BTF has no tuplehash[] array"};
  auto tuple = member_of(b, btf__resolve_type(b, btf_array(arr)->type), "tuple");
  auto src = tuple ? member_of(b, tuple->second, "src") : std::nullopt;
  auto u3 = src ? member_of(b, src->second, "u3") : std::nullopt;
  if (!u3) return Error{"struct nf_conn in this kernel's BTF has no tuplehash[0].tuple.src.u3"};
  // tuplehash[IP_CT_DIR_ORIGINAL] is element 0.
  return hash->first + tuple->first + src->first + u3->first;
}

Status LoadedPolicy::load() {
  if (loaded_) return {};
  clear_warnings();
  // Load-time switches, when the object has them.
  if (bpf_map* cfg = bpf_object__find_map_by_name(obj_.get(), QOS_CFG_SECTION)) {
    size_t size = 0;
    const void* init = bpf_map__initial_value(cfg, &size);
    // An older qosc's section ends before unlisted_queue.
    constexpr size_t kBeforeUnlistedQueue = offsetof(qos_cfg, unlisted_queue);
    if (!init || (size != sizeof(qos_cfg) && size != kBeforeUnlistedQueue))
      return Error{fmt::format("{} has a damaged {} section ({} bytes, expected {}): recompile it", name_,
                               QOS_CFG_SECTION, size, sizeof(qos_cfg))};
    if (size < sizeof(qos_cfg) && opts_.unlisted_queue)
      return Error{fmt::format("{} was compiled by a qosc that cannot steer packets to TX queue 0, which one HTB per "
                               "TX queue needs: recompile it with this qosc, or attach with --tx-queues 1",
                               name_)};
    qos_cfg c{};
    std::memcpy(&c, init, size);
    c.xdp_meta = opts_.xdp_meta ? 1 : 0;
    c.unlisted_queue = opts_.unlisted_queue;
    if (std::any_of(manifest_.classes.begin(), manifest_.classes.end(),
                    [](const auto& k) { return k.isolate && k.isolate->nat; }) ||
        (manifest_.hosts && manifest_.hosts->nat)) {   // `hosts ... nat` reads conntrack the same way
      auto off = conntrack_source_offset();
      if (!off) return off.error();
      c.ct_src_off = *off;
    }
    if (int err = bpf_map__set_initial_value(cfg, &c, size))
      return errno_error(-err, fmt::format("cannot set the load-time switches of {}", name_));
  }

  auto t0 = std::chrono::steady_clock::now();
  int err = bpf_object__load(obj_.get());
  load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (err) {
    // A verifier rejection leaves the log in the failing program's buffer.
    for (Hook h : kHooks) {
      const char* log = log_[static_cast<int>(h)].get();
      if (!log || !log[0]) continue;
      bpf_program* prog = program(h);
      Error e;
      e.code = err < 0 ? -err : err;
      std::string why = verifier_summary(log);
      e.message = fmt::format("the kernel's verifier rejected program {} of {}: {}", bpf_program__name(prog), name_,
                              why.empty() ? std::string(std::strerror(e.code)) : why);
      if (e.code == ENOSPC)
        e.message += "\n  (the verifier log did not fit the buffer; the summary is from its last part)";
      // The digest matched: the code is what qosc generated.
      if (has_manifest_ && intact_) {
        e.message += "\n  qosc generated code the kernel refuses: this is a bug in qosc, please report it";
        e.kind = ErrorKind::QoscBug;
      }
      e.detail = fmt::format("-- verifier log of {} --\n{}", bpf_program__name(prog), log);
      return e;
    }
    Error e = errno_error(err, fmt::format("cannot load {} into the kernel", name_));
    if (auto w = last_warning(); !w.empty()) e.message += "\n  libbpf: " + w;
    e.detail = all_warnings();
    return e;
  }
  loaded_ = true;
  if (Status s = fill_tables(); !s) return s;
  // Load time includes filling the load-time tables (maps strategy).
  load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {};
}

Result<LoadedPolicy> LoadedPolicy::load_file(const std::string& path, const LoadOptions& opts) {
  auto r = open_file(path, opts);
  if (!r) return r;
  if (Status s = r->load(); !s) return s.error();
  return r;
}

Result<LoadedPolicy> LoadedPolicy::load_memory(std::span<const unsigned char> elf, std::string name,
                                               const LoadOptions& opts) {
  auto r = open_memory(elf, std::move(name), opts);
  if (!r) return r;
  if (Status s = r->load(); !s) return s.error();
  return r;
}

#ifndef ENOTSUPP
#define ENOTSUPP 524   // kernel-internal "operation not supported" some map types return
#endif

// Load-time tables (qosc's "maps" strategy): the section named by the
// manifest holds map contents (format: qos_abi.h, "Load-time
// tables"). Filled right after load, before any program can run.
Status LoadedPolicy::fill_tables() {
  if (manifest_.tables_section.empty()) return {};
  auto damaged = [&](const std::string& what) {
    return Error{fmt::format("{}: load-time tables (section {}) are damaged: {}; recompile the policy", name_,
                             manifest_.tables_section, what),
                 {}, 0, ErrorKind::Damaged};
  };
  std::string err;
  auto sec = qosc::read_elf_section(elf_, manifest_.tables_section, &err);
  if (!sec) return damaged(err);
  auto tables = qosc::decode_load_tables(*sec, &err);
  if (!tables) return damaged(err);
  for (const qosc::LoadTable& th : *tables) {
    const std::string& mname = th.name;
    const bool dense = th.dense();
    const unsigned char* data = th.data.data();
    bpf_map* m = bpf_object__find_map_by_name(obj_.get(), mname.c_str());
    if (!m) return damaged(fmt::format("no map {}", mname));
    if (bpf_map__key_size(m) != th.key_size || bpf_map__value_size(m) != th.value_size)
      return damaged(fmt::format("map {} has key/value sizes {}/{}, the table {}/{}", mname, bpf_map__key_size(m),
                                 bpf_map__value_size(m), th.key_size, th.value_size));
    if (th.count > bpf_map__max_entries(m))
      return damaged(fmt::format("map {} holds {} entries, the table has {}", mname, bpf_map__max_entries(m), th.count));
    const int fd = bpf_map__fd(m);
    if (dense) {
      // Arrays: batched updates (one syscall per chunk), element by element
      // where the kernel has no batch support for the map.
      constexpr uint32_t kChunk = 16384;
      std::vector<uint32_t> keys;
      bool batched = true;
      for (uint32_t k0 = 0; k0 < th.count; k0 += kChunk) {
        uint32_t n = std::min(kChunk, th.count - k0);
        const unsigned char* vals = data + size_t(k0) * th.value_size;
        if (batched) {
          keys.resize(n);
          for (uint32_t k = 0; k < n; ++k) keys[k] = k0 + k;
          uint32_t done = n;
          LIBBPF_OPTS(bpf_map_batch_opts, bo);
          if (bpf_map_update_batch(fd, keys.data(), vals, &done, &bo) == 0 && done == n) continue;
          if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP && errno != ENOTSUPP)
            return errno_error(errno, fmt::format("cannot fill map {} of {}", mname, name_));
          batched = false;
        }
        for (uint32_t k = 0; k < n; ++k) {
          uint32_t key = k0 + k;
          if (bpf_map_update_elem(fd, &key, vals + size_t(k) * th.value_size, BPF_ANY) != 0)
            return errno_error(errno, fmt::format("cannot fill map {} of {}", mname, name_));
        }
      }
    } else {
      const size_t step = size_t(th.key_size) + th.value_size;
      for (uint32_t k = 0; k < th.count; ++k)
        if (bpf_map_update_elem(fd, data + k * step, data + k * step + th.key_size, BPF_ANY) != 0)
          return errno_error(errno, fmt::format("cannot fill map {} of {}", mname, name_));
    }
  }
  return {};
}

bpf_program* LoadedPolicy::program(Hook h) const {
  if (!obj_) return nullptr;
  const std::string n = h == Hook::Xdp ? manifest_.xdp_prog
                      : h == Hook::Tc ? manifest_.tc_prog
                      : manifest_.hosts ? manifest_.hosts->steer_prog
                                        : "";
  return n.empty() ? nullptr : bpf_object__find_program_by_name(obj_.get(), n.c_str());
}

int LoadedPolicy::prog_fd(Hook h) const {
  bpf_program* p = program(h);
  int fd = (p && loaded_) ? bpf_program__fd(p) : -1;
  return fd < 0 ? -1 : fd;
}

bpf_map* LoadedPolicy::map(MapRole r) const {
  if (!obj_) return nullptr;
  const std::string& n = r == MapRole::Stats ? manifest_.stats_map : manifest_.flows_map;
  return bpf_object__find_map_by_name(obj_.get(), n.c_str());
}

int LoadedPolicy::map_fd(MapRole r) const {
  bpf_map* m = map(r);
  int fd = (m && loaded_) ? bpf_map__fd(m) : -1;
  return fd < 0 ? -1 : fd;
}

std::string LoadedPolicy::class_name(int32_t id) const {
  if (id < 0) return "drop";
  if (static_cast<size_t>(id) < manifest_.classes.size()) return manifest_.classes[static_cast<size_t>(id)].name;
  return fmt::format("class#{}", id);
}

int32_t LoadedPolicy::class_from_htb_minor(uint32_t minor) const {
  for (const auto& c : manifest_.classes) {
    if (c.leaf_minor() == minor) return static_cast<int32_t>(c.id);
    // An isolated class's sparse flows go to its second leaf.
    if (c.isolate && QOS_HTB_SPARSE_BASE + c.id == minor) return static_cast<int32_t>(c.id);
  }
  return -1;
}

}  // namespace qosrun
