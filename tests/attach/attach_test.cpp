// qosrun attach / detach / status end to end: the real qosrun and qosc
// binaries on a veth pair in namespaces the test creates. The interface must
// come back byte-for-byte as it was (tc qdisc/class/filter show, ip -d link
// show), also after failures, injected or real, and after kill -9.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "attach_support.hpp"

namespace fs = std::filesystem;
using namespace qt_att;

namespace {

std::string gaming() {
  std::string o = compile_example("gaming");
  EXPECT_FALSE(o.empty()) << "qosc could not compile examples/gaming.qos";
  return o;
}

// Attach, check it is really there (HTB root, XDP, TC filter, traffic
// flows), detach, compare with the snapshot before.
void round_trip(Pair& p, const std::string& extra, bool expect_htb) {
  const std::string obj = gaming();
  ASSERT_FALSE(obj.empty());
  const std::string before = p.snapshot();
  Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " " + extra);
  ASSERT_EQ(a.rc, 0) << a.all();
  EXPECT_NE(a.out.find("attached policy 'gaming'"), std::string::npos) << a.all();
  std::string during = p.snapshot();
  EXPECT_NE(during, before);
  EXPECT_NE(during.find("prog/xdp"), std::string::npos) << during;
  EXPECT_NE(during.find("qos_tc"), std::string::npos) << during;
  EXPECT_EQ(during.find("qdisc htb 1:") != std::string::npos, expect_htb) << during;
  Cmd ping = p.in_a("ping -c 3 -i 0.1 -W 1 -q " + p.ip_b);
  EXPECT_EQ(ping.rc, 0) << "traffic must still flow with the policy attached:\n" << ping.all();
  Cmd d = p.qosrun("detach " + p.if_a);
  ASSERT_EQ(d.rc, 0) << d.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

}  // namespace

TEST(AttachRoundTrip, DefaultQdiscComesBack) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "rt");
  round_trip(p, "", true);
}

TEST(AttachRoundTrip, PreexistingTbfComesBack) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "tbf");
  ASSERT_EQ(p.in_a("tc qdisc add dev " + p.if_a + " root handle 8001: tbf rate 50mbit burst 32k latency 50ms").rc, 0);
  ASSERT_NE(p.snapshot().find("qdisc tbf 8001:"), std::string::npos);
  round_trip(p, "", true);
  const std::string after = p.snapshot();
  EXPECT_NE(after.find("qdisc tbf 8001: root"), std::string::npos) << after;
  EXPECT_NE(after.find("rate 50Mbit burst 32Kb lat 50ms"), std::string::npos) << after;
}

TEST(AttachRoundTrip, PreexistingClsactAndFiltersStay) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "cls");
  ASSERT_EQ(p.in_a("tc qdisc add dev " + p.if_a + " clsact && tc filter add dev " + p.if_a +
                   " ingress pref 1 u32 match ip dport 9 0xffff flowid 1:1 && tc filter add dev " + p.if_a +
                   " egress pref 3 u32 match ip dport 7 0xffff flowid 1:1")
                .rc,
            0);
  round_trip(p, "--ingress-shape", true);
  EXPECT_NE(p.snapshot().find("qdisc clsact ffff:"), std::string::npos);
}

TEST(AttachRoundTrip, QueuesNoneLeavesTheRootQdiscAlone) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "none");
  round_trip(p, "--queues none", false);
}

