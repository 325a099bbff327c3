// The hosts apply engine (qosrun/hosts.hpp) on a real HTB tree: a veth
// interface in a network namespace of each case's own (qh-eng-<case>), the
// root tree built by htb::build, a qos_hosts LPM trie made here. No compiled
// policy: the kernel side of the engine alone (tests/attach has the whole
// attach with compiled objects and traffic).
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "hosts_test_support.hpp"
#include "qosrun/hosts.hpp"

namespace qosrun::hosts {
namespace {

using qh_test::hosts_manifest;
using qh_test::parse;
using qh_test::table_csv;

std::string run(const std::string& cmd) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(("timeout -k 2 20 " + cmd + " 2>&1").c_str(), "r"), ::pclose);
  if (!p) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
  return out;
}

// A namespace with a veth pair qhe0 - qhe1; the calling thread works inside it.
class Netns {
 public:
  // QOSC_NS_PREFIX (as tests/attach): a prefix before qh-eng-, for runs side by side.
  explicit Netns(const std::string& tag)
      : name_(std::string(std::getenv("QOSC_NS_PREFIX") ? std::getenv("QOSC_NS_PREFIX") : "") + "qh-eng-" +
              tag) {
    run("ip netns del " + name_);
    run("ip netns add " + name_);
    run("ip -n " + name_ + " link add qhe0 type veth peer name qhe1");   // no dummy module everywhere
    run("ip -n " + name_ + " link set qhe0 up");
    run("ip -n " + name_ + " link set qhe1 up");
    self_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int ns = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = ns >= 0 && ::setns(ns, CLONE_NEWNET) == 0;
    if (ns >= 0) ::close(ns);
  }
  ~Netns() {
    if (self_ >= 0) {
      (void)::setns(self_, CLONE_NEWNET);
      ::close(self_);
    }
    run("ip netns del " + name_);
  }
  bool ok() const { return ok_; }
  std::string tc(const std::string& args) const { return run("ip netns exec " + name_ + " tc " + args); }

 private:
  std::string name_;
  int self_ = -1;
  bool ok_ = false;
};

struct Engine {
  qosc::Manifest m = hosts_manifest(10000000000ull);   // 10 Gbit: no plan is scaled down
  htb::Plan root;
  Shape shape;
  nl::RtnlSocket sock = nl::RtnlSocket::open().value();
  int ifindex = 0;
  Fd map;
  Placement now;

  // "" when ready, else what failed.
  std::string setup() {
    ifindex = static_cast<int>(if_nametoindex("qhe0"));
    if (ifindex <= 0) return "no qhe0 in the namespace";
    root = htb::plan(m, 1500, 65536).value();
    make_room_for_hosts(root);
    shape = Shape::of(m, root, 1500, 65536);
    if (Status st = htb::build(sock, ifindex, root); !st) return st.error().message;
    LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
    map.reset(bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "qos_hosts", sizeof(qos_host_key), sizeof(qos_host_val),
                             QOS_HOST_PREFIXES, &o));
    return map.valid() ? "" : std::string("cannot create the map: ") + std::strerror(errno);
  }
  Result<Summary> apply_csv(const std::string& csv) {
    auto next = plan_placement(now, parse(csv, m), shape);
    if (!next) return next.error();
    ApplyTarget t{&sock, ifindex, "qhe0", map.get(), 200, -1, {}};
    auto s = apply(t, shape, now, *next, [](const Placement&, const std::vector<uint32_t>&) { return Status{}; });
    if (s) now = *next;
    return s;
  }
  std::map<uint32_t, nl::TcCounters> classes() {
    std::map<uint32_t, nl::TcCounters> out;
    for (const auto& g : now.groups) {
      auto cs = nl::qdisc_class_counters(sock, ifindex, g.major);
      if (cs)
        for (const auto& [id, c] : *cs) out[id] = c;
    }
    return out;
  }
  size_t map_entries() {
    size_t n = 0;
    qos_host_key k{}, next{};
    void* prev = nullptr;
    while (bpf_map_get_next_key(map.get(), prev, &next) == 0) {
      ++n;
      k = next;
      prev = &k;
    }
    return n;
  }
};

