// The HTB mapping of each scheduler (qosrun/htb.hpp, docs/qosrun.md) and the
// netlink messages that build it, without a kernel.
#include <gtest/gtest.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <numeric>

#include <nlohmann/json.hpp>

#include "qosrun/htb.hpp"
#include "qosrun/netlink.hpp"

using namespace qosrun;

namespace {

qosc::Manifest manifest(const std::string& sched, uint64_t link, std::vector<qosc::ManifestClass> classes) {
  qosc::Manifest m;
  m.policy = "t";
  m.scheduler = sched;
  m.link_bps = link;
  for (size_t i = 0; i < classes.size(); ++i) {
    classes[i].id = static_cast<uint32_t>(i);
    classes[i].htb_minor = 0x10 + static_cast<uint32_t>(i);
  }
  m.classes = std::move(classes);
  m.classes.back().is_default = true;
  m.default_class = static_cast<uint32_t>(m.classes.size() - 1);
  return m;
}

qosc::ManifestClass cls(const std::string& name, uint32_t prio, uint32_t weight = 1, uint32_t quantum = 1514,
                        uint64_t rate = 0, uint64_t burst = 0) {
  qosc::ManifestClass c;
  c.name = name;
  c.priority = prio;
  c.weight = weight;
  c.quantum = quantum;
  c.rate_bps = rate;
  c.burst_bytes = burst;
  return c;
}

constexpr uint64_t kMbit = 1000000;
// The smallest quantum at MTU 1500 when the interface's GSO/GRO size is 64 KB:
// 65536 + 14 (Ethernet) + 46 further segments x 114 header bytes.
constexpr uint32_t kMinQ = 70794;

}  // namespace

TEST(HtbPlan, StrictPriorityUsesHtbPrioAndAssuresOnlyTheBestPriority) {
  auto m = manifest("strict_priority", 100 * kMbit,
                    {cls("game", 0, 1, 1514, 50 * kMbit, 100000), cls("web", 3), cls("bulk", 5)});
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->link.rate_bps, 100 * kMbit);
  EXPECT_EQ(p->link.ceil_bps, 100 * kMbit);
  EXPECT_EQ(p->link.classid, 0x10001u);
  ASSERT_EQ(p->leaves.size(), 3u);
  EXPECT_EQ(p->default_minor, 0x12u);
  const uint32_t prios[] = {0, 3, 5};
  for (size_t i = 0; i < 3; ++i) {
    const auto& l = p->leaves[i];
    EXPECT_EQ(l.minor, 0x10 + i);
    EXPECT_EQ(l.params.classid, 0x10010u + i);
    EXPECT_EQ(l.params.parent, 0x10001u);
    EXPECT_EQ(l.params.prio, prios[i]);
    if (i > 0) {
      EXPECT_EQ(l.params.rate_bps, 100 * kMbit / 1000) << "link/1000 assured below the best priority";
    }
    EXPECT_EQ(l.params.quantum, kMinQ) << "equal priorities share by HTB's DRR: one GSO packet at least";
  }
  // The best priority is assured the link (here held to its own cap), so its
  // packets leave without waiting for the parent's tokens.
  EXPECT_EQ(p->leaves[0].params.rate_bps, 50 * kMbit);
  // The cap: ceil = class rate, its bucket = class burst.
  EXPECT_EQ(p->leaves[0].params.ceil_bps, 50 * kMbit);
  EXPECT_EQ(p->leaves[0].params.cburst_bytes, 100000u);
  EXPECT_EQ(p->leaves[1].params.ceil_bps, 100 * kMbit);
  // Queues: 5 ms at 50 and 100 Mbit/s is less than one largest packet, which
  // a bfifo must hold (it drops what does not fit whole).
  EXPECT_EQ(p->leaves[0].queue, (htb::LeafQueue{kMinQ + 1514, 0}));
  EXPECT_EQ(p->leaves[1].queue, (htb::LeafQueue{kMinQ + 1514, 0}));
}

