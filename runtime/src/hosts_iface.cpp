// The hosts of an attached policy: attach --hosts, `qosrun hosts apply` and
// `qosrun hosts show` (qosrun/hosts.hpp, docs/hosts.md).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <malloc.h>

#include <chrono>
#include <ostream>
#include <set>

#include <fmt/format.h>

#include "qosrun/hosts.hpp"
#include "qosrun/state.hpp"

#include "lifecycle.hpp"

namespace qosrun::hosts {

namespace {
// What apply() calls to record the placement: the file, written atomically.
// `generation`, when given, gets the generation recorded.
auto recorder(const std::string& file, uint64_t* generation = nullptr) {
  return [file, generation](const Placement& p, const std::vector<uint32_t>& pending) {
    if (generation) *generation = p.generation;
    return write_placement(file, p, &pending);
  };
}
// ... and to journal the classes it is about to create.
auto journaler(const std::string& file) {
  return [file](const Placement& old, const std::vector<uint32_t>& creating) {
    return write_journal(file, old, creating);
  };
}
}  // namespace

Shape shape_of(const state::Record& r) {
  const htb::Plan& root = r.main.queues.plan;
  uint32_t mtu = root.frame_bytes > 14 ? root.frame_bytes - 14 : 1500;
  Shape s = Shape::of(r.manifest, root, mtu, nl::link_max_skb(r.ifname));
  if (r.main.queues.tx) s.tx_queues = r.main.queues.tx->queues;
  return s;
}

Result<HostTable> table_for_attach(const qosc::Manifest& m, const std::string& path, bool queues) {
  if (!m.hosts)
    return Error{fmt::format("--hosts {}: policy '{}' has no hosts; a host table needs a policy with `plan NAME {{ rate "
                             "R; }}` and `hosts saddr;` (or daddr) in it (docs/hosts.md)",
                             path, m.policy)};
  if (!queues) return Error{"--hosts needs the HTB tree that hosts live in: leave out --queues none"};
  return read_host_table(path, rules_for(m, kMaxMapEntries));
}

Status size_map(bpf_object* obj, const qosc::Manifest& m, const HostTable& t) {
  bpf_map* map = bpf_object__find_map_by_name(obj, m.hosts->map.c_str());
  if (!map)
    return Error{fmt::format("the object has no map {} although its manifest names one: recompile it with qosc",
                             m.hosts->map)};
  size_t need = t.prefix_count();
  if (need <= bpf_map__max_entries(map)) return {};
  uint32_t n = bpf_map__max_entries(map);
  while (n < need) n *= 2;
  int err = bpf_map__set_max_entries(map, n);
  if (err) return errno_error(err, fmt::format("cannot make map {} hold {} prefixes", m.hosts->map, need));
  if (bpf_map* exact = bpf_object__find_map_by_name(obj, QOS_HOSTS_EXACT_MAP))
    if (int e = bpf_map__set_max_entries(exact, n))
      return errno_error(e, fmt::format("cannot make map {} hold {} prefixes", QOS_HOSTS_EXACT_MAP, need));
  return {};
}

Result<Summary> attach_hosts(nl::RtnlSocket& s, const state::Record& rec, int map_fd, const HostTable& t,
                             int exact_fd) {
  Shape shape = shape_of(rec);
  auto next = plan_placement(Placement{}, t, shape);
  if (!next) return next.error();
  const std::string file = placement_file(rec.ifname);
  ApplyTarget target{&s, rec.ifindex, rec.ifname, map_fd, 0, exact_fd, journaler(file)};
  uint64_t generation = 0;
  auto sum = apply(target, shape, Placement{}, *next, recorder(file, &generation));
  // The table's bytes for the next apply's quick path (without them it takes the whole path).
  if (sum && generation && !t.text.empty()) (void)write_applied_table(file, generation, t.text);
  return sum;
}

Status check_ingress_shape(const qosc::Manifest& m, bool ingress_shape) {
  if (!m.hosts || !ingress_shape) return {};
  const bool dst = m.hosts->by == "daddr";
  return Error{fmt::format(
      "policy '{}' has per-host plans (`hosts {}`), which shape what leaves the interface; --ingress-shape would "
      "shape what arrives on an IFB that has no hosts' subtrees, so listed hosts' packets there would skip their "
      "plans and classes: shape the other direction where it leaves the router (on the {} interface, a policy with "
      "`hosts {}`), or attach without --ingress-shape (docs/hosts.md, \"Both directions\")",
      m.policy, dst ? "daddr" : "saddr", dst ? "uplink" : "subscribers'", dst ? "saddr" : "daddr")};
}

void remove_groups(nl::RtnlSocket& s, int ifindex, const std::string& ifname) {
  auto placement = read_placement(placement_file(ifname));
  if (!placement || placement->groups.empty()) return;
  std::vector<nl::NlMessage> dels;
  // Groups are made in index order (attach), so the highest index is the newest.
  for (auto it = placement->groups.rbegin(); it != placement->groups.rend(); ++it)
    dels.push_back(nl::delete_class_message(ifindex, it->leaf_classid()));
  (void)s.batch(dels);
}

Status check_reload(const std::string& ifname, const qosc::Manifest& next) {
  auto placement = read_placement(placement_file(ifname));
  if (!placement) return placement.error();
  if (placement->hosts.empty()) return {};
  if (!next.hosts)
    return Error{fmt::format("{} has {} hosts from a host table and policy '{}' has no `hosts`: remove them first "
                             "(qosrun hosts apply {} with a table of only its header line), or detach",
                             ifname, placement->hosts.size(), next.policy, ifname)};
  std::set<std::string> missing;
  for (const auto& h : placement->hosts)
    if (!next.find_plan(h.plan)) missing.insert(h.plan);
  if (!missing.empty()) {
    std::string names;
    for (const auto& n : missing) names += (names.empty() ? "" : ", ") + n;
    return Error{fmt::format("hosts on {} are on plan(s) {} that policy '{}' lacks: move them to another plan with "
                             "`qosrun hosts apply` first, or keep the plans in the policy",
                             ifname, names, next.policy)};
  }
  return {};
}

Result<Summary> reapply(nl::RtnlSocket& s, const state::Record& rec, int map_fd, int exact_fd) {
  const std::string file = placement_file(rec.ifname);
  auto old = read_placement(file);
  if (!old) return old.error();
  HostTable t;
  t.source = file;
  for (const auto& h : old->hosts) t.hosts.push_back({h.name, h.plan, h.prefixes, 0});
  Shape shape = shape_of(rec);
  auto next = plan_placement(*old, t, shape);
  if (!next) return next.error();
  ApplyTarget target{&s, rec.ifindex, rec.ifname, map_fd, 200, exact_fd, journaler(file)};
  return apply(target, shape, *old, *next, recorder(file));
}

namespace {

// The attached policy of `ifname`, when it may take a host table.
Result<state::Record> attached_record(const std::string& ifname, const char* command) {
  auto rec = state::read(ifname);
  if (!rec) return rec.error();
  if (!*rec) return Error{fmt::format("{} has no qosc policy attached: attach one with `qosrun attach OBJ {} --hosts "
                                      "TABLE`",
                                      ifname, ifname)};
  state::Record r = std::move(**rec);
  if (!r.in_this_netns())
    return Error{fmt::format("the qosc state of {} was made in another network namespace: run qosrun {} there", ifname,
                             command)};
  if (std::string why = r.stale_reason(); !why.empty() || r.phase != state::Phase::Attached)
    return Error{fmt::format("the policy on {} was left behind ({}): run `qosrun detach {}` and attach again", ifname,
                             why.empty() ? "an attach or detach did not finish" : why, ifname)};
  if (!r.manifest.hosts)
    return Error{fmt::format("policy '{}' on {} has no hosts: a host table needs a policy with `plan`s and `hosts "
                             "saddr;` (or daddr); reload such a policy first (docs/hosts.md)",
                             r.manifest.policy, ifname)};
  if (!r.main.has_queues)
    return Error{fmt::format("{} was attached with --queues none: hosts live in the HTB tree; detach and attach "
                             "without it",
                             ifname)};
  return r;
}

Result<int> open_map(const state::Record& r) {
  const std::string& name = r.manifest.hosts->map;
  int fd = r.map_fd(name);
  if (fd < 0)
    return Error{fmt::format("cannot find the map {} of the policy on {} (pinned at {}): run `qosrun detach {}` and "
                             "attach again",
                             name, r.ifname, r.pin_dir, r.ifname)};
  return fd;
}

}  // namespace

Result<Summary> apply_table(const ApplyOptions& o, std::ostream& log) {
  const auto t0 = std::chrono::steady_clock::now();
  // -vv: where the time goes.
  auto lap = [&, last = t0](const std::string& what) mutable {
    auto now = std::chrono::steady_clock::now();
    lifecycle::say(log, o.verbosity, 2,
                   fmt::format("hosts apply: {} {:.1f} ms", what, std::chrono::duration<double>(now - last).count() * 1e3));
    last = now;
  };
  if (Status st = lifecycle::require_admin("qosrun hosts apply"); !st) return st.error();
  // A table and a placement of 10,000 hosts are a few MB of short-lived
  // buffers: kept in the heap rather than mapped and unmapped each (every
  // fresh page is a fault, slow on a VM).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  auto ifindex = lifecycle::ifindex_of(o.ifname);
  if (!ifindex) return ifindex.error();
  auto lock = state::Lock::acquire(o.ifname);
  if (!lock) return lock.error();
  auto rec = attached_record(o.ifname, "hosts apply");
  if (!rec) return rec.error();
  auto fd = open_map(*rec);
  if (!fd) return fd.error();
  lap("record and lock");
  Fd map(*fd);
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(map.get(), &info, &len) != 0)
    return errno_error(errno, fmt::format("cannot read the map {}", rec->manifest.hosts->map));
  const TableRules rules = rules_for(rec->manifest, info.max_entries);
  auto text = read_file_text(o.table);
  if (!text) return errno_error(text.error().code, fmt::format("cannot read the host table {}", o.table));
  const TableFormat format = table_format(*text, table_format_of(o.table));
  const std::string file = placement_file(o.ifname);
  const Shape shape = shape_of(*rec);
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();
  // The exact-match map of single addresses, when the object has one (pinned next to qos_hosts).
  Fd exact(rec->map_fd(QOS_HOSTS_EXACT_MAP));
  ApplyTarget target{&*sock, *ifindex, o.ifname, map.get(), o.drain_ms, exact.get(), journaler(file)};
  uint64_t generation = 0;   // of the placement recorded, if any

