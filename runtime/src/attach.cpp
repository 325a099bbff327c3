// Attach, detach, reload and status: see qosrun/attach.hpp.
#include "qosrun/attach.hpp"
#include "qosrun/adaptive.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <set>

#include <fmt/format.h>

#include "qosrun/htb.hpp"
#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"

namespace qosrun {

namespace {

constexpr uint32_t kClsactParent = TC_H_CLSACT;   // ffff:fff1
const uint32_t kIngressParent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
const uint32_t kEgressParent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);

bool has_cap(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[cap / 32].effective >> (cap % 32)) & 1u;
}

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

uint32_t xdp_mode_flag(const std::string& mode) { return mode == "skb" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE; }

// The XDP program attached now in `mode` ("native"/"skb"), 0 if none.
uint32_t xdp_prog_now(int ifindex, const std::string& mode) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0) return 0;
  return mode == "skb" ? q.skb_prog_id : q.drv_prog_id;
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

struct Teardown {
  std::vector<std::string> warnings;
  std::optional<Error> error;   // a step that failed (the interface may not be as before)
  void fail(const Error& e) {
    if (!error) error = e;
  }
};

bool gone(const Status& st) {
  if (st) return true;
  int c = st.error().code;
  return c == ENOENT || c == ENODEV || c == EINVAL;
}

void restore_queues(nl::RtnlSocket& s, state::Side& side, const std::string& phase, Teardown& t, std::ostream& log,
                    int v) {
  if (!side.has_queues || !side.queues.created) return;
  auto root = nl::root_qdisc(s, side.ifindex);
  if (!root) {
    if (root.error().code != ENODEV) t.fail(root.error());
    return;
  }
  uint32_t ours = side.queues.plan.major << 16;
  if (!*root || (*root)->kind != "htb" || (*root)->handle != ours) {
    if (phase != "attaching")
      t.warnings.push_back(fmt::format("the root qdisc of {} is {} now, not qosrun's htb {:x}: (changed by someone "
                                       "else): left as it is",
                                       side.ifname, *root ? nl::describe(**root) : "none", side.queues.plan.major));
    side.queues.created = false;
    return;
  }
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
    say(log, v, 1, fmt::format("{}: removed htb {:x}: (the kernel's default qdisc is back)", side.ifname,
                               side.queues.plan.major));
  }
  side.queues.created = false;
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

void detach_xdp(state::Record& r, Teardown& t, std::ostream& log, int v) {
  if (!r.xdp.attached) return;
  uint32_t now = xdp_prog_now(r.ifindex, r.xdp.mode);
  if (now == 0) {
    r.xdp.attached = false;
    return;
  }
  if (now != r.xdp.prog_id && prog_name_of_id(now) != r.manifest.xdp_prog) {
    t.warnings.push_back(fmt::format("{}: the XDP program now attached (id {}) is not qosrun's: left alone", r.ifname,
                                     now));
    r.xdp.attached = false;
    return;
  }
  int fd = bpf_prog_get_fd_by_id(now);
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = fd);
  int err = bpf_xdp_detach(r.ifindex, xdp_mode_flag(r.xdp.mode) | (fd >= 0 ? XDP_FLAGS_REPLACE : 0),
                           fd >= 0 ? &o : nullptr);
  if (fd >= 0) ::close(fd);
  if (err && err != -ENOENT) {
    t.fail(errno_error(err, fmt::format("cannot remove the XDP program from {}", r.ifname)));
    return;
  }
  r.xdp.attached = false;
  say(log, v, 1, fmt::format("{}: removed the XDP program (id {}, {})", r.ifname, now, r.xdp.mode));
}