// A leaf's queue (htb::leaf_queue): 5 ms of its ceiling where that holds the
// largest packet; else one largest packet while that is at most 50 ms; else
// 50 ms of frames (at least 4), packets above two frames cut.
TEST(HtbPlan, LeafQueuesHoldTheLargestPacketOrOnlyFrames) {
  const uint32_t largest = kMinQ + 1514;
  EXPECT_EQ(htb::leaf_queue(1000 * kMbit, 1514, largest), (htb::LeafQueue{625000, 0}));
  EXPECT_EQ(htb::leaf_queue(200 * kMbit, 1514, largest), (htb::LeafQueue{125000, 0}));
  EXPECT_EQ(htb::leaf_queue(100 * kMbit, 1514, largest), (htb::LeafQueue{largest, 0})) << "5 ms = 62.5 KB < 72 KB";
  EXPECT_EQ(htb::leaf_queue(12 * kMbit, 1514, largest), (htb::LeafQueue{largest, 0})) << "72 KB is 48 ms";
  EXPECT_EQ(htb::leaf_queue(10 * kMbit, 1514, largest), (htb::LeafQueue{62500, 2 * 1514})) << "72 KB would be 58 ms";
  EXPECT_EQ(htb::leaf_queue(1 * kMbit, 1514, largest), (htb::LeafQueue{6250, 2 * 1514}));
  EXPECT_EQ(htb::leaf_queue(100000, 1514, largest), (htb::LeafQueue{4 * 1514, 2 * 1514})) << "at least 4 frames";
  // An adaptive rate changes the classes, never their queues (sized at the nominal link).
  auto m = manifest("strict_priority", 100 * kMbit, {cls("a", 0), cls("b", 7)});
  auto full = htb::plan(m, 1500), slow = htb::plan(m, 1500, htb::kDefaultMaxSkb, 5 * kMbit);
  ASSERT_TRUE(full.ok() && slow.ok());
  EXPECT_EQ(slow->leaves[1].params.ceil_bps, 5 * kMbit);
  EXPECT_EQ(slow->leaves[1].queue, full->leaves[1].queue);
}

TEST(HtbPlan, AssuredRateAndQueueHaveFloors) {
  auto m = manifest("strict_priority", 2 * kMbit, {cls("a", 0, 1, 1514, 100000, 3000), cls("b", 7)});
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->leaves[1].params.rate_bps, htb::kMinRateBps) << "2 Mbit / 1000 is below the 8 kbit floor";
  EXPECT_EQ(p->leaves[0].params.rate_bps, 100000u) << "the best priority: the link, held to its cap";
  // Two classes share the best priority: the link is split between them.
  auto two = htb::plan(manifest("strict_priority", 2 * kMbit, {cls("a", 0), cls("b", 0), cls("c", 7)}), 1500);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->leaves[0].params.rate_bps, 1 * kMbit);
  EXPECT_EQ(two->leaves[1].params.rate_bps, 1 * kMbit);
  EXPECT_EQ(p->leaves[0].queue, (htb::LeafQueue{4 * 1514, 2 * 1514})) << "50 ms at 100 kbit is less than four frames";
}

TEST(HtbPlan, RoundRobinSharesEqually) {
  auto m = manifest("round_robin", 90 * kMbit, {cls("a", 0), cls("b", 5), cls("c", 7, 1, 1514, 10 * kMbit, 20000)});
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok());
  for (const auto& l : p->leaves) {
    EXPECT_EQ(l.params.prio, 0u) << "class priority does not matter for rr";
    EXPECT_EQ(l.params.quantum, kMinQ);
  }
  EXPECT_EQ(p->leaves[0].params.rate_bps, 30 * kMbit);
  EXPECT_EQ(p->leaves[1].params.rate_bps, 30 * kMbit);
  EXPECT_EQ(p->leaves[2].params.rate_bps, 10 * kMbit) << "capped below its share";
  EXPECT_EQ(p->leaves[2].params.ceil_bps, 10 * kMbit);
}