  std::string why = "QOSRUN_HOSTS_QUICK=0";
  std::optional<Delta> delta;
  if (o.quick) delta = plan_delta(file, o.table, *text, format, rules, shape, &why);
  auto quick = [&]() -> Result<Summary> {
    lap(fmt::format("quick path: {} line(s) differ from the last table, planned", delta->lines));
    generation = delta->old_part.generation;
    target.record_after_deletes = true;
    auto sum = apply(target, shape, delta->old_part, delta->next_part,
                     [&](const Placement& next, const std::vector<uint32_t>& pending) {
                       generation = next.generation;
                       return delta->record(file, next, pending);
                     });
    if (sum) sum->unchanged += delta->untouched;
    return sum;
  };
  auto whole = [&]() -> Result<Summary> {
    lap(fmt::format("whole table ({})", why));
    auto table = parse_host_table(*text, o.table, rules, format);
    if (!table) return table.error();
    lap("table read and checked");
    auto old = read_placement(file);
    if (!old) return old.error();
    generation = old->generation;
    lap("placement read");
    auto next = plan_placement(*old, *table, shape);
    if (!next) return Error{next.error().message + "\n  nothing was changed"};
    lap("planned");
    auto sum = apply(target, shape, *old, *next, recorder(file, &generation));
    // The command ends here: the table and both placements (10,000 hosts:
    // ~100,000 small blocks) are left to the process's exit instead of being
    // freed one by one. Held by a global, so a leak checker sees them reachable.
    static struct Spent {
      HostTable table;
      Placement old, next;
    }* spent = nullptr;
    delete spent;
    spent = new Spent{std::move(*table), std::move(*old), std::move(*next)};
    return sum;
  };
  auto sum = delta ? quick() : whole();
  if (!sum) return sum.error();
  lap("applied and recorded");
  // The table's bytes for the next apply's quick path; failing to keep them
  // only costs that apply the whole path.
  if (format == TableFormat::Csv && generation) (void)write_applied_table(file, generation, *text);
  lifecycle::say(log, o.verbosity, 1,
                 fmt::format("{}: {} netlink request(s), {} map write(s)", o.ifname, sum->messages, sum->map_writes));
  sum->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

Result<HostsReport> show(const std::string& ifname) {
  auto ifindex = lifecycle::ifindex_of(ifname);
  if (!ifindex) return ifindex.error();
  auto rec = attached_record(ifname, "hosts show");
  if (!rec) return rec.error();
  auto placement = read_placement(placement_file(ifname));
  if (!placement) return placement.error();
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();
  HostsReport out;
  out.ifname = ifname;
  out.policy = rec->manifest.policy;
  out.groups = placement->groups.size();
  if (rec->main.queues.tx) {
    out.tx_queues = rec->main.queues.tx->queues;
    out.groups_per_queue.assign(out.tx_queues, 0);
    for (const auto& g : placement->groups)
      if (g.queue < out.tx_queues) ++out.groups_per_queue[g.queue];
  }
  std::map<uint32_t, nl::TcCounters> counters;
  for (const auto& g : placement->groups) {
    auto cs = nl::qdisc_class_counters(*sock, *ifindex, g.major);
    if (!cs) return cs.error();
    for (const auto& [id, c] : *cs) counters[id] = c;
  }
  for (const auto& h : placement->hosts) {
    HostView v;
    v.host = h;
    const Group* g = placement->group(h.group);
    v.group_major = g ? g->major : 0;
    v.queue = g ? g->queue : 0;
    v.classid = v.group_major | h.host_minor();
    if (auto it = counters.find(v.classid); it != counters.end()) {
      v.found = true;
      v.bytes = it->second.bytes;
      v.packets = it->second.packets;
      v.backlog = it->second.backlog_bytes;
    }
    // Drops happen at the leaves' queues.
    for (const auto& [cls, handle] : h.leaves)
      if (auto it = counters.find(v.group_major | (h.minor_base() + cls)); it != counters.end())
        v.drops += it->second.drops;
    out.hosts.push_back(std::move(v));
  }
  return out;
}

}  // namespace qosrun::hosts