TEST(AttachRoundTrip, IngressShapeCreatesAndRemovesTheIfb) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ifb");
  const std::string obj = gaming();
  const std::string before = p.snapshot();
  Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape");
  ASSERT_EQ(a.rc, 0) << a.all();
  Cmd ifb = p.in_a("ip -o link show type ifb");
  ASSERT_NE(ifb.out.find("qosc-ifb"), std::string::npos) << ifb.all();
  // Downloads (echo replies) are redirected to the IFB and classified there.
  ASSERT_EQ(p.in_a("ping -c 4 -i 0.1 -W 1 -q " + p.ip_b).rc, 0);
  Cmd cls = p.in_a("tc -s class show dev $(ip -o link show type ifb | cut -d: -f2 | tr -d ' ' | cut -d@ -f1)");
  EXPECT_NE(cls.out.find("class htb 1:10"), std::string::npos) << cls.all();
  EXPECT_NE(cls.out.find("Sent 392 bytes 4 pkt"), std::string::npos)
      << "the 4 echo replies should be in class control (1:10) of the IFB:\n" << cls.out;
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachStatus, JsonReportsWhatTheKernelHas) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "st");
  Cmd none = p.qosrun("status " + p.if_a + " --json");
  ASSERT_EQ(none.rc, 0) << none.all();
  auto j0 = nlohmann::json::parse(none.out);
  ASSERT_EQ(j0.size(), 1u);
  EXPECT_FALSE(j0[0]["attached"].get<bool>());
  ASSERT_EQ(p.qosrun("attach " + gaming() + " " + p.if_a).rc, 0);
  Cmd st = p.qosrun("status --json");
  ASSERT_EQ(st.rc, 0) << st.all();
  auto j = nlohmann::json::parse(st.out);
  ASSERT_EQ(j.size(), 1u) << st.out;
  EXPECT_EQ(j[0]["interface"], p.if_a);
  EXPECT_EQ(j[0]["policy"], "gaming");
  EXPECT_TRUE(j[0]["xdp"]["ok"].get<bool>());
  EXPECT_FALSE(j[0]["xdp"]["meta"].get<bool>());   // off unless --xdp-meta
  EXPECT_TRUE(j[0]["tc"]["ok"].get<bool>());
  EXPECT_TRUE(j[0]["queues_ok"].get<bool>());
  EXPECT_FALSE(j[0]["stale"].get<bool>());
  EXPECT_EQ(j[0]["queues"]["leaves"].size(), 5u);
  // Someone removes our root qdisc behind qosrun's back: status says so.
  ASSERT_EQ(p.in_a("tc qdisc del dev " + p.if_a + " root").rc, 0);
  auto j2 = nlohmann::json::parse(p.qosrun("status " + p.if_a + " --json").out);
  EXPECT_FALSE(j2[0]["queues_ok"].get<bool>());
  EXPECT_FALSE(j2[0]["problems"].empty());
  Cmd d = p.qosrun("detach " + p.if_a);
  EXPECT_EQ(d.rc, 0) << d.all();
  EXPECT_EQ(p.leftovers(), "");
  // --xdp-meta is recorded and a reload keeps it.
  ASSERT_EQ(p.qosrun("attach --xdp-meta " + gaming() + " " + p.if_a).rc, 0);
  EXPECT_TRUE(nlohmann::json::parse(p.qosrun("status " + p.if_a + " --json").out)[0]["xdp"]["meta"].get<bool>());
  Cmd r = p.qosrun("reload " + gaming() + " " + p.if_a);
  ASSERT_EQ(r.rc, 0) << r.all();
  EXPECT_TRUE(nlohmann::json::parse(p.qosrun("status " + p.if_a + " --json").out)[0]["xdp"]["meta"].get<bool>());
  EXPECT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

// ---- failures: message, non-zero exit, nothing left behind -----------------------------------------

TEST(AttachFailure, MissingInterface) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "mis");
  Cmd a = p.qosrun("attach " + gaming() + " nosuch0");
  EXPECT_EQ(a.rc, 1);
  EXPECT_NE(a.err.find("qosrun: error: no interface named nosuch0"), std::string::npos) << a.all();
  Cmd d = p.qosrun("detach nosuch0");
  EXPECT_EQ(d.rc, 1);
  EXPECT_NE(d.err.find("no interface named nosuch0"), std::string::npos) << d.all();
}

