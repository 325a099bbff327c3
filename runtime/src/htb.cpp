// The HTB tree from a manifest: see qosrun/htb.hpp and docs/qosrun.md.
#include "qosrun/htb.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_sched.h>
#include <linux/netlink.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qosc/units.hpp"
#include "qosrun/state.hpp"

namespace qosrun::htb {

using qosc::units::format_rate;

namespace {

uint64_t clamp_rate(uint64_t r) { return std::max(r, kMinRateBps); }

// What `ceil_bps` sends in `ms`, at least kLeafQueueMinFrames frames.
uint64_t queue_bytes(uint64_t ceil_bps, uint32_t ms, uint32_t frame) {
  return std::max<uint64_t>(ceil_bps / 8 * ms / 1000, uint64_t{frame} * kLeafQueueMinFrames);
}

// Quanta proportional to `v` (weights or DRR quanta): the smallest value gets
// `minq` (the largest packet, see min_quantum), the others minq * v / vmin, so
// the ratios are exact. When vmax / vmin exceeds kQuantumSpread the largest is
// held at kQuantumSpread * minq and the ratio is kept by going below minq for
// the smallest (never below one frame): their share of unused capacity is then
// exact for full frames and coarser for GSO packets (*clamped says so).
std::vector<uint32_t> scaled_quanta(const std::vector<uint64_t>& v, uint32_t minq, uint32_t frame, bool* clamped) {
  uint64_t vmax = *std::max_element(v.begin(), v.end());
  uint64_t vmin = std::max<uint64_t>(1, *std::min_element(v.begin(), v.end()));
  long double top = std::min<long double>((long double)minq * kQuantumSpread,
                                          (long double)minq * (long double)vmax / (long double)vmin);
  std::vector<uint32_t> q;
  *clamped = false;
  for (uint64_t x : v) {
    long double want = top * (long double)x / (long double)vmax;
    if (want + 0.5L < minq) *clamped = true;
    want = std::max<long double>(want, frame);
    q.push_back(static_cast<uint32_t>(std::llround(want)));
  }
  return q;
}

// The sub-queues of an isolated class below its leaf 1:<minor>
// (docs/isolation.md). Every sub-queue borrows everything (its own rate is
// the minimum) under a root that never limits, so HTB's round robin with a
// quantum of one largest skb divides the class exactly equally.
Nested nested_level(uint32_t handle, uint32_t cb_slot, uint32_t count, uint64_t link, uint64_t ceil,
                    uint32_t frame, uint32_t minq) {
  Nested n;
  n.handle = handle;
  n.cb_slot = cb_slot;
  n.default_minor = QOS_ISO_MINOR_BASE;
  const uint64_t unlimited = std::max<uint64_t>(link * 10, 1000000000ull);
  const uint32_t big_burst = 4 * minq;
  n.root.classid = handle | 1;
  n.root.parent = handle;
  n.root.rate_bps = n.root.ceil_bps = unlimited;
  n.root.burst_bytes = n.root.cburst_bytes = big_burst;
  n.root.quantum = minq;
  for (uint32_t i = 0; i < count; ++i) {
    nl::HtbClassParams c;
    c.classid = handle | (QOS_ISO_MINOR_BASE + i);
    c.parent = n.root.classid;
    c.rate_bps = kMinRateBps;
    c.ceil_bps = unlimited;
    c.burst_bytes = default_burst(kMinRateBps, frame);
    c.cburst_bytes = big_burst;
    c.quantum = minq;
    n.subs.push_back(c);
  }
  n.queue = leaf_queue(ceil, frame, minq + frame);
  return n;
}

Nested nested_plan(const qosc::ManifestIsolation& iso, uint32_t minor, uint64_t link, uint64_t ceil, uint32_t frame,
                   uint32_t minq) {
  Nested n = nested_level(minor << 16, QOS_CB_SUBQ, iso.slots, link, ceil, frame, minq);
  if (iso.per_host > 1)
    for (uint32_t h = 0; h < iso.slots; ++h)
      n.below.push_back(
          nested_level((iso.host_major + h) << 16, QOS_CB_SUBQ + 1, iso.per_host, link, ceil, frame, minq));
  return n;
}

}  // namespace

LeafQueue leaf_queue(uint64_t ceil_bps, uint32_t frame, uint32_t largest) {
  auto clamp = [](uint64_t b) { return static_cast<uint32_t>(std::min<uint64_t>(b, 0x7fffffffu)); };
  if (uint64_t b = queue_bytes(ceil_bps, kLeafQueueMs, frame); b >= largest) return {clamp(b), 0};
  uint64_t frames = queue_bytes(ceil_bps, kFrameQueueMs, frame);
  if (frames >= largest) return {largest, 0};
  return {clamp(frames), 2 * frame};
}

nl::NlMessage leaf_queue_message(int ifindex, uint32_t parent_classid, uint32_t handle, const LeafQueue& q,
                                 uint16_t flags) {
  if (q.frames()) return nl::frame_queue_message(ifindex, parent_classid, handle, q.limit, q.split_above, flags);
  return nl::bfifo_message(ifindex, parent_classid, handle, q.limit, flags);
}

uint32_t default_burst(uint64_t rate_bps, uint32_t frame) {
  uint64_t b = rate_bps / 8 / 1000 + frame;
  return static_cast<uint32_t>(std::min<uint64_t>(b, 0x7fffffffu));
}

uint32_t min_quantum(uint32_t mtu, uint32_t max_skb) {
  uint64_t skb = std::clamp<uint64_t>(max_skb, kDefaultMaxSkb, kMaxSkb);
  uint64_t mss = std::max<uint64_t>(std::max<uint32_t>(mtu, 68), 148) - 100;   // at least 48 bytes a segment
  uint64_t segs = (skb + mss - 1) / mss;
  return static_cast<uint32_t>(skb + 14 + (segs - 1) * kSegmentHeaderBytes);
}

const Leaf* Plan::find(uint32_t minor) const {
  for (const auto& l : leaves)
    if (l.minor == minor) return &l;
  return nullptr;
}

Result<Plan> plan(const qosc::Manifest& m, uint32_t mtu, uint32_t max_skb, uint64_t link_now) {
  Plan p;
  const uint64_t nominal = m.link_bps;
  const uint64_t L = link_now ? link_now : nominal;
  if (L == 0)
    return Error{fmt::format("policy {} has no link rate: qosrun shapes to the policy's `link`; add `link RATE;` "
                             "or compile with qosc --link RATE",
                             m.policy.empty() ? "(unnamed)" : m.policy)};
  if (m.classes.empty()) return Error{"the object's manifest lists no classes: recompile it with qosc"};
  p.frame_bytes = std::max<uint32_t>(mtu, 68) + 14;
  const uint32_t frame = p.frame_bytes;
  // Every leaf's quantum covers the largest packet (GSO), so that HTB's round
  // robin among borrowing classes (and among classes of one priority) shares
  // bytes, not packets.
  const uint32_t minq = min_quantum(mtu, max_skb);
  // r2q only matters for classes without an explicit quantum (none of ours):
  // pick it so the link's rate/r2q is about 20 frames.
  p.r2q = static_cast<uint32_t>(std::clamp<uint64_t>(nominal / 8 / (20ull * frame), 1, 1000000));

  p.link.classid = classid(kMajor, kRootMinor);
  p.link.parent = kMajor << 16;
  p.link.rate_bps = p.link.ceil_bps = L;
  p.link.burst_bytes = p.link.cburst_bytes = default_burst(L, frame);
  p.link.quantum = frame;
  p.link.prio = 0;

  // A leaf's queue is sized for its ceiling at the nominal link
  // (`nominal_ceil`): an adaptive rate changes the class in place, never its
  // queue, which would drop what the queue holds when it changes kind.
  auto make_leaf = [&](uint32_t minor, std::string label, int32_t cls, uint64_t rate, uint64_t ceil,
                       uint64_t nominal_ceil, uint32_t cburst, uint32_t quantum, uint32_t prio) {
    Leaf l;
    l.minor = minor;
    l.label = std::move(label);
    l.class_id = cls;
    l.params.classid = classid(kMajor, minor);
    l.params.parent = classid(kMajor, kRootMinor);
    l.params.ceil_bps = ceil;
    l.params.rate_bps = std::min(clamp_rate(rate), ceil);
    l.params.burst_bytes = default_burst(l.params.rate_bps, frame);
    l.params.cburst_bytes = cburst;
    l.params.quantum = quantum;
    l.params.prio = std::min(prio, kMaxPrio);
    l.queue = leaf_queue(nominal_ceil, frame, minq + frame);
    p.leaves.push_back(std::move(l));
  };
  const uint64_t sp_assured = clamp_rate(L / kSpAssuredDivisor);

  if (m.scheduler == "pifo") {
    uint32_t bands = m.pifo_bands;
    if (bands == 0 || bands > 16)
      return Error{fmt::format("the manifest asks for {} pifo bands; qosrun builds 1 to 16", bands)};
    if (!m.pifo_mapping.empty() && m.pifo_mapping != "sp-pifo")
      return Error{fmt::format("the manifest's pifo mapping '{}' is unknown to this qosrun (it knows sp-pifo): "
                               "use a qosrun as new as the qosc that compiled it",
                               m.pifo_mapping)};
    // Band 0 (the lowest ranks) is assured the link, as the best priority is
    // under strict_priority; the other bands borrow in band order.
    for (uint32_t b = 0; b < bands; ++b)
      make_leaf(kMinorBase + b, fmt::format("band {}", b), -1, b == 0 ? L : sp_assured, L, nominal,
                default_burst(L, frame), minq, b);
    p.default_minor = kMinorBase + bands - 1;
    if (bands > kMaxPrio + 1)
      p.notes.push_back(fmt::format("pifo: bands {}..{} share HTB priority {} (HTB has 8 priorities)", kMaxPrio,
                                    bands - 1, kMaxPrio));
    bool caps = std::any_of(m.classes.begin(), m.classes.end(), [](const auto& c) { return c.rate_bps != 0; });
    if (caps)
      p.notes.push_back("pifo: bands mix classes, so class rate caps are enforced by the XDP policer (ingress) only");
    return p;
  }

  const size_t n = m.classes.size();
  std::vector<uint64_t> share(n, 0);
  std::vector<uint32_t> quanta(n, minq);
  std::vector<uint32_t> prio(n, 0);
  bool clamped = false;
  if (m.scheduler == "strict_priority") {
    // The classes of the best priority present get the link between them as
    // their assured rate: HTB sends a class within its assured rate at once,
    // without waiting for the parent's tokens, so a small real-time flow
    // never waits behind a bulk frame's worth of parent tokens (0.6 ms at
    // 20 Mbit). Every other class keeps a token rate and borrows in priority
    // order, which is what makes lower numbers go first.
    uint32_t best = UINT32_MAX;
    size_t n_best = 0;
    for (const auto& c : m.classes) best = std::min(best, c.priority);
    for (const auto& c : m.classes) n_best += c.priority == best;
    for (size_t i = 0; i < n; ++i) {
      const auto& c = m.classes[i];
      share[i] = c.priority == best ? clamp_rate(L / std::max<size_t>(n_best, 1)) : sp_assured;
      prio[i] = c.priority;
    }
  } else if (m.scheduler == "round_robin") {
    for (size_t i = 0; i < n; ++i) share[i] = L / n;
  } else if (m.scheduler == "deficit_round_robin" || m.scheduler == "weighted_fair_queuing") {
    bool drr = m.scheduler == "deficit_round_robin";
    std::vector<uint64_t> v(n);
    long double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      v[i] = std::max<uint64_t>(1, drr ? m.classes[i].quantum : m.classes[i].weight);
      sum += (long double)v[i];
    }
    for (size_t i = 0; i < n; ++i) share[i] = static_cast<uint64_t>((long double)L * (long double)v[i] / sum);
    quanta = scaled_quanta(v, minq, frame, &clamped);
    if (clamped)
      p.notes.push_back(fmt::format("{}: the {} span more than {}:1; the largest HTB quantum is held at {} bytes and "
                                    "the smallest are below one GSO packet ({} bytes): their share of unused "
                                    "capacity is exact for full frames, coarser for GSO packets (assured rates keep "
                                    "the exact ratio)",
                                    m.scheduler, drr ? "quanta" : "weights", kQuantumSpread,
                                    uint64_t{minq} * kQuantumSpread, minq));
  } else {
    return Error{fmt::format("the manifest's scheduler '{}' is unknown to this qosrun: use a qosrun as new as the qosc "
                             "that compiled the object",
                             m.scheduler)};
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& c = m.classes[i];
    uint64_t ceil = c.rate_bps ? std::min(c.rate_bps, L) : L;
    uint32_t cburst = default_burst(ceil, frame);
    if (c.rate_bps) {
      cburst = static_cast<uint32_t>(std::min<uint64_t>(c.burst_bytes, 0x7fffffffu));
      if (cburst < frame) {
        p.notes.push_back(fmt::format("class {}: burst {} bytes is less than one frame; using {}", c.name, cburst,
                                      frame));
        cburst = frame;
      }
    }
    if (c.rate_bps > L && !link_now)
      p.notes.push_back(fmt::format("class {}: rate {} is above the link; capped at {}", c.name,
                                    format_rate(c.rate_bps), format_rate(L)));
    uint32_t minor = c.leaf_minor();
    // At the nominal link whatever the rate now: an adaptive rate changes the
    // leaf in place and never replaces its queue or its sub-queues.
    const uint64_t nominal_ceil = c.rate_bps ? std::min(c.rate_bps, nominal) : nominal;
    make_leaf(minor, c.name, static_cast<int32_t>(c.id), share[i], ceil, nominal_ceil, cburst, quanta[i], prio[i]);
    if (c.isolate) {
      p.leaves.back().nested = nested_plan(*c.isolate, minor, nominal, nominal_ceil, frame, minq);
      // Its sparse flows: a leaf of their own, sent within its assured rate.
      uint64_t sparse = std::min(ceil, std::max(c.isolate->sparse_bps * kSparseFlowsAssured, ceil / kSparseShareOfCeil));
      make_leaf(QOS_HTB_SPARSE_BASE + c.id, c.name + "~sparse", static_cast<int32_t>(c.id), sparse, ceil, nominal_ceil,
                cburst, minq, prio[i]);
    }
    if (c.is_default || c.id == m.default_class) p.default_minor = minor;
  }
  if (p.default_minor == 0) p.default_minor = p.leaves.back().minor;
  std::sort(p.leaves.begin(), p.leaves.end(), [](const Leaf& a, const Leaf& b) { return a.minor < b.minor; });
  return p;
}