TEST(HtbPlan, WfqRatesAndQuantaFollowWeights) {
  auto m = manifest("weighted_fair_queuing", 100 * kMbit, {cls("a", 0, 10), cls("b", 0, 40), cls("c", 0, 30), cls("d", 0, 20)});
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok());
  const uint64_t want[] = {10, 40, 30, 20};
  uint64_t sum = 0;
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p->leaves[i].params.rate_bps, want[i] * kMbit);
    EXPECT_EQ(p->leaves[i].params.ceil_bps, 100 * kMbit);
    sum += p->leaves[i].params.rate_bps;
    // quanta in the same ratio, the smallest the largest packet
    EXPECT_EQ(p->leaves[i].params.quantum, kMinQ * want[i] / 10);
  }
  EXPECT_LE(sum, 100 * kMbit);
}

TEST(HtbPlan, DrrRatesFollowQuanta) {
  auto m = manifest("deficit_round_robin", 60 * kMbit, {cls("a", 0, 1, 1500), cls("b", 0, 1, 3000), cls("c", 0, 1, 4500)});
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->leaves[0].params.rate_bps, 10 * kMbit);
  EXPECT_EQ(p->leaves[1].params.rate_bps, 20 * kMbit);
  EXPECT_EQ(p->leaves[2].params.rate_bps, 30 * kMbit);
  EXPECT_EQ(p->leaves[1].params.quantum, 2 * p->leaves[0].params.quantum);
  EXPECT_EQ(p->leaves[2].params.quantum, 3 * p->leaves[0].params.quantum);
}

TEST(HtbPlan, MinQuantumCoversTheLargestGsoPacket) {
  EXPECT_EQ(htb::min_quantum(1500, 65536), kMinQ);
  EXPECT_EQ(htb::min_quantum(1500, 0), kMinQ) << "unknown size: 64 KB";
  EXPECT_EQ(htb::min_quantum(1500, 16384), kMinQ) << "never below 64 KB: GRO elsewhere builds 64 KB packets";
  // BIG TCP raises it; more than GSO_MAX_SIZE is not believed.
  EXPECT_EQ(htb::min_quantum(1500, 185000), 185000u + 14 + 132 * 114);
  EXPECT_EQ(htb::min_quantum(1500, 4000000000u), htb::min_quantum(1500, htb::kMaxSkb));
  // Jumbo frames: fewer segments; tiny MTUs: more, still well inside an int.
  EXPECT_EQ(htb::min_quantum(9000, 65536), 65536u + 14 + 7 * 114);
  EXPECT_LT(htb::min_quantum(68, htb::kMaxSkb) * uint64_t{htb::kQuantumSpread}, uint64_t{INT32_MAX});
  // The planner uses the interface's size.
  auto m = manifest("round_robin", 100 * kMbit, {cls("a", 0), cls("b", 0)});
  auto p = htb::plan(m, 1500, 185000);
  ASSERT_TRUE(p.ok());
  for (const auto& l : p->leaves) EXPECT_EQ(l.params.quantum, htb::min_quantum(1500, 185000));
}

