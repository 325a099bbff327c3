// Persistent per-interface state: see qosrun/state.hpp.
#include "qosrun/state.hpp"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

namespace qosrun::state {

namespace {

std::string env_or(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

Status mkdirs(const std::string& path, mode_t mode) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') cur = "";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return errno_error(errno, fmt::format("cannot create {}", cur));
  }
  return {};
}

}  // namespace

// Interfaces of different network namespaces may share a name (every test
// namespace has its "eth0"): outside the host's namespace the key carries the
// namespace's cookie, so their records, pins and locks never meet, and a
// namespace deleted with its policy attached leaves nothing that a later
// namespace inherits (as it would with the inode, which the kernel reuses).
std::string state_key(const std::string& ifname) {
  // The host's namespace: init's, or (where /proc/1 cannot be read, as in
  // some VMs) the fixed inode the kernel gives init_net (PROC_NET_INIT_INO).
  // Comparing inodes is sound here: both namespaces are alive right now.
  constexpr uint64_t kInitNetIno = 0xEFFFFFF9u;
  struct stat host{};
  uint64_t here = netns_inode();
  uint64_t init = ::stat("/proc/1/ns/net", &host) == 0 ? host.st_ino : kInitNetIno;
  if (here == 0 || here == init) return ifname;
  uint64_t cookie = netns_cookie();
  return cookie ? fmt::format("{}@ns{}", ifname, cookie) : fmt::format("{}@nsi{}", ifname, here);
}

namespace {
std::string state_root() { return env_or("QOSRUN_STATE_ROOT", "/run/qosc"); }

// The paths of the record kept under `key` (see state_key).
Paths paths_for_key(const std::string& key) {
  Paths p;
  p.pin_root = env_or("QOSRUN_PIN_ROOT", "/sys/fs/bpf/qosc");
  const std::string run = state_root();
  p.pin_dir = p.pin_root + "/" + key;
  p.state_dir = run + "/" + key;
  p.state_file = p.state_dir + "/state.json";
  p.adaptive_file = p.state_dir + "/adaptive.json";
  p.hosts_file = p.state_dir + "/hosts.state";
  p.lock_file = run + "/" + key + ".lock";
  return p;
}
}  // namespace

Paths paths_for(const std::string& ifname) { return paths_for_key(state_key(ifname)); }

std::string state_file(const std::string& ifname) { return paths_for(ifname).state_file; }

// ---- failure injection ---------------------------------------------------------------------

namespace {
bool env_names(const char* var, std::string_view step) {
  const char* v = std::getenv(var);
  if (!v || !*v) return false;
  std::string_view all(v);
  while (!all.empty()) {
    size_t comma = all.find(',');
    if (all.substr(0, comma) == step) return true;
    if (comma == std::string_view::npos) break;
    all.remove_prefix(comma + 1);
  }
  return false;
}
}  // namespace

Status fail_point(std::string_view step) {
  if (env_names("QOSRUN_PAUSE_AT", step)) {
    // For tests that kill qosrun in the middle of a step sequence.
    std::fprintf(stderr, "qosrun: paused at step '%.*s' (QOSRUN_PAUSE_AT)\n", static_cast<int>(step.size()),
                 step.data());
    std::fflush(stderr);
    std::this_thread::sleep_for(std::chrono::seconds(30));
  }
  if (env_names("QOSRUN_FAIL_AT", step)) {
    Error e{fmt::format("injected failure at step '{}' (QOSRUN_FAIL_AT)", step)};
    e.code = EIO;
    return e;
  }
  return {};
}

// ---- lock ------------------------------------------------------------------------------------

Result<Lock> Lock::acquire(const std::string& ifname, int wait_ms) {
  if (const char* w = std::getenv("QOSRUN_LOCK_WAIT_MS"); w && *w) wait_ms = std::atoi(w);
  return acquire_file(paths_for(ifname).lock_file, ifname, wait_ms);
}

