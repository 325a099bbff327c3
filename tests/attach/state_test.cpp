// The state record, the lock and the injected failure points (no kernel).
#include <gtest/gtest.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "qosrun/state.hpp"
#include "temp_dir.hpp"

using namespace qosrun;
namespace fs = std::filesystem;

namespace {

class StateRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    setenv("QOSRUN_STATE_ROOT", (dir_ / "run").c_str(), 1);
    setenv("QOSRUN_PIN_ROOT", (dir_ / "bpf").c_str(), 1);
  }
  void TearDown() override {
    unsetenv("QOSRUN_STATE_ROOT");
    unsetenv("QOSRUN_PIN_ROOT");
    unsetenv("QOSRUN_FAIL_AT");
  }
  qt_support::TempDir dir_{"qt-att-state"};
};

state::Record sample() {
  state::Record r;
  r.phase = qosrun::state::Phase::Attached;
  r.ifname = "eth7";
  r.ifindex = 7;
  r.netns = 4026531840ull;
  r.netns_inode = 4026531993ull;
  r.owner_pid = 0;
  r.object = "/x/gaming.bpf.o";
  r.created = "2026-01-01T00:00:00Z";
  r.generation = 3;
  r.manifest.policy = "gaming";
  r.manifest.scheduler = "strict_priority";
  r.manifest.link_bps = 100000000;
  qosc::ManifestClass c;
  c.name = "bulk";
  c.is_default = true;
  c.htb_minor = 0x10;
  r.manifest.classes.push_back(c);
  r.main.ifname = "eth7";
  r.main.ifindex = 7;
  r.main.tc = {true, true, 1, 0x51c0, 99};
  r.main.has_queues = true;
  r.main.queues.created = true;
  r.main.queues.plan = htb::plan(r.manifest, 1500).value();
  nl::QdiscInfo prev;
  prev.kind = "tbf";
  prev.handle = 0x80010000;
  prev.parent = TC_H_ROOT;
  prev.has_options = true;
  prev.options_type = 2;
  prev.options = {1, 2, 3, 0xff};
  r.main.queues.previous = prev;
  r.xdp = {true, state::XdpAttachMode::Skb, 98};
  state::Ingress in;
  in.ifb_name = "qosc-ifb7";
  in.ifb_ifindex = 12;
  in.ifb_created = true;
  in.redirect_attached = true;
  in.redirect_prio = 0x51c0;
  in.ifb.ifname = "qosc-ifb7";
  in.ifb.ifindex = 12;
  in.ifb.has_queues = true;
  in.ifb.queues.plan = r.main.queues.plan;
  r.ingress = in;
  r.progs = {{"qos_xdp", 98}, {"qos_tc", 99}};
  r.maps = {{"qos_stats", 10}, {"qos_flows", 11}};
  r.pin_dir = "/sys/fs/bpf/qosc/eth7";
  return r;
}

}  // namespace

TEST_F(StateRoot, RecordRoundTripsThroughTheFile) {
  state::Record r = sample();
  ASSERT_TRUE(state::write(r).ok());
  EXPECT_TRUE(fs::exists(dir_ / "run" / "eth7" / "state.json"));
  EXPECT_EQ(state::state_file("eth7"), (dir_ / "run" / "eth7" / "state.json").string());
  EXPECT_EQ(state::paths_for("eth7").pin_dir, (dir_ / "bpf" / "eth7").string());
  auto back = state::read("eth7");
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_TRUE(back->has_value());
  const state::Record& b = **back;
  EXPECT_EQ(state::to_json(b), state::to_json(r));
  ASSERT_TRUE(b.main.queues.previous);
  EXPECT_EQ(b.main.queues.previous->options, r.main.queues.previous->options);
  EXPECT_EQ(b.main.queues.previous->ifindex, 7);
  EXPECT_EQ(state::list(), std::vector<std::string>{"eth7"});
  ASSERT_TRUE(state::remove("eth7").ok());
  auto gone = state::read("eth7");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  EXPECT_TRUE(state::list().empty());
}

TEST_F(StateRoot, DamagedFileIsAClearError) {
  fs::create_directories(dir_ / "run" / "eth7");
  std::ofstream(dir_ / "run" / "eth7" / "state.json") << "{\"format\": 1, \"phase\": ";
  auto r = state::read("eth7");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("is damaged"), std::string::npos) << r.error().message;
}

