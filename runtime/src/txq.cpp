// One HTB per TX queue: see qosrun/txq.hpp and docs/hosts.md ("Every core").
#include "qosrun/txq.hpp"

#include <fcntl.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qosrun/state.hpp"

namespace qosrun::txq {

nlohmann::json to_json(const Layout& l) {
  nlohmann::json xps = nlohmann::json::array();
  for (const auto& x : l.xps) xps.push_back({{"file", x.file}, {"value", x.value}});
  return {{"queues", l.queues}, {"real", l.real}, {"xps_off", l.xps_off}, {"xps_before", xps}};
}

Layout layout_from_json(const nlohmann::json& j) {
  Layout l;
  l.queues = j.at("queues").get<uint32_t>();
  l.real = j.at("real").get<uint32_t>();
  l.xps_off = j.at("xps_off").get<bool>();
  for (const auto& x : j.at("xps_before")) l.xps.push_back({x.at("file").get<std::string>(), x.at("value").get<std::string>()});
  return l;
}

namespace {

// Runs `fn` in a child process that sees the sysfs of the calling thread's
// network namespace: a private mount namespace with a fresh sysfs on /sys
// (what `ip netns exec` does). Under `nsenter --net` the inherited /sys
// lists another namespace's interfaces. `fn` returns its answer as text or
// an error message (starting with '!').
Result<std::string> in_own_sysfs(const std::function<std::string()>& fn) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return errno_error(errno, "cannot make a pipe");
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(p[0]);
    ::close(p[1]);
    return errno_error(e, "cannot fork");
  }
  if (pid == 0) {
    ::close(p[0]);
    if (::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) == 0) {
      (void)::umount2("/sys", MNT_DETACH);
      (void)::mount("sysfs", "/sys", "sysfs", 0, nullptr);
    }
    std::string out = fn();
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(p[1], out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!out.empty() && out[0] == '!') return Error{out.substr(1)};
  return out;
}

std::string queues_dir(const std::string& ifname) { return "/sys/class/net/" + ifname + "/queues"; }

std::string read_text(const std::string& path, bool* ok) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  *ok = fd >= 0;
  if (fd < 0) return {};
  std::string s;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  if (n < 0) *ok = false;
  ::close(fd);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool all_zero(const std::string& v) {
  return std::all_of(v.begin(), v.end(), [](char c) { return c == '0' || c == ','; });
}

std::vector<std::string> tx_dirs(const std::string& ifname) {
  std::vector<std::string> out;
  DIR* d = ::opendir(queues_dir(ifname).c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d))
    if (std::strncmp(e->d_name, "tx-", 3) == 0) out.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Result<uint32_t> real_tx_queues(const std::string& ifname) {
  auto r = in_own_sysfs([&]() -> std::string {
    DIR* d = ::opendir(queues_dir(ifname).c_str());
    if (!d) return "!" + fmt::format("cannot list {}: {}", queues_dir(ifname), std::strerror(errno));
    ::closedir(d);
    // A /sys of another namespace (no private mount was possible) may have an interface of the same name.
    bool ok = false;
    std::string idx = read_text("/sys/class/net/" + ifname + "/ifindex", &ok);
    if (!ok || std::strtoul(idx.c_str(), nullptr, 10) != ::if_nametoindex(ifname.c_str()))
      return "!" + fmt::format("/sys/class/net/{} is not this namespace's {} (qosrun cannot mount a sysfs of its own)",
                               ifname, ifname);
    return std::to_string(tx_dirs(ifname).size());
  });
  if (!r) return r.error();
  uint32_t n = static_cast<uint32_t>(std::strtoul(r->c_str(), nullptr, 10));
  return std::max<uint32_t>(n, 1);
}

Result<uint32_t> choose(const std::string& ifname, uint32_t asked, bool policy_has_hosts, uint32_t real) {
  if (asked == 0) return policy_has_hosts ? std::min(real, kMaxQueues) : 1;
  if (asked == 1) return 1;
  if (!policy_has_hosts)
    return Error{fmt::format("--tx-queues {}: the policy has no hosts, and a policy's own classes live in one HTB (on "
                             "one queue); leave --tx-queues out",
                             asked)};
  if (asked > real)
    return Error{fmt::format("--tx-queues {}: {} has {} TX queue{} (ethtool -L {} tx N changes that on most NICs)",
                             asked, ifname, real, real == 1 ? "" : "s", ifname)};
  if (asked > kMaxQueues) return Error{fmt::format("--tx-queues {}: qosrun spreads hosts over at most {}", asked, kMaxQueues)};
  return asked;
}