// A damaged object is refused before libbpf reads it (the object digest,
// docs/qosrun.md), with the file named and what to do; the interface is not
// touched.
TEST(AttachFailure, BrokenObjectAndObjectWithoutManifest) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "obj");
  const std::string before = p.snapshot();
  const std::string obj = gaming();
  const std::string damaged = " was damaged or changed after qosc wrote it (";
  struct Case {
    std::string path, expect;
  } cases[] = {
      {truncated(obj, 3), "is not a BPF object"},
      {truncated(obj, 40), truncated(obj, 40) + damaged + "truncated: 40 bytes"},
      {truncated(obj, 4000), truncated(obj, 4000) + damaged + "the section header table"},
      // The manifest renamed (in the section names and in BTF): the digest no longer matches.
      {without_manifest(obj), without_manifest(obj) + damaged + "digest mismatch): recompile it with `qosc POLICY -o " +
                                  without_manifest(obj) + "`"},
      {with_flipped_bit(obj, "xdp"), with_flipped_bit(obj, "xdp") + damaged + "digest mismatch)"},
      {with_flipped_bit(obj, ".qosc.manifest"), with_flipped_bit(obj, ".qosc.manifest") + damaged + "digest mismatch)"},
      {"/nonexistent/x.bpf.o", "cannot open /nonexistent/x.bpf.o"},
  };
  for (const auto& c : cases) {
    ASSERT_FALSE(c.path.empty());
    Cmd a = p.qosrun("attach " + c.path + " " + p.if_a);
    EXPECT_EQ(a.rc, 1) << c.path << "\n" << a.all();
    EXPECT_NE(a.err.find("qosrun: error: "), std::string::npos) << a.all();
    EXPECT_NE(a.err.find(c.expect), std::string::npos) << a.all();
    EXPECT_EQ(a.err.find("bug in qosc"), std::string::npos) << a.all();
    EXPECT_EQ(p.snapshot(), before) << c.path;
    EXPECT_EQ(p.leftovers(), "") << c.path;
  }
}

// A damaged object given to reload leaves the attached policy as it was.
TEST(AttachFailure, DamagedObjectOnReloadChangesNothing) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "dmg");
  const std::string obj = gaming(), broken = with_flipped_bit(obj, "tc");
  ASSERT_FALSE(broken.empty());
  const std::string before = p.snapshot();
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a).rc, 0);
  const std::string attached = p.snapshot();
  const std::string status = p.qosrun("status " + p.if_a + " --json").out;
  Cmd r = p.qosrun("reload " + broken + " " + p.if_a);
  EXPECT_EQ(r.rc, 1) << r.all();
  EXPECT_EQ(r.err, "qosrun: error: " + broken + " was damaged or changed after qosc wrote it (digest mismatch): "
                   "recompile it with `qosc POLICY -o " + broken + "`\n");
  EXPECT_EQ(p.snapshot(), attached);
  EXPECT_EQ(p.qosrun("status " + p.if_a + " --json").out, status);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachFailure, NotRoot) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "nr");
  const std::string obj = gaming();
  fs::permissions(fs::path(obj).parent_path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                                    fs::perms::others_read | fs::perms::others_exec);
  const std::string before = p.snapshot();
  // Enter the namespace as root, then drop to nobody without capabilities.
  for (const char* cmd : {"attach", "detach", "reload"}) {
    std::string args = std::string(cmd) == "detach" ? p.if_a : obj + " " + p.if_a;
    Cmd a = sh("env QOSRUN_STATE_ROOT=" + p.state_root + " nsenter --net=/run/netns/" + p.ns_a +
               " setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all " + QOSRUN_BIN + " " + cmd + " " +
               args);
    EXPECT_EQ(a.rc, 1) << a.all();
    EXPECT_NE(a.err.find("needs root"), std::string::npos) << a.all();
  }
  EXPECT_EQ(p.snapshot(), before);
}

TEST(AttachFailure, BusyInterfaceSecondAttach) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "busy");
  const std::string obj = gaming();
  const std::string before = p.snapshot();
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a).rc, 0);
  const std::string attached = p.snapshot();
  Cmd again = p.qosrun("attach " + compile_example("server") + " " + p.if_a);
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("already has qosc policy 'gaming' attached"), std::string::npos) << again.all();
  EXPECT_NE(again.err.find("qosrun reload"), std::string::npos) << again.all();
  EXPECT_NE(again.err.find("qosrun detach"), std::string::npos) << again.all();
  EXPECT_EQ(p.snapshot(), attached) << "the failed attach must not touch the policy already there";
  // --force replaces it.
  Cmd forced = p.qosrun("attach " + compile_example("server") + " " + p.if_a + " --force");
  EXPECT_EQ(forced.rc, 0) << forced.all();
  EXPECT_NE(forced.out.find("policy 'server'"), std::string::npos) << forced.all();
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachFailure, LockHeldByAnotherQosrun) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "lock");
  const std::string before = p.snapshot();
  fs::create_directories(p.state_root);
  std::string lock = p.state_root + "/" + p.key() + ".lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  Cmd a = p.qosrun("attach " + gaming() + " " + p.if_a, "QOSRUN_LOCK_WAIT_MS=300");
  ::close(fd);
  fs::remove(lock);   // the other qosrun's lock file, which this test made
  EXPECT_EQ(a.rc, 1);
  EXPECT_NE(a.err.find("is busy: another qosrun"), std::string::npos) << a.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachFailure, RootQdiscThatCannotBeRestoredNeedsForce) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "cfl");
  ASSERT_EQ(p.in_a("tc qdisc add dev " + p.if_a + " root handle 5: htb default 1 && tc class add dev " + p.if_a +
                   " parent 5: classid 5:1 htb rate 10mbit")
                .rc,
            0);
  const std::string before = p.snapshot();
  Cmd a = p.qosrun("attach " + gaming() + " " + p.if_a);
  EXPECT_EQ(a.rc, 1);
  EXPECT_NE(a.err.find("could not put back exactly"), std::string::npos) << a.all();
  EXPECT_NE(a.err.find("--force"), std::string::npos) << a.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

