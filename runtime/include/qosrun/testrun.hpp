#pragma once
// Running packets through a loaded policy's programs with
// BPF_PROG_TEST_RUN: no interface, no traffic. Used by `qosrun classify`,
// the differential tests and the benchmark.
//
// How the answer is read back (see qos_abi.h):
// - XDP: XDP_PASS with a struct qos_meta in front of the packet (data_meta),
//   which the test run returns at the start of data_out; XDP_DROP for drops.
// - TC: skb->priority = (QOS_HTB_MAJOR << 16) | minor, returned in ctx_out
//   (a struct __sk_buff); TC_ACT_SHOT for drops. (tc_classid is not returned
//   by test runs.)
// - The adaptive rate's probes pass without a class (Verdict::probe).
// - A drop is attributed with the qos_stats map: a `drop` rule counts in the
//   drop slot's drop_rule, a class's policer in that class's drop_policer.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qosrun/loader.hpp"

namespace qosrun {

// The largest frame a test run takes whole: the kernel puts the packet in
// one page with headroom and tailroom (XDP: 256 + 320 bytes, 3520 with 4 KiB
// pages; TC: 64 + 320, 3712). Longer XDP frames would be split into
// fragments the program does not see, so they are refused too.
uint32_t max_test_frame(Hook hook);
inline constexpr uint32_t kMinTestFrame = 14;   // the kernel refuses shorter frames

struct Verdict {
  uint32_t retval = 0;
  bool pass = false;            // the program let the packet through
  int32_t class_id = QOS_TARGET_DROP;   // the class chosen; QOS_TARGET_DROP for a `drop` rule
  bool policed = false;         // dropped by class_id's rate/burst policer
  bool attributed = true;       // false: a drop the stats could not explain
  // A probe of the adaptive rate's controller (QOS_PROBE_ICMP_ID, policies with
  // `link adaptive` / `download adaptive`): passed past the classes, XDP
  // without a class in the metadata, TC into HTB's direct queue (1:0).
  bool probe = false;
  uint32_t priority = 0;        // TC: skb->priority as returned
  uint32_t subqueue = 0;        // TC, isolated class: the nested HTB's classid (skb->cb[QOS_CB_SUBQ]), else 0
  uint32_t duration_ns = 0;
  std::vector<uint8_t> frame_out;   // TC: the packet as the program left it (`set dscp` rewrites it)
};

// The DSCP of a frame's IPv4/IPv6 header (after up to two VLAN tags), or -1
// for a frame without a whole IP header.
int frame_dscp(std::span<const uint8_t> frame);

// Runs packets through one loaded policy. Keeps a copy of the drop counters
// so that each drop can be attributed to a rule or a policer. Not thread safe:
// use one runner per thread.
class TestRunner {
 public:
  explicit TestRunner(const LoadedPolicy& policy);
  Result<Verdict> run(Hook hook, std::span<const uint8_t> frame);
  // "gaming" / "drop" for a verdict; a policed packet is named by its class;
  // a probe of the adaptive rate "(probe)", which no class can be called.
  std::string class_name(const Verdict& v) const { return v.probe ? "(probe)" : policy_.class_name(v.class_id); }

 private:
  struct DropCounters {
    uint64_t rule[2] = {0, 0};
    std::vector<uint64_t> policer[2];   // per class
  };
  Status read_drop_counters(DropCounters& out, bool with_classes) const;
  Verdict attribute_drop(Hook hook, Verdict v);

  const LoadedPolicy& policy_;
  DropCounters last_;
  bool have_last_ = false;
};

// One raw test run: repeat > 1 runs the program `repeat` times in the kernel
// and returns the mean duration. The out buffers are optional.
struct RawRun {
  uint32_t retval = 0;
  uint32_t duration_ns = 0;
  std::vector<uint8_t> data_out;
  std::vector<uint8_t> ctx_out;
};
Result<RawRun> test_run(int prog_fd, Hook hook, std::span<const uint8_t> frame, uint32_t repeat = 1,
                        bool want_output = true);

// Per-class counters from qos_stats summed over CPUs: index == class id,
// the last entry is the drop slot. Layout: struct qos_class_stats.
struct ClassCounters {
  uint64_t packets[2] = {0, 0}, bytes[2] = {0, 0}, drop_policer[2] = {0, 0}, drop_rule[2] = {0, 0};
};
Result<std::vector<ClassCounters>> read_class_counters(const LoadedPolicy& policy);

}  // namespace qosrun
