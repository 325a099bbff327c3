// Statistics sources: the per-CPU class counters, the LRU flow table and the
// HTB counters over netlink. See qosrun/stats.hpp.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qos_abi.h"
#include "qosrun/netlink.hpp"
#include "qosrun/stats.hpp"
#include "qosrun/state.hpp"
#include "qosrun/txq.hpp"

namespace qosrun {

namespace {

int fcntl_dupfd(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

size_t percpu_stride() { return (sizeof(qos_class_stats) + 7) / 8 * 8; }

uint64_t clock_ns(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string addr_string(uint8_t family, const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 4) {
    inet_ntop(AF_INET, a, buf, sizeof buf);
  } else if (family == 6) {
    inet_ntop(AF_INET6, a, buf, sizeof buf);
  } else {
    return "?";
  }
  return buf;
}

FlowEntry to_entry(const qos_flow_key& k, const qos_flow_val& v) {
  FlowEntry e;
  e.family = k.family;
  e.src = addr_string(k.family, k.saddr);
  e.dst = addr_string(k.family, k.daddr);
  e.sport = k.sport;
  e.dport = k.dport;
  e.proto = k.proto;
  e.first_ns = v.first_ns;
  e.last_ns = v.last_ns;
  e.packets = v.packets;
  e.bytes = v.bytes;
  e.class_id = v.class_id;
  e.hook_mask = v.hook_mask;
  e.key.assign(reinterpret_cast<const char*>(&k), sizeof k);
  return e;
}

}  // namespace

// ---- class counters ---------------------------------------------------------------

Status read_stats_entry(int fd, uint32_t key, ClassCounters& out) {
  static const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return errno_error(-ncpu, "cannot count the possible CPUs");
  std::vector<unsigned char> buf(percpu_stride() * static_cast<size_t>(ncpu));
  if (bpf_map_lookup_elem(fd, &key, buf.data()) != 0)
    return errno_error(errno, fmt::format("cannot read statistics entry {}", key));
  out = {};
  for (int cpu = 0; cpu < ncpu; ++cpu) {
    qos_class_stats s;
    std::memcpy(&s, buf.data() + percpu_stride() * static_cast<size_t>(cpu), sizeof s);
    for (int h = 0; h < 2; ++h) {
      out.packets[h] += s.packets[h];
      out.bytes[h] += s.bytes[h];
      out.drop_policer[h] += s.drop_policer[h];
      out.drop_rule[h] += s.drop_rule[h];
    }
  }
  return {};
}

Result<std::vector<ClassCounters>> read_stats_map(int fd, uint32_t slots) {
  if (fd < 0) return Error{"no statistics map"};
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
    if (info.type != BPF_MAP_TYPE_PERCPU_ARRAY || info.value_size != sizeof(qos_class_stats))
      return Error{fmt::format("the statistics map is not a per-CPU array of struct qos_class_stats "
                               "(type {}, value size {}); was it written by this qosc?",
                               info.type, info.value_size)};
    if (info.max_entries < slots)
      return Error{fmt::format("the statistics map has {} entries, the manifest needs {}", info.max_entries, slots)};
  }
  std::vector<ClassCounters> all(slots);
  for (uint32_t key = 0; key < slots; ++key)
    if (Status st = read_stats_entry(fd, key, all[key]); !st) return st.error();
  return all;
}

// ---- queues over netlink ----------------------------------------------------------------

const QueueCounters* QdiscSnapshot::find(uint32_t minor) const {
  for (const auto& c : classes)
    if ((c.handle & 0xffffu) == minor) return &c;
  return nullptr;
}

namespace {
// The kernel's counters of a qdisc or class (TCA_STATS2) into the root's or a class's figures.
template <class Counters>
void copy_counters(const nl::TcCounters& from, Counters& to) {
  to.bytes = from.bytes;
  to.packets = from.packets;
  to.drops = from.drops;
  to.overlimits = from.overlimits;
  to.backlog_bytes = from.backlog_bytes;
  to.qlen = from.qlen;
}
}  // namespace

Result<QdiscSnapshot> read_qdisc(const std::string& ifname, uint32_t major) {
  unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0)
    return Error{fmt::format("no interface '{}' in this network namespace (ip link shows the names; inside a "
                             "namespace run qosrun with ip netns exec)",
                             ifname)};
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();
  QdiscSnapshot snap;
  auto root = nl::root_qdisc(*sock, int(ifindex));
  if (!root) return root.error();
  if (*root) {
    const nl::QdiscInfo& q = **root;
    snap.root.present = true;
    snap.root.handle = q.handle;
    snap.root.kind = q.kind;
    copy_counters(q.counters, snap.root);
  }
  auto classes = nl::list_classes(*sock, int(ifindex));
  if (!classes) return classes.error();
  for (const nl::ClassInfo& c : *classes) {
    if (c.kind != "htb") continue;
    QueueCounters q;
    q.handle = c.handle;
    q.parent = c.parent;
    copy_counters(c.counters, q);
    q.rate_bps = c.rate_bps;
    q.ceil_bps = c.ceil_bps;
    q.prio = c.prio;
    q.quantum = c.quantum;
    // Classes of other HTB qdiscs on the device: isolation's sub-queues.
    if ((c.handle >> 16) != major) {
      snap.nested.push_back(q);
      continue;
    }
    snap.classes.push_back(q);
  }
  for (auto& c : snap.classes) {
    c.leaf = std::none_of(snap.classes.begin(), snap.classes.end(),
                          [&](const QueueCounters& o) { return o.parent == c.handle; });
  }
  std::sort(snap.classes.begin(), snap.classes.end(),
            [](const QueueCounters& a, const QueueCounters& b) { return a.handle < b.handle; });
  return snap;
}