// Removes everything `r` says exists. Idempotent: what is already gone is fine.
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
  if (main_exists) {
    detach_xdp(r, t, log, v);
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

// ---- attach steps ---------------------------------------------------------------------------------

// Can the qdisc at the root be rebuilt exactly from its dump? Classless
// qdiscs and those whose classes are their own (tbf, mq, prio ...) can,
// unless someone grafted qdiscs or filters under them.
Result<bool> restorable(nl::RtnlSocket& s, int ifindex, const nl::QdiscInfo& root, std::string* why) {
  static const char* kUserClasses[] = {"htb", "hfsc", "drr", "qfq", "cbq", "ets"};
  auto qs = nl::list_qdiscs(s, ifindex);
  if (!qs) return qs.error();
  for (const auto& q : *qs) {
    if (q.parent == TC_H_ROOT || q.parent == kClsactParent || q.handle == 0) continue;
    if (TC_H_MAJ(q.parent) == TC_H_MAJ(root.handle)) {
      *why = fmt::format("qdisc {} is grafted under it", nl::describe(q));
      return false;
    }
  }
  for (const char* k : kUserClasses) {
    if (root.kind != k) continue;
    auto cs = nl::list_classes(s, ifindex, root.handle);
    if (!cs) return cs.error();
    if (!cs->empty()) {
      *why = fmt::format("it has {} class(es)", cs->size());
      return false;
    }
  }
  auto nf = nl::count_filters(s, ifindex, root.handle);
  if (!nf) return nf.error();
  if (*nf > 0) {
    *why = fmt::format("it has {} filter(s)", *nf);
    return false;
  }
  return true;
}

struct Ctx {
  state::Record& rec;
  nl::RtnlSocket& s;
  std::ostream& log;
  int v;
  Status save() { return state::write(rec); }
};

// Replaces the root of side.ifindex with the planned HTB tree.
Status build_queues(Ctx& c, state::Side& side, bool force, const char* fail_step) {
  if (Status f = state::fail_point(fail_step); !f) return f;
  auto root = nl::root_qdisc(c.s, side.ifindex);
  if (!root) return root.error();
  side.queues.previous.reset();
  side.queues.previous_restorable = true;
  if (*root && (*root)->handle != 0) {   // handle 0: the kernel's default, restored by deleting ours
    std::string why;
    auto ok = restorable(c.s, side.ifindex, **root, &why);
    if (!ok) return ok.error();
    if (!*ok && !force)
      return Error{fmt::format("{} has a root qdisc {} that qosrun could not put back exactly on detach ({}): remove "
                               "it first (tc qdisc del dev {} root) or pass --force (detach then leaves the kernel's "
                               "default qdisc)",
                               side.ifname, nl::describe(**root), why, side.ifname)};
    side.queues.previous = **root;
    side.queues.previous_restorable = *ok;
  }
  side.queues.created = true;   // intent first: a crash from here on is cleaned by detach
  if (Status st = c.save(); !st) return st;
  say(c.log, c.v, 1, fmt::format("{}: replacing root qdisc {} with\n{}", side.ifname,
                                 *root ? nl::describe(**root) : "none", htb::describe(side.queues.plan)));
  return htb::build(c.s, side.ifindex, side.queues.plan);
}

Result<bool> clsact_exists(nl::RtnlSocket& s, int ifindex, const std::string& ifname) {
  auto qs = nl::list_qdiscs(s, ifindex);
  if (!qs) return qs.error();
  for (const auto& q : *qs) {
    if (q.parent != kClsactParent) continue;
    if (q.kind == "clsact") return true;
    return Error{fmt::format("{} has an '{}' qdisc where qosrun needs clsact: remove it (tc qdisc del dev {} {}) and "
                             "attach again",
                             ifname, q.kind, ifname, q.kind)};
  }
  return false;
}

Status ensure_clsact(Ctx& c, int ifindex, const std::string& ifname, bool* created_flag) {
  if (Status f = state::fail_point("clsact"); !f) return f;
  auto exists = clsact_exists(c.s, ifindex, ifname);
  if (!exists) return exists.error();
  if (*exists) return {};
  *created_flag = true;
  if (Status st = c.save(); !st) return st;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) return errno_error(err, fmt::format("cannot create the clsact qdisc on {}", ifname));
  say(c.log, c.v, 1, fmt::format("{}: created clsact", ifname));
  return {};
}

Status attach_tc(Ctx& c, state::Side& side, int prog_fd) {
  if (Status st = ensure_clsact(c, side.ifindex, side.ifname, &side.tc.clsact_created); !st) return st;
  if (Status f = state::fail_point("tc-filter"); !f) return f;
  side.tc.handle = kTcHandle;
  side.tc.priority = kTcPriority;
  side.tc.prog_id = prog_id_of(prog_fd);
  side.tc.attached = true;
  if (Status st = c.save(); !st) return st;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = side.ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .handle = kTcHandle, .priority = kTcPriority);
  int err = bpf_tc_attach(&hook, &o);
  if (err) {
    side.tc.attached = false;
    Error e = errno_error(err, fmt::format("cannot attach the TC program to {} egress", side.ifname));
    if (err == -EEXIST)
      e.message += fmt::format("\n  a filter with priority {} handle {} is already on {} egress (tc filter show dev {} "
                               "egress): remove it and attach again",
                               kTcPriority, kTcHandle, side.ifname, side.ifname);
    return e;
  }
  say(c.log, c.v, 1, fmt::format("{}: TC program attached on clsact egress (prio {}, handle {}, id {})", side.ifname,
                                 kTcPriority, kTcHandle, side.tc.prog_id));
  return {};
}

Status attach_xdp(Ctx& c, int prog_fd, XdpMode mode, std::vector<std::string>& notes) {
  if (Status f = state::fail_point("xdp"); !f) return f;
  state::Record& r = c.rec;
  r.xdp.prog_id = prog_id_of(prog_fd);
  r.xdp.mode = mode == XdpMode::Skb ? "skb" : "native";
  r.xdp.attached = true;
  if (Status st = c.save(); !st) return st;
  int err = bpf_xdp_attach(r.ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | xdp_mode_flag(r.xdp.mode), nullptr);
  if (err == -EOPNOTSUPP && mode == XdpMode::Auto) {
    notes.push_back(fmt::format("the driver of {} has no native XDP: the XDP program runs in skb (generic) mode",
                                r.ifname));
    r.xdp.mode = "skb";
    if (Status st = c.save(); !st) return st;
    err = bpf_xdp_attach(r.ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE, nullptr);
  }
  if (err) {
    r.xdp.attached = false;
    Error e = errno_error(err, fmt::format("cannot attach the XDP program to {} ({} mode)", r.ifname, r.xdp.mode));
    if (err == -EOPNOTSUPP && r.xdp.mode == "native")
      e.message = fmt::format("native XDP is not supported by the driver of {}: use --mode skb", r.ifname);
    else if (err == -EBUSY || err == -EEXIST)
      e.message += fmt::format("\n  {} already has an XDP program: remove it (ip link set dev {} xdp off)", r.ifname,
                               r.ifname);
    return e;
  }
  say(c.log, c.v, 1, fmt::format("{}: XDP program attached ({} mode, id {})", r.ifname, r.xdp.mode, r.xdp.prog_id));
  return {};
}