Result<Plan> plan_for(const qosc::Manifest& m, Where where, uint32_t mtu, uint32_t max_skb, uint64_t rate_now) {
  const auto& adaptive = where == Where::Ifb ? m.download_adaptive : m.link_adaptive;
  uint64_t now = 0;
  if (adaptive) now = rate_now ? std::clamp(rate_now, adaptive->min_bps, adaptive->max_bps) : adaptive->start_bps;
  if (where == Where::Interface) return plan(m, mtu, max_skb, now);
  qosc::Manifest ifb = m;
  ifb.link_bps = m.ifb_link_bps();
  return plan(ifb, mtu, max_skb, now);
}

// ---- JSON -------------------------------------------------------------------------------------

namespace {
nlohmann::json params_json(const nl::HtbClassParams& c) {
  return {{"classid", c.classid}, {"parent", c.parent},     {"rate_bps", c.rate_bps}, {"ceil_bps", c.ceil_bps},
          {"burst", c.burst_bytes}, {"cburst", c.cburst_bytes}, {"quantum", c.quantum}, {"prio", c.prio}};
}
nl::HtbClassParams params_from(const nlohmann::json& j) {
  nl::HtbClassParams c;
  c.classid = j.at("classid").get<uint32_t>();
  c.parent = j.at("parent").get<uint32_t>();
  c.rate_bps = j.at("rate_bps").get<uint64_t>();
  c.ceil_bps = j.at("ceil_bps").get<uint64_t>();
  c.burst_bytes = j.at("burst").get<uint32_t>();
  c.cburst_bytes = j.at("cburst").get<uint32_t>();
  c.quantum = j.at("quantum").get<uint32_t>();
  c.prio = j.at("prio").get<uint32_t>();
  return c;
}

nlohmann::json nested_json(const Nested& n) {
  nlohmann::json subs = nlohmann::json::array(), below = nlohmann::json::array();
  for (const auto& c : n.subs) subs.push_back(params_json(c));
  for (const auto& b : n.below) below.push_back(nested_json(b));
  return {{"handle", n.handle},           {"cb_slot", n.cb_slot}, {"default_minor", n.default_minor},
          {"root", params_json(n.root)}, {"subs", subs},         {"queue_limit", n.queue.limit},
          {"split_above", n.queue.split_above}, {"below", below}};
}
Nested nested_from(const nlohmann::json& j) {
  Nested n;
  n.handle = j.at("handle").get<uint32_t>();
  n.cb_slot = j.at("cb_slot").get<uint32_t>();
  n.default_minor = j.at("default_minor").get<uint32_t>();
  n.root = params_from(j.at("root"));
  for (const auto& c : j.at("subs")) n.subs.push_back(params_from(c));
  n.queue.limit = j.at("queue_limit").get<uint32_t>();
  n.queue.split_above = j.value("split_above", 0u);   // absent: a record of a qosrun with bfifo queues only
  for (const auto& b : j.at("below")) n.below.push_back(nested_from(b));
  return n;
}
}  // namespace

