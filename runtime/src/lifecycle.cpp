// The steps attach, detach, reload and status share: see lifecycle.hpp.
#include "lifecycle.hpp"

#include <bpf/bpf.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>

#include "qosrun/adaptive.hpp"
#include "qosrun/hosts.hpp"
#include "qosrun/htb.hpp"
#include "qosrun/txq.hpp"

namespace qosrun::lifecycle {

namespace {
bool has_cap(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[cap / 32].effective >> (cap % 32)) & 1u;
}
}  // namespace

Status require_admin(const std::string& what) {
  if (geteuid() == 0) return {};
  constexpr int kCapBpf = 39;
  if (has_cap(CAP_NET_ADMIN) && (has_cap(kCapBpf) || has_cap(CAP_SYS_ADMIN))) return {};
  Error e{fmt::format("{} needs root (CAP_NET_ADMIN and CAP_BPF): run it with sudo", what)};
  e.code = EPERM;
  return e;
}

Result<int> ifindex_of(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IF_NAMESIZE)
    return Error{fmt::format("'{}' is not a valid interface name (1 to {} characters)", ifname, IF_NAMESIZE - 1)};
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) {
    Error e{fmt::format("no interface named {} in this network namespace (ip link lists them)", ifname)};
    e.code = ENODEV;
    return e;
  }
  return static_cast<int>(idx);
}

std::string ifname_of(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (!if_indextoname(static_cast<unsigned>(ifindex), name)) return {};
  return name;
}

uint32_t prog_id_of(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  return info.id;
}
uint32_t map_id_of(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  return info.id;
}
std::string prog_name_of_id(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return {};
  Fd own(fd);
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return {};
  return info.name;
}

std::string absolute(const std::string& p) {
  std::error_code ec;
  auto a = std::filesystem::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

uint32_t xdp_mode_flag(state::XdpAttachMode mode) {
  return mode == state::XdpAttachMode::Skb ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

uint32_t xdp_prog_now(int ifindex, state::XdpAttachMode mode) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0) return 0;
  return mode == state::XdpAttachMode::Skb ? q.skb_prog_id : q.drv_prog_id;
}

uint32_t tc_prog_now(int ifindex, bpf_tc_attach_point where, uint32_t handle, uint32_t prio) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = handle, .priority = prio);
  if (bpf_tc_query(&hook, &o) != 0) return 0;
  return o.prog_id;
}

void say(std::ostream& log, int verbosity, int level, const std::string& line) {
  if (verbosity >= level) log << "qosrun: " << line << "\n";
}

// ---- teardown: undo, detach and stale cleanup share it ------------------------------------------