Result<std::vector<XpsValue>> xps_now(const std::string& ifname) {
  auto r = in_own_sysfs([&]() -> std::string {
    std::string out;
    for (const auto& q : tx_dirs(ifname))
      for (const char* f : {"xps_cpus", "xps_rxqs"}) {
        bool ok = false;
        std::string v = read_text(queues_dir(ifname) + "/" + q + "/" + f, &ok);
        if (ok && !v.empty() && !all_zero(v)) out += q + "/" + f + "\t" + v + "\n";
      }
    return out;
  });
  if (!r) return r.error();
  std::vector<XpsValue> out;
  size_t i = 0;
  while (i < r->size()) {
    size_t nl = r->find('\n', i);
    std::string line = r->substr(i, nl - i);
    i = nl == std::string::npos ? r->size() : nl + 1;
    size_t tab = line.find('\t');
    if (tab != std::string::npos) out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

Status write_xps(const std::string& ifname, const std::vector<XpsValue>& values, bool zero_all) {
  if (values.empty()) return {};
  auto r = in_own_sysfs([&]() -> std::string {
    std::string errors;
    for (const auto& x : values) {
      // Only names qosrun reads itself: tx-N/xps_cpus, tx-N/xps_rxqs.
      if (x.file.find("..") != std::string::npos || x.file.rfind("tx-", 0) != 0) continue;
      const std::string path = queues_dir(ifname) + "/" + x.file;
      const std::string v = (zero_all ? std::string("0") : x.value) + "\n";
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      bool ok = fd >= 0 && ::write(fd, v.data(), v.size()) == static_cast<ssize_t>(v.size());
      int e = errno;
      if (fd >= 0) ::close(fd);
      if (!ok) errors += fmt::format("{}{}: {}", errors.empty() ? "" : "; ", path, std::strerror(e));
    }
    return errors.empty() ? std::string() : "!cannot write XPS of " + ifname + ": " + errors;
  });
  if (!r) return r.error();
  return {};
}

nl::HtbClassParams link_class(const htb::Plan& root, uint32_t q) {
  nl::HtbClassParams c = root.link;
  c.classid = htb::classid(htb_major(q), kLinkMinor);
  c.parent = htb_major(q) << 16;
  return c;
}

nl::HtbClassParams stray_leaf(const htb::Plan& root, uint32_t q) {
  nl::HtbClassParams c;
  c.classid = htb::classid(htb_major(q), kStrayMinor);
  c.parent = htb::classid(htb_major(q), kLinkMinor);
  c.rate_bps = htb::kMinRateBps;
  c.ceil_bps = root.link.ceil_bps;
  c.burst_bytes = htb::default_burst(c.rate_bps, root.frame_bytes);
  c.cburst_bytes = root.link.cburst_bytes;
  uint32_t quantum = root.frame_bytes;
  for (const auto& l : root.leaves) quantum = std::max(quantum, l.params.quantum);
  c.quantum = quantum;
  c.prio = htb::kMaxPrio;
  return c;
}

htb::LeafQueue stray_queue(const htb::Plan& root) {
  htb::LeafQueue q;
  for (const auto& l : root.leaves)
    if (l.queue.limit > q.limit) q = l.queue;
  return q;
}

Status build(nl::RtnlSocket& s, int ifindex, const htb::Plan& root, const Layout& l) {
  if (Status f = state::fail_point("htb-root"); !f) return f;
  if (Status st = nl::add_root_qdisc(s, ifindex, kMqMajor << 16, "mq"); !st) return st;
  if (Status st = htb::build(s, ifindex, root, mq_class(0)); !st) return st;
  for (uint32_t q = 1; q < l.real; ++q) {
    nl::HtbRootSpec spec;
    spec.handle = htb_major(q) << 16;
    spec.parent = mq_class(q);
    spec.default_minor = kStrayMinor;
    spec.r2q = root.r2q;
    if (Status st = nl::add_htb_root(s, ifindex, spec); !st) return st;
    if (Status st = nl::add_htb_class(s, ifindex, link_class(root, q)); !st) return st;
    nl::HtbClassParams stray = stray_leaf(root, q);
    if (Status st = nl::add_htb_class(s, ifindex, stray); !st) return st;
    if (Status st = htb::add_queue(s, ifindex, stray.classid, stray_qdisc(q), stray_queue(root)); !st) return st;
  }
  return {};
}

std::string describe(const Layout& l) {
  std::string majors;
  for (uint32_t q = 0; q < l.real && q < 4; ++q) majors += fmt::format("{}{:x}:", q ? ", " : "", htb_major(q));
  if (l.real > 4) majors += fmt::format(" ... {:x}:", htb_major(l.real - 1));
  return fmt::format("mq {:x}: with an htb per TX queue ({}); hosts on {} of {} queue{}, XPS {}", kMqMajor, majors,
                     l.queues, l.real, l.real == 1 ? "" : "s",
                     l.xps_off ? "turned off (put back on detach)" : "off (it was already)");
}

}  // namespace qosrun::txq