nlohmann::json to_json(const Plan& p) {
  nlohmann::json leaves = nlohmann::json::array();
  for (const auto& l : p.leaves) {
    nlohmann::json lj = {{"minor", l.minor},
                         {"label", l.label},
                         {"class_id", l.class_id},
                         {"params", params_json(l.params)},
                         {"queue_limit", l.queue.limit},
                         {"split_above", l.queue.split_above}};
    if (l.nested) lj["nested"] = nested_json(*l.nested);
    leaves.push_back(std::move(lj));
  }
  return {{"major", p.major},   {"default_minor", p.default_minor}, {"r2q", p.r2q}, {"frame_bytes", p.frame_bytes},
          {"link", params_json(p.link)}, {"leaves", leaves}};
}

Plan plan_from_json(const nlohmann::json& j) {
  Plan p;
  p.major = j.at("major").get<uint32_t>();
  p.default_minor = j.at("default_minor").get<uint32_t>();
  p.r2q = j.at("r2q").get<uint32_t>();
  p.frame_bytes = j.at("frame_bytes").get<uint32_t>();
  p.link = params_from(j.at("link"));
  for (const auto& l : j.at("leaves")) {
    Leaf x;
    x.minor = l.at("minor").get<uint32_t>();
    x.label = l.at("label").get<std::string>();
    x.class_id = l.at("class_id").get<int32_t>();
    x.params = params_from(l.at("params"));
    x.queue.limit = l.at("queue_limit").get<uint32_t>();
    x.queue.split_above = l.value("split_above", 0u);
    if (auto it = l.find("nested"); it != l.end()) x.nested = nested_from(*it);
    p.leaves.push_back(std::move(x));
  }
  return p;
}

