// Where hosts go and with what (qosrun/hosts.hpp), without a kernel.
#include <gtest/gtest.h>

#include <set>

#include "hosts_test_support.hpp"
#include "qosrun/hosts.hpp"
#include "qosrun/txq.hpp"

namespace qosrun::hosts {
namespace {

using qh_test::hosts_manifest;
using qh_test::parse;
using qh_test::table_csv;

struct Fixture {
  qosc::Manifest m = hosts_manifest();
  htb::Plan root;
  Shape shape;
  Fixture() {
    root = htb::plan(m, 1500, 65536).value();
    make_room_for_hosts(root);
    shape = Shape::of(m, root, 1500, 65536);
  }
  Placement place(const std::string& csv, const Placement& old = {}) {
    auto p = plan_placement(old, parse(csv, m), shape);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    return p.ok() ? *p : Placement{};
  }
};

TEST(HostsLayout, GroupsSlotsAndHandlesAreDistinct) {
  Fixture f;
  Placement p = f.place(table_csv(0, 200));
  EXPECT_EQ(f.shape.hosts_per_group(), 64u);
  ASSERT_EQ(p.hosts.size(), 200u);
  EXPECT_EQ(p.groups.size(), 4u);   // 64 + 64 + 64 + 8
  std::set<uint32_t> handles, places;
  for (const auto& g : p.groups) {
    EXPECT_GE(g.major >> 16, kFirstHandle);
    EXPECT_TRUE(handles.insert(g.major).second);
  }
  for (const auto& h : p.hosts) {
    EXPECT_LT(h.slot, 64u);
    EXPECT_TRUE(places.insert(h.group << 8 | h.slot).second) << h.name;
    EXPECT_EQ(h.leaves.size(), 2u);
    for (const auto& [cls, handle] : h.leaves) {
      EXPECT_GE(handle >> 16, kFirstHandle);
      EXPECT_TRUE(handles.insert(handle).second) << h.name;
    }
  }
  // The root HTB's own leaves and bfifos are never taken.
  for (const auto& l : f.root.leaves) EXPECT_FALSE(handles.count(l.minor << 16));
}

TEST(HostsLayout, KeptHostsKeepTheirPlaceAndNewOnesTakeNoFreedSlot) {
  Fixture f;
  Placement a = f.place(table_csv(0, 100));
  // h5 goes, h100 comes, h7 moves to premium.
  std::string csv = table_csv(0, 5) + table_csv(6, 101).substr(std::string("host,plan,prefixes\n").size());
  auto pos = csv.find("h7,basic");
  csv.replace(pos, 8, "h7,premium");
  Placement b = f.place(csv, a);
  ASSERT_EQ(b.hosts.size(), 100u);
  const PlacedHost* h5 = a.host("h5");
  const PlacedHost* h100 = b.host("h100");
  ASSERT_TRUE(h5 && h100);
  EXPECT_FALSE(h100->group == h5->group && h100->slot == h5->slot) << "a freed slot is reused in the same change";
  for (const auto& h : b.hosts) {
    if (h.name == "h100") continue;
    const PlacedHost* was = a.host(h.name);
    ASSERT_TRUE(was) << h.name;
    EXPECT_EQ(h.group, was->group);
    EXPECT_EQ(h.slot, was->slot);
    EXPECT_EQ(h.host_id, was->host_id);
    EXPECT_EQ(h.leaves, was->leaves);
    if (h.name == "h7") EXPECT_NE(h.fingerprint, was->fingerprint);
    else EXPECT_EQ(h, *was) << h.name;
  }
  // The next change may use h5's slot again.
  Placement c = f.place(csv + "h200,basic,10.9.9.9\n", b);
  EXPECT_EQ(c.host("h200")->group, h5->group);
  EXPECT_EQ(c.host("h200")->slot, h5->slot);
}

TEST(HostsLayout, PlansChangeLeavesAndMapValue) {
  Fixture f;
  Placement p = f.place("host,plan,prefixes\na,basic,10.0.0.1\nb,game_only,10.0.0.2\nc,premium,10.0.0.3\n");
  const Group& g = p.groups.at(0);
  auto a = host_classes(f.shape, g, *p.host("a"));
  auto b = host_classes(f.shape, g, *p.host("b"));
  auto c = host_classes(f.shape, g, *p.host("c"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->class_mask, 3u);
  EXPECT_EQ(a->default_leaf, 1u);   // the policy's default
  EXPECT_EQ(b->class_mask, 1u);
  EXPECT_EQ(b->default_leaf, 0u);   // the plan's only class takes the rest
  ASSERT_EQ(b->leaves.size(), 1u);
  EXPECT_EQ(a->host.rate_bps, 10000000u);
  EXPECT_EQ(a->host.ceil_bps, 10000000u);
  EXPECT_EQ(c->host.rate_bps, 50000000u);
  EXPECT_EQ(c->host.ceil_bps, 200000000u);
  EXPECT_EQ(c->host.burst_bytes, 200000u);
  // Strict priority inside the host: game assured the host's rate, bulk a thousandth; both up to the ceiling.
  EXPECT_EQ(c->leaves[0].params.rate_bps, 50000000u);
  EXPECT_EQ(c->leaves[0].params.ceil_bps, 200000000u);
  EXPECT_LT(c->leaves[1].params.rate_bps, 1000000u);
  EXPECT_LT(c->leaves[0].params.prio, c->leaves[1].params.prio);
  // Classids: the host's class, its leaves at minor_base + class id (qos_abi.h).
  const PlacedHost& ha = *p.host("a");
  EXPECT_EQ(a->host.classid, g.major | ha.host_minor());
  EXPECT_EQ(a->leaves[1].params.classid, g.major | (ha.minor_base() + 1));
  EXPECT_EQ(a->leaves[1].params.parent, a->host.classid);
  qos_host_val v = map_value(f.shape, g, ha, *a);
  EXPECT_EQ(v.outer_classid, (1u << 16) | (kGroupMinorBase + g.index));
  EXPECT_EQ(v.group_major, g.major >> 16);
  EXPECT_EQ(v.minor_base, ha.minor_base());
  EXPECT_EQ(v.queue, QOS_HOST_ANY_QUEUE);
  // Leaf queues: the root tree's rule (htb::leaf_queue, HtbPlan.LeafQueues)
  // at each leaf's ceiling. At 10 Mbit/s (host a) a largest skb is 57 ms:
  // frames; at 200 Mbit/s (c's game leaf) 2.8 ms: a bfifo.
  const uint32_t largest = htb::min_quantum(1500, 65536) + 1514;
  for (const auto* hc : {&*a, &*c})
    for (const auto& l : hc->leaves) EXPECT_EQ(l.queue, htb::leaf_queue(l.params.ceil_bps, 1514, largest));
  EXPECT_NE(a->leaves[0].queue.split_above, 0u);
  EXPECT_EQ(c->leaves[0].queue.split_above, 0u);
  EXPECT_EQ(g.rate_bps, 10000000u + 5000000u + 50000000u);
}

TEST(HostsLayout, AssuredRatesFitTheLinkInCoarseSteps) {
  Fixture f;
  // 200 x 10 Mbit on a 1 Gbit link: scaled by a power of 2^(1/4) to fit 900 Mbit.
  std::vector<std::string> plans(200, "basic");
  auto r200 = plan_rates(f.shape, plans);
  EXPECT_LE(r200.at("basic") * 200, 900000000u);
  EXPECT_GT(r200.at("basic") * 200, 900000000u * 0.8);
  plans.push_back("basic");
  EXPECT_EQ(plan_rates(f.shape, plans).at("basic"), r200.at("basic")) << "one more host changed every host's rate";
  std::vector<std::string> few(10, "basic");
  EXPECT_EQ(plan_rates(f.shape, few).at("basic"), 10000000u);
  // The policy's own leaves keep a tenth of their assured rate.
  auto plain = htb::plan(f.m, 1500, 65536).value();
  EXPECT_EQ(f.root.leaves[0].params.rate_bps, plain.leaves[0].params.rate_bps / kUnlistedShare);
  EXPECT_EQ(f.root.leaves[0].params.ceil_bps, plain.leaves[0].params.ceil_bps);
}

TEST(HostsLayout, OutOfHandlesIsAClearError) {
  Fixture f;
  f.shape.last_handle = kFirstHandle + 10;
  auto p = plan_placement({}, parse(table_csv(0, 20), f.m), f.shape);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("out of qdisc handles"), std::string::npos) << p.error().message;
}

TEST(HostsLayout, PlacementTextRoundTrips) {
  Fixture f;
  Placement p = f.place(table_csv(0, 70) + "\"x \"\"y\"\", z\",premium,2001:db8:ffff::/48 10.200.0.0/16\n");
  p.pending_deletes = {0x20000081, 0x10001003};
  auto back = placement_from_text(to_text(p), "hosts.state");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, p);
  auto bad = placement_from_text("qosc-hosts\t1\nhost\tx\n", "hosts.state");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("hosts.state:2 is damaged"), std::string::npos) << bad.error().message;
}