// Every step of attach fails once; each time the interface is as before.
TEST(AttachFailure, InjectedFailureAtEveryStepUndoesEverything) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "inj");
  ASSERT_EQ(p.in_a("tc qdisc add dev " + p.if_a + " root handle 8001: tbf rate 50mbit burst 32k latency 50ms").rc, 0);
  const std::string obj = gaming();
  const std::string before = p.snapshot();
  for (const char* step : {"load", "pin", "state", "htb-root", "htb-class", "htb-leaf", "clsact", "tc-filter", "xdp",
                           "ifb", "ifb-htb", "ifb-tc", "ifb-redirect"}) {
    SCOPED_TRACE(step);
    Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape", std::string("QOSRUN_FAIL_AT=") + step);
    EXPECT_EQ(a.rc, 1) << a.all();
    EXPECT_NE(a.err.find(std::string("injected failure at step '") + step + "'"), std::string::npos) << a.all();
    EXPECT_EQ(a.err.find("undoing failed"), std::string::npos) << a.all();
    EXPECT_EQ(p.snapshot(), before);
    EXPECT_EQ(p.leftovers(), "");
  }
  // And it still works afterwards.
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape").rc, 0);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
}

// The same with an isolated class: its nested HTB, sub-queues and filter
// (step htb-isolate) are undone like the rest; with --ingress-shape the IFB
// gets them too, and detach restores the interface exactly.
TEST(AttachFailure, InjectedFailureWithIsolationUndoesEverything) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "iso");
  const std::string obj = compile("iso_inj", R"(policy iso_inj {
    link 100mbit;
    class game { priority 0; }
    class bulk { priority 4; isolate saddr 8 flows 2; default; }
    class web { priority 2; isolate flows 8; }
    rule udp dport 27015 -> game;
    rule tcp dport 443 -> web;
})");
  ASSERT_FALSE(obj.empty());
  const std::string before = p.snapshot();
  for (const char* step : {"htb-class", "htb-leaf", "htb-isolate", "tc-filter", "xdp", "ifb-htb", "ifb-redirect"}) {
    SCOPED_TRACE(step);
    Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape", std::string("QOSRUN_FAIL_AT=") + step);
    EXPECT_EQ(a.rc, 1) << a.all();
    EXPECT_NE(a.err.find(std::string("injected failure at step '") + step + "'"), std::string::npos) << a.all();
    EXPECT_EQ(p.snapshot(), before);
    EXPECT_EQ(p.leftovers(), "");
  }
  Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape");
  ASSERT_EQ(a.rc, 0) << a.all();
  const std::string classes = p.in_a("tc class show dev " + p.if_a).out;
  EXPECT_NE(classes.find("class htb 11:10 "), std::string::npos) << "bulk's host sub-queue\n" << classes;
  EXPECT_NE(classes.find("class htb 1000:11 "), std::string::npos) << "host 0's second flow queue\n" << classes;
  EXPECT_NE(classes.find("class htb 1:101 "), std::string::npos) << "bulk's sparse leaf\n" << classes;
  EXPECT_NE(p.in_a("tc filter show dev " + p.if_a + " parent 12:").out.find("qos_subq"), std::string::npos);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