std::string ifb_name_for(int ifindex) {
  std::string n = fmt::format("qosc-ifb{}", ifindex);
  if (n.size() >= IF_NAMESIZE) n = fmt::format("qifb{}", ifindex);
  return n;
}

Status attach_ingress(Ctx& c, int tc_fd, bool force) {
  state::Record& r = c.rec;
  state::Ingress& in = *r.ingress;
  if (Status f = state::fail_point("ifb"); !f) return f;
  in.ifb_name = ifb_name_for(r.ifindex);
  if (if_nametoindex(in.ifb_name.c_str()) != 0)
    return Error{fmt::format("a device named {} exists already; qosrun uses that name for the IFB of {}: remove it "
                             "(ip link del {}) and attach again",
                             in.ifb_name, r.ifname, in.ifb_name)};
  in.ifb_created = true;
  if (Status st = c.save(); !st) return st;
  auto idx = nl::create_ifb(c.s, in.ifb_name);
  if (!idx) {
    in.ifb_created = false;
    return idx.error();
  }
  in.ifb_ifindex = *idx;
  in.ifb.ifname = in.ifb_name;
  in.ifb.ifindex = *idx;
  if (Status st = c.save(); !st) return st;
  if (Status st = nl::set_link_up(c.s, *idx); !st) return st;
  say(c.log, c.v, 1, fmt::format("created {} for the downloads of {}", in.ifb_name, r.ifname));
  if (in.ifb.has_queues)
    if (Status st = build_queues(c, in.ifb, force, "ifb-htb"); !st) return st;
  if (Status f = state::fail_point("ifb-tc"); !f) return f;
  if (Status st = attach_tc(c, in.ifb, tc_fd); !st) return st;
  // Last: redirect the interface's ingress to the IFB.
  if (Status st = ensure_clsact(c, r.ifindex, r.ifname, &in.clsact_created); !st) return st;
  if (Status f = state::fail_point("ifb-redirect"); !f) return f;
  in.redirect_prio = kTcPriority;
  in.redirect_handle = 0;   // chosen by u32; the filter is removed by its priority
  in.redirect_attached = true;
  if (Status st = c.save(); !st) return st;
  if (Status st = nl::add_ingress_redirect(c.s, r.ifindex, *idx, in.redirect_prio); !st) {
    in.redirect_attached = false;
    return st;
  }
  say(c.log, c.v, 1, fmt::format("{}: ingress redirected to {} (u32 match-all + mirred)", r.ifname, in.ifb_name));
  return {};
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

// Another qosrun's record on this interface: clean it when stale, else refuse.
Status handle_existing(state::Record& old, const std::string& ifname, bool force, nl::RtnlSocket& s, std::ostream& log,
                       int v) {
  const bool here = old.in_this_netns();
  if (!here && !force)
    return Error{fmt::format("{} records a qosc policy on an interface {} of another network namespace: run qosrun "
                             "there, or pass --force to discard that record",
                             state::paths_for(ifname).state_file, ifname)};
  if (!here) {
    (void)state::remove_pins(old.pin_dir);
    return state::remove(ifname);
  }
  const std::string stale = old.stale_reason();
  if (stale.empty() && !force) {
    std::string who = old.foreground ? fmt::format("by the foreground qosrun pid {}", old.owner_pid)
                                     : std::string("persistently");
    return Error{fmt::format("{} already has qosc policy '{}' attached {} (from {}, since {}): use `qosrun reload OBJ "
                             "{}` to replace it, `qosrun detach {}` to remove it, or attach --force",
                             ifname, old.manifest.policy, who, old.object, old.created, ifname, ifname)};
  }
  if (!stale.empty())
    log << fmt::format("qosrun: the record of policy '{}' on {} is stale ({}): cleaning it up\n",
                       old.manifest.policy, ifname, stale);
  else
    say(log, v, 0, fmt::format("--force: detaching policy '{}' from {} first", old.manifest.policy, ifname));
  Teardown t;
  teardown(old, s, t, log, v);
  for (const auto& w : t.warnings) log << "qosrun: note: " << w << "\n";
  if (t.error) return with_undo_result(Error{fmt::format("cannot clean the earlier policy off {}", ifname)}, t);
  return state::remove(ifname);
}

// The reflectors of the adaptive rate's controller: --reflector, or the
// interface's default gateway; none for a policy with a fixed rate (where
// --reflector is a mistake worth saying).
Result<std::vector<std::string>> adaptive_reflectors(const qosc::Manifest& m, const AttachOptions& o,
                                                     std::vector<std::string>& notes) {
  const bool up = m.link_adaptive && o.queues;
  const bool down = m.download_adaptive && o.ingress_shape && o.queues;
  if (m.download_adaptive && !o.ingress_shape)
    notes.push_back(fmt::format("the policy's download rate is adaptive, but downloads are not shaped: add "
                                "--ingress-shape to shape them"));
  if (m.link_adaptive && !o.queues) notes.push_back("--queues none: no tree to adapt, the link rate stays unshaped");
  if (!up && !down) {
    if (!o.reflectors.empty() && !m.adaptive())
      return Error{fmt::format("--reflector is for a policy with an adaptive rate, and '{}' has a fixed link: write "
                               "`link adaptive MIN-MAX;` in the policy (docs/adaptive.md)",
                               m.policy)};
    return std::vector<std::string>{};
  }
  if (!o.reflectors.empty()) {
    if (Status st = adaptive::check_reflectors(o.reflectors); !st) return st.error();
    return o.reflectors;
  }
  std::string gw = adaptive::default_gateway(o.ifname);
  if (gw.empty())
    return Error{fmt::format("policy '{}' adapts its rate from the delay to a reflector, and {} has no default "
                             "gateway to use as one: give --reflector ADDR (a host beyond the link that answers ping)",
                             m.policy, o.ifname)};
  notes.push_back(fmt::format("no --reflector given: probing {}'s gateway {}", o.ifname, gw));
  return std::vector<std::string>{gw};
}

}  // namespace