#define NEED_ROOT()                                                   \
  if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, BPF)"

TEST(HostsEngine, BuildsGroupsHostsAndMapEntries) {
  NEED_ROOT();
  Netns ns("build");
  ASSERT_TRUE(ns.ok());
  Engine e;
  ASSERT_EQ(e.setup(), "");
  auto s = e.apply_csv(table_csv(0, 100) + "p,premium,10.50.0.0/16\ng,game_only,10.51.0.1\n");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->added, 102u);
  EXPECT_EQ(e.now.groups.size(), 2u);
  // Per group: its root, and per host its class and one leaf per class of its plan.
  auto cls = e.classes();
  EXPECT_EQ(cls.size(), 2u + 100 * 3 + 3 + 2);
  // One map entry per prefix: 100 IPv4 hosts, 34 of them with an IPv6 /64, and p and g.
  EXPECT_EQ(e.map_entries(), 100u + 34 + 2);
  // What tc sees: the group's leaf in the root, its HTB with the filter, a host's leaf with its bfifo.
  const PlacedHost& h = *e.now.host("h42");
  const Group& g = *e.now.group(h.group);
  std::string classes = ns.tc("class show dev qhe0");
  EXPECT_NE(classes.find(fmt::format("class htb 1:{:x} parent 1:1 leaf {:x}:", kGroupMinorBase + g.index, g.major >> 16)),
            std::string::npos)
      << classes;
  EXPECT_NE(classes.find(fmt::format("class htb {:x}:{:x} parent {:x}:{:x} leaf {:x}:", g.major >> 16,
                                     h.minor_base() + 1, g.major >> 16, h.host_minor(), h.leaves.at(1) >> 16)),
            std::string::npos)
      << classes;
  std::string filters = ns.tc(fmt::format("filter show dev qhe0 parent {:x}:", g.major >> 16));
  EXPECT_NE(filters.find("qos_hosts"), std::string::npos) << filters;
  // The map value of one of h42's prefixes.
  qos_host_key k = map_key(h.prefixes[0]);
  qos_host_val v{};
  ASSERT_EQ(bpf_map_lookup_elem(e.map.get(), &k, &v), 0);
  EXPECT_EQ(v.group_major, g.major >> 16);
  EXPECT_EQ(v.minor_base, h.minor_base());
  EXPECT_EQ(v.class_mask, 3u);
  EXPECT_EQ(v.host_id, h.host_id);
}

