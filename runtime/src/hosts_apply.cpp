// Applying a host placement to an interface: see qosrun/hosts.hpp and
// docs/hosts.md ("Applying a table"). Only the difference is sent: netlink
// requests go out in batches (RtnlSocket::batch), map entries one by one.
#include <bpf/bpf.h>
#include <linux/netlink.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "qosrun/hosts.hpp"
#include "qosrun/state.hpp"

namespace qosrun::hosts {

namespace {

using Clock = std::chrono::steady_clock;

// The verb of an Op that creates an HTB class; the journal picks those ops out by this
// pointer (every such Op is made with it), not by comparing text.
constexpr const char* kCreateClass = "create HTB class";

// One netlink request of an apply, and how to take it back.
struct Op {
  nl::NlMessage msg;
  std::string who;        // "host 'alice'", "group 3": for messages (cheap: names only)
  const char* verb;       // kCreateClass, "create the queue of", ...
  uint32_t id = 0;        // the class or qdisc it concerns
  std::optional<nl::NlMessage> undo;
};

std::string describe_failure(const Op& op, const Error& e) {
  return fmt::format("{}: cannot {} {}: {}", op.who, op.verb, nl::handle_string(op.id), e.message);
}

std::string host_who(const PlacedHost& h) { return fmt::format("host '{}'", h.name); }

// Sends `ops`; on any failure takes back the ones that succeeded (and
// `done` before them, newest first) and returns every failure.
Status run_ops(nl::RtnlSocket& s, std::vector<Op>& ops, std::vector<nl::NlMessage>& done_undo, size_t* messages) {
  if (ops.empty()) return {};
  std::vector<nl::NlMessage> msgs;
  msgs.reserve(ops.size());
  for (auto& op : ops) msgs.push_back(std::move(op.msg));
  auto failures = s.batch(msgs);
  *messages += msgs.size();
  std::vector<bool> failed(ops.size(), false);
  for (const auto& f : failures) failed[f.index] = true;
  for (size_t i = 0; i < ops.size(); ++i)
    if (!failed[i] && ops[i].undo) done_undo.push_back(std::move(*ops[i].undo));
  if (failures.empty()) return {};
  std::string msg = fmt::format("the kernel refused {} of {} change{}", failures.size(), ops.size(),
                                ops.size() == 1 ? "" : "s");
  for (const auto& f : failures) msg += "\n  " + describe_failure(ops[f.index], f.error);
  return Error{msg, "", failures.front().error.code};
}

void undo_all(nl::RtnlSocket& s, std::vector<nl::NlMessage>& done_undo) {
  std::reverse(done_undo.begin(), done_undo.end());
  (void)s.batch(done_undo);
  done_undo.clear();
}

std::string key_bytes(const Prefix& p) {
  std::string k(reinterpret_cast<const char*>(p.addr.data()), 16);
  k.push_back(static_cast<char>(p.len));
  return k;
}

// The map writes of an apply, with what each key held before, for undo. A
// single-address prefix goes into the exact-match map when the object has one
// (qos_abi.h QOS_HOSTS_EXACT_MAP: one hash lookup instead of the trie's walk),
// every other prefix into the trie.
class MapWriter {
 public:
  MapWriter(int fd, int exact_fd) : fd_(fd), exact_fd_(exact_fd) {}
  Status put(const Prefix& p, const qos_host_val& v, const std::optional<qos_host_val>& before) {
    qos_host_key k = map_key(p);
    if (bpf_map_update_elem(fd_of(k), key_of(k), &v, BPF_ANY) != 0)
      return errno_error(errno, fmt::format("cannot write prefix {} into the hosts map", p.text()));
    log_.push_back({k, before});
    ++writes;
    return {};
  }
  Status erase(const Prefix& p, const std::optional<qos_host_val>& before) {
    qos_host_key k = map_key(p);
    if (bpf_map_delete_elem(fd_of(k), key_of(k)) != 0 && errno != ENOENT)
      return errno_error(errno, fmt::format("cannot delete prefix {} from the hosts map", p.text()));
    if (exact(k)) (void)bpf_map_delete_elem(fd_, &k);   // in the trie when an older qosrun wrote it
    log_.push_back({k, before});
    ++writes;
    return {};
  }
  void undo() {
    for (auto it = log_.rbegin(); it != log_.rend(); ++it) {
      if (it->second) (void)bpf_map_update_elem(fd_of(it->first), key_of(it->first), &*it->second, BPF_ANY);
      else (void)bpf_map_delete_elem(fd_of(it->first), key_of(it->first));
    }
    log_.clear();
  }
  // After an interrupted apply: the maps hold exactly `want`, whatever they
  // held (not undone: what they held belonged to no recorded placement).
  void resync(const std::vector<std::pair<qos_host_key, qos_host_val>>& want) {
    auto bytes = [](const qos_host_key& k) { return std::string(reinterpret_cast<const char*>(&k), sizeof k); };
    std::unordered_set<std::string> keep;
    for (const auto& [k, v] : want) {
      if (bpf_map_update_elem(fd_of(k), key_of(k), &v, BPF_ANY) == 0) ++writes;
      keep.insert(bytes(k));
    }
    // Keys are collected first: deleting while walking would skip some.
    std::vector<qos_host_key> stray;
    qos_host_key k{}, nk{};
    for (bool first = true; bpf_map_get_next_key(fd_, first ? nullptr : &k, &nk) == 0; first = false) {
      k = nk;
      if (exact(k) || !keep.count(bytes(k))) stray.push_back(k);   // a single address belongs in the exact map
    }
    for (const auto& x : stray)
      if (bpf_map_delete_elem(fd_, &x) == 0) ++writes;
    if (exact_fd_ < 0) return;
    stray.clear();
    qos_host_key e{}, ne{};
    e.prefixlen = ne.prefixlen = 128;
    for (bool first = true; bpf_map_get_next_key(exact_fd_, first ? nullptr : e.addr, ne.addr) == 0; first = false) {
      std::memcpy(e.addr, ne.addr, sizeof e.addr);
      if (!keep.count(bytes(e))) stray.push_back(e);
    }
    for (const auto& x : stray)
      if (bpf_map_delete_elem(exact_fd_, x.addr) == 0) ++writes;
  }
  size_t writes = 0;