TEST_F(StateRoot, StaleMeansTheOwnerIsGone) {
  state::Record r = sample();
  r.ifname = "lo";   // an interface that exists, so only the owner decides
  r.ifindex = static_cast<int>(if_nametoindex("lo"));
  r.progs.clear();
  EXPECT_FALSE(r.stale()) << "persistent: no owner";
  r.owner_pid = getpid();
  r.owner_start = state::process_start_time(getpid());
  EXPECT_NE(r.owner_start, 0u);
  EXPECT_FALSE(r.stale());
  r.owner_start += 1;   // same pid, another process (pid reuse)
  EXPECT_TRUE(r.stale());
  pid_t child = fork();
  if (child == 0) _exit(0);
  int st;
  waitpid(child, &st, 0);
  r.owner_pid = child;
  r.owner_start = 0;
  EXPECT_TRUE(r.stale());
}

TEST_F(StateRoot, StaleMeansTheInterfaceIsGoneOrAnotherOne) {
  state::Record r = sample();   // persistent: no owner to lose
  r.ifname = "qosc-no-such0";
  EXPECT_NE(r.stale_reason().find("interface qosc-no-such0 is gone"), std::string::npos) << r.stale_reason();
  r.ifname = "lo";
  r.ifindex = static_cast<int>(if_nametoindex("lo")) + 1000;   // the name now belongs to another interface
  EXPECT_NE(r.stale_reason().find("is another one now"), std::string::npos) << r.stale_reason();
}

TEST_F(StateRoot, RecordKnowsItsNamespaceByCookie) {
  state::Record r = sample();
  r.netns = state::netns_cookie();
  ASSERT_NE(r.netns, 0u) << "SO_NETNS_COOKIE needs Linux 5.14";
  EXPECT_TRUE(r.in_this_netns());
  r.netns += 1;
  EXPECT_FALSE(r.in_this_netns());
  // Format 1 named the namespace by inode, which a new namespace may inherit.
  r.format = 1;
  r.netns = state::netns_inode();
  EXPECT_TRUE(r.in_this_netns());
  EXPECT_EQ(state::netns_cookie_of("/proc/self/ns/net"), state::netns_cookie());
}

TEST_F(StateRoot, LockFileCanBeRemovedWhileHeld) {
  setenv("QOSRUN_LOCK_WAIT_MS", "100", 1);
  {
    auto a = state::Lock::acquire("eth8");
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_TRUE(fs::exists(state::paths_for("eth8").lock_file));
    a->remove_file();
    EXPECT_FALSE(fs::exists(state::paths_for("eth8").lock_file));
    // A new lock on the same interface is a new file, and is granted while the old one is still held.
    auto b = state::Lock::acquire("eth8");
    ASSERT_TRUE(b.ok()) << b.error().message;
  }
  unsetenv("QOSRUN_LOCK_WAIT_MS");
}

TEST_F(StateRoot, LockIsExclusive) {
  setenv("QOSRUN_LOCK_WAIT_MS", "100", 1);
  auto a = state::Lock::acquire("eth7");
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = state::Lock::acquire("eth7");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("eth7 is busy"), std::string::npos) << b.error().message;
  EXPECT_NE(b.error().message.find(std::to_string(getpid())), std::string::npos) << "names the holder";
  auto other = state::Lock::acquire("eth8");
  EXPECT_TRUE(other.ok());
  { auto moved = std::move(a.value()); }   // released
  EXPECT_TRUE(state::Lock::acquire("eth7").ok());
  unsetenv("QOSRUN_LOCK_WAIT_MS");
}

TEST_F(StateRoot, FailPointsFireOnlyWhereNamed) {
  EXPECT_TRUE(state::fail_point("xdp").ok());
  setenv("QOSRUN_FAIL_AT", "htb-leaf,xdp", 1);
  EXPECT_TRUE(state::fail_point("htb").ok());
  EXPECT_TRUE(state::fail_point("htb-root").ok());
  auto s = state::fail_point("xdp");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "injected failure at step 'xdp' (QOSRUN_FAIL_AT)");
  EXPECT_FALSE(state::fail_point("htb-leaf").ok());
  // The state file is a step too: a write fails.
  setenv("QOSRUN_FAIL_AT", "state", 1);
  EXPECT_FALSE(state::write(sample()).ok());
  EXPECT_FALSE(fs::exists(dir_ / "run" / "eth7" / "state.json"));
}