TEST(HostsEngine, ApplyTouchesOnlyWhatChanged) {
  NEED_ROOT();
  Netns ns("diff");
  ASSERT_TRUE(ns.ok());
  Engine e;
  ASSERT_EQ(e.setup(), "");
  ASSERT_TRUE(e.apply_csv(table_csv(0, 100)).ok());
  Placement before = e.now;
  // Unchanged: nothing sent at all.
  auto same = e.apply_csv(table_csv(0, 100));
  ASSERT_TRUE(same.ok()) << same.error().message;
  EXPECT_EQ(same->messages, 0u);
  EXPECT_EQ(same->map_writes, 0u);
  EXPECT_EQ(same->unchanged, 100u);
  // h0..h9 removed, h100..h109 added, h10..h14 to premium, h15's prefix moved.
  std::string csv = "host,plan,prefixes\n";
  for (int i = 10; i < 110; ++i) {
    std::string plan = i < 15 ? "premium" : "basic";
    std::string pfx = i == 15 ? "10.99.0.15" : fmt::format("10.{}.{}.1", i / 256, i % 256);
    if (i != 15 && i % 3 == 0) pfx += fmt::format(" 2001:db8:{}::/64", i);
    csv += fmt::format("h{},{},{}\n", i, plan, pfx);
  }
  auto s = e.apply_csv(csv);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->added, 10u);
  EXPECT_EQ(s->removed, 10u);
  EXPECT_EQ(s->changed, 6u);
  EXPECT_EQ(s->unchanged, 84u);
  auto cls = e.classes();
  for (int i = 0; i < 10; ++i) {
    const PlacedHost& gone = *before.host(fmt::format("h{}", i));
    EXPECT_FALSE(cls.count(before.group(gone.group)->major | gone.host_minor())) << gone.name;
    qos_host_key k = map_key(gone.prefixes[0]);
    qos_host_val v{};
    EXPECT_NE(bpf_map_lookup_elem(e.map.get(), &k, &v), 0) << gone.name;
  }
  for (const auto& h : e.now.hosts) {
    const Group& g = *e.now.group(h.group);
    EXPECT_TRUE(cls.count(g.major | h.host_minor())) << h.name;
    for (const auto& [c, handle] : h.leaves) EXPECT_TRUE(cls.count(g.major | (h.minor_base() + c))) << h.name;
  }
  // h15: the old prefix is gone from the map, the new one names h15.
  qos_host_key old_key = map_key(before.host("h15")->prefixes[0]);
  qos_host_key new_key = map_key(e.now.host("h15")->prefixes[0]);
  qos_host_val v{};
  EXPECT_NE(bpf_map_lookup_elem(e.map.get(), &old_key, &v), 0);
  ASSERT_EQ(bpf_map_lookup_elem(e.map.get(), &new_key, &v), 0);
  EXPECT_EQ(v.host_id, before.host("h15")->host_id);
  // h12 on premium: its class is changed in place (same classid), ceil 200 Mbit.
  std::string classes = ns.tc("class show dev qhe0");
  const PlacedHost& h12 = *e.now.host("h12");
  EXPECT_EQ(h12.host_minor(), before.host("h12")->host_minor());
  std::string id = fmt::format("class htb {:x}:{:x} ", e.now.group(h12.group)->major >> 16, h12.host_minor());
  auto at = classes.find(id);
  ASSERT_NE(at, std::string::npos) << classes;
  EXPECT_NE(classes.substr(at, classes.find('\n', at) - at).find("ceil 200Mbit"), std::string::npos)
      << classes.substr(at, 200);
  // Everything removed: only the root tree is left.
  auto none = e.apply_csv("host,plan,prefixes\n");
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_EQ(none->removed, 100u);
  EXPECT_EQ(e.map_entries(), 0u);
  std::string after = ns.tc("class show dev qhe0");
  EXPECT_EQ(after.find(fmt::format("1:{:x}", kGroupMinorBase)), std::string::npos) << after;
  EXPECT_EQ(std::count(after.begin(), after.end(), '\n'), 1 + static_cast<long>(e.root.leaves.size())) << after;
}

TEST(HostsEngine, AKernelRefusalUndoesTheWholeApply) {
  NEED_ROOT();
  Netns ns("undo");
  ASSERT_TRUE(ns.ok());
  Engine e;
  ASSERT_EQ(e.setup(), "");
  ASSERT_TRUE(e.apply_csv(table_csv(0, 10)).ok());
  std::string tree = ns.tc("class show dev qhe0");
  // Someone else's qdisc holds the handle the next host's first leaf queue will ask for.
  auto next = plan_placement(e.now, parse(table_csv(0, 12), e.m), e.shape);
  ASSERT_TRUE(next.ok());
  uint32_t taken = next->host("h11")->leaves.begin()->second >> 16;
  std::string out = ns.tc(fmt::format("qdisc replace dev qhe0 parent 1:10 handle {:x}: bfifo limit 10000", taken));
  ASSERT_EQ(out, "");
  auto s = e.apply_csv(table_csv(0, 12));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("host 'h11': cannot create the queue of"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("nothing was changed"), std::string::npos) << s.error().message;
  (void)ns.tc("qdisc replace dev qhe0 parent 1:10 handle 10: bfifo limit 10000");
  EXPECT_EQ(ns.tc("class show dev qhe0"), tree);
  EXPECT_EQ(e.map_entries(), 10u + 4);
}

}  // namespace
}  // namespace qosrun::hosts