// ---- the flow table ------------------------------------------------------------------------

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 0xff: return "-";
    default: return std::to_string(proto);
  }
}

Result<std::vector<FlowEntry>> read_flows(int fd) {
  std::vector<FlowEntry> out;
  if (fd < 0) return out;
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return errno_error(errno, "cannot inspect the flow table");
  if (info.key_size != sizeof(qos_flow_key) || info.value_size != sizeof(qos_flow_val))
    return Error{fmt::format("the flow table's layout (key {} / value {} bytes) is not qos_flow_key/qos_flow_val "
                             "({} / {}); was it written by this qosc?",
                             info.key_size, info.value_size, sizeof(qos_flow_key), sizeof(qos_flow_val))};
  // Batch lookups: one syscall per 1024 entries.
  {
    const uint32_t chunk = 1024;
    std::vector<qos_flow_key> keys(chunk);
    std::vector<qos_flow_val> vals(chunk);
    qos_flow_key token{};
    bool first = true, ok = true;
    for (;;) {
      uint32_t count = chunk;
      LIBBPF_OPTS(bpf_map_batch_opts, bo);
      int rc = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(), vals.data(), &count, &bo);
      int err = rc ? errno : 0;
      if (rc && err != ENOENT) {
        ok = false;
        break;
      }
      for (uint32_t i = 0; i < count; ++i) out.push_back(to_entry(keys[i], vals[i]));
      first = false;
      if (err == ENOENT || count == 0) break;
    }
    if (ok) return out;
    out.clear();
  }
  // Key by key (older kernels). Entries may be evicted while we walk: tolerate ENOENT.
  qos_flow_key key{}, next{};
  bool have = false;
  for (size_t guard = 0; guard < (size_t(info.max_entries) + 1) * 2; ++guard) {
    if (bpf_map_get_next_key(fd, have ? &key : nullptr, &next) != 0) break;
    qos_flow_val v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0) out.push_back(to_entry(next, v));
    key = next;
    have = true;
  }
  return out;
}

// ---- pinned state --------------------------------------------------------------------------
//
// `qosrun attach` (runtime/src/state.cpp, qosrun/state.hpp) pins the maps by
// name under $QOSRUN_PIN_ROOT/<ifname> (default /sys/fs/bpf/qosc) and records
// the manifest, the pin directory, the namespace and the map ids in the
// interface's state record.

namespace {

// A map by pin path, else by id among `ids` with the given name.
int open_map(const std::string& pin_path, const std::string& name, const std::vector<uint32_t>& ids) {
  int fd = bpf_obj_get(pin_path.c_str());
  if (fd >= 0) return fd;
  for (uint32_t id : ids) {
    int f = bpf_map_get_fd_by_id(id);
    if (f < 0) continue;
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(f, &info, &len) == 0 && name.compare(0, BPF_OBJ_NAME_LEN - 1, info.name) == 0)
      return f;
    close(f);
  }
  return -1;
}

// The ids of the maps program `prog_id` uses (empty when it is gone).
std::vector<uint32_t> maps_of_prog(uint32_t prog_id) {
  std::vector<uint32_t> out;
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return out;
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.nr_map_ids > 0) {
    std::vector<uint32_t> ids(info.nr_map_ids);
    uint32_t n = info.nr_map_ids;
    info = {};
    info.nr_map_ids = n;
    info.map_ids = reinterpret_cast<uint64_t>(ids.data());
    len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      ids.resize(std::min(n, info.nr_map_ids));
      out = std::move(ids);
    }
  }
  close(fd);
  return out;
}

}  // namespace