// One HTB per TX queue (qosrun/txq.hpp): groups spread over the queues by
// assured rate, kept where they are, named in the map value and the text.
TEST(HostsLayout, GroupsSpreadOverTxQueuesAndStayThere) {
  Fixture f;
  f.shape.tx_queues = 2;
  Placement p = f.place(table_csv(0, 200));
  ASSERT_EQ(p.groups.size(), 4u);   // 64 + 64 + 64 + 8
  std::vector<uint64_t> rate(2, 0);
  std::vector<int> groups(2, 0);
  for (const auto& g : p.groups) {
    ASSERT_LT(g.queue, 2u);
    ++groups[g.queue];
    rate[g.queue] += g.rate_bps;
    EXPECT_EQ(g.leaf_classid() >> 16, txq::htb_major(g.queue));
    EXPECT_EQ(group_leaf(f.shape, g).parent, htb::classid(txq::htb_major(g.queue), 1));
  }
  EXPECT_EQ(p.groups[0].queue, 1u) << "the first group avoids queue 0 (it carries the unlisted traffic)";
  EXPECT_EQ(groups[0], 2);
  EXPECT_EQ(groups[1], 2);
  // The map value sends the host to its group's queue and its queue's HTB.
  ClassCache cache;
  for (const auto& h : p.hosts) {
    const Group& g = *p.group(h.group);
    auto c = cache.get(f.shape, h.plan, h.rate_bps);
    ASSERT_TRUE(c.ok());
    qos_host_val v = map_value(f.shape, g, h, **c);
    EXPECT_EQ(v.queue, g.queue + 1) << h.name;
    EXPECT_EQ(v.outer_classid, g.leaf_classid()) << h.name;
  }
  // More hosts: the old groups keep their queues; the new group goes where less is assured.
  Placement q = f.place(table_csv(0, 300), p);
  for (const auto& g : p.groups) EXPECT_EQ(q.group(g.index)->queue, g.queue);
  const Group* fifth = nullptr;
  for (const auto& g : q.groups)
    if (!p.group(g.index)) fifth = &g;
  ASSERT_TRUE(fifth);
  EXPECT_EQ(q.groups.size(), 5u);
  // The 4th group (8 hosts) fills up first; the 5th goes where less is assured (a tie: not queue 0).
  uint64_t r0 = 0, r1 = 0;
  for (const auto& g : q.groups)
    if (&g != fifth) (g.queue == 0 ? r0 : r1) += g.rate_bps;
  EXPECT_LE(fifth->queue == 0 ? r0 : r1, fifth->queue == 0 ? r1 : r0) << "it went to the queue assured less";
  // The queue survives the placement file; a group line of four fields (before queues) is queue 0.
  auto back = placement_from_text(to_text(q), "hosts.state");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, q);
  auto old = placement_from_text("qosc-hosts\t1\nnext_host_id\t1\ngroup\t0\t8192\t1000\n", "hosts.state");
  ASSERT_TRUE(old.ok()) << old.error().message;
  ASSERT_EQ(old->groups.size(), 1u);
  EXPECT_EQ(old->groups[0].queue, 0u);
}

