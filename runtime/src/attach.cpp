// attach: see qosrun/attach.hpp; what it shares with detach, reload and status is
// in lifecycle.hpp.
#include "qosrun/attach.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <ostream>

#include <fmt/format.h>

#include "qosrun/adaptive.hpp"
#include "qosrun/hosts.hpp"
#include "qosrun/htb.hpp"
#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"
#include "qosrun/txq.hpp"

#include "lifecycle.hpp"

namespace qosrun {

using namespace lifecycle;   // the steps the commands share (lifecycle.hpp)

namespace {

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
  if (!side.queues.tx) return htb::build(c.s, side.ifindex, side.queues.plan);
  // One HTB per TX queue. XPS off first, its values recorded before the
  // first write, so that detach (or the cleanup of a killed attach) puts them back.
  txq::Layout& tx = *side.queues.tx;
  auto xps = txq::xps_now(side.ifname);
  if (!xps) return xps.error();
  tx.xps = std::move(*xps);
  tx.xps_off = !tx.xps.empty();
  if (Status st = c.save(); !st) return st;
  if (Status f = state::fail_point("xps"); !f) return f;
  if (Status st = txq::write_xps(side.ifname, tx.xps, true); !st) return st;
  say(c.log, c.v, 1, fmt::format("{}: {}", side.ifname, txq::describe(tx)));
  return txq::build(c.s, side.ifindex, side.queues.plan, tx);
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

// Attaches `prog_fd` to the XDP hook of `ifindex`, recording it in `x` (and
// the record saved) before the kernel has it, so that a kill in between is
// cleaned up by the next command.
Status attach_xdp_to(Ctx& c, int ifindex, const std::string& ifname, state::XdpAttachment& x, int prog_fd, XdpMode mode,
                     std::vector<std::string>& notes) {
  x.prog_id = prog_id_of(prog_fd);
  x.mode = mode == XdpMode::Skb ? state::XdpAttachMode::Skb : state::XdpAttachMode::Native;
  x.attached = true;
  if (Status st = c.save(); !st) return st;
  int err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | xdp_mode_flag(x.mode), nullptr);
  if (err == -EOPNOTSUPP && mode == XdpMode::Auto) {
    notes.push_back(fmt::format("the driver of {} has no native XDP: the XDP program runs in skb (generic) mode",
                                ifname));
    x.mode = state::XdpAttachMode::Skb;
    if (Status st = c.save(); !st) return st;
    err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE, nullptr);
  }
  if (err) {
    x.attached = false;
    Error e = errno_error(err, fmt::format("cannot attach the XDP program to {} ({} mode)", ifname, to_string(x.mode)));
    if (err == -EOPNOTSUPP && x.mode == state::XdpAttachMode::Native)
      e.message = fmt::format("native XDP is not supported by the driver of {}: use --mode skb", ifname);
    else if (err == -EBUSY || err == -EEXIST)
      e.message += fmt::format("\n  {} already has an XDP program: remove it (ip link set dev {} xdp off)", ifname,
                               ifname);
    return e;
  }
  say(c.log, c.v, 1, fmt::format("{}: XDP program attached ({} mode, id {})", ifname, to_string(x.mode), x.prog_id));
  return {};
}

Status attach_xdp(Ctx& c, int prog_fd, XdpMode mode, std::vector<std::string>& notes) {
  if (Status f = state::fail_point("xdp"); !f) return f;
  return attach_xdp_to(c, c.rec.ifindex, c.rec.ifname, c.rec.xdp, prog_fd, mode, notes);
}

// Frames a steering CPU's queue holds (struct bpf_cpumap_val.qsize): the size
// the kernel's own samples use; a burst beyond it is dropped, as a NIC's ring would.
constexpr uint32_t kSteerQueueFrames = 2048;