// A real refusal by the kernel after the queues and the TC program are in
// place: IFB devices have no native XDP.
TEST(AttachFailure, KernelRefusesNativeXdpMidway) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "kr");
  const std::string dev = "qakr9";
  ASSERT_EQ(p.in_a("ip link add " + dev + " type ifb && ip link set " + dev + " up").rc, 0);
  const std::string before = p.snapshot(dev);
  Cmd a = p.qosrun("attach " + gaming() + " " + dev + " --mode native");
  EXPECT_EQ(a.rc, 1) << a.all();
  EXPECT_NE(a.err.find("native XDP is not supported by the driver of " + dev + ": use --mode skb"), std::string::npos)
      << a.all();
  EXPECT_EQ(p.snapshot(dev), before);
  EXPECT_FALSE(fs::exists(p.state_root + "/" + p.key(dev) + "/state.json"));
  // Without --mode the same attach falls back to skb mode and says so.
  Cmd b = p.qosrun("-v attach " + gaming() + " " + dev);
  EXPECT_EQ(b.rc, 0) << b.all();
  EXPECT_NE(b.err.find("skb (generic) mode"), std::string::npos) << b.all();
  EXPECT_NE(b.out.find("XDP skb"), std::string::npos) << b.all();
  ASSERT_EQ(p.qosrun("detach " + dev).rc, 0);
  EXPECT_EQ(p.snapshot(dev), before);
}

// ---- kill -9 ---------------------------------------------------------------------------------------

TEST(AttachKill, ForegroundKilledThenDetachCleans) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "k9d");
  const std::string before = p.snapshot();
  Background fg = start_background(p.qosrun_cmdline(gaming() + " " + p.if_a), "k9d");
  ASSERT_TRUE(fg.wait_for("Ctrl-C detaches", 15000)) << fg.out() << fg.err();
  // While it runs, detach refuses (it belongs to the foreground qosrun).
  Cmd busy = p.qosrun("detach " + p.if_a);
  EXPECT_EQ(busy.rc, 1);
  EXPECT_NE(busy.err.find("foreground qosrun pid"), std::string::npos) << busy.all();
  fg.kill9();
  fg.wait();
  EXPECT_NE(p.snapshot(), before) << "kill -9 leaves the policy attached";
  Cmd st = p.qosrun("status " + p.if_a);
  EXPECT_NE(st.out.find("STALE"), std::string::npos) << st.all();
  Cmd d = p.qosrun("detach " + p.if_a);
  EXPECT_EQ(d.rc, 0) << d.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachKill, ForegroundKilledThenNextAttachCleans) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "k9a");
  const std::string before = p.snapshot();
  Background fg = start_background(p.qosrun_cmdline(gaming() + " " + p.if_a + " --ingress-shape"), "k9a");
  ASSERT_TRUE(fg.wait_for("Ctrl-C detaches", 15000)) << fg.out() << fg.err();
  fg.kill9();
  fg.wait();
  ASSERT_FALSE(p.leftovers().empty()) << "pins and state stay after kill -9";
  Cmd a = p.qosrun("attach " + compile_example("server") + " " + p.if_a);
  EXPECT_EQ(a.rc, 0) << a.all();
  EXPECT_NE(a.err.find("is stale (qosrun pid"), std::string::npos) << a.all();
  EXPECT_EQ(p.in_a("ip -o link show type ifb").out, "") << "the IFB of the killed run is gone";
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachKill, KilledHalfwayThroughAttach) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "k9h");
  ASSERT_EQ(p.in_a("tc qdisc add dev " + p.if_a + " root handle 8001: tbf rate 50mbit burst 32k latency 50ms").rc, 0);
  const std::string before = p.snapshot();
  for (const char* step : {"htb-leaf", "xdp", "ifb-redirect"}) {
    SCOPED_TRACE(step);
    ASSERT_EQ(kill9_at_step(p, "attach " + gaming() + " " + p.if_a + " --ingress-shape", step, std::string("k9h-") + step),
              "");
    Cmd d = p.qosrun("detach " + p.if_a);
    EXPECT_EQ(d.rc, 0) << d.all();
    EXPECT_EQ(p.snapshot(), before);
    EXPECT_EQ(p.leftovers(), "");
  }
}

