#pragma once
// The libbpf loader core used by every qosrun command: opens a compiled
// policy (.bpf.o from a file or from memory), reads its manifest, loads it
// into the kernel with the verifier log captured, fills load-time tables and
// hands out program/map fds by role.
//
// Ownership: LoadedPolicy owns the bpf_object (and through it every program
// and map fd); Fd owns one file descriptor. Both are move-only. Failures come
// back as Error values with a short message for people; long material (the
// verifier log) is kept in Error::detail and shown only when asked (-vv).
#include <cstdint>
#include <iosfwd>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "qosc/manifest.hpp"

struct bpf_object;
struct bpf_program;
struct bpf_map;

namespace qosrun {

// ---- errors and results ---------------------------------------------------

// What kind of failure an Error is: decides the exit code (qosrun/cli.hpp) and
// lets callers react without reading the message.
enum class ErrorKind : uint8_t {
  Failed,      // the user's input or the environment (a bad file, not root, the kernel refused ...)
  Damaged,     // an object was damaged or changed after qosc wrote it
  QoscBug,     // qosc or qosrun is at fault: the verifier refused an object whose digest matched
};

struct Error {
  Error() = default;
  explicit Error(std::string msg, std::string det = {}, int err = 0, ErrorKind k = ErrorKind::Failed)
      : message(std::move(msg)), detail(std::move(det)), code(err), kind(k) {}
  std::string message;   // one or two lines: what failed, what to do next
  std::string detail;    // long material (verifier log); printed only with -vv
  int code = 0;          // positive errno when the kernel/libbpf failed, else 0
  ErrorKind kind = ErrorKind::Failed;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}    // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // success
  Status(Error error) : error_(std::move(error)) {}  // NOLINT
  bool ok() const { return !error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

// "what: strerror(err)" plus a hint for the errors people actually hit
// (EPERM when not root, ENOENT for files ...). `err` may be negative.
Error errno_error(int err, std::string what);

// Print an error the way every qosrun command does: "qosrun: error: MESSAGE",
// then the detail when verbosity >= 2 (or a hint that -vv shows more).
void print_error(const Error& e, int verbosity);   // to stderr
void print_error(std::ostream& os, const Error& e, int verbosity);

// ---- file descriptors -----------------------------------------------------

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// ---- whole files -------------------------------------------------------------

// The whole of `path` (an error carries errno as its code: ENOENT when absent).
Result<std::string> read_file_text(const std::string& path);
// `path` holds `text`, whole or not at all: written to PATH.tmp, renamed over it.
Status replace_file(const std::string& path, std::string_view text);
// ... `parts` one after another, each written from where it is (no joined copy).
Status replace_file(const std::string& path, std::span<const std::string_view> parts);

// A file mapped read-only: a large file read without copying it into a
// fresh buffer (whose every page is a fault, slow on a VM). The mapping
// stays valid when the file is replaced (renamed over) meanwhile; only for
// files written that way (qosrun's own state), never for one that may be
// truncated in place while mapped (a user's file: SIGBUS).
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  std::string_view text() const { return {static_cast<const char*>(data_), size_}; }

 private:
  friend Result<MappedFile> map_file(const std::string& path);
  void* data_ = nullptr;
  size_t size_ = 0;
};
// An error carries errno as its code (ENOENT when absent); an empty file maps to no text.
Result<MappedFile> map_file(const std::string& path);

// ---- libbpf chatter ---------------------------------------------------------

// 0/1: libbpf prints nothing (its warnings are kept and folded into our error
// messages); 2 (-vv): libbpf prints everything, debug included, to stderr.
void set_libbpf_verbosity(int level);

// ---- the loaded policy ------------------------------------------------------

// Steer: the XDP program of a policy with hosts that qosrun attaches on other
// interfaces (attach --steer-from; manifest hosts.steer_prog).
enum class Hook : uint8_t { Xdp, Tc, Steer };
inline constexpr Hook kHooks[] = {Hook::Xdp, Hook::Tc, Hook::Steer};
const char* to_string(Hook h);   // "xdp", "tc", "steer"

enum class MapRole : uint8_t { Stats, Flows };

struct LoadOptions {
  int verbosity = 0;          // >= 2 keeps the full verifier log in Error::detail
  bool load_xdp = true;       // load qos_xdp (program named by the manifest)
  bool load_tc = true;        // load qos_tc
  bool load_steer = false;    // load qos_steer (--steer-from)
  // The object must carry a qosc manifest. Off for hand-written objects (the
  // benchmark's baselines): then programs are looked up by the default names
  // and programs/maps the object lacks simply have no fd.
  bool require_manifest = true;
  // Maps the object declares as pinned are pinned under this directory (a
  // bpffs mount). Empty: nothing is pinned and no bpffs is needed.
  std::string pin_root;
  // Load-time switch (struct qos_cfg in qos_abi.h): the XDP program writes the
  // class into the packet's metadata (qosrun classify and the tests read it
  // there). Attached programs leave it off unless asked (qosrun --xdp-meta):
  // nothing on the egress path reads it and it costs ~9 ns per packet.
  // Objects without the switch (older qosc) always write it.
  bool xdp_meta = true;
  // Load-time switch qos_cfg.unlisted_queue: the TC program's queue_mapping
  // for packets of no listed host (0: left alone; 1: TX queue 0, under
  // qosrun's one-HTB-per-queue tree, qosrun/txq.hpp). An object without the
  // field (older qosc) is refused when it is not 0.
  uint32_t unlisted_queue = 0;
  // Per-program verifier log buffer, used only when a load fails.
  size_t log_size = 16u << 20;
};

// offsetof(struct nf_conn, tuplehash[0].tuple.src.u3) in the running kernel,
// from its BTF: where `isolate ... nat` reads a connection's original source
// (qos_abi.h, qos_cfg.ct_src_off).
Result<uint32_t> conntrack_source_offset();

struct BpfObjectDeleter { void operator()(bpf_object* obj) const; };
using BpfObjectPtr = std::unique_ptr<bpf_object, BpfObjectDeleter>;

class LoadedPolicy {
 public:
  // Open (check the object's digest, parse the ELF, read the manifest)
  // without loading into the kernel: callers may adjust the bpf_object
  // (object()) before load(). An object qosc wrote must be as it wrote it:
  // a damaged one (digest mismatch, truncated, no digest although its
  // manifest is of a format that has one) or one from before digests is
  // refused before libbpf reads it.
  static Result<LoadedPolicy> open_file(const std::string& path, const LoadOptions& opts = {});
  static Result<LoadedPolicy> open_memory(std::span<const unsigned char> elf, std::string name,
                                          const LoadOptions& opts = {});
  // Open + load.
  static Result<LoadedPolicy> load_file(const std::string& path, const LoadOptions& opts = {});
  static Result<LoadedPolicy> load_memory(std::span<const unsigned char> elf, std::string name,
                                          const LoadOptions& opts = {});