// ---- attach ------------------------------------------------------------------------------------------

Result<Attached> attach(const AttachOptions& o, std::ostream& log) {
  const int v = o.verbosity;
  auto ifindex = ifindex_of(o.ifname);
  if (!ifindex) return ifindex.error();

  LoadOptions lo;
  lo.verbosity = v;
  lo.xdp_meta = o.xdp_meta;
  auto policy = LoadedPolicy::open_file(o.object, lo);
  if (!policy) return policy.error();
  const qosc::Manifest& m = policy->manifest();

  state::Record rec;
  rec.xdp_meta = o.xdp_meta;
  rec.ifname = o.ifname;
  rec.ifindex = *ifindex;
  rec.netns = state::netns_cookie();
  rec.netns_inode = state::netns_inode();
  rec.object = absolute(o.object);
  rec.manifest = m;
  rec.main.ifname = o.ifname;
  rec.main.ifindex = *ifindex;
  rec.main.has_queues = o.queues;
  uint32_t mtu = nl::link_mtu(o.ifname);
  uint32_t max_skb = nl::link_max_skb(o.ifname);   // 0: unknown, the planner assumes 64 KB
  std::vector<std::string> notes;
  if (o.queues) {
    auto plan = htb::plan_for(m, htb::Where::Interface, mtu, max_skb);
    if (!plan) return plan.error();
    rec.main.queues.plan = std::move(*plan);
    notes.insert(notes.end(), rec.main.queues.plan.notes.begin(), rec.main.queues.plan.notes.end());
  }
  if (o.ingress_shape) {
    state::Ingress in;
    in.ifb.has_queues = true;
    auto plan = htb::plan_for(m, htb::Where::Ifb, mtu, max_skb);   // what GRO on the interface builds reaches the IFB
    if (!plan) return plan.error();
    in.ifb.queues.plan = std::move(*plan);
    rec.ingress = std::move(in);
  }
  auto reflectors = adaptive_reflectors(m, o, notes);
  if (!reflectors) return reflectors.error();

  if (Status st = require_admin("qosrun attach"); !st) return st.error();
  auto lock = state::Lock::acquire(o.ifname);
  if (!lock) return lock.error();
  // The lock file goes with the record: an attach that fails leaves neither.
  struct LockFileGoesWithTheRecord {
    state::Lock& lock;
    std::string state_file;
    ~LockFileGoesWithTheRecord() {
      if (::access(state_file.c_str(), F_OK) != 0) lock.remove_file();
    }
  } lock_file_guard{*lock, state::state_file(o.ifname)};
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();

  for (const std::string& line : state::remove_orphans()) log << "qosrun: note: " << line << "\n";
  auto existing = state::read(o.ifname);
  if (!existing) return existing.error();
  if (*existing)
    if (Status st = handle_existing(**existing, o.ifname, o.force, *sock, log, v); !st) return st.error();

  // A program of someone else on XDP: we do not replace it.
  {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(*ifindex, 0, &q) == 0 && q.prog_id != 0)
      return Error{fmt::format("{} already has an XDP program (id {}, {}) that qosrun did not attach: remove it "
                               "(ip link set dev {} xdp off) and attach again",
                               o.ifname, q.prog_id, prog_name_of_id(q.prog_id), o.ifname)};
  }

  // Load (the verifier) before touching the interface.
  if (Status f = state::fail_point("load"); !f) return f.error();
  if (Status st = policy->load(); !st) return st.error();
  say(log, v, 1, fmt::format("loaded {} (policy {}, {} classes, {}) in {:.1f} ms", o.object, m.policy,
                             policy->class_count(), m.scheduler, policy->load_seconds() * 1e3));

  state::Paths paths = state::paths_for(o.ifname);
  rec.pin_dir = paths.pin_dir;
  rec.phase = "attaching";
  rec.owner_pid = ::getpid();
  rec.owner_start = state::process_start_time(rec.owner_pid);
  rec.foreground = o.foreground;
  rec.created = state::now_iso8601();

  Teardown undo;
  Ctx c{rec, *sock, log, v};
  auto fail = [&](const Error& e) -> Error {
    teardown(rec, *sock, undo, log, v);
    if (!undo.error) (void)state::remove(o.ifname);
    return with_undo_result(e, undo);
  };

  bool mounted = false;
  if (Status st = state::ensure_bpffs(paths.pin_root, &mounted); !st) return st.error();
  if (mounted) say(log, v, 1, fmt::format("mounted a BPF file system for {}", paths.pin_root));
  (void)state::remove_pins(paths.pin_dir);   // leftovers of a run that died before writing its record
  if (Status st = state::ensure_bpffs(paths.pin_dir, nullptr); !st) return st.error();
  if (Status st = pin_all(*policy, rec); !st) return fail(st.error());
  if (Status st = c.save(); !st) return fail(st.error());

  if (o.queues)
    if (Status st = build_queues(c, rec.main, o.force, "htb-root"); !st) return fail(st.error());
  if (Status st = attach_tc(c, rec.main, policy->prog_fd(Hook::Tc)); !st) return fail(st.error());
  if (Status st = attach_xdp(c, policy->prog_fd(Hook::Xdp), o.mode, notes); !st) return fail(st.error());
  if (rec.ingress)
    if (Status st = attach_ingress(c, policy->prog_fd(Hook::Tc), o.force); !st) return fail(st.error());

  if (!reflectors->empty()) {
    // The foreground form runs the controller itself (run_foreground).
    rec.adaptive = state::Adaptive{*reflectors, 0, 0};
    if (!o.foreground) {
      if (Status f = state::fail_point("supervisor"); !f) return fail(f.error());
      auto sup = adaptive::start_supervisor(o.ifname);
      if (!sup) return fail(sup.error());
      rec.adaptive->supervisor_pid = sup->first;
      rec.adaptive->supervisor_start = sup->second;
    }
  }
  rec.phase = "attached";
  if (!o.foreground) {
    rec.owner_pid = 0;
    rec.owner_start = 0;
  }
  if (Status st = c.save(); !st) return fail(st.error());
  Attached a{std::move(rec), std::move(*policy), std::move(notes)};
  return a;
}