TEST(AttachForeground, SigtermDetaches) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "fg");
  const std::string before = p.snapshot();
  Background fg = start_background(p.qosrun_cmdline(gaming() + " " + p.if_a), "fg");
  ASSERT_TRUE(fg.wait_for("Ctrl-C detaches", 15000)) << fg.out() << fg.err();
  ASSERT_EQ(p.in_a("ping -c 2 -i 0.1 -W 1 -q " + p.ip_b).rc, 0);
  ::kill(fg.pid, SIGTERM);
  EXPECT_EQ(fg.wait(), 0) << fg.out() << fg.err();
  EXPECT_NE(fg.out().find("detached from " + p.if_a), std::string::npos) << fg.out() << fg.err();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachNamespaces, RecordsAreKeptPerNamespace) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ns");
  ASSERT_EQ(p.qosrun("attach " + gaming() + " " + p.if_a).rc, 0);
  const std::string attached = p.snapshot();
  // The same interface name seen from namespace b (same state root).
  auto in_b = [&](const std::string& args) {
    return sh("env QOSRUN_STATE_ROOT=" + p.state_root + " QOSRUN_PIN_ROOT=" + p.pin_root + " nsenter --net=/run/netns/" +
              p.ns_b + " " + QOSRUN_BIN + " " + args);
  };
  // b has no such interface and no record of its own: a's is invisible to it.
  Cmd d = in_b("detach " + p.if_a);
  EXPECT_EQ(d.rc, 1);
  EXPECT_NE(d.err.find("no qosc state"), std::string::npos) << d.all();
  Cmd r = in_b("reload " + gaming() + " " + p.if_a);
  EXPECT_EQ(r.rc, 1) << r.all();
  EXPECT_EQ(p.snapshot(), attached);
  // An interface of the same name in b gets its own policy, record and pins,
  // and detaching it leaves a's alone (namespaces deleted with a policy on
  // them, as test namespaces are, never block another namespace).
  ASSERT_EQ(sh("ip -n " + p.ns_b + " link add " + p.if_a + " type veth peer name " + p.if_a + "p && ip -n " + p.ns_b +
               " link set " + p.if_a + " up && ip -n " + p.ns_b + " link set " + p.if_a + "p up").rc, 0);
  Cmd a = in_b("attach " + gaming() + " " + p.if_a);
  EXPECT_EQ(a.rc, 0) << a.all();
  EXPECT_EQ(p.snapshot(), attached);
  EXPECT_EQ(in_b("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), attached);
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

// A namespace deleted with a policy attached (a container that went away, a
// demo killed before its cleanup ran) must leave nothing that a later
// namespace inherits. The kernel hands the dead namespace's inode number to
// the next namespace it creates, so records are keyed by the netns cookie,
// which is never reused; the dead namespace's record and pins are removed by
// the next attach.
// A qosrun under `ip netns exec` (its own /sys, so none of the pins) that
// finds the record of a deleted namespace leaves it: dropping the record
// would leak the pins, which still hold the policy's maps. The next qosrun
// that sees the pins removes both.
TEST(AttachNamespaces, OrphanWhosePinsAreNotVisibleIsLeftForOneThatSeesThem) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "nsvis");
  ASSERT_EQ(p.qosrun("attach " + gaming() + " " + p.if_a).rc, 0);
  const std::string old_key = p.key();
  ASSERT_TRUE(fs::exists(p.pin_root + "/" + old_key));
  ASSERT_EQ(sh("ip netns del " + p.ns_a).rc, 0);   // takes the veth pair with it
  const std::string dev = p.if_b + "x";
  ASSERT_EQ(sh("ip -n " + p.ns_b + " link add " + dev + " type veth peer name " + p.if_b + "y && ip -n " + p.ns_b +
               " link set " + dev + " up && ip -n " + p.ns_b + " link set " + p.if_b + "y up").rc, 0);
  // An interface of b, attached from under `ip netns exec`.
  const std::string under_exec = "ip netns exec " + p.ns_b + " env QOSRUN_STATE_ROOT=" + p.state_root +
                                 " QOSRUN_PIN_ROOT=" + p.pin_root + " " + QOSRUN_BIN + " ";
  bool gone = false;
  for (int i = 0; i < 40 && !gone; ++i) {   // the kernel frees a namespace lazily
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Cmd a = sh(under_exec + "attach " + gaming() + " " + dev);
    ASSERT_EQ(a.rc, 0) << a.all();
    EXPECT_TRUE(fs::exists(p.state_root + "/" + old_key + "/state.json")) << "dropped a record whose pins it cannot see";
    EXPECT_TRUE(fs::exists(p.pin_root + "/" + old_key));
    ASSERT_EQ(sh(under_exec + "detach " + dev).rc, 0);
    // A qosrun that sees the pins (nsenter keeps the host's /sys) cleans up.
    Cmd c = sh("env QOSRUN_STATE_ROOT=" + p.state_root + " QOSRUN_PIN_ROOT=" + p.pin_root + " nsenter --net=/run/netns/" +
               p.ns_b + " " + QOSRUN_BIN + " attach " + gaming() + " " + dev);
    ASSERT_EQ(c.rc, 0) << c.all();
    gone = c.err.find("in a network namespace that no longer exists") != std::string::npos;
    ASSERT_EQ(sh("env QOSRUN_STATE_ROOT=" + p.state_root + " QOSRUN_PIN_ROOT=" + p.pin_root + " nsenter --net=/run/netns/" +
                 p.ns_b + " " + QOSRUN_BIN + " detach " + dev).rc, 0);
  }
  EXPECT_TRUE(gone) << "the namespace never went away";
  EXPECT_FALSE(fs::exists(p.state_root + "/" + old_key));
  EXPECT_FALSE(fs::exists(p.pin_root + "/" + old_key)) << "the dead namespace's pins";
}