Result<StatsSource> StatsSource::open_pinned(const std::string& ifname, const std::string& pin_dir) {
  StatsSource s;
  s.ifname_ = ifname;
  if (if_nametoindex(ifname.c_str()) == 0)
    return Error{fmt::format("no interface '{}' in this network namespace (inside a namespace, run qosrun with "
                             "ip netns exec NS)",
                             ifname)};
  // The record attach wrote (qosrun/state.hpp), read by the same code as status and detach.
  auto rec = state::read(ifname);
  if (!rec) return rec.error();
  if (!*rec)
    return Error{fmt::format("no qosc policy is attached to {} (no {}); attach one with `qosrun attach OBJ {}`",
                             ifname, state::state_file(ifname), ifname)};
  const state::Record& r = **rec;
  if (r.netns != 0 && !r.in_this_netns())
    return Error{fmt::format("the policy recorded for {} in {} was attached in another network namespace; run "
                             "qosrun stats in that namespace (ip netns exec NS qosrun stats {})",
                             ifname, state::state_file(ifname), ifname)};
  if (r.phase != state::Phase::Attached)
    return Error{fmt::format("the policy on {} is {} (state {}); try again in a moment, or `qosrun detach {}` "
                             "to clean up after a crash",
                             ifname, state::to_string(r.phase), state::state_file(ifname), ifname)};
  s.manifest_ = r.manifest;
  s.pin_dir_ = !pin_dir.empty() ? pin_dir : !r.pin_dir.empty() ? r.pin_dir : state::paths_for(ifname).pin_dir;
  // Candidate ids, each checked by name: the maps of the XDP program running on the interface now
  // (the truth after a reload), of the recorded programs, then the recorded maps. The ids find the
  // maps when the bpffs is not visible (`ip netns exec` remounts /sys).
  std::vector<uint32_t> ids;
  {
    std::vector<uint32_t> progs;
    uint32_t live = 0;
    if (bpf_xdp_query_id(static_cast<int>(if_nametoindex(ifname.c_str())), 0, &live) == 0 && live) progs.push_back(live);
    for (const auto& [name, id] : r.progs) progs.push_back(id);
    for (uint32_t p : progs)
      for (uint32_t id : maps_of_prog(p)) ids.push_back(id);
  }
  for (const auto& [name, id] : r.maps) ids.push_back(id);
  int fd = open_map(s.pin_dir_ + "/" + s.manifest_.stats_map, s.manifest_.stats_map, ids);
  if (fd < 0)
    return Error{fmt::format("cannot open the statistics map of {} (not pinned at {}/{} and no live map of that "
                             "name among the recorded ids); `qosrun status {}` shows the attachment",
                             ifname, s.pin_dir_, s.manifest_.stats_map, ifname)};
  s.stats_.reset(fd);
  if (r.ingress) s.ifb_ = r.ingress->ifb_name;
  if (s.manifest_.pifo_mapping == "sp-pifo") {
    fd = open_map(s.pin_dir_ + "/qos_pifo", "qos_pifo", ids);
    if (fd >= 0) s.pifo_.reset(fd);
  }
  if (!s.manifest_.flows_map.empty()) {   // optional: policies compiled without a flow table have none
    fd = open_map(s.pin_dir_ + "/" + s.manifest_.flows_map, s.manifest_.flows_map, ids);
    if (fd >= 0) s.flows_.reset(fd);
  }
  if (std::any_of(s.manifest_.classes.begin(), s.manifest_.classes.end(), [](const auto& c) { return c.isolate; })) {
    if ((fd = open_map(s.pin_dir_ + "/qos_iso_slots", "qos_iso_slots", ids)) >= 0) s.iso_slots_.reset(fd);
    if ((fd = open_map(s.pin_dir_ + "/qos_iso_stats", "qos_iso_stats", ids)) >= 0) s.iso_stats_.reset(fd);
  }
  return s;
}

Result<StatsSource> StatsSource::from_fds(const qosc::Manifest& manifest, int stats_fd, int flows_fd,
                                          const std::string& ifname) {
  StatsSource s;
  s.manifest_ = manifest;
  s.ifname_ = ifname;
  if (stats_fd < 0) return Error{"the policy has no statistics map"};
  int d = fcntl_dupfd(stats_fd);
  if (d < 0) return errno_error(errno, "cannot duplicate the statistics map fd");
  s.stats_.reset(d);
  if (flows_fd >= 0) {
    d = fcntl_dupfd(flows_fd);
    if (d < 0) return errno_error(errno, "cannot duplicate the flow table fd");
    s.flows_.reset(d);
  }
  // The IFB of --ingress-shape, from the record of this attachment (when there is one).
  if (auto rec = state::read(ifname); rec && *rec && (*rec)->ingress && ((*rec)->netns == 0 || (*rec)->in_this_netns()))
    s.ifb_ = (*rec)->ingress->ifb_name;
  return s;
}