TEST(HtbPlan, QuantaKeepExactRatiosAboveTheLargestPacket) {
  // The wire tests' policies: drr 1:3:2 and wfq 1:3:6.
  auto d = htb::plan(manifest("deficit_round_robin", 20 * kMbit,
                              {cls("a", 0, 1, 1514), cls("b", 0, 1, 4542), cls("c", 0, 1, 3028)}),
                     1500);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->leaves[0].params.quantum, kMinQ);
  EXPECT_EQ(d->leaves[1].params.quantum, 3 * kMinQ);
  EXPECT_EQ(d->leaves[2].params.quantum, 2 * kMinQ);
  EXPECT_TRUE(d->notes.empty());
  auto w = htb::plan(manifest("weighted_fair_queuing", 20 * kMbit, {cls("a", 0, 1), cls("b", 0, 3), cls("c", 0, 6)}),
                     1500);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->leaves[0].params.quantum, kMinQ);
  EXPECT_EQ(w->leaves[1].params.quantum, 3 * kMinQ);
  EXPECT_EQ(w->leaves[2].params.quantum, 6 * kMinQ);
  // Every quantum of every scheduler is at least the largest packet.
  for (const char* s : {"strict_priority", "round_robin", "deficit_round_robin", "weighted_fair_queuing"}) {
    auto p = htb::plan(manifest(s, 20 * kMbit, {cls("a", 0, 2, 1000), cls("b", 0, 7, 9000), cls("c", 4)}), 1500);
    ASSERT_TRUE(p.ok()) << s;
    for (const auto& l : p->leaves) EXPECT_GE(l.params.quantum, kMinQ) << s << " " << l.label;
  }
}

TEST(HtbPlan, WideWeightSpreadHoldsTheLargestQuantum) {
  // Exact up to kQuantumSpread:1 ...
  auto ok = htb::plan(manifest("weighted_fair_queuing", 1000 * kMbit, {cls("a", 0, 1), cls("b", 0, 64)}), 1500);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->leaves[1].params.quantum, 64 * kMinQ);
  EXPECT_TRUE(ok->notes.empty());
  // ... beyond, the largest is held at kQuantumSpread x the minimum and the
  // smallest goes below it, keeping the ratio while it stays above a frame.
  auto m = manifest("weighted_fair_queuing", 1000 * kMbit, {cls("a", 0, 1), cls("b", 0, 1000), cls("c", 0, 100000)});
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok());
  const uint32_t top = htb::kQuantumSpread * kMinQ;
  EXPECT_EQ(p->leaves[2].params.quantum, top);
  EXPECT_EQ(p->leaves[1].params.quantum, (top + 50) / 100);
  EXPECT_EQ(p->leaves[0].params.quantum, 1514u) << "never below one frame";
  ASSERT_EQ(p->notes.size(), 1u);
  EXPECT_NE(p->notes[0].find("64:1"), std::string::npos) << p->notes[0];
  // Assured rates keep the exact ratio.
  EXPECT_NEAR(double(p->leaves[1].params.rate_bps) / double(p->leaves[0].params.rate_bps), 1000.0, 1.0);
}

TEST(HtbPlan, PifoBuildsStrictPriorityBands) {
  auto m = manifest("pifo", 100 * kMbit, {cls("a", 0), cls("b", 3, 1, 1514, 10 * kMbit, 10000)});
  m.pifo_bands = 10;
  m.pifo_mapping = "sp-pifo";
  auto p = htb::plan(m, 1500);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->leaves.size(), 10u);
  for (uint32_t b = 0; b < 10; ++b) {
    EXPECT_EQ(p->leaves[b].minor, 0x10 + b);
    EXPECT_EQ(p->leaves[b].params.prio, std::min(b, 7u));
    EXPECT_EQ(p->leaves[b].class_id, -1);
    EXPECT_EQ(p->leaves[b].params.ceil_bps, 100 * kMbit);
    EXPECT_EQ(p->leaves[b].params.quantum, kMinQ) << "bands 7.. share prio 7 by DRR";
  }
  EXPECT_EQ(p->default_minor, 0x10u + 9);
  EXPECT_EQ(p->notes.size(), 2u) << "bands beyond 8 share prio 7; caps only at XDP";
}