// ---- detach ------------------------------------------------------------------------------------------

Status detach(const DetachOptions& o, std::ostream& log, std::vector<std::string>* warnings) {
  if (Status st = require_admin("qosrun detach"); !st) return st;
  auto lock = state::Lock::acquire(o.ifname);
  if (!lock) return lock.error();
  auto rec = state::read(o.ifname);
  if (!rec) return rec.error();
  if (!*rec) {
    lock->remove_file();
    if (o.as_owner) return {};   // someone detached us already
    Error e{fmt::format("{} has no qosc policy attached (no {})", o.ifname, state::paths_for(o.ifname).state_file)};
    if (if_nametoindex(o.ifname.c_str()) == 0)
      e.message = fmt::format("no interface named {} in this network namespace, and no qosc state for it", o.ifname);
    e.code = ENOENT;
    return e;
  }
  state::Record& r = **rec;
  if (o.as_owner && r.owner_pid != o.as_owner) {
    log << fmt::format("qosrun: {} was taken over by another qosrun (--force); leaving it attached\n", o.ifname);
    return {};
  }
  if (!r.in_this_netns()) {
    if (!o.force)
      return Error{fmt::format("the qosc state of {} was made in another network namespace: run qosrun detach there "
                               "(or detach --force here to discard the record, e.g. when that namespace is gone)",
                               o.ifname)};
    log << fmt::format("qosrun: note: discarding the record of {} made in another network namespace; nothing there "
                       "was touched\n",
                       o.ifname);
    (void)state::remove_pins(r.pin_dir);
    return state::remove(o.ifname);
  }
  if (!o.as_owner && r.foreground && !r.stale() && !o.force)
    return Error{fmt::format("{} is run by the foreground qosrun pid {}: stop it (Ctrl-C there, or kill {}), or "
                             "detach --force",
                             o.ifname, r.owner_pid, r.owner_pid)};
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();
  r.phase = "detaching";
  (void)state::write(r);
  Teardown t;
  teardown(r, *sock, t, log, o.verbosity);
  for (const auto& w : t.warnings) {
    log << "qosrun: note: " << w << "\n";
    if (warnings) warnings->push_back(w);
  }
  if (t.error) {
    (void)state::write(r);   // what is left, for the next try
    return with_undo_result(Error{fmt::format("detaching from {} did not finish: {}", o.ifname, t.error->message)},
                            Teardown{});
  }
  if (Status st = state::remove(o.ifname); !st) return st;
  lock->remove_file();
  return {};
}

// ---- reload ------------------------------------------------------------------------------------------

namespace {

// An fd for the map `name` of the attached policy: its pin, else its id.
int old_map_fd(const state::Record& r, const std::string& name) {
  int fd = bpf_obj_get((r.pin_dir + "/" + name).c_str());
  if (fd >= 0) return fd;
  auto it = r.maps.find(name);
  if (it == r.maps.end()) return -1;
  return bpf_map_get_fd_by_id(it->second);
}
int old_prog_fd(const state::Record& r, const std::string& name) {
  int fd = bpf_obj_get((r.pin_dir + "/" + name).c_str());
  if (fd >= 0) return fd;
  auto it = r.progs.find(name);
  if (it == r.progs.end()) return -1;
  return bpf_prog_get_fd_by_id(it->second);
}

bool map_compatible(bpf_map* m, int fd, std::string* why) {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
    *why = "cannot read the old map";
    return false;
  }
  if (info.type != static_cast<uint32_t>(bpf_map__type(m)) || info.key_size != bpf_map__key_size(m) ||
      info.value_size != bpf_map__value_size(m) || info.max_entries != bpf_map__max_entries(m) ||
      info.map_flags != bpf_map__map_flags(m)) {
    *why = fmt::format("layout differs (entries {} -> {}, value {} -> {} bytes)", info.max_entries,
                       bpf_map__max_entries(m), info.value_size, bpf_map__value_size(m));
    return false;
  }
  return true;
}