namespace {
// The slots of every isolated class in use and the per-class counters
// (summed over CPUs). A slot is in use when its owner is set; the view keeps
// the active ones.
void read_isolation(const qosc::Manifest& m, int slots_fd, int stats_fd, Sample& s) {
  s.coarse_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
  for (const auto& c : m.classes) {
    if (!c.isolate) continue;
    const auto& iso = *c.isolate;
    for (uint32_t i = 0; i < iso.pool(); ++i) {
      uint32_t key = iso.slot_base + i;
      qos_iso_slot v{};
      if (bpf_map_lookup_elem(slots_fd, &key, &v) != 0 || v.owner == 0) continue;
      IsoSlotEntry e;
      e.class_id = c.id;
      e.last_ns = v.last_ns;
      e.packets = v.packets;
      const uint32_t cls_major = QOS_HTB_MINOR_BASE + c.id;
      e.family = v.key.family;
      e.proto = v.key.proto;
      e.src = addr_string(v.key.family, v.key.saddr);
      e.host = v.key.kind == 2;
      if (e.host) {
        e.index = i;
      } else {
        e.dst = addr_string(v.key.family, v.key.daddr);
        e.sport = v.key.sport;
        e.dport = v.key.dport;
        e.index = iso.per_host > 1 ? (i - iso.slots) % iso.per_host : i;
      }
      if (e.host || iso.per_host == 1) {
        e.subqueue = (cls_major << 16) | (QOS_ISO_MINOR_BASE + e.index);
      } else {
        const uint32_t h = (i - iso.slots) / iso.per_host;
        e.subqueue = ((iso.host_major + h) << 16) | (QOS_ISO_MINOR_BASE + e.index);
      }
      s.iso_slots.push_back(std::move(e));
    }
  }
  s.iso_counters.assign(m.classes.size(), {});
  if (stats_fd < 0) return;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return;
  std::vector<qos_iso_counters> per(static_cast<size_t>(ncpu));
  for (uint32_t k = 0; k < m.classes.size(); ++k) {
    if (bpf_map_lookup_elem(stats_fd, &k, per.data()) != 0) continue;
    for (const auto& x : per) {
      s.iso_counters[k].claims += x.claims;
      s.iso_counters[k].overflows += x.overflows;
      s.iso_counters[k].sparse += x.sparse;
      s.iso_counters[k].nat_found += x.nat_found;
    }
  }
}
}  // namespace

Result<Sample> StatsSource::sample(const SampleOptions& opts) const {
  Sample s;
  s.mono_ns = clock_ns(CLOCK_MONOTONIC);
  s.unix_time = static_cast<double>(clock_ns(CLOCK_REALTIME)) / 1e9;
  auto m = read_stats_map(stats_.get(), static_cast<uint32_t>(manifest_.classes.size() + 1));
  if (!m) return m.error();
  s.map = std::move(*m);
  if (opts.qdisc && !ifname_.empty()) {
    auto q = read_qdisc(ifname_, QOS_HTB_MAJOR);
    if (q) {
      // One HTB per TX queue (qosrun/txq.hpp): the root is mq (its counters
      // are every queue's), the policy's own leaves are in queue 0's htb 1:.
      const bool ours = q->root.present && ((q->root.kind == "htb" && (q->root.handle >> 16) == QOS_HTB_MAJOR) ||
                                            (q->root.kind == "mq" && (q->root.handle >> 16) == txq::kMqMajor));
      if (ours)
        s.qdisc = std::move(*q);
      else
        s.qdisc_error = q->root.present ? fmt::format("root qdisc of {} is {} {:x}:, not qosrun's htb 1:", ifname_,
                                                      q->root.kind, q->root.handle >> 16)
                                        : fmt::format("{} has no root qdisc", ifname_);
    } else {
      s.qdisc_error = q.error().message;
    }
  }
  if (opts.qdisc && !ifb_.empty()) {
    s.ifb = ifb_;
    if (auto q = read_qdisc(ifb_, QOS_HTB_MAJOR); q && q->root.present && q->root.kind == "htb") s.ifb_qdisc = std::move(*q);
  }
  if (pifo_.valid()) {
    uint32_t zero = 0;
    qos_pifo_state ps{};
    if (bpf_map_lookup_elem(pifo_.get(), &zero, &ps) == 0) s.pifo_inversions = ps.inversions;
  }
  if (opts.flows && flows_.valid()) {
    auto f = read_flows(flows_.get());
    if (!f) return f.error();
    s.flows = std::move(*f);
  }
  if (iso_slots_.valid()) read_isolation(manifest_, iso_slots_.get(), iso_stats_.get(), s);
  if (manifest_.adaptive() && !ifname_.empty()) s.adaptive = adaptive::read_snapshot(ifname_);
  return s;
}

}  // namespace qosrun