TEST(HtbPlan, RefusesWhatItCannotBuild) {
  auto m = manifest("strict_priority", 0, {cls("a", 0)});
  auto p = htb::plan(m, 1500);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("no link rate"), std::string::npos) << p.error().message;
  m = manifest("fancy", kMbit, {cls("a", 0)});
  EXPECT_FALSE(htb::plan(m, 1500).ok());
  m = manifest("pifo", kMbit, {cls("a", 0)});
  m.pifo_bands = 0;
  EXPECT_FALSE(htb::plan(m, 1500).ok());
}

TEST(HtbPlan, JsonRoundTrip) {
  auto m = manifest("weighted_fair_queuing", 100 * kMbit, {cls("a", 0, 3, 1514, 5 * kMbit, 9000), cls("b", 0, 7)});
  auto p = htb::plan(m, 9000);
  ASSERT_TRUE(p.ok());
  htb::Plan back = htb::plan_from_json(htb::to_json(*p));
  back.notes = p->notes;
  EXPECT_EQ(back, *p);
  EXPECT_EQ(p->frame_bytes, 9014u);
}

TEST(NetlinkMessage, HtbClassCarriesRatesInBytesAndTicks) {
  nl::HtbClassParams c;
  c.classid = 0x10011;
  c.parent = 0x10001;
  c.rate_bps = 8 * kMbit;
  c.ceil_bps = 80 * kMbit;
  c.burst_bytes = 1000;
  c.cburst_bytes = 100000;
  c.quantum = 3028;
  c.prio = 2;
  nl::NlMessage m = nl::htb_class_message(7, c, true);
  auto d = m.data();
  const auto* h = reinterpret_cast<const nlmsghdr*>(d.data());
  EXPECT_EQ(h->nlmsg_type, RTM_NEWTCLASS);
  EXPECT_EQ(h->nlmsg_len, d.size());
  EXPECT_TRUE(h->nlmsg_flags & NLM_F_CREATE);
  const auto* t = reinterpret_cast<const tcmsg*>(d.data() + NLMSG_HDRLEN);
  EXPECT_EQ(t->tcm_ifindex, 7);
  EXPECT_EQ(t->tcm_handle, 0x10011u);
  EXPECT_EQ(t->tcm_parent, 0x10001u);
  auto attrs = nl::parse_attrs(d.subspan(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(tcmsg))));
  EXPECT_EQ(attrs.str(TCA_KIND).value_or(""), "htb");
  auto opts = attrs.get(TCA_OPTIONS);
  ASSERT_TRUE(opts);
  auto inner = nl::parse_attrs(*opts);
  auto parms = inner.get(TCA_HTB_PARMS);
  ASSERT_TRUE(parms);
  ASSERT_EQ(parms->size(), sizeof(tc_htb_opt));
  tc_htb_opt o;
  std::memcpy(&o, parms->data(), sizeof o);
  EXPECT_EQ(o.rate.rate, 1000000u);    // bytes/s
  EXPECT_EQ(o.ceil.rate, 10000000u);
  EXPECT_EQ(o.quantum, 3028u);
  EXPECT_EQ(o.prio, 2u);
  // 1000 bytes at 1 MB/s = 1 ms = 15625 ticks of 64 ns
  EXPECT_EQ(o.buffer, 15625u);
  EXPECT_EQ(o.cbuffer, 156250u);       // 100 kB at 10 MB/s = 10 ms
  EXPECT_FALSE(inner.get(TCA_HTB_RATE64)) << "only above 2^32 bytes/s";

  c.rate_bps = c.ceil_bps = 40000 * kMbit;   // 5 GB/s: needs the 64-bit attributes
  auto big = nl::parse_attrs(*nl::parse_attrs(nl::htb_class_message(7, c, false).data().subspan(
                                                 NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(tcmsg))))
                                  .get(TCA_OPTIONS));
  auto r64 = big.get(TCA_HTB_RATE64);
  ASSERT_TRUE(r64);
  uint64_t v;
  std::memcpy(&v, r64->data(), 8);
  EXPECT_EQ(v, 40000 * kMbit / 8);
}