Status swap_tc(int ifindex, const state::TcAttachment& tc, int new_fd, const std::string& ifname) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = new_fd, .flags = BPF_TC_F_REPLACE, .handle = tc.handle,
              .priority = tc.priority);
  int err = bpf_tc_attach(&hook, &o);
  if (err) return errno_error(err, fmt::format("cannot replace the TC program on {}", ifname));
  return {};
}

Status swap_xdp(const state::Record& r, int new_fd, int old_fd) {
  LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = old_fd);
  int err = bpf_xdp_attach(r.ifindex, new_fd, XDP_FLAGS_REPLACE | xdp_mode_flag(r.xdp.mode), &o);
  if (err) return errno_error(err, fmt::format("cannot replace the XDP program on {}", r.ifname));
  return {};
}

}  // namespace

Result<Reloaded> reload(const ReloadOptions& o, std::ostream& log) {
  const int v = o.verbosity;
  auto ifindex = ifindex_of(o.ifname);
  if (!ifindex) return ifindex.error();
  LoadOptions lo;
  lo.verbosity = v;
  auto policy = LoadedPolicy::open_file(o.object, lo);
  if (!policy) return policy.error();
  const qosc::Manifest& m = policy->manifest();
  if (Status st = require_admin("qosrun reload"); !st) return st.error();
  auto lock = state::Lock::acquire(o.ifname);
  if (!lock) return lock.error();
  auto existing = state::read(o.ifname);
  if (!existing) return existing.error();
  if (!*existing)
    return Error{fmt::format("{} has no qosc policy attached: use `qosrun attach {} {}`", o.ifname, o.object, o.ifname)};
  state::Record old = **existing;
  if (!old.in_this_netns())
    return Error{fmt::format("the qosc state of {} was made in another network namespace: reload there", o.ifname)};
  if (std::string why = old.stale_reason(); !why.empty() || old.phase != "attached")
    return Error{fmt::format("the policy on {} was left behind ({}): run `qosrun detach {}` and attach again", o.ifname,
                             why.empty() ? "an attach or detach did not finish" : why, o.ifname)};
  if (old.ifindex != *ifindex)
    return Error{fmt::format("{} is not the interface the policy was attached to (ifindex {} then, {} now): run "
                             "`qosrun detach {}` and attach again",
                             o.ifname, old.ifindex, *ifindex, o.ifname)};
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();

  // The programs attached now must be the ones the record names.
  Fd old_xdp(old_prog_fd(old, old.manifest.xdp_prog)), old_tc(old_prog_fd(old, old.manifest.tc_prog));
  uint32_t xdp_now = xdp_prog_now(old.ifindex, old.xdp.mode);
  uint32_t tc_now = tc_prog_now(old.ifindex, BPF_TC_EGRESS, old.main.tc.handle, old.main.tc.priority);
  if (!old_xdp || !old_tc || xdp_now != old.xdp.prog_id || tc_now != old.main.tc.prog_id)
    return Error{fmt::format("the programs on {} are not the ones qosrun attached (xdp id {} expected {}, tc id {} "
                             "expected {}): run `qosrun detach {}` and attach again",
                             o.ifname, xdp_now, old.xdp.prog_id, tc_now, old.main.tc.prog_id, o.ifname)};

  Reloaded out;
  // Reuse the old state maps where the layout is the same: counters, flows,
  // policer buckets and SP-PIFO bounds continue. Rule tables (maps strategy)
  // always come from the new object.
  std::set<std::string> stateful = {m.stats_map, m.flows_map, "qos_buckets", "qos_pifo"};
  // Isolation's slot assignments continue when every class isolates exactly
  // as before (same slots at the same places): no flow or host changes queue.
  auto isolation = [](const qosc::Manifest& x) {
    std::vector<std::optional<qosc::ManifestIsolation>> per_class;
    for (const auto& c : x.classes) per_class.push_back(c.isolate);
    return per_class;
  };
  if (isolation(old.manifest) == isolation(m)) stateful.insert({"qos_iso_slots", "qos_iso_index", "qos_iso_stats"});
  else if (std::any_of(m.classes.begin(), m.classes.end(), [](const auto& c) { return c.isolate.has_value(); }))
    out.notes.push_back("isolation changed: flows and hosts are assigned to sub-queues afresh");
  std::vector<Fd> keep;
  bpf_map* mp = nullptr;
  bpf_object__for_each_map(mp, policy->object()) {
    if (bpf_map__is_internal(mp)) continue;
    std::string name = bpf_map__name(mp);
    if (!stateful.count(name)) {
      out.new_maps.push_back(name);
      continue;
    }
    int fd = old_map_fd(old, name);
    if (fd < 0) {
      out.new_maps.push_back(name);
      continue;
    }
    keep.emplace_back(fd);
    std::string why;
    if (!map_compatible(mp, fd, &why)) {
      out.new_maps.push_back(name);
      out.notes.push_back(fmt::format("map {} starts afresh: {}", name, why));
      continue;
    }
    int err = bpf_map__reuse_fd(mp, fd);
    if (err) return errno_error(err, fmt::format("cannot reuse map {} of the attached policy", name));
    out.reused_maps.push_back(name);
  }
  if (Status f = state::fail_point("reload-load"); !f) return f.error();
  policy->set_xdp_meta(old.xdp_meta);
  if (Status st = policy->load(); !st) return st.error();
  int new_xdp = policy->prog_fd(Hook::Xdp), new_tc = policy->prog_fd(Hook::Tc);

  state::Record rec = old;
  rec.manifest = m;
  rec.object = absolute(o.object);
  uint32_t mtu = nl::link_mtu(o.ifname);
  uint32_t max_skb = nl::link_max_skb(o.ifname);
  struct SidePlan {
    state::Side* side;
    htb::Plan from, to;
    std::vector<uint32_t> added;
  };
  std::vector<SidePlan> sides;
  // An adaptive rate continues where its controller has it now (the new
  // range permitting); the controller sees the new generation and goes on
  // from this tree.
  const bool controlled = old.adaptive && (old.adaptive->supervisor_pid || old.foreground);
  auto add_side = [&](state::Side& s, htb::Where where) -> Status {
    SidePlan sp{&s, s.queues.plan, {}, {}};
    if (s.has_queues) {
      size_t dir = where == htb::Where::Ifb ? adaptive::RateController::kDown : adaptive::RateController::kUp;
      uint64_t now = controlled ? adaptive::current_rate(o.ifname, dir) : 0;
      auto p = htb::plan_for(m, where, mtu, max_skb, now);
      if (!p) return p.error();
      sp.to = std::move(*p);
      sp.to.default_minor = sp.from.default_minor;   // HTB cannot change it in place
      out.notes.insert(out.notes.end(), sp.to.notes.begin(), sp.to.notes.end());
    }
    sides.push_back(std::move(sp));
    return {};
  };
  if (Status st = add_side(rec.main, htb::Where::Interface); !st) return st.error();
  if (rec.ingress)
    if (Status st = add_side(rec.ingress->ifb, htb::Where::Ifb); !st) return st.error();
  if (old.adaptive && !m.adaptive())
    out.notes.push_back("the new policy's rates are fixed: the adaptive rate's controller stops");
  if (!old.adaptive && m.adaptive())
    out.notes.push_back(fmt::format("the new policy's rate is adaptive, but the policy on {} was attached without a "
                                    "controller: detach and attach it to adapt",
                                    o.ifname));

  // Undo in reverse order of what succeeded.
  std::vector<std::function<void()>> undo;
  auto rollback = [&](Error e) -> Error {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    e.message += fmt::format("\n  the policy '{}' on {} was left as it was", old.manifest.policy, o.ifname);
    return e;
  };

  // 1. New leaves first, so the new programs never steer to a missing class.
  for (auto& sp : sides) {
    if (!sp.side->has_queues) continue;
    if (Status f = state::fail_point("reload-htb"); !f) return rollback(f.error());
    Status st = htb::add_new_leaves(*sock, sp.side->ifindex, sp.from, sp.to, &sp.added);
    undo.push_back([&s = *sock, &sp] {
      for (uint32_t minor : sp.added) (void)nl::delete_class(s, sp.side->ifindex, htb::classid(sp.from.major, minor));
    });
    if (!st) return rollback(st.error());
  }
  // 2. Programs: TC (every side), then XDP; each an atomic replace.
  for (auto& sp : sides) {
    if (Status f = state::fail_point("reload-tc"); !f) return rollback(f.error());
    if (Status st = swap_tc(sp.side->ifindex, sp.side->tc, new_tc, sp.side->ifname); !st) return rollback(st.error());
    undo.push_back([&sp, fd = old_tc.get()] { (void)swap_tc(sp.side->ifindex, sp.side->tc, fd, sp.side->ifname); });
  }
  if (Status f = state::fail_point("reload-xdp"); !f) return rollback(f.error());
  if (Status st = swap_xdp(old, new_xdp, old_xdp.get()); !st) return rollback(st.error());
  undo.push_back([&old, new_xdp, fd = old_xdp.get()] { (void)swap_xdp(old, fd, new_xdp); });
  // 3. Classes that persist: changed in place.
  for (auto& sp : sides) {
    if (!sp.side->has_queues) continue;
    if (Status f = state::fail_point("reload-change"); !f) return rollback(f.error());
    Status st = htb::change_persisting(*sock, sp.side->ifindex, sp.from, sp.to);
    undo.push_back([&s = *sock, &sp] { (void)htb::change_persisting(s, sp.side->ifindex, sp.to, sp.from); });
    if (!st) return rollback(st.error());
  }
  say(log, v, 1, fmt::format("{}: programs replaced (xdp id {} -> {}, tc id {} -> {})", o.ifname, old.xdp.prog_id,
                             prog_id_of(new_xdp), old.main.tc.prog_id, prog_id_of(new_tc)));

  // Committed. Record the new state, then tidy up.
  rec.xdp.prog_id = prog_id_of(new_xdp);
  for (auto& sp : sides) {
    sp.side->tc.prog_id = prog_id_of(new_tc);
    if (sp.side->has_queues) sp.side->queues.plan = sp.to;
  }
  rec.generation = old.generation + 1;
  if (rec.adaptive && !m.adaptive()) {
    if (rec.adaptive->supervisor_pid)
      adaptive::stop_supervisor(rec.adaptive->supervisor_pid, rec.adaptive->supervisor_start);
    rec.adaptive.reset();
  }
  std::map<std::string, uint32_t> old_maps = rec.maps;
  rec.progs.clear();
  rec.maps.clear();
  // Under `ip netns exec` (a private /sys) the bpffs and the pins are gone: mount again.
  if (Status st = state::ensure_bpffs(state::paths_for(o.ifname).pin_root, nullptr); st)
    (void)state::ensure_bpffs(rec.pin_dir, nullptr);
  if (Status st = pin_all(*policy, rec); !st) out.notes.push_back("pinning the new policy: " + st.error().message);
  for (const auto& [name, id] : old_maps)
    if (!rec.maps.count(name)) (void)::unlink((rec.pin_dir + "/" + name).c_str());
  if (Status st = state::write(rec); !st) out.notes.push_back("writing the state: " + st.error().message);
  for (auto& sp : sides) {
    if (!sp.side->has_queues) continue;
    std::vector<std::string> w;
    (void)htb::delete_obsolete(*sock, sp.side->ifindex, sp.from, sp.to, o.drain_ms, &w);
    out.notes.insert(out.notes.end(), w.begin(), w.end());
  }
  out.record = std::move(rec);
  return out;
}