 private:
  bool exact(const qos_host_key& k) const { return exact_fd_ >= 0 && k.prefixlen == 128; }
  int fd_of(const qos_host_key& k) const { return exact(k) ? exact_fd_ : fd_; }
  const void* key_of(const qos_host_key& k) const { return exact(k) ? static_cast<const void*>(k.addr) : &k; }
  int fd_;
  int exact_fd_;
  std::vector<std::pair<qos_host_key, std::optional<qos_host_val>>> log_;
};

// Waits (at most until `deadline`) for the classes in `classids` to hold
// nothing, reading each group's classes in one dump per round.
void drain(nl::RtnlSocket& s, int ifindex, const std::vector<uint32_t>& classids, Clock::time_point deadline,
           std::vector<std::string>& notes) {
  std::set<uint32_t> want(classids.begin(), classids.end());
  for (;;) {
    std::set<uint32_t> majors;
    for (uint32_t c : want) majors.insert(c & 0xffff0000u);
    std::set<uint32_t> busy;
    uint64_t bytes = 0;
    for (uint32_t maj : majors) {
      auto cs = nl::qdisc_class_counters(s, ifindex, maj);
      if (!cs) continue;
      for (const auto& [id, c] : *cs)
        if (want.count(id) && c.backlog_bytes) {
          busy.insert(id);
          bytes += c.backlog_bytes;
        }
    }
    if (busy.empty()) return;
    if (Clock::now() >= deadline) {
      notes.push_back(fmt::format("{} class(es) of removed hosts still held {} bytes when their time to drain ran "
                                  "out; deleting them dropped those bytes",
                                  busy.size(), bytes));
      return;
    }
    want = std::move(busy);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

Result<Summary> apply(const ApplyTarget& t, const Shape& shape, const Placement& old, const Placement& next,
                      const std::function<Status(const Placement&, const std::vector<uint32_t>&)>& committed) {
  const auto t0 = Clock::now();
  Summary sum;
  nl::RtnlSocket& s = *t.sock;
  const int ifx = t.ifindex;

  // What an earlier apply left to delete: its removed hosts' classes, and
  // (journal) the classes an apply killed while creating had made.
  const bool recovering = !old.journal_deletes.empty();
  if (!old.pending_deletes.empty() || recovering) {
    std::vector<nl::NlMessage> dels;
    for (uint32_t c : old.journal_deletes) dels.push_back(nl::delete_class_message(ifx, c));
    for (uint32_t c : old.pending_deletes) dels.push_back(nl::delete_class_message(ifx, c));
    (void)s.batch(dels);
    sum.messages += dels.size();
    if (recovering) sum.notes.push_back(fmt::format("an earlier apply was interrupted: {} class(es) it had made are "
                                                    "deleted and the hosts map is written whole",
                                                    old.journal_deletes.size()));
  }

  ClassCache old_cache, new_cache;
  std::vector<const PlacedHost*> added, removed;
  std::vector<std::pair<const PlacedHost*, const PlacedHost*>> kept;   // (old, new)
  {
    size_t i = 0, j = 0;
    while (i < old.hosts.size() || j < next.hosts.size()) {
      if (j == next.hosts.size() || (i < old.hosts.size() && old.hosts[i].name < next.hosts[j].name))
        removed.push_back(&old.hosts[i++]);
      else if (i == old.hosts.size() || next.hosts[j].name < old.hosts[i].name)
        added.push_back(&next.hosts[j++]);
      else
        kept.emplace_back(&old.hosts[i++], &next.hosts[j++]);
    }
  }
  std::vector<nl::NlMessage> undo;
  // Everything this apply did taken back: the journal no longer stands
  // (else the next apply would report an interruption that was none).
  auto take_back = [&] {
    undo_all(s, undo);
    if (t.journal) (void)t.journal(old, {});
  };
  htb::CbClassidProgram progs;

  // 1. Create: new groups, new hosts, new leaves of kept hosts.
  std::vector<Op> ops;
  for (const auto& g : next.groups) {
    if (old.group(g.index)) continue;
    if (Status f = state::fail_point("hosts-group"); !f) return f.error();
    const std::string who = fmt::format("group {}", g.index);
    nl::HtbClassParams leaf = group_leaf(shape, g);
    ops.push_back({nl::htb_class_message(ifx, leaf, true), who, kCreateClass, leaf.classid,
                   nl::delete_class_message(ifx, leaf.classid)});
    nl::HtbRootSpec q;
    q.handle = g.major;
    q.parent = leaf.classid;
    q.default_minor = 0;   // a classid the filter names that is gone: the group's direct queue
    ops.push_back({nl::htb_qdisc_message(ifx, q), who, "create HTB qdisc", g.major, std::nullopt});
    nl::HtbClassParams root = group_root(shape, g);
    ops.push_back({nl::htb_class_message(ifx, root, true), who, kCreateClass, root.classid, std::nullopt});
    auto fd = progs.fd(QOS_CB_HOST);
    if (!fd) return fd.error();
    ops.push_back({nl::classid_filter_message(ifx, g.major, *fd, "qos_hosts"), who, "attach the host filter to",
                   g.major, std::nullopt});
  }
  auto add_leaf = [&](const std::string& who, const HostClasses::Leaf& l, uint32_t handle) {
    ops.push_back({nl::htb_class_message(ifx, l.params, true), who, kCreateClass, l.params.classid,
                   nl::delete_class_message(ifx, l.params.classid)});
    ops.push_back({leaf_queue_message(ifx, l, handle, NLM_F_CREATE | NLM_F_EXCL), who, "create the queue of",
                   l.params.classid, std::nullopt});
  };
  for (const PlacedHost* h : added) {
    auto c = host_classes(shape, *next.group(h->group), *h, &new_cache);
    if (!c) return c.error();
    const std::string who = host_who(*h);
    ops.push_back({nl::htb_class_message(ifx, c->host, true), who, kCreateClass, c->host.classid,
                   nl::delete_class_message(ifx, c->host.classid)});
    for (const auto& l : c->leaves) add_leaf(who, l, h->leaves.at(l.class_id));
  }
  for (auto [was, now] : kept) {
    if (was->fingerprint == now->fingerprint && was->leaves == now->leaves) continue;
    auto c = host_classes(shape, *next.group(now->group), *now, &new_cache);
    if (!c) return c.error();
    for (const auto& l : c->leaves)
      if (!was->leaves.count(l.class_id)) add_leaf(host_who(*now), l, now->leaves.at(l.class_id));
  }
  if (Status f = state::fail_point("hosts-create"); !f) return f.error();
  // Journaled before the first create: a kill from here until the next
  // placement is recorded leaves classes the next apply must delete.
  if (!ops.empty() && t.journal) {
    // New groups whole (their leaf in the root takes everything inside), then
    // the other new classes, leaves before their host (the reverse of creation).
    std::vector<uint32_t> creating, classes;
    std::set<uint32_t> new_leaves, new_majors;
    for (const auto& g : next.groups)
      if (!old.group(g.index)) {
        creating.push_back(g.leaf_classid());
        new_leaves.insert(g.leaf_classid());
        new_majors.insert(g.major);
      }
    for (const auto& op : ops)
      if (op.verb == kCreateClass && !new_leaves.count(op.id) &&
          !new_majors.count(op.id & 0xffff0000u))
        classes.push_back(op.id);
    creating.insert(creating.end(), classes.rbegin(), classes.rend());
    if (Status st = t.journal(old, creating); !st) return st.error();
  }
  if (Status st = run_ops(s, ops, undo, &sum.messages); !st) {
    take_back();
    return Error{st.error().message + "\n  nothing was changed", "", st.error().code};
  }

  // 2. Change: classes of kept hosts whose parameters moved, group rates.
  ops.clear();
  for (auto [was, now] : kept) {
    if (was->fingerprint == now->fingerprint && was->leaves == now->leaves) continue;
    ++sum.changed;
    if (was->fingerprint == now->fingerprint) continue;   // only leaves added or dropped
    auto c = host_classes(shape, *next.group(now->group), *now, &new_cache);
    if (!c) return c.error();
    // The old parameters, for undo: as the old placement's plan made them.
    auto before = host_classes(shape, *old.group(was->group), *was, &old_cache);
    auto leaf_before = [&](uint32_t classid) -> const HostClasses::Leaf* {
      if (!before) return nullptr;
      for (const auto& l : before->leaves)
        if (l.params.classid == classid) return &l;
      return nullptr;
    };
    const std::string who = host_who(*now);
    // Only what moved is sent: every message costs a qdisc lookup in the kernel.
    if (!before || !(before->host == c->host))
      ops.push_back({nl::htb_class_message(ifx, c->host, false), who, "change HTB class", c->host.classid,
                     before ? std::optional(nl::htb_class_message(ifx, before->host, false)) : std::nullopt});
    for (const auto& l : c->leaves) {
      if (!was->leaves.count(l.class_id)) continue;
      const HostClasses::Leaf* b = leaf_before(l.params.classid);
      if (!b || !(b->params == l.params))
        ops.push_back({nl::htb_class_message(ifx, l.params, false), who, "change HTB class", l.params.classid,
                       b ? std::optional(nl::htb_class_message(ifx, b->params, false)) : std::nullopt});
      const uint32_t handle = now->leaves.at(l.class_id);
      const uint32_t cls = l.params.classid;
      if (b && b->queue.frames() != l.queue.frames()) {
        // A queue of the other kind (bfifo <-> frame queue): the kernel changes
        // a queue only within its kind, so the old one goes (HTB puts a default
        // queue in its place for the moment; what it held is dropped) and the
        // new one takes its handle.
        constexpr uint16_t kCreate = NLM_F_CREATE | NLM_F_EXCL;
        ops.push_back({nl::delete_qdisc_message(ifx, cls, handle), who, "replace the queue of", cls,
                       leaf_queue_message(ifx, *b, handle, kCreate)});
        ops.push_back({leaf_queue_message(ifx, l, handle, kCreate), who, "replace the queue of", cls,
                       nl::delete_qdisc_message(ifx, cls, handle)});
      } else if (!b || b->queue != l.queue) {
        ops.push_back({leaf_queue_message(ifx, l, handle, 0), who, "change the queue of", cls,
                       b ? std::optional(leaf_queue_message(ifx, *b, handle, 0)) : std::nullopt});
      }
    }
  }
  for (const auto& g : next.groups) {
    const Group* was = old.group(g.index);
    if (!was || was->rate_bps == g.rate_bps) continue;
    nl::HtbClassParams leaf = group_leaf(shape, g);
    ops.push_back({nl::htb_class_message(ifx, leaf, false), fmt::format("group {}", g.index), "change HTB class",
                   leaf.classid, nl::htb_class_message(ifx, group_leaf(shape, *was), false)});
  }
  if (Status f = state::fail_point("hosts-change"); !f) {
    take_back();
    return f.error();
  }
  if (Status st = run_ops(s, ops, undo, &sum.messages); !st) {
    take_back();
    return Error{st.error().message + "\n  nothing was changed", "", st.error().code};
  }

  // 3. The map: new values first (a prefix that moves to another host is
  // overwritten in place, never missing), then the prefixes that are gone.
  MapWriter map(t.map_fd, t.exact_fd);
  auto fail_map = [&](const Error& e) -> Error {
    map.undo();
    take_back();
    return Error{e.message + "\n  nothing was changed", "", e.code};
  };
  auto value_of = [&](const Placement& p, const PlacedHost& h, ClassCache& cache) -> std::optional<qos_host_val> {
    const Group* g = p.group(h.group);
    if (!g) return std::nullopt;
    auto c = cache.get(shape, h.plan, h.rate_bps);
    if (!c) return std::nullopt;
    return map_value(shape, *g, h, **c);
  };
  // What a prefix held before, for undo: its own host's old value, else (a
  // prefix that moved between hosts) found through an index built only then.
  std::unordered_map<std::string, const PlacedHost*> old_owner;
  auto before_of = [&](const Prefix& p, const PlacedHost* was) -> std::optional<qos_host_val> {
    if (was && std::binary_search(was->prefixes.begin(), was->prefixes.end(), p)) return value_of(old, *was, old_cache);
    if (old_owner.empty())
      for (const auto& h : old.hosts)
        for (const auto& q : h.prefixes) old_owner.emplace(key_bytes(q), &h);
    auto it = old_owner.find(key_bytes(p));
    return it == old_owner.end() ? std::nullopt : value_of(old, *it->second, old_cache);
  };
  if (Status f = state::fail_point("hosts-map"); !f) return fail_map(f.error());
  for (const PlacedHost* h : added) {
    auto v = value_of(next, *h, new_cache);
    if (!v) return fail_map(Error{fmt::format("host '{}': no map value", h->name)});
    for (const auto& p : h->prefixes)
      if (Status st = map.put(p, *v, before_of(p, nullptr)); !st) return fail_map(st.error());
  }
  bool prefixes_gone = !removed.empty();
  for (auto [was, now] : kept) {
    const bool classes_moved = was->fingerprint != now->fingerprint || was->leaves != now->leaves;
    // The value names group, slot, id (kept) and the plan's classes: it moves with the plan.
    bool value_moved = was->plan != now->plan || was->fingerprint != now->fingerprint;
    if (value_moved) {
      auto vo = value_of(old, *was, old_cache), vn = value_of(next, *now, new_cache);
      value_moved = !vo || !vn || std::memcmp(&*vo, &*vn, sizeof *vn) != 0;
    }
    const bool prefixes_moved = was->prefixes != now->prefixes;
    if (!value_moved && !prefixes_moved) {
      if (!classes_moved) ++sum.unchanged;
      continue;
    }
    if (!classes_moved) ++sum.changed;
    prefixes_gone |= prefixes_moved;
    auto vn = value_of(next, *now, new_cache);
    if (!vn) return fail_map(Error{fmt::format("host '{}': no map value", now->name)});
    for (const auto& p : now->prefixes) {
      if (!value_moved && std::binary_search(was->prefixes.begin(), was->prefixes.end(), p)) continue;
      if (Status st = map.put(p, *vn, before_of(p, was)); !st) return fail_map(st.error());
    }
  }
  if (prefixes_gone) {
    std::unordered_set<std::string> next_keys;
    for (const auto& h : next.hosts)
      for (const auto& p : h.prefixes) next_keys.insert(key_bytes(p));
    for (const auto& h : old.hosts) {
      const PlacedHost* now = next.host(h.name);
      if (now && now->prefixes == h.prefixes) continue;
      for (const auto& p : h.prefixes) {
        if (next_keys.count(key_bytes(p))) continue;
        if (Status st = map.erase(p, before_of(p, &h)); !st) return fail_map(st.error());
      }
    }
  }
  if (recovering) {
    // An interrupted apply may have written entries of hosts that never were
    // recorded, or values of its own: every host's entries again, and no other.
    std::vector<std::pair<qos_host_key, qos_host_val>> want;
    for (const auto& h : next.hosts)
      if (auto v = value_of(next, h, new_cache))
        for (const auto& p : h.prefixes) want.emplace_back(map_key(p), *v);
    map.resync(want);
  }
  sum.map_writes = map.writes;
  sum.added = added.size();
  sum.removed = removed.size();
  sum.groups = next.groups.size();

  // Committed: the new hosts are shaped. What remains is deleting.
  std::vector<uint32_t> deletes;    // in order: leaves before their host, hosts before their group
  std::vector<uint32_t> to_drain;
  for (const PlacedHost* h : removed) {
    const Group* g = old.group(h->group);
    if (!g) continue;
    for (const auto& [cls, handle] : h->leaves) to_drain.push_back(g->major | (h->minor_base() + cls));
    if (next.group(h->group)) {
      for (const auto& [cls, handle] : h->leaves) deletes.push_back(g->major | (h->minor_base() + cls));
      deletes.push_back(g->major | h->host_minor());
    }
  }
  for (auto [was, now] : kept) {
    const Group* g = old.group(was->group);
    for (const auto& [cls, handle] : was->leaves)
      if (!now->leaves.count(cls)) {
        to_drain.push_back(g->major | (was->minor_base() + cls));
        deletes.push_back(g->major | (was->minor_base() + cls));
      }
  }
  // A group left empty goes whole: its leaf in the root HTB takes its qdisc and classes along.
  for (const auto& g : old.groups)
    if (!next.group(g.index)) deletes.push_back(g.leaf_classid());
  // Nothing changed: the record stays as it is (no write at all).
  const bool any = sum.added || sum.removed || sum.changed || !old.pending_deletes.empty() || recovering ||
                   old.next_host_id != next.next_host_id;
  if (any)
    if (Status st = committed(next, deletes); !st) sum.notes.push_back("recording the hosts: " + st.error().message);
  if (!deletes.empty()) {
    if (Status f = state::fail_point("hosts-delete"); !f) return f.error();
    drain(s, ifx, to_drain, Clock::now() + std::chrono::milliseconds(t.drain_ms), sum.notes);
    std::vector<nl::NlMessage> dels;
    for (uint32_t c : deletes) dels.push_back(nl::delete_class_message(ifx, c));
    bool all_gone = true;
    for (const auto& f : s.batch(dels))
      if (f.error.code != ENOENT) {
        all_gone = false;
        sum.notes.push_back(fmt::format("cannot delete class {}: {}", nl::handle_string(deletes[f.index]),
                                        f.error.message));
      }
    sum.messages += dels.size();
    // Else the placement keeps listing them as pending: the next apply
    // deletes them again (ENOENT) before it creates anything, which saves
    // writing the whole placement a second time here.
    if (all_gone && t.record_after_deletes && deletes.size() > kRecordAgainAbove)
      if (Status st = committed(next, {}); !st) sum.notes.push_back("recording the hosts: " + st.error().message);
  }
  sum.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return sum;
}

}  // namespace qosrun::hosts
