// BPF_PROG_TEST_RUN helpers: see qosrun/testrun.hpp.
#include "qosrun/testrun.hpp"
#include "qosrun/stats.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "qos_abi.h"

namespace qosrun {

uint32_t max_test_frame(Hook hook) {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  const uint32_t headroom = hook == Hook::Xdp ? 256 : 64, tailroom = 320;
  return static_cast<uint32_t>(page) - headroom - tailroom;
}

Result<RawRun> test_run(int prog_fd, Hook hook, std::span<const uint8_t> frame, uint32_t repeat, bool want_output) {
  if (prog_fd < 0) return Error{fmt::format("the {} program is not loaded", to_string(hook))};
  if (frame.size() < kMinTestFrame)
    return Error{fmt::format("a frame of {} bytes is shorter than an Ethernet header: the kernel's test run needs "
                             "at least {} bytes",
                             frame.size(), kMinTestFrame)};
  if (frame.size() > max_test_frame(hook))
    return Error{fmt::format("a frame of {} bytes is larger than a test run takes ({} bytes, one page): "
                             "capture with a smaller snap length or without GRO/TSO",
                             frame.size(), max_test_frame(hook))};
  RawRun out;
  // XDP: data_out starts at data_meta, so leave room for the metadata too.
  if (want_output) out.data_out.resize(frame.size() + 256);
  xdp_md xctx{};
  __sk_buff sctx{};
  xdp_md xctx_out{};
  __sk_buff sctx_out{};
  LIBBPF_OPTS(bpf_test_run_opts, o);
  o.data_in = frame.data();
  o.data_size_in = static_cast<__u32>(frame.size());
  if (want_output) {
    o.data_out = out.data_out.data();
    o.data_size_out = static_cast<__u32>(out.data_out.size());
  }
  o.repeat = static_cast<int>(repeat);
  if (hook == Hook::Xdp) {
    xctx.data = 0;
    xctx.data_end = static_cast<__u32>(frame.size());
    o.ctx_in = &xctx;
    o.ctx_size_in = sizeof xctx;
    if (want_output) {
      o.ctx_out = &xctx_out;
      o.ctx_size_out = sizeof xctx_out;
    }
  } else {
    o.ctx_in = &sctx;
    o.ctx_size_in = sizeof sctx;
    if (want_output) {
      o.ctx_out = &sctx_out;
      o.ctx_size_out = sizeof sctx_out;
    }
  }
  if (bpf_prog_test_run_opts(prog_fd, &o) != 0) {
    int err = errno;
    return errno_error(err, fmt::format("test run of the {} program failed", to_string(hook)));
  }
  out.retval = o.retval;
  out.duration_ns = o.duration;
  if (want_output) {
    out.data_out.resize(o.data_size_out);
    const auto* c = hook == Hook::Xdp ? reinterpret_cast<const uint8_t*>(&xctx_out)
                                      : reinterpret_cast<const uint8_t*>(&sctx_out);
    out.ctx_out.assign(c, c + o.ctx_size_out);
  }
  return out;
}

// ---- statistics -----------------------------------------------------------------

Result<std::vector<ClassCounters>> read_class_counters(const LoadedPolicy& policy) {
  int fd = policy.map_fd(MapRole::Stats);
  if (fd < 0) return Error{fmt::format("{} has no statistics map '{}'", policy.name(), policy.manifest().stats_map)};
  std::vector<ClassCounters> all(policy.class_count() + 1);
  for (uint32_t k = 0; k < all.size(); ++k)
    if (Status s = read_stats_entry(fd, k, all[k]); !s) return s.error();
  return all;
}

// ---- TestRunner -----------------------------------------------------------------

TestRunner::TestRunner(const LoadedPolicy& policy) : policy_(policy) {}

Status TestRunner::read_drop_counters(DropCounters& out, bool with_classes) const {
  int fd = policy_.map_fd(MapRole::Stats);
  if (fd < 0) return Error{"no statistics map"};
  ClassCounters c;
  if (Status s = read_stats_entry(fd, policy_.class_count(), c); !s) return s;
  out.rule[0] = c.drop_rule[0];
  out.rule[1] = c.drop_rule[1];
  if (with_classes) {
    for (int h = 0; h < 2; ++h) out.policer[h].assign(policy_.class_count(), 0);
    for (uint32_t k = 0; k < policy_.class_count(); ++k) {
      if (Status s = read_stats_entry(fd, k, c); !s) return s;
      for (int h = 0; h < 2; ++h) out.policer[h][k] = c.drop_policer[h];
    }
  }
  return {};
}

Verdict TestRunner::attribute_drop(Hook hook, Verdict v) {
  const int h = hook == Hook::Xdp ? QOS_HOOK_XDP : QOS_HOOK_TC;
  v.class_id = QOS_TARGET_DROP;
  DropCounters now;
  if (!have_last_ || !read_drop_counters(now, false)) {
    v.attributed = false;
    return v;
  }
  if (now.rule[h] > last_.rule[h]) {
    last_.rule[0] = now.rule[0];
    last_.rule[1] = now.rule[1];
    return v;   // a drop rule
  }
  if (!read_drop_counters(now, true)) {
    v.attributed = false;
    return v;
  }
  v.attributed = false;
  for (uint32_t k = 0; k < policy_.class_count(); ++k) {
    if (now.policer[h][k] > last_.policer[h][k]) {
      v.class_id = static_cast<int32_t>(k);
      v.policed = true;
      v.attributed = true;
      break;
    }
  }
  last_ = std::move(now);
  return v;
}

Result<Verdict> TestRunner::run(Hook hook, std::span<const uint8_t> frame) {
  if (!have_last_) have_last_ = static_cast<bool>(read_drop_counters(last_, true));
  auto raw = test_run(policy_.prog_fd(hook), hook, frame);
  if (!raw) return raw.error();
  Verdict v;
  v.retval = raw->retval;
  v.duration_ns = raw->duration_ns;
  if (hook == Hook::Xdp) {
    if (raw->retval == XDP_DROP) return attribute_drop(hook, v);
    if (raw->retval != XDP_PASS)
      return Error{fmt::format("the XDP program returned {} (expected XDP_PASS or XDP_DROP)", raw->retval)};
    v.pass = true;
    xdp_md ctx{};
    std::memcpy(&ctx, raw->ctx_out.data(), std::min(raw->ctx_out.size(), sizeof ctx));
    // ctx_out.data is the metadata length: data_out starts at data_meta.
    uint32_t metalen = ctx.data;
    if (metalen == 0 && policy_.manifest().adaptive()) {
      v.probe = true;   // templates/qos_probe.h: passed before it is classified
      return v;
    }
    if (metalen < sizeof(qos_meta) || raw->data_out.size() < metalen)
      return Error{fmt::format("the XDP program passed the packet without its class in the metadata "
                               "({} bytes of metadata, struct qos_meta needs {})",
                               metalen, sizeof(qos_meta))};
    qos_meta meta;
    std::memcpy(&meta, raw->data_out.data() + (metalen - sizeof(qos_meta)), sizeof meta);
    if (meta.magic != QOS_META_MAGIC)
      return Error{fmt::format("the XDP program's metadata has magic {:#x}, expected {:#x}", meta.magic,
                               QOS_META_MAGIC)};
    if (meta.class_id >= policy_.class_count())
      return Error{fmt::format("the XDP program passed the packet with class id {}, the policy has {} classes",
                               meta.class_id, policy_.class_count())};
    v.class_id = meta.class_id;
    return v;
  }
  // TC
  const int32_t rv = static_cast<int32_t>(raw->retval);
  if (rv == TC_ACT_SHOT) return attribute_drop(hook, v);
  if (rv != TC_ACT_OK && rv != TC_ACT_UNSPEC && rv != TC_ACT_PIPE)
    return Error{fmt::format("the TC program returned {} (expected TC_ACT_OK or TC_ACT_SHOT)", rv)};
  v.pass = true;
  v.frame_out = std::move(raw->data_out);
  __sk_buff ctx{};
  std::memcpy(&ctx, raw->ctx_out.data(), std::min(raw->ctx_out.size(), sizeof ctx));
  v.priority = ctx.priority;
  v.subqueue = ctx.cb[QOS_CB_SUBQ];
  if ((ctx.priority >> 16) != QOS_HTB_MAJOR)
    return Error{fmt::format("the TC program passed the packet with skb->priority {:#x}, not an HTB class {}:x",
                             ctx.priority, QOS_HTB_MAJOR)};
  // The class from skb->cb[QOS_CB_CLASS] (qos_abi.h) when the program stored
  // it; with a pifo scheduler skb->priority names a band, not the class.
  if (ctx.priority == QOS_HTB_MAJOR << 16 && policy_.manifest().adaptive()) {
    v.probe = true;   // HTB's direct queue: past the classes (templates/qos_probe.h)
    return v;
  }
  const uint32_t cb = ctx.cb[QOS_CB_CLASS];
  const bool bands = !policy_.manifest().pifo_mapping.empty();
  int32_t from_cb = (cb >> 16) == QOS_META_MAGIC ? static_cast<int32_t>(cb & 0xffffu) : -1;
  if (from_cb >= static_cast<int32_t>(policy_.class_count()))
    return Error{fmt::format("the TC program stored class id {} in skb->cb, the policy has {} classes", from_cb,
                             policy_.class_count())};
  if (bands) {
    if (from_cb < 0)
      return Error{"the TC program (pifo bands in skb->priority) did not store its class in skb->cb"};
    v.class_id = from_cb;
    return v;
  }
  int32_t id = policy_.class_from_htb_minor(ctx.priority & 0xffffu);
  if (id < 0)
    return Error{fmt::format("the TC program chose HTB class {:x}:{:x}, which is no class of the policy",
                             ctx.priority >> 16, ctx.priority & 0xffffu)};
  if (from_cb >= 0 && from_cb != id)
    return Error{fmt::format("the TC program chose HTB class {:x}:{:x} (class {}) but stored class {} in skb->cb",
                             ctx.priority >> 16, ctx.priority & 0xffffu, id, from_cb)};
  v.class_id = id;
  return v;
}

int frame_dscp(std::span<const uint8_t> f) {
  auto be16 = [&](size_t o) { return unsigned(f[o]) << 8 | f[o + 1]; };
  if (f.size() < 14) return -1;
  size_t off = 12;
  for (int tags = 0; tags < 2 && (be16(off) == 0x8100 || be16(off) == 0x88a8); ++tags) {
    if (off + 6 > f.size()) return -1;
    off += 4;
  }
  const unsigned type = be16(off);
  off += 2;
  if (type == 0x0800 && off + 20 <= f.size()) return f[off + 1] >> 2;
  if (type == 0x86dd && off + 40 <= f.size()) return ((f[off] & 0x0f) << 4 | f[off + 1] >> 4) >> 2;
  return -1;
}

}  // namespace qosrun