std::string describe(const LeafQueue& q) {
  if (!q.frames()) return fmt::format("{} bytes", q.limit);
  return fmt::format("{} bytes of frames (packets above {} bytes cut)", q.limit, q.split_above);
}

std::string describe(const Plan& p) {
  std::string s = fmt::format("htb {:x}: link {} (1:1), default 1:{:x}, r2q {}\n", p.major, format_rate(p.link.rate_bps),
                              p.default_minor, p.r2q);
  for (const auto& l : p.leaves)
    s += fmt::format("  1:{:<3x} {:<12} prio {} rate {:<9} ceil {:<9} quantum {:<6} queue {}\n", l.minor, l.label,
                     l.params.prio, format_rate(l.params.rate_bps), format_rate(l.params.ceil_bps), l.params.quantum,
                     describe(l.queue));
  for (const auto& l : p.leaves) {
    if (!l.nested) continue;
    const Nested& n = *l.nested;
    s += fmt::format("  1:{:<3x} isolates: htb {:x}: below it, {} sub-queues, quantum {}, queue {} each", l.minor,
                     n.handle >> 16, n.subs.size(), n.subs.empty() ? 0 : n.subs[0].quantum, describe(n.queue));
    if (!n.below.empty())
      s += fmt::format("; each a host with its own htb ({:x}: to {:x}:) of {} flow queues", n.below.front().handle >> 16,
                       n.below.back().handle >> 16, n.below.front().subs.size());
    s += "\n";
  }
  return s;
}