TEST(AttachNamespaces, DeletedNamespaceLeavesNothingToInherit) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "nsdel");
  ASSERT_EQ(p.qosrun("attach " + gaming() + " " + p.if_a).rc, 0);
  const std::string old_key = p.key();
  auto inode_of_a = [&] {
    struct stat st{};
    return ::stat(("/run/netns/" + p.ns_a).c_str(), &st) == 0 ? st.st_ino : 0;
  };
  const auto old_inode = inode_of_a();
  ASSERT_TRUE(fs::exists(p.state_root + "/" + old_key + "/state.json"));
  // Delete namespace a with the policy on it, then make it again, until the
  // new one has the old inode (as it usually has at once) or 20 tries.
  bool same_inode = false;
  for (int i = 0; i < 20 && !same_inode; ++i) {
    ASSERT_EQ(sh("ip netns del " + p.ns_a).rc, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * i));   // the kernel frees the namespace lazily
    ASSERT_EQ(sh("ip netns add " + p.ns_a).rc, 0);
    same_inode = inode_of_a() == old_inode;
  }
  std::fprintf(stderr, "[ measured ] the new namespace %s the deleted one's inode %lu\n",
               same_inode ? "got" : "did not get", static_cast<unsigned long>(old_inode));
  ASSERT_EQ(sh("ip netns exec " + p.ns_a + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
               "net.ipv6.conf.default.disable_ipv6=1 && ip -n " + p.ns_a + " link add " + p.if_a +
               " type veth peer name " + p.if_b + " netns " + p.ns_b + " && ip -n " + p.ns_a + " link set " + p.if_a +
               " up && ip -n " + p.ns_b + " link set " + p.if_b + " up").rc, 0);
  EXPECT_NE(p.key(), old_key);
  const std::string before = p.snapshot();
  Cmd st = p.qosrun("status " + p.if_a);
  EXPECT_NE(st.all().find("no qosc policy"), std::string::npos) << st.all();
  Cmd a = p.qosrun("attach " + gaming() + " " + p.if_a);
  ASSERT_EQ(a.rc, 0) << a.all();
  EXPECT_NE(a.err.find("in a network namespace that no longer exists"), std::string::npos) << a.all();
  EXPECT_FALSE(fs::exists(p.state_root + "/" + old_key)) << "the dead namespace's record";
  EXPECT_FALSE(fs::exists(p.state_root + "/" + old_key + ".lock"));
  EXPECT_FALSE(fs::exists(p.pin_root + "/" + old_key)) << "the dead namespace's pins";
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");
  EXPECT_FALSE(fs::exists(p.state_root + "/" + p.key() + ".lock")) << "detach removes its lock file";
}