Result<Lock> Lock::acquire_file(const std::string& path, const std::string& what, int wait_ms) {
  std::string dir = path.substr(0, path.rfind('/'));
  if (Status st = mkdirs(dir, 0755); !st) return st.error();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return errno_error(errno, fmt::format("cannot open the lock {}", path));
    Lock l;
    l.fd_.reset(fd);
    l.path_ = path;
    for (;;) {
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0) break;
      if (errno != EWOULDBLOCK && errno != EINTR) return errno_error(errno, fmt::format("cannot lock {}", path));
      if (std::chrono::steady_clock::now() >= deadline) {
        // Who holds it? The holder writes its pid into the file.
        std::string holder;
        char buf[32] = {};
        if (::pread(fd, buf, sizeof buf - 1, 0) > 0) holder = buf;
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
        Error e{fmt::format("{} is busy: another qosrun{} is changing it right now (lock {}); wait for it to finish",
                            what, holder.empty() ? "" : " (pid " + holder + ")", path)};
        e.code = EBUSY;
        return e;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // The holder before us may have removed the file (remove_file): then the
    // lock we hold guards nothing, and the next qosrun would lock a new file.
    struct stat held{}, now{};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev) {
      std::string me = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) == 0) (void)::pwrite(fd, me.data(), me.size(), 0);
      return l;
    }
  }
}

void Lock::remove_file() {
  if (fd_ && !path_.empty()) (void)::unlink(path_.c_str());
}

// ---- bpffs ------------------------------------------------------------------------------------