// ---- status ------------------------------------------------------------------------------------------

Result<StatusReport> status_of(const std::string& ifname) {
  StatusReport s;
  s.ifname = ifname;
  auto rec = state::read(ifname);
  if (!rec) return rec.error();
  int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex > 0) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) == 0 && q.prog_id) {
      const char* mode = q.attach_mode == XDP_ATTACHED_SKB ? "skb" : q.attach_mode == XDP_ATTACHED_DRV ? "native"
                                                                                                       : "multi";
      s.xdp_now = fmt::format("id {} {}", q.prog_id, mode);
    } else {
      s.xdp_now = "none";
    }
    if (auto sock = nl::RtnlSocket::open()) {
      if (auto root = nl::root_qdisc(*sock, ifindex); root && *root) s.root_qdisc_now = nl::describe(**root);
    }
  }
  if (!*rec) return s;
  s.attached = true;
  s.record = **rec;
  const state::Record& r = s.record;
  // Staleness is judged against this namespace's interfaces: only here.
  const bool here = r.in_this_netns();
  const std::string stale_why = here ? r.stale_reason() : std::string();
  s.stale = !stale_why.empty();
  if (ifindex <= 0) {
    s.problems.push_back(fmt::format("interface {} is gone", ifname));
    return s;
  }
  if (!here) {
    s.problems.push_back("the record was made in another network namespace");
    return s;
  }
  s.xdp_ok = r.xdp.attached && xdp_prog_now(ifindex, r.xdp.mode) == r.xdp.prog_id;
  if (!s.xdp_ok) s.problems.push_back(fmt::format("XDP: expected program id {} ({}), found {}", r.xdp.prog_id,
                                                  r.xdp.mode, s.xdp_now));
  uint32_t tc = tc_prog_now(ifindex, BPF_TC_EGRESS, r.main.tc.handle, r.main.tc.priority);
  s.tc_ok = r.main.tc.attached && tc == r.main.tc.prog_id;
  if (!s.tc_ok) s.problems.push_back(fmt::format("TC egress: expected program id {}, found {}", r.main.tc.prog_id, tc));
  if (r.main.has_queues) {
    s.queues_ok = s.root_qdisc_now == fmt::format("htb {:x}:", r.main.queues.plan.major);
    if (!s.queues_ok)
      s.problems.push_back(fmt::format("queues: expected htb {:x}: as root qdisc, found {}", r.main.queues.plan.major,
                                       s.root_qdisc_now.empty() ? "none" : s.root_qdisc_now));
  } else {
    s.queues_ok = true;
  }
  if (r.ingress) {
    s.ingress_ok = ifname_of(r.ingress->ifb_ifindex) == r.ingress->ifb_name;
    if (!s.ingress_ok) s.problems.push_back(fmt::format("ingress: {} is gone", r.ingress->ifb_name));
  } else {
    s.ingress_ok = true;
  }
  if (r.adaptive && r.adaptive->supervisor_pid &&
      !state::process_alive(r.adaptive->supervisor_pid, r.adaptive->supervisor_start))
    s.problems.push_back(fmt::format("the adaptive rate's supervisor (pid {}) is gone: the rate stays where it was; "
                                     "detach and attach again (its log: {}/supervisor.log)",
                                     r.adaptive->supervisor_pid, state::paths_for(ifname).state_dir));
  if (s.stale) s.problems.push_back(fmt::format("stale: {}; `qosrun detach {}` cleans up", stale_why, ifname));
  return s;
}

}  // namespace qosrun