namespace {

bool gone(const Status& st) {
  if (st) return true;
  int c = st.error().code;
  return c == ENOENT || c == ENODEV || c == EINVAL;
}

// XPS as it was before attach (qosrun/txq.hpp): after the tree is gone.
void restore_xps(state::Side& side, Teardown& t, std::ostream& log, int v) {
  auto& tx = side.queues.tx;
  if (!tx || !tx->xps_off) return;
  if (Status st = txq::write_xps(side.ifname, tx->xps, false); !st) {
    t.fail(st.error());
    return;
  }
  if (!tx->xps.empty()) say(log, v, 1, fmt::format("{}: XPS put back on {} queue setting(s)", side.ifname, tx->xps.size()));
  tx->xps_off = false;
}

// The root qdisc qosrun made (htb, or mq with an HTB per TX queue) removed,
// host groups first, and the one that was there before put back.
void restore_root(nl::RtnlSocket& s, state::Side& side, state::Phase phase, Teardown& t, std::ostream& log, int v) {
  auto root = nl::root_qdisc(s, side.ifindex);
  if (!root) {
    if (root.error().code != ENODEV) t.fail(root.error());
    return;
  }
  // One HTB per TX queue: the root is our mq.
  const bool mq = side.queues.tx.has_value();
  const uint32_t ours = mq ? txq::kMqMajor << 16 : side.queues.plan.major << 16;
  const char* kind = mq ? "mq" : "htb";
  if (!*root || (*root)->kind != kind || (*root)->handle != ours) {
    if (phase != state::Phase::Attaching)
      t.warnings.push_back(fmt::format("the root qdisc of {} is {} now, not qosrun's {} {:x}: (changed by someone "
                                       "else): left as it is",
                                       side.ifname, *root ? nl::describe(**root) : "none", kind, ours >> 16));
    side.queues.created = false;
    return;
  }
  hosts::remove_groups(s, side.ifindex, side.ifname);   // newest first: the kernel's cheap order
  const auto& prev = side.queues.previous;
  if (prev && side.queues.previous_restorable) {
    nl::QdiscInfo q = *prev;
    q.ifindex = side.ifindex;
    if (Status st = nl::replay_root_qdisc(s, q); !st) {
      t.fail(st.error());
      return;
    }
    say(log, v, 1, fmt::format("{}: put back the root qdisc {}", side.ifname, nl::describe(q)));
  } else {
    Status st = nl::delete_root_qdisc(s, side.ifindex);
    if (!gone(st)) {
      t.fail(st.error());
      return;
    }
    if (prev)
      t.warnings.push_back(fmt::format("{}: the root qdisc {} that was there before could not be rebuilt exactly "
                                       "(attach --force replaced it); the kernel's default qdisc is back",
                                       side.ifname, nl::describe(*prev)));
    say(log, v, 1, fmt::format("{}: removed {} {:x}: (the kernel's default qdisc is back)", side.ifname, kind,
                               ours >> 16));
  }
  side.queues.created = false;
}

void restore_queues(nl::RtnlSocket& s, state::Side& side, state::Phase phase, Teardown& t, std::ostream& log,
                    int v) {
  if (!side.has_queues) return;
  if (side.queues.created) restore_root(s, side, phase, t, log, v);
  if (!t.error) restore_xps(side, t, log, v);
}

void detach_tc(state::Side& side, const std::string& our_prog, Teardown& t, std::ostream& log, int v) {
  if (!side.tc.attached) return;
  uint32_t now = tc_prog_now(side.ifindex, BPF_TC_EGRESS, side.tc.handle, side.tc.priority);
  if (now == 0) {
    side.tc.attached = false;
    return;
  }
  // After a reload cut short, the id may be the new program's: same name, ours.
  if (now != side.tc.prog_id && prog_name_of_id(now) != our_prog) {
    t.warnings.push_back(fmt::format("{}: the TC filter {}/{} now runs program id {} that qosrun did not attach: "
                                     "left alone",
                                     side.ifname, side.tc.priority, side.tc.handle, now));
    side.tc.attached = false;
    return;
  }
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = side.ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, o, .handle = side.tc.handle, .priority = side.tc.priority);
  int err = bpf_tc_detach(&hook, &o);
  if (err && err != -ENOENT) {
    t.fail(errno_error(err, fmt::format("cannot remove the TC program from {}", side.ifname)));
    return;
  }
  side.tc.attached = false;
  say(log, v, 1, fmt::format("{}: removed the TC egress program (id {})", side.ifname, now));
}

void destroy_clsact_if_empty(nl::RtnlSocket& s, int ifindex, const std::string& ifname, Teardown& t, std::ostream& log,
                             int v) {
  auto in = nl::count_filters(s, ifindex, kIngressParent);
  auto eg = nl::count_filters(s, ifindex, kEgressParent);
  if (!in || !eg) {
    t.fail(!in ? in.error() : eg.error());
    return;
  }
  if (*in + *eg > 0) {
    t.warnings.push_back(fmt::format("{}: clsact was created by qosrun but now holds {} filter(s) of someone else: "
                                     "left in place",
                                     ifname, *in + *eg));
    return;
  }
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err && err != -ENOENT && err != -EINVAL) {
    t.fail(errno_error(err, fmt::format("cannot remove the clsact qdisc of {}", ifname)));
    return;
  }
  say(log, v, 1, fmt::format("{}: removed clsact", ifname));
}

// The XDP program `x` records on `ifindex`, removed unless another one took
// its place (`prog_name`: ours by name, when its id changed in a reload).
void detach_xdp(int ifindex, const std::string& ifname, state::XdpAttachment& x, const std::string& prog_name,
                Teardown& t, std::ostream& log, int v) {
  if (!x.attached) return;
  uint32_t now = xdp_prog_now(ifindex, x.mode);
  if (now == 0) {
    x.attached = false;
    return;
  }
  if (now != x.prog_id && prog_name_of_id(now) != prog_name) {
    t.warnings.push_back(fmt::format("{}: the XDP program now attached (id {}) is not qosrun's: left alone", ifname,
                                     now));
    x.attached = false;
    return;
  }
  int fd = bpf_prog_get_fd_by_id(now);
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = fd);
  int err = bpf_xdp_detach(ifindex, xdp_mode_flag(x.mode) | (fd >= 0 ? XDP_FLAGS_REPLACE : 0),
                           fd >= 0 ? &o : nullptr);
  if (fd >= 0) ::close(fd);
  if (err && err != -ENOENT) {
    t.fail(errno_error(err, fmt::format("cannot remove the XDP program from {}", ifname)));
    return;
  }
  x.attached = false;
  say(log, v, 1, fmt::format("{}: removed the XDP program (id {}, {})", ifname, now, to_string(x.mode)));
}