Status ensure_bpffs(const std::string& pin_root, bool* mounted) {
  if (mounted) *mounted = false;
  // Find the bpffs: the pin root itself or one of its parents must be one.
  std::string dir = pin_root;
  for (;;) {
    struct statfs sfs{};
    if (::statfs(dir.c_str(), &sfs) == 0) {
      if (static_cast<unsigned long>(sfs.f_type) == BPF_FS_MAGIC) return mkdirs(pin_root, 0700);
      break;   // the deepest existing directory is not on a bpffs
    }
    auto slash = dir.rfind('/');
    if (slash == std::string::npos || slash == 0) break;
    dir = dir.substr(0, slash);
  }
  // Mount a bpffs on the parent of the pin root (/sys/fs/bpf for /sys/fs/bpf/qosc).
  std::string mnt = pin_root.substr(0, pin_root.rfind('/'));
  if (mnt.empty()) mnt = pin_root;
  if (Status st = mkdirs(mnt, 0700); !st) return st;
  // Two qosruns starting at once must not stack two mounts (the second would
  // hide the first one's pins): serialise on the mount point's parent and
  // look again once we hold it.
  std::string parent = mnt.substr(0, mnt.rfind('/'));
  Fd guard(::open(parent.empty() ? "/" : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (guard) (void)::flock(guard.get(), LOCK_EX);
  struct statfs again{};
  if (::statfs(mnt.c_str(), &again) == 0 && static_cast<unsigned long>(again.f_type) == BPF_FS_MAGIC)
    return mkdirs(pin_root, 0700);
  if (::mount("bpf", mnt.c_str(), "bpf", 0, "mode=0700") != 0)
    return errno_error(errno, fmt::format("no BPF file system at {} and mounting one failed", mnt));
  if (mounted) *mounted = true;
  return mkdirs(pin_root, 0700);
}

Status pin_fd(int fd, const std::string& path) {
  (void)::unlink(path.c_str());
  if (bpf_obj_pin(fd, path.c_str()) != 0) return errno_error(errno, fmt::format("cannot pin {}", path));
  return {};
}

Status remove_pins(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return {};
    return errno_error(errno, fmt::format("cannot open {}", dir));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error(errno, fmt::format("cannot remove {}", path));
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return errno_error(errno, fmt::format("cannot remove {}", dir));
  return {};
}

// ---- processes ---------------------------------------------------------------------------------

uint64_t process_start_time(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  if (!in) return 0;
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream rest(s.substr(rp + 2));
  std::string field;
  // Fields after the command: 3 (state) ... 22 (starttime).
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

bool process_alive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  uint64_t st = process_start_time(pid);
  if (st == 0) return false;
  // A zombie still has /proc/<pid>/stat; treat it as gone.
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp != std::string::npos && rp + 2 < s.size() && (s[rp + 2] == 'Z' || s[rp + 2] == 'X')) return false;
  return start_time == 0 || st == start_time;
}

uint64_t netns_inode() {
  struct stat st{};
  if (::stat("/proc/thread-self/ns/net", &st) != 0 && ::stat("/proc/self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

uint64_t netns_cookie() {
  Fd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return 0;
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (::getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) return 0;
  return cookie;
}

// Read from a thread that enters the namespace: setns changes only the
// calling thread's.
uint64_t netns_cookie_of(const std::string& nsfile) {
  Fd ns(::open(nsfile.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return 0;
  uint64_t cookie = 0;
  std::thread([&] {
    if (::setns(ns.get(), CLONE_NEWNET) == 0) cookie = netns_cookie();
  }).join();
  return cookie;
}

namespace {

// Does a namespace with this cookie still exist? Every namespace that can
// still be entered is a process's (/proc/PID/ns/net) or bind-mounted
// (/run/netns/NAME); among those with the recorded inode (usually none), one
// must also have the cookie, because the kernel hands a dead namespace's
// inode number to new ones.
bool netns_exists(uint64_t cookie, uint64_t inode) {
  if (cookie == netns_cookie()) return true;
  std::vector<std::string> candidates;
  auto consider = [&](const std::string& f) {
    struct stat st{};
    if (::stat(f.c_str(), &st) == 0 && (inode == 0 || st.st_ino == inode)) candidates.push_back(f);
  };
  for (const char* dir : {"/proc", "/run/netns"}) {
    DIR* d = ::opendir(dir);
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      if (std::string_view(dir) == "/proc") {
        if (n.find_first_not_of("0123456789") != std::string::npos) continue;
        consider(fmt::format("/proc/{}/ns/net", n));
      } else {
        consider(fmt::format("/run/netns/{}", n));
      }
    }
    ::closedir(d);
  }
  // Namespaces that share an inode are the same namespace: ask each inode once.
  std::sort(candidates.begin(), candidates.end());
  std::vector<uint64_t> asked;
  for (const auto& f : candidates) {
    struct stat st{};
    if (::stat(f.c_str(), &st) != 0 || std::find(asked.begin(), asked.end(), st.st_ino) != asked.end()) continue;
    asked.push_back(st.st_ino);
    if (netns_cookie_of(f) == cookie) return true;
  }
  return false;
}

}  // namespace

// ---- the record ----------------------------------------------------------------------------------

bool netns_is_here(int format, uint64_t netns) {
  // Records of format 1 named the namespace by its inode.
  return format >= 2 ? netns == netns_cookie() : netns == netns_inode();
}

bool Record::in_this_netns() const { return netns_is_here(format, netns); }

namespace {
int pinned_or_recorded(const Record& r, const std::string& name, const std::map<std::string, uint32_t>& ids,
                       int (*by_id)(uint32_t)) {
  int fd = bpf_obj_get((r.pin_dir + "/" + name).c_str());
  if (fd >= 0) return fd;
  auto it = ids.find(name);
  return it == ids.end() ? -1 : by_id(it->second);
}
}  // namespace

int Record::map_fd(const std::string& name) const { return pinned_or_recorded(*this, name, maps, bpf_map_get_fd_by_id); }
int Record::prog_fd(const std::string& name) const {
  return pinned_or_recorded(*this, name, progs, bpf_prog_get_fd_by_id);
}

std::string Record::stale_reason() const {
  if (owner_pid != 0 && !process_alive(owner_pid, owner_start))
    return fmt::format("qosrun pid {} that owned it is gone", owner_pid);
  if (phase == Phase::Attaching) return {};   // its owner is still at work
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) return fmt::format("interface {} is gone", ifname);
  if (static_cast<int>(idx) != ifindex)
    return fmt::format("interface {} is another one now (ifindex {}, recorded {})", ifname, idx, ifindex);
  if (!progs.empty()) {
    bool any = false, known = true;
    for (const auto& [name, id] : progs) {
      int fd = bpf_prog_get_fd_by_id(id);
      if (fd >= 0) {
        ::close(fd);
        any = true;
      } else if (errno != ENOENT) {
        known = false;   // no permission to look: assume it is there
      }
    }
    if (!any && known) return "its programs are gone from the kernel";
  }
  return {};
}

namespace {

std::string hex(const std::vector<uint8_t>& b) {
  std::string s;
  for (uint8_t x : b) s += fmt::format("{:02x}", x);
  return s;
}
std::vector<uint8_t> unhex(const std::string& s) {
  std::vector<uint8_t> b;
  for (size_t i = 0; i + 1 < s.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoul(s.substr(i, 2), nullptr, 16)));
  return b;
}

nlohmann::json qdisc_json(const nl::QdiscInfo& q) {
  return {{"kind", q.kind},           {"handle", q.handle},           {"parent", q.parent},
          {"has_options", q.has_options}, {"options_type", q.options_type}, {"options", hex(q.options)}};
}
nl::QdiscInfo qdisc_from(const nlohmann::json& j, int ifindex) {
  nl::QdiscInfo q;
  q.ifindex = ifindex;
  q.kind = j.at("kind").get<std::string>();
  q.handle = j.at("handle").get<uint32_t>();
  q.parent = j.at("parent").get<uint32_t>();
  q.has_options = j.at("has_options").get<bool>();
  q.options_type = j.at("options_type").get<uint16_t>();
  q.options = unhex(j.at("options").get<std::string>());
  return q;
}

nlohmann::json tc_json(const TcAttachment& t) {
  return {{"clsact_created", t.clsact_created}, {"attached", t.attached}, {"handle", t.handle},
          {"priority", t.priority},             {"prog_id", t.prog_id}};
}
TcAttachment tc_from(const nlohmann::json& j) {
  TcAttachment t;
  t.clsact_created = j.at("clsact_created").get<bool>();
  t.attached = j.at("attached").get<bool>();
  t.handle = j.at("handle").get<uint32_t>();
  t.priority = j.at("priority").get<uint32_t>();
  t.prog_id = j.at("prog_id").get<uint32_t>();
  return t;
}

nlohmann::json side_json(const Side& s) {
  nlohmann::json j{{"ifname", s.ifname}, {"ifindex", s.ifindex}, {"tc", tc_json(s.tc)}, {"has_queues", s.has_queues}};
  if (s.has_queues) {
    j["queues"] = {{"created", s.queues.created},
                   {"plan", htb::to_json(s.queues.plan)},
                   {"previous", s.queues.previous ? qdisc_json(*s.queues.previous) : nlohmann::json(nullptr)},
                   {"previous_restorable", s.queues.previous_restorable}};
    if (s.queues.tx) j["queues"]["tx"] = txq::to_json(*s.queues.tx);
  }
  return j;
}
Side side_from(const nlohmann::json& j) {
  Side s;
  s.ifname = j.at("ifname").get<std::string>();
  s.ifindex = j.at("ifindex").get<int>();
  s.tc = tc_from(j.at("tc"));
  s.has_queues = j.at("has_queues").get<bool>();
  if (s.has_queues) {
    const auto& q = j.at("queues");
    s.queues.created = q.at("created").get<bool>();
    s.queues.plan = htb::plan_from_json(q.at("plan"));
    if (!q.at("previous").is_null()) s.queues.previous = qdisc_from(q.at("previous"), s.ifindex);
    s.queues.previous_restorable = q.at("previous_restorable").get<bool>();
    if (auto tx = q.find("tx"); tx != q.end() && !tx->is_null()) s.queues.tx = txq::layout_from_json(*tx);   // absent: one HTB
  }
  return s;
}

}  // namespace

const char* to_string(Phase p) {
  switch (p) {
    case Phase::Attaching: return "attaching";
    case Phase::Attached: return "attached";
    case Phase::Detaching: return "detaching";
  }
  return "?";
}

const char* to_string(XdpAttachMode m) { return m == XdpAttachMode::Skb ? "skb" : "native"; }

namespace {
Phase phase_from(const std::string& s) {
  for (Phase p : {Phase::Attaching, Phase::Attached, Phase::Detaching})
    if (s == to_string(p)) return p;
  throw std::runtime_error(fmt::format("phase \"{}\" is not known to this qosrun", s));
}
// "" in a record written before its XDP program was attached.
XdpAttachMode xdp_mode_from(const std::string& s) {
  if (s == "skb") return XdpAttachMode::Skb;
  if (s == "native" || s.empty()) return XdpAttachMode::Native;
  throw std::runtime_error(fmt::format("XDP mode \"{}\" is not known to this qosrun", s));
}
nlohmann::json xdp_json(const XdpAttachment& x) {
  return {{"attached", x.attached}, {"mode", to_string(x.mode)}, {"prog_id", x.prog_id}};
}
XdpAttachment xdp_from(const nlohmann::json& x) {
  return {x.at("attached").get<bool>(), xdp_mode_from(x.at("mode").get<std::string>()), x.at("prog_id").get<uint32_t>()};
}
}  // namespace

nlohmann::json to_json(const Record& r) {
  nlohmann::json j{{"format", r.format},
                   {"phase", to_string(r.phase)},
                   {"ifname", r.ifname},
                   {"ifindex", r.ifindex},
                   {"netns", r.netns},
                   {"netns_inode", r.netns_inode},
                   {"owner_pid", r.owner_pid},
                   {"owner_start", r.owner_start},
                   {"foreground", r.foreground},
                   {"object", r.object},
                   {"created", r.created},
                   {"generation", r.generation},
                   {"manifest", qosc::to_json(r.manifest)},
                   {"main", side_json(r.main)},
                   {"xdp", xdp_json(r.xdp)},
                   {"progs", r.progs},
                   {"maps", r.maps},
                   {"pin_dir", r.pin_dir},
                   {"xdp_meta", r.xdp_meta}};
  if (r.ingress) {
    const Ingress& i = *r.ingress;
    j["ingress"] = {{"ifb_name", i.ifb_name},
                    {"ifb_ifindex", i.ifb_ifindex},
                    {"ifb_created", i.ifb_created},
                    {"redirect_attached", i.redirect_attached},
                    {"clsact_created", i.clsact_created},
                    {"redirect_prio", i.redirect_prio},
                    {"redirect_handle", i.redirect_handle},
                    {"ifb", side_json(i.ifb)}};
  } else {
    j["ingress"] = nullptr;
  }
  if (!r.steering.empty()) {   // absent: no steering (and in records of older qosrun)
    nlohmann::json st = nlohmann::json::array();
    for (const auto& s : r.steering) st.push_back({{"ifname", s.ifname}, {"ifindex", s.ifindex}, {"xdp", xdp_json(s.xdp)}});
    j["steering"] = std::move(st);
  }
  if (r.adaptive)
    j["adaptive"] = {{"reflectors", r.adaptive->reflectors},
                     {"supervisor_pid", r.adaptive->supervisor_pid},
                     {"supervisor_start", r.adaptive->supervisor_start}};
  if (r.reloading) {
    const ReloadJournal& rl = *r.reloading;
    j["reloading"] = {{"pid", rl.pid}, {"start", rl.start}, {"object", rl.object}, {"main_to", htb::to_json(rl.main_to)}};
    if (rl.ifb_to) j["reloading"]["ifb_to"] = htb::to_json(*rl.ifb_to);
  }
  return j;
}

Record record_from_json(const nlohmann::json& j) {
  Record r;
  r.format = j.at("format").get<int>();
  if (r.format != 1 && r.format != 2) throw std::runtime_error(fmt::format("state format {} is not known to this qosrun", r.format));
  r.phase = phase_from(j.at("phase").get<std::string>());
  r.ifname = j.at("ifname").get<std::string>();
  r.ifindex = j.at("ifindex").get<int>();
  r.netns = j.at("netns").get<uint64_t>();
  r.netns_inode = j.value("netns_inode", uint64_t{0});
  r.owner_pid = j.at("owner_pid").get<pid_t>();
  r.owner_start = j.at("owner_start").get<uint64_t>();
  r.foreground = j.at("foreground").get<bool>();
  r.object = j.at("object").get<std::string>();
  r.created = j.at("created").get<std::string>();
  r.generation = j.at("generation").get<uint32_t>();
  r.manifest = qosc::manifest_from_json(j.at("manifest"));
  r.xdp_meta = j.value("xdp_meta", false);   // absent in records of older qosrun
  r.main = side_from(j.at("main"));
  r.xdp = xdp_from(j.at("xdp"));
  if (auto st = j.find("steering"); st != j.end())
    for (const auto& e : *st)
      r.steering.push_back({e.at("ifname").get<std::string>(), e.at("ifindex").get<int>(), xdp_from(e.at("xdp"))});
  r.progs = j.at("progs").get<std::map<std::string, uint32_t>>();
  r.maps = j.at("maps").get<std::map<std::string, uint32_t>>();
  r.pin_dir = j.at("pin_dir").get<std::string>();
  if (!j.at("ingress").is_null()) {
    const auto& i = j.at("ingress");
    Ingress g;
    g.ifb_name = i.at("ifb_name").get<std::string>();
    g.ifb_ifindex = i.at("ifb_ifindex").get<int>();
    g.ifb_created = i.at("ifb_created").get<bool>();
    g.redirect_attached = i.at("redirect_attached").get<bool>();
    g.clsact_created = i.at("clsact_created").get<bool>();
    g.redirect_prio = i.at("redirect_prio").get<uint32_t>();
    g.redirect_handle = i.at("redirect_handle").get<uint32_t>();
    g.ifb = side_from(i.at("ifb"));
    r.ingress = std::move(g);
  }
  if (auto a = j.find("adaptive"); a != j.end() && !a->is_null()) {   // absent: a fixed link
    Adaptive ad;
    ad.reflectors = a->at("reflectors").get<std::vector<std::string>>();
    ad.supervisor_pid = a->at("supervisor_pid").get<pid_t>();
    ad.supervisor_start = a->at("supervisor_start").get<uint64_t>();
    r.adaptive = std::move(ad);
  }
  if (auto rl = j.find("reloading"); rl != j.end() && !rl->is_null()) {   // absent: no reload under way
    ReloadJournal jr;
    jr.pid = rl->at("pid").get<pid_t>();
    jr.start = rl->at("start").get<uint64_t>();
    jr.object = rl->at("object").get<std::string>();
    jr.main_to = htb::plan_from_json(rl->at("main_to"));
    if (auto t = rl->find("ifb_to"); t != rl->end()) jr.ifb_to = htb::plan_from_json(*t);
    r.reloading = std::move(jr);
  }
  return r;
}

Result<std::optional<Record>> read(const std::string& ifname) {
  Paths p = paths_for(ifname);
  std::ifstream in(p.state_file);
  if (!in) {
    if (errno == ENOENT) return std::optional<Record>();
    return errno_error(errno, fmt::format("cannot read {}", p.state_file));
  }
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    return std::optional<Record>(record_from_json(j));
  } catch (const std::exception& e) {
    return Error{fmt::format("{} is damaged ({}): remove it and the pins in {} by hand, then check the interface with "
                             "tc qdisc show dev {}",
                             p.state_file, e.what(), p.pin_dir, ifname)};
  }
}

Status write(const Record& r) {
  if (Status f = fail_point("state"); !f) return f;
  Paths p = paths_for(r.ifname);
  if (Status st = mkdirs(p.state_dir, 0755); !st) return st;
  return replace_file(p.state_file, to_json(r).dump(2) + "\n");
}

namespace {
// The state file and its directory (the pins and the lock are the callers').
Status remove_state(const Paths& p) {
  if (::unlink(p.state_file.c_str()) != 0 && errno != ENOENT)
    return errno_error(errno, fmt::format("cannot remove {}", p.state_file));
  (void)::unlink((p.state_file + ".tmp").c_str());
  (void)::unlink(p.adaptive_file.c_str());   // the adaptive controller's live state, stopped before
  (void)::unlink((p.adaptive_file + ".tmp").c_str());
  (void)::unlink((p.state_dir + "/supervisor.log").c_str());
  (void)::unlink(p.hosts_file.c_str());   // the hosts went with the root qdisc
  (void)::unlink((p.hosts_file + ".tmp").c_str());
  (void)::unlink((p.hosts_file + ".journal").c_str());
  (void)::unlink((p.hosts_file + ".journal.tmp").c_str());
  (void)::unlink((p.hosts_file + ".table").c_str());   // the last table applied (hosts apply's quick path)
  (void)::unlink((p.hosts_file + ".table.tmp").c_str());
  if (::rmdir(p.state_dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY)
    return errno_error(errno, fmt::format("cannot remove {}", p.state_dir));
  return {};
}
}  // namespace

Status remove(const std::string& ifname) { return remove_state(paths_for(ifname)); }

std::vector<std::string> list() {
  std::vector<std::string> out;
  const std::string run = state_root();
  DIR* d = ::opendir(run.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st{};
    if (::stat((run + "/" + n + "/state.json").c_str(), &st) != 0) continue;
    // Only this namespace's records, by interface name (see state_key).
    std::string ifname = n.substr(0, n.find('@'));
    if (state_key(ifname) == n) out.push_back(ifname);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
// Whether a map the record names still exists in the kernel (something, e.g.
// its pins, holds it).
bool any_map_alive(const Record& r) {
  for (const auto& [name, id] : r.maps) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
  }
  return false;
}
}  // namespace

std::vector<std::string> remove_orphans() {
  std::vector<std::string> removed;
  const std::string run = state_root();
  DIR* d = ::opendir(run.c_str());
  if (!d) return removed;
  std::vector<std::string> keys, locks;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.find("@ns") != std::string::npos && n.find('.') == std::string::npos) keys.push_back(n);
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".lock") == 0) locks.push_back(n.substr(0, n.size() - 5));
  }
  ::closedir(d);
  // A lock file without a record guards nothing (an attach that failed, a
  // namespace deleted meanwhile): removed when nobody holds it, so /run/qosc
  // holds only what is attached.
  for (const std::string& key : locks) {
    const Paths p = paths_for_key(key);
    if (::access(p.state_file.c_str(), F_OK) == 0) continue;
    auto lock = Lock::acquire_file(p.lock_file, key, 0);
    if (lock && ::access(p.state_file.c_str(), F_OK) != 0) lock->remove_file();
  }
  for (const std::string& key : keys) {
    const Paths p = paths_for_key(key);
    std::ifstream in(p.state_file);
    if (!in) continue;
    Record r;
    try {
      r = record_from_json(nlohmann::json::parse(in));
    } catch (const std::exception&) {
      continue;   // damaged: `qosrun status` in its namespace says so
    }
    // A format-1 record names its namespace by inode only: it cannot be told
    // from a new namespace that got the same inode, so it is left alone.
    if (r.format < 2 || netns_exists(r.netns, r.netns_inode)) continue;
    // Pins this process cannot see (it runs under `ip netns exec`, which
    // mounts a /sys of its own) while the recorded maps still live: the pins
    // hold them in a bpffs elsewhere. Dropping the record would leak them for
    // good; a qosrun that sees them removes both.
    const std::string pins = r.pin_dir.empty() ? p.pin_dir : r.pin_dir;
    if (::access(pins.c_str(), F_OK) != 0 && any_map_alive(r)) continue;
    auto lock = Lock::acquire_file(p.lock_file, key, 0);
    if (!lock) continue;   // someone is at it right now
    (void)remove_pins(pins);
    (void)remove_state(p);
    lock->remove_file();
    removed.push_back(fmt::format("removed the record of policy '{}' on {} (attached {}) in a network namespace "
                                  "that no longer exists",
                                  r.manifest.policy, r.ifname, r.created));
  }
  return removed;
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace qosrun::state