// --steer-from: the cpumap gets CPUs 0 .. TX queues - 1 (queue q is CPU q's),
// then each interface of `steering` (checked by steering_interfaces) the
// steering program. Queues beyond the CPUs there are stay unsteered (their
// hosts' packets pass on the CPU they came in on).
Status attach_steering(Ctx& c, const LoadedPolicy& policy, const std::vector<state::Steering>& steering, XdpMode mode,
                       std::vector<std::string>& notes) {
  if (steering.empty()) return {};
  int cpus = bpf_object__find_map_fd_by_name(policy.object(), QOS_STEER_CPUS_MAP);
  if (cpus < 0) return Error{fmt::format("the object has no map {}: recompile it with this qosc", QOS_STEER_CPUS_MAP)};
  const uint32_t queues = c.rec.main.queues.tx ? c.rec.main.queues.tx->queues : 1;
  const int possible = libbpf_num_possible_cpus();
  uint32_t steered = 0;
  for (uint32_t cpu = 0; cpu < queues && static_cast<int>(cpu) < possible; ++cpu) {
    bpf_cpumap_val val{};
    val.qsize = kSteerQueueFrames;
    if (bpf_map_update_elem(cpus, &cpu, &val, BPF_ANY) != 0) {
      notes.push_back(fmt::format("steering: CPU {} takes no packets ({}): queue {}'s hosts are not steered", cpu,
                                  std::strerror(errno), cpu));
      continue;
    }
    ++steered;
  }
  if (steered < queues)
    notes.push_back(fmt::format("steering: {} of {} TX queues have a CPU of their number; the hosts of the others "
                                "are shaped on the CPU their packets come in on",
                                steered, queues));
  for (const state::Steering& s : steering) {
    state::Steering& rec = c.rec.steering.emplace_back(s);
    if (Status st = attach_xdp_to(c, rec.ifindex, rec.ifname, rec.xdp, policy.prog_fd(Hook::Steer), mode, notes); !st)
      return st;
  }
  // (After the programs: a failure or kill here leaves them for the undo to take away.)
  return state::fail_point("steer");
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

// --steer-from checked before anything changes: the policy can steer (hosts
// without `nat`, an object with the program), its hosts are spread over TX
// queues, and each interface exists, is another one and has no XDP program.
// Returns each interface's entry, not yet attached.
Result<std::vector<state::Steering>> steering_interfaces(const qosc::Manifest& m, const AttachOptions& o,
                                                         const state::Record& rec) {
  std::vector<state::Steering> out;
  if (o.steer_from.empty()) return out;
  if (!m.hosts)
    return Error{fmt::format("--steer-from: policy '{}' has no hosts to steer: steering sends each listed host's "
                             "packets to the CPU of its TX queue (docs/hosts.md \"Steering\")",
                             m.policy)};
  if (m.hosts->nat)
    return Error{fmt::format("--steer-from: policy '{}' finds hosts before NAT (`hosts {} nat`), which only "
                             "conntrack knows and XDP cannot see: leave out --steer-from",
                             m.policy, m.hosts->by)};
  if (m.hosts->steer_prog.empty())
    return Error{fmt::format("--steer-from: {} has no steering program: recompile it with this qosc", o.object)};
  if (!rec.main.queues.tx || rec.main.queues.tx->queues < 2)
    return Error{fmt::format("--steer-from: {} shapes its hosts with one HTB (one TX queue{}): steering spreads "
                             "hosts over the CPUs of several TX queues",
                             o.ifname, o.tx_queues == 1 ? ", --tx-queues 1" : "")};
  for (const std::string& name : o.steer_from) {
    if (name == o.ifname)
      return Error{fmt::format("--steer-from {}: that is the shaped interface itself; name the interfaces where "
                               "the hosts' packets come in",
                               name)};
    if (std::count(o.steer_from.begin(), o.steer_from.end(), name) > 1)
      return Error{fmt::format("--steer-from {} is given twice", name)};
    auto idx = ifindex_of(name);
    if (!idx) return Error{"--steer-from: " + idx.error().message};
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(*idx, 0, &q) == 0 && q.prog_id != 0)
      return Error{fmt::format("--steer-from {}: it already has an XDP program (id {}, {}); steering needs its XDP "
                               "hook: remove that program (ip link set dev {} xdp off), or steer from elsewhere",
                               name, q.prog_id, prog_name_of_id(q.prog_id), name)};
    out.push_back({name, *idx, {}});
  }
  return out;
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
  lo.load_steer = !o.steer_from.empty();
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
  if (Status st = hosts::check_ingress_shape(m, o.ingress_shape); !st) return st.error();
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
  // The host table is checked whole before anything changes.
  std::optional<hosts::HostTable> host_table;
  if (!o.hosts_table.empty()) {
    auto t = hosts::table_for_attach(m, o.hosts_table, o.queues);
    if (!t) return t.error();
    host_table = std::move(*t);
  }
  if (m.hosts && o.queues) hosts::make_room_for_hosts(rec.main.queues.plan);
  // One HTB per TX queue (qosrun/txq.hpp): hosts on an interface of several TX queues.
  if (o.queues && (m.hosts || o.tx_queues > 1)) {
    auto real = txq::real_tx_queues(o.ifname);
    if (!real && o.tx_queues > 1) return real.error();
    if (!real) notes.push_back(fmt::format("{}; one HTB for all TX queues", real.error().message));
    auto n = txq::choose(o.ifname, o.tx_queues, m.hosts.has_value(), real ? *real : 1);
    if (!n) return n.error();
    if (real && *real > 1 && *n > 1) {
      rec.main.queues.tx = txq::Layout{*n, *real, false, {}};
      policy->set_unlisted_queue(txq::queue_mapping(0));   // the policy's own leaves are on queue 0
    }
  }

  auto steering = steering_interfaces(m, o, rec);
  if (!steering) return steering.error();

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
  if (host_table)
    if (Status st = hosts::size_map(policy->object(), m, *host_table); !st) return st.error();
  if (Status st = policy->load(); !st) return st.error();
  say(log, v, 1, fmt::format("loaded {} (policy {}, {} classes, {}) in {:.1f} ms", o.object, m.policy,
                             policy->class_count(), m.scheduler, policy->load_seconds() * 1e3));

  state::Paths paths = state::paths_for(o.ifname);
  rec.pin_dir = paths.pin_dir;
  rec.phase = state::Phase::Attaching;
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
  std::string hosts_line;
  if (host_table) {
    // Before the programs: every host's classes and map entries are there
    // when the first packet is classified.
    if (Status f = state::fail_point("hosts"); !f) return fail(f.error());
    int fd = bpf_object__find_map_fd_by_name(policy->object(), m.hosts->map.c_str());
    auto sum = hosts::attach_hosts(*sock, rec, fd, *host_table,
                                   bpf_object__find_map_fd_by_name(policy->object(), QOS_HOSTS_EXACT_MAP));
    if (!sum) return fail(sum.error());
    notes.insert(notes.end(), sum->notes.begin(), sum->notes.end());
    hosts_line = fmt::format("{} hosts in {} groups ({:.1f} ms, {} netlink requests)", sum->added, sum->groups,
                             sum->seconds * 1e3, sum->messages);
    say(log, v, 1, fmt::format("{}: {}", o.ifname, hosts_line));
  }
  if (Status st = attach_tc(c, rec.main, policy->prog_fd(Hook::Tc)); !st) return fail(st.error());
  if (Status st = attach_xdp(c, policy->prog_fd(Hook::Xdp), o.mode, notes); !st) return fail(st.error());
  if (rec.ingress)
    if (Status st = attach_ingress(c, policy->prog_fd(Hook::Tc), o.force); !st) return fail(st.error());
  if (Status st = attach_steering(c, *policy, *steering, o.mode, notes); !st) return fail(st.error());

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
  rec.phase = state::Phase::Attached;
  if (!o.foreground) {
    rec.owner_pid = 0;
    rec.owner_start = 0;
  }
  if (Status st = c.save(); !st) return fail(st.error());
  Attached a{std::move(rec), std::move(*policy), std::move(notes), std::move(hosts_line)};
  return a;
}

}  // namespace qosrun