// The steering programs, from the interfaces that still are the ones recorded.
void detach_steering(state::Record& r, Teardown& t, std::ostream& log, int v) {
  const std::string name = r.manifest.hosts ? r.manifest.hosts->steer_prog : "";
  for (auto& s : r.steering) {
    if (!s.xdp.attached) continue;
    if (ifname_of(s.ifindex) != s.ifname) {
      t.warnings.push_back(fmt::format("interface {} (ifindex {}) that steered hosts' packets is gone", s.ifname,
                                       s.ifindex));
      s.xdp.attached = false;
      continue;
    }
    detach_xdp(s.ifindex, s.ifname, s.xdp, name, t, log, v);
  }
}

// Removes everything `r` says exists. Idempotent: what is already gone is fine.

}  // namespace

void teardown(state::Record& r, nl::RtnlSocket& s, Teardown& t, std::ostream& log, int v) {
  // The adaptive rate's supervisor first: it changes the classes removed below.
  if (r.adaptive && r.adaptive->supervisor_pid) {
    adaptive::stop_supervisor(r.adaptive->supervisor_pid, r.adaptive->supervisor_start);
    say(log, v, 1, fmt::format("stopped the adaptive rate's supervisor (pid {})", r.adaptive->supervisor_pid));
    r.adaptive->supervisor_pid = 0;
  }
  // The interface may have been renamed or removed since.
  bool main_exists = !ifname_of(r.ifindex).empty();
  if (r.ingress) {
    state::Ingress& in = *r.ingress;
    if (in.redirect_attached && main_exists) {
      Status st = nl::delete_filter(s, r.ifindex, kIngressParent, in.redirect_prio, 0, "u32");
      if (!gone(st)) t.fail(st.error());
      else {
        in.redirect_attached = false;
        say(log, v, 1, fmt::format("{}: removed the ingress redirect to {}", r.ifname, in.ifb_name));
      }
    }
    // Killed between creating the IFB and recording its ifindex: find it by its name.
    if (in.ifb_created && in.ifb_ifindex == 0 && !in.ifb_name.empty())
      in.ifb_ifindex = static_cast<int>(if_nametoindex(in.ifb_name.c_str()));
    if (in.ifb_created && in.ifb_ifindex && ifname_of(in.ifb_ifindex) == in.ifb_name) {
      Status st = nl::delete_link(s, in.ifb_ifindex);
      if (!gone(st)) t.fail(st.error());
      else say(log, v, 1, fmt::format("removed {}", in.ifb_name));
    }
    in.ifb_created = false;
  }
  // Steering first: nothing is sent to the CPUs of queues about to go.
  detach_steering(r, t, log, v);
  if (main_exists) {
    detach_xdp(r.ifindex, r.ifname, r.xdp, r.manifest.xdp_prog, t, log, v);
    detach_tc(r.main, r.manifest.tc_prog, t, log, v);
    bool clsact_ours = r.main.tc.clsact_created || (r.ingress && r.ingress->clsact_created);
    if (clsact_ours && !t.error) destroy_clsact_if_empty(s, r.ifindex, r.ifname, t, log, v);
    if (!t.error) restore_queues(s, r.main, r.phase, t, log, v);
  } else {
    t.warnings.push_back(fmt::format("interface {} (ifindex {}) is gone: nothing to restore on it", r.ifname,
                                     r.ifindex));
  }
  if (!t.error) {
    std::string dir = r.pin_dir.empty() ? state::paths_for(r.ifname).pin_dir : r.pin_dir;
    if (Status st = state::remove_pins(dir); !st) t.fail(st.error());
  }
}

Error with_undo_result(Error e, const Teardown& t) {
  if (t.error)
    e.message += fmt::format("\n  and undoing failed too: {}\n  run `qosrun detach` on the interface to retry",
                             t.error->message);
  for (const auto& w : t.warnings) e.message += "\n  note: " + w;
  return e;
}

// Pins programs and maps of a loaded policy; fills rec.progs/maps. The ids
// are recorded even when pinning fails (e.g. under `ip netns exec`, whose
// private /sys makes pins vanish): later commands find objects by id.
Status pin_all(const LoadedPolicy& p, state::Record& rec) {
  if (Status f = state::fail_point("pin"); !f) return f;
  Status first;
  for (Hook h : {Hook::Xdp, Hook::Tc}) {
    int fd = p.prog_fd(h);
    if (fd < 0) continue;
    std::string name = bpf_program__name(p.program(h));
    rec.progs[name] = prog_id_of(fd);
    if (Status st = state::pin_fd(fd, rec.pin_dir + "/" + name); !st && first) first = st;
  }
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, p.object()) {
    if (bpf_map__is_internal(m)) continue;
    int fd = bpf_map__fd(m);
    if (fd < 0) continue;
    std::string name = bpf_map__name(m);
    rec.maps[name] = map_id_of(fd);
    if (Status st = state::pin_fd(fd, rec.pin_dir + "/" + name); !st && first) first = st;
  }
  return first;
}

}  // namespace qosrun::lifecycle