CbClassidProgram::~CbClassidProgram() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

Result<int> CbClassidProgram::fd(uint32_t slot) {
  if (slot >= fds_.size()) return Error{fmt::format("no sub-queue filter for skb->cb[{}]", slot)};
  if (fds_[slot] >= 0) return fds_[slot];
  const bpf_insn insns[] = {
      // r0 = *(u32 *)(r1 + offsetof(struct __sk_buff, cb[slot]))
      {BPF_LDX | BPF_MEM | BPF_W, BPF_REG_0, BPF_REG_1,
       static_cast<int16_t>(offsetof(__sk_buff, cb) + slot * sizeof(uint32_t)), 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "qos_subq", "Dual BSD/GPL", insns, 2, nullptr);
  if (fd < 0) return Error{fmt::format("cannot load the sub-queue filter program: {}", std::strerror(-fd)), "", -fd};
  fds_[slot] = fd;
  return fd;
}

// ---- applying ------------------------------------------------------------------------------------

Status add_queue(nl::RtnlSocket& s, int ifindex, uint32_t parent, uint32_t handle, const LeafQueue& q) {
  nl::NlMessage m = leaf_queue_message(ifindex, parent, handle, q, NLM_F_CREATE | NLM_F_EXCL);
  return s.request(m, fmt::format("cannot create the queue of class {} on {}", nl::handle_string(parent),
                                  nl::ifname_of(ifindex)));
}

namespace {

Status build_nested(nl::RtnlSocket& s, int ifindex, uint32_t parent, const Nested& n, CbClassidProgram& progs) {
  if (Status f = state::fail_point("htb-isolate"); !f) return f;
  nl::HtbRootSpec spec;
  spec.handle = n.handle;
  spec.parent = parent;
  spec.default_minor = n.default_minor;
  if (Status st = nl::add_htb_root(s, ifindex, spec); !st) return st;
  if (Status st = nl::add_htb_class(s, ifindex, n.root); !st) return st;
  for (size_t i = 0; i < n.subs.size(); ++i) {
    if (Status st = nl::add_htb_class(s, ifindex, n.subs[i]); !st) return st;
    Status st = i < n.below.size() ? build_nested(s, ifindex, n.subs[i].classid, n.below[i], progs)
                                   : add_queue(s, ifindex, n.subs[i].classid, 0, n.queue);
    if (!st) return st;
  }
  auto fd = progs.fd(n.cb_slot);
  if (!fd) return fd.error();
  return nl::add_classid_filter(s, ifindex, n.handle, *fd, "qos_subq");
}

// The leaf's queue (LeafQueue), or the isolated class's nested HTB.
Status add_leaf_queue(nl::RtnlSocket& s, int ifindex, const Leaf& l) {
  if (l.nested) {
    CbClassidProgram progs;
    return build_nested(s, ifindex, l.params.classid, *l.nested, progs);
  }
  return add_queue(s, ifindex, l.params.classid, leaf_qdisc_handle(l.minor), l.queue);
}

// A leaf's queue from `from` to `to`: changed in place within its kind; a
// bfifo that becomes a frame queue (or back) is replaced under the same
// handle, which drops what it held.
Status change_queue(nl::RtnlSocket& s, int ifindex, const Leaf& l, const LeafQueue& from) {
  if (from == l.queue) return {};
  const uint32_t handle = leaf_qdisc_handle(l.minor);
  if (from.frames() != l.queue.frames()) {
    (void)nl::delete_qdisc(s, ifindex, l.params.classid, handle);
    return add_queue(s, ifindex, l.params.classid, handle, l.queue);
  }
  nl::NlMessage m = leaf_queue_message(ifindex, l.params.classid, handle, l.queue, 0);
  return s.request(m, fmt::format("cannot change the queue of class {} on {}", nl::handle_string(l.params.classid),
                                  nl::ifname_of(ifindex)));
}

Status add_leaf(nl::RtnlSocket& s, int ifindex, const Leaf& l) {
  if (Status f = state::fail_point("htb-class"); !f) return f;
  if (Status st = nl::add_htb_class(s, ifindex, l.params); !st) return st;
  if (Status f = state::fail_point("htb-leaf"); !f) return f;
  return add_leaf_queue(s, ifindex, l);
}
}  // namespace

Status build(nl::RtnlSocket& s, int ifindex, const Plan& p, uint32_t parent) {
  if (parent == TC_H_ROOT)
    if (Status f = state::fail_point("htb-root"); !f) return f;
  nl::HtbRootSpec root;
  root.parent = parent;
  root.handle = p.major << 16;
  root.default_minor = p.default_minor;
  root.r2q = p.r2q;
  if (Status st = nl::add_htb_root(s, ifindex, root); !st) return st;
  if (Status st = nl::add_htb_class(s, ifindex, p.link); !st) return st;
  for (const auto& l : p.leaves)
    if (Status st = add_leaf(s, ifindex, l); !st) return st;
  return {};
}

Status add_new_leaves(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to, std::vector<uint32_t>* added) {
  for (const auto& l : to.leaves) {
    if (from.find(l.minor)) continue;
    if (Status st = add_leaf(s, ifindex, l); !st) {
      // The class may exist without its queue: remove what this leaf made.
      (void)nl::delete_class(s, ifindex, l.params.classid);
      return st;
    }
    if (added) added->push_back(l.minor);
  }
  return {};
}

Status change_persisting(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to) {
  if (!(from.link == to.link))
    if (Status st = nl::change_htb_class(s, ifindex, to.link); !st) return st;
  for (const auto& l : to.leaves) {
    const Leaf* old = from.find(l.minor);
    if (!old) continue;
    if (!(old->params == l.params))
      if (Status st = nl::change_htb_class(s, ifindex, l.params); !st) return st;
    if (old->nested != l.nested) {
      // Isolation turned on, off or resized: the leaf gets a new queue (what
      // its old one held is dropped; a reload that keeps it changes nothing).
      (void)nl::delete_qdisc(s, ifindex, l.params.classid, leaf_qdisc_handle(l.minor));
      if (Status st = add_leaf_queue(s, ifindex, l); !st) return st;
    } else if (!l.nested) {
      if (Status st = change_queue(s, ifindex, l, old->queue); !st) return st;
    }
  }
  return {};
}

Status change_rate(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to) {
  if (from.leaves.size() != to.leaves.size())
    return Error{"internal: an adaptive rate change between two different trees"};
  // Growing: the link first, so a leaf never asks more than its parent has;
  // shrinking: the leaves first.
  const bool growing = to.link.ceil_bps >= from.link.ceil_bps;
  if (growing && !(from.link == to.link))
    if (Status st = nl::change_htb_class(s, ifindex, to.link); !st) return st;
  for (size_t i = 0; i < to.leaves.size(); ++i) {
    const Leaf& a = from.leaves[i];
    const Leaf& b = to.leaves[i];
    if (!(a.params == b.params))
      if (Status st = nl::change_htb_class(s, ifindex, b.params); !st) return st;
    if (!b.nested)
      if (Status st = change_queue(s, ifindex, b, a.queue); !st) return st;
  }
  if (!growing && !(from.link == to.link))
    if (Status st = nl::change_htb_class(s, ifindex, to.link); !st) return st;
  return {};
}

Status delete_obsolete(nl::RtnlSocket& s, int ifindex, const Plan& from, const Plan& to, int drain_ms,
                       std::vector<std::string>* warnings) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_ms);
  for (const auto& l : from.leaves) {
    if (to.find(l.minor)) continue;
    // Nothing new is steered here any more: let what is queued leave first.
    for (;;) {
      auto b = nl::class_backlog(s, ifindex, l.params.classid);
      if (!b || *b == 0) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        if (warnings)
          warnings->push_back(fmt::format("class 1:{:x} ({}) still held {} bytes after {} ms; deleting it dropped them",
                                          l.minor, l.label, *b, drain_ms));
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (Status st = nl::delete_class(s, ifindex, l.params.classid); !st) {
      if (st.error().code != ENOENT && warnings) warnings->push_back(st.error().message);
    }
  }
  return {};
}

}  // namespace qosrun::htb