TEST(HostsLayout, TxQueueMajorsAndChoice) {
  EXPECT_EQ(txq::htb_major(0), htb::kMajor);
  EXPECT_EQ(txq::htb_major(1), 0x402u);
  EXPECT_EQ(txq::mq_class(1), 0x04000002u);
  EXPECT_EQ(txq::queue_mapping(0), 1u);
  EXPECT_LE(txq::htb_major(txq::kMaxQueues - 1), 0x7ffu);
  // Every major a queue takes is one the placement never hands out.
  Fixture f;
  for (uint32_t q : {1u, 2u, txq::kMaxQueues - 1})
    for (uint32_t major : {txq::htb_major(q), txq::stray_qdisc(q) >> 16, txq::kMqMajor}) EXPECT_LT(major, kFirstHandle);
  EXPECT_EQ(txq::choose("eth0", 0, true, 4).value(), 4u);
  EXPECT_EQ(txq::choose("eth0", 0, false, 4).value(), 1u);
  EXPECT_EQ(txq::choose("eth0", 1, true, 4).value(), 1u);
  EXPECT_EQ(txq::choose("eth0", 2, true, 4).value(), 2u);
  EXPECT_FALSE(txq::choose("eth0", 5, true, 4).ok());
  EXPECT_FALSE(txq::choose("eth0", 2, false, 4).ok());
}

}  // namespace
}  // namespace qosrun::hosts