  // Load into the kernel (verifier), then fill load-time tables.
  Status load();
  bool loaded() const { return loaded_; }
  // Before load(): change LoadOptions::xdp_meta.
  void set_xdp_meta(bool on) { opts_.xdp_meta = on; }
  // Before load(): change LoadOptions::unlisted_queue.
  void set_unlisted_queue(uint32_t q) { opts_.unlisted_queue = q; }

  LoadedPolicy(LoadedPolicy&&) noexcept;
  LoadedPolicy& operator=(LoadedPolicy&&) noexcept;
  LoadedPolicy(const LoadedPolicy&) = delete;
  LoadedPolicy& operator=(const LoadedPolicy&) = delete;
  ~LoadedPolicy();

  const std::string& name() const { return name_; }
  bool has_manifest() const { return has_manifest_; }
  const qosc::Manifest& manifest() const { return manifest_; }
  std::span<const unsigned char> elf() const { return elf_; }

  bpf_object* object() const { return obj_.get(); }
  bpf_program* program(Hook h) const;  // nullptr when the object has none
  int prog_fd(Hook h) const;           // -1 when not loaded
  bpf_map* map(MapRole r) const;
  int map_fd(MapRole r) const;

  uint32_t class_count() const { return static_cast<uint32_t>(manifest_.classes.size()); }
  // Class name for an id; "drop" for a negative id (a `drop` rule).
  std::string class_name(int32_t id) const;
  // Class id from the HTB minor the TC program wrote into skb->priority, or -1.
  int32_t class_from_htb_minor(uint32_t minor) const;

  double load_seconds() const { return load_seconds_; }   // time spent in load()

 private:
  LoadedPolicy() = default;
  // open_file and open_memory: `name` for libbpf and the later messages,
  // `shown` for the messages about the file itself (open_file: its path).
  static Result<LoadedPolicy> open_bytes(std::vector<unsigned char> bytes, std::string name, std::string shown,
                                         const LoadOptions& opts);
  Status fill_tables();

  std::string name_;
  std::vector<unsigned char> elf_;   // libbpf reads from it until load()
  BpfObjectPtr obj_;
  qosc::Manifest manifest_;
  bool has_manifest_ = false;
  bool intact_ = false;   // its digest matched (qosc/object_digest.hpp): as qosc wrote it
  bool loaded_ = false;
  LoadOptions opts_;
  double load_seconds_ = 0;
  // Verifier log buffers, one per hook, given to libbpf before load().
  std::unique_ptr<char[]> log_[std::size(kHooks)];
};

// The verifier's reason in one line: the last meaningful line of a log
// (skipping "processed N insns", "verification time" and the like).
std::string verifier_summary(std::string_view log);

}  // namespace qosrun
