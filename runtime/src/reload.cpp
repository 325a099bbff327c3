// reload: see qosrun/attach.hpp.
#include "qosrun/attach.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <ostream>
#include <set>

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

namespace lifecycle {

Status recover_interrupted_reload(state::Record& r, nl::RtnlSocket& s, std::ostream& log, int v) {
  if (!r.reloading || !r.reloading->interrupted()) return {};
  const state::ReloadJournal jr = *r.reloading;
  auto fail = [&](const std::string& why) {
    return Error{fmt::format("a reload of {} by qosrun pid {} was interrupted and cannot be undone: {}; run `qosrun "
                             "detach {}` and attach again",
                             r.ifname, jr.pid, why, r.ifname)};
  };
  // 1. The recorded (old) programs back: TC on every side, then XDP. The old
  //    ones are still pinned: the reload pins the new ones only once it commits.
  Fd old_xdp(r.prog_fd(r.manifest.xdp_prog)), old_tc(r.prog_fd(r.manifest.tc_prog));
  if (!old_xdp || !old_tc) return fail("the old programs are gone");
  std::vector<state::Side*> sides{&r.main};
  if (r.ingress) sides.push_back(&r.ingress->ifb);
  for (state::Side* side : sides)
    if (tc_prog_now(side->ifindex, BPF_TC_EGRESS, side->tc.handle, side->tc.priority) != side->tc.prog_id)
      if (Status st = swap_tc(side->ifindex, side->tc, old_tc.get(), side->ifname); !st) return fail(st.error().message);
  if (uint32_t now = xdp_prog_now(r.ifindex, r.xdp.mode); now != r.xdp.prog_id) {
    Fd current(bpf_prog_get_fd_by_id(now));
    if (Status st = swap_xdp(r, old_xdp.get(), current.get()); !st) return fail(st.error().message);
  }
  // 2. The trees: classes that persist back to the recorded plan, the leaves
  //    the reload added removed (nothing steers to them any more).
  std::vector<std::pair<state::Side*, const htb::Plan*>> trees{{&r.main, &jr.main_to}};
  if (r.ingress && jr.ifb_to) trees.push_back({&r.ingress->ifb, &*jr.ifb_to});
  for (auto [side, to] : trees) {
    if (!side->has_queues) continue;
    if (Status st = htb::change_persisting(s, side->ifindex, *to, side->queues.plan); !st) return fail(st.error().message);
    std::vector<std::string> w;
    (void)htb::delete_obsolete(s, side->ifindex, *to, side->queues.plan, 0, &w);
  }
  r.reloading.reset();
  if (Status st = state::write(r); !st) return st;
  say(log, v, 0, fmt::format("note: a reload of {} to {} by qosrun pid {} was interrupted; policy '{}' is "
                             "back as it was",
                             r.ifname, jr.object, jr.pid, r.manifest.policy));
  return {};
}

}  // namespace lifecycle

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
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();
  if (Status st = recover_interrupted_reload(old, *sock, log, v); !st) return st.error();
  if (old.reloading)
    return Error{fmt::format("qosrun pid {} is reloading {}: wait for it to finish", old.reloading->pid, o.ifname)};
  if (std::string why = old.stale_reason(); !why.empty() || old.phase != state::Phase::Attached)
    return Error{fmt::format("the policy on {} was left behind ({}): run `qosrun detach {}` and attach again", o.ifname,
                             why.empty() ? "an attach or detach did not finish" : why, o.ifname)};
  if (old.ifindex != *ifindex)
    return Error{fmt::format("{} is not the interface the policy was attached to (ifindex {} then, {} now): run "
                             "`qosrun detach {}` and attach again",
                             o.ifname, old.ifindex, *ifindex, o.ifname)};

  // The programs attached now must be the ones the record names.
  Fd old_xdp(old.prog_fd(old.manifest.xdp_prog)), old_tc(old.prog_fd(old.manifest.tc_prog));
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
  // The hosts stay: their map is kept (its entries name groups and classes
  // that stay too) and their groups are not part of the root's plan.
  if (Status st = hosts::check_reload(o.ifname, m); !st) return st.error();
  if (Status st = hosts::check_ingress_shape(m, old.ingress.has_value()); !st) return st.error();
  // (An old object without the exact-match map: the new one starts empty and
  // the kept trie still holds the single addresses, found there, only slower.)
  if (old.manifest.hosts && m.hosts) stateful.insert({m.hosts->map, QOS_HOSTS_EXACT_MAP});
  // Steering stays as attached: its programs read the host maps kept here and
  // the cpumap, which is kept too; so the new policy must find hosts the same way.
  if (!old.steering.empty()) {
    const auto& was = *old.manifest.hosts;
    if (!m.hosts || m.hosts->by != was.by || m.hosts->nat)
      return Error{fmt::format("{} steers hosts' packets from {} by {}; policy '{}' finds hosts {}: steering would "
                               "send them to the wrong CPUs. Detach and attach the new policy (with or without "
                               "--steer-from)",
                               o.ifname, old.steering.front().ifname, was.by, m.policy,
                               !m.hosts ? "not at all" : m.hosts->nat ? fmt::format("by {} before NAT", m.hosts->by)
                                                                      : "by " + m.hosts->by)};
    stateful.insert(QOS_STEER_CPUS_MAP);
  }
  std::vector<Fd> keep;
  bpf_map* mp = nullptr;
  bpf_object__for_each_map(mp, policy->object()) {
    if (bpf_map__is_internal(mp)) continue;
    std::string name = bpf_map__name(mp);
    if (!stateful.count(name)) {
      out.new_maps.push_back(name);
      continue;
    }
    int fd = old.map_fd(name);
    if (fd < 0) {
      out.new_maps.push_back(name);
      continue;
    }
    keep.emplace_back(fd);
    if (m.hosts && (name == m.hosts->map || name == QOS_HOSTS_EXACT_MAP)) {
      // attach may have made it larger than the object's default for its table.
      bpf_map_info info{};
      uint32_t len = sizeof info;
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.max_entries > bpf_map__max_entries(mp))
        (void)bpf_map__set_max_entries(mp, info.max_entries);
    }
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
  if (!old.steering.empty())
    for (const std::string& name : {m.hosts->map, std::string(QOS_HOSTS_EXACT_MAP), std::string(QOS_STEER_CPUS_MAP)})
      if (std::find(out.reused_maps.begin(), out.reused_maps.end(), name) == out.reused_maps.end())
        return Error{fmt::format("{} steers hosts' packets with programs that read map {}, which policy '{}' cannot "
                                 "keep: detach and attach the new policy",
                                 o.ifname, name, m.policy)};
  if (Status f = state::fail_point("reload-load"); !f) return f.error();
  policy->set_xdp_meta(old.xdp_meta);
  // One HTB per TX queue stays: what is not a listed host's still goes to queue 0.
  if (old.main.has_queues && old.main.queues.tx) policy->set_unlisted_queue(txq::queue_mapping(0));
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
      if (m.hosts && where == htb::Where::Interface) hosts::make_room_for_hosts(sp.to);
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

  // The journal first: a reload killed from here on is undone by the next
  // reload or detach (recover_interrupted_reload).
  {
    state::Record journaled = old;
    state::ReloadJournal jr;
    jr.pid = ::getpid();
    jr.start = state::process_start_time(jr.pid);
    jr.object = rec.object;
    jr.main_to = sides[0].to;
    if (sides.size() > 1) jr.ifb_to = sides[1].to;
    journaled.reloading = std::move(jr);
    if (Status st = state::write(journaled); !st) return st.error();
  }
  // Undo in reverse order of what succeeded.
  std::vector<std::function<void()>> undo;
  auto rollback = [&](Error e) -> Error {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    (void)state::write(old);   // without the journal
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
  // The hosts under the new plans: only classes whose parameters moved change.
  if (m.hosts && rec.main.has_queues) {
    int fd = bpf_object__find_map_fd_by_name(policy->object(), m.hosts->map.c_str());
    auto sum = hosts::reapply(*sock, rec, fd, bpf_object__find_map_fd_by_name(policy->object(), QOS_HOSTS_EXACT_MAP));
    if (!sum) out.notes.push_back("the hosts under the new plans: " + sum.error().message);
    else if (sum->changed) out.notes.push_back(fmt::format("{} host(s) changed to the new plans", sum->changed));
  }
  out.record = std::move(rec);
  return out;
}

}  // namespace qosrun
