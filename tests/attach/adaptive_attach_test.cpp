// The adaptive rate on a real interface (docs/adaptive.md): attach starts the
// supervisor and records it, the tree starts at the policy's start rate, the
// controller probes the reflector and writes its live state, stats and status
// show it, reload keeps the current rate, detach stops the supervisor and
// leaves nothing behind. How well it follows a moving link is measured by
// tests/wire (AdaptiveWire.*).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "attach_support.hpp"

namespace fs = std::filesystem;
using namespace qt_att;

namespace {

std::string adaptive_policy(const std::string& link, const std::string& extra = "") {
  return "policy lte {\n"
         "  " + link + "\n" + extra +
         "  scheduler strict_priority;\n"
         "  class game { priority 0; }\n"
         "  class bulk { priority 5; default; }\n"
         "  rule udp dport 3074 -> game;\n"
         "}\n";
}

// The rate of HTB class `classid` on `ifname` in namespace a, bits/s (0 when
// absent). tc has no JSON for HTB classes; its text prints the rate exactly
// (a unit only when the rate divides by it).
uint64_t class_rate(const Pair& p, const std::string& ifname, const std::string& classid) {
  Cmd c = p.in_a("tc class show dev " + ifname + " classid " + classid);
  std::smatch m;
  if (!std::regex_search(c.out, m, std::regex(" rate ([0-9]+)([KMGT]?)bit"))) return 0;
  uint64_t v = std::stoull(m[1].str());
  for (const char u : std::string("KMGT")) {
    v *= 1000;
    if (m[2].str() == std::string(1, u)) return v;
  }
  return std::stoull(m[1].str());
}

nlohmann::json status_json(const Pair& p, const std::string& ifname) {
  Cmd c = p.qosrun("status " + ifname + " --json");
  try {
    auto j = nlohmann::json::parse(c.out);
    if (j.is_array() && !j.empty()) return j[0];
  } catch (const std::exception&) {
  }
  return {};
}

std::string adaptive_file(const Pair& p) { return p.state_root + "/" + p.key() + "/adaptive.json"; }

// Waits until the controller's live state says the reflector answered.
nlohmann::json wait_live(const Pair& p, int ms = 5000) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream f(adaptive_file(p));
    if (f) {
      try {
        auto j = nlohmann::json::parse(f);
        if (!j.at("reflectors").empty() && j["reflectors"][0].value("received", 0) > 10) return j;
      } catch (const std::exception&) {
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

// Alive and not a zombie: the supervisor is reparented to pid 1 when attach
// exits, and a container's pid 1 may reap it late.
bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  return rp != std::string::npos && rp + 2 < s.size() && s[rp + 2] != 'Z' && s[rp + 2] != 'X';
}

TEST(AttachAdaptive, SupervisorProbesAndDetachStopsIt) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ad1");
  std::string obj = compile("adaptive-start50", adaptive_policy("link adaptive 10mbit-100mbit start 50mbit;"), "");
  ASSERT_FALSE(obj.empty()) << "qosc did not compile `link adaptive`";
  Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --reflector " + p.ip_b);
  ASSERT_EQ(a.rc, 0) << a.all();
  EXPECT_EQ(class_rate(p, p.if_a, "1:1"), 50'000'000u) << "the tree starts at the policy's start rate";

  auto st = status_json(p, p.if_a);
  ASSERT_TRUE(st.contains("adaptive")) << st.dump(2);
  pid_t sup = st["adaptive"].value("supervisor_pid", 0);
  EXPECT_TRUE(process_alive(sup)) << st.dump(2);
  EXPECT_EQ(st["adaptive"]["reflectors"], nlohmann::json::array({p.ip_b}));

  auto live = wait_live(p);
  ASSERT_FALSE(live.is_null()) << "no live state with answers from the reflector in 5 s";
  EXPECT_TRUE(live["reflectors"][0].value("alive", false)) << live.dump(2);
  EXPECT_EQ(live["upload"].value("min_bps", 0ull), 10'000'000u);
  EXPECT_EQ(live["upload"].value("max_bps", 0ull), 100'000'000u);
  // An idle link is not cut: the rate stays at the start rate.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(class_rate(p, p.if_a, "1:1"), 50'000'000u);

  Cmd stats = p.qosrun("stats " + p.if_a + " --json --no-rates");
  EXPECT_NE(stats.out.find("\"adaptive\""), std::string::npos) << stats.all();
  Cmd text = p.qosrun("stats " + p.if_a + " --no-rates");
  EXPECT_NE(text.out.find("reflector " + p.ip_b), std::string::npos) << text.all();
  Cmd status_text = p.qosrun("status " + p.if_a);
  EXPECT_NE(status_text.out.find("supervisor pid " + std::to_string(sup)), std::string::npos) << status_text.all();

  Cmd d = p.qosrun("detach " + p.if_a);
  ASSERT_EQ(d.rc, 0) << d.all();
  for (int i = 0; i < 50 && process_alive(sup); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(process_alive(sup)) << "detach stops the supervisor";
  EXPECT_EQ(p.leftovers(), "");
  EXPECT_FALSE(fs::exists(adaptive_file(p)));
}

TEST(AttachAdaptive, ReloadKeepsTheRateTheControllerHas) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ad2");
  std::string a50 = compile("adaptive-a50", adaptive_policy("link adaptive 10mbit-100mbit start 50mbit;"), "");
  std::string a80 = compile("adaptive-a80", adaptive_policy("link adaptive 10mbit-100mbit start 80mbit;"), "");
  std::string a40 = compile("adaptive-a40", adaptive_policy("link adaptive 10mbit-40mbit;"), "");
  std::string fixed = compile("adaptive-fixed", adaptive_policy("link 70mbit;"), "");
  ASSERT_FALSE(a50.empty() || a80.empty() || a40.empty() || fixed.empty());
  ASSERT_EQ(p.qosrun("attach " + a50 + " " + p.if_a + " --reflector " + p.ip_b).rc, 0);
  ASSERT_FALSE(wait_live(p).is_null());

  // A new start rate does not reset the rate the controller has now (50).
  Cmd r = p.qosrun("reload " + a80 + " " + p.if_a);
  ASSERT_EQ(r.rc, 0) << r.all();
  uint64_t after = class_rate(p, p.if_a, "1:1");
  EXPECT_GE(after, 50'000'000u);
  EXPECT_LT(after, 55'000'000u) << "reload kept the controller's rate, then it drifts at 1 %/s towards 80";
  // A new range clamps it.
  r = p.qosrun("reload " + a40 + " " + p.if_a);
  ASSERT_EQ(r.rc, 0) << r.all();
  EXPECT_EQ(class_rate(p, p.if_a, "1:1"), 40'000'000u);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto live = wait_live(p);
  EXPECT_EQ(live["upload"].value("max_bps", 0ull), 40'000'000u) << "the controller took the new range";
  EXPECT_LE(class_rate(p, p.if_a, "1:1"), 40'000'000u);

  // Fixed rates: the supervisor stops.
  pid_t sup = status_json(p, p.if_a)["adaptive"].value("supervisor_pid", 0);
  ASSERT_TRUE(process_alive(sup));
  r = p.qosrun("reload " + fixed + " " + p.if_a);
  ASSERT_EQ(r.rc, 0) << r.all();
  EXPECT_NE(r.all().find("controller stops"), std::string::npos) << r.all();
  EXPECT_FALSE(process_alive(sup));
  EXPECT_EQ(class_rate(p, p.if_a, "1:1"), 70'000'000u);
  EXPECT_FALSE(status_json(p, p.if_a).contains("adaptive"));
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachAdaptive, ReflectorsAreCheckedBeforeAnythingChanges) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ad3");
  std::string adaptive = compile("adaptive-plain", adaptive_policy("link adaptive 10mbit-100mbit;"), "");
  std::string fixed = compile("adaptive-fixed100", adaptive_policy("link 100mbit;"), "");
  ASSERT_FALSE(adaptive.empty() || fixed.empty());
  std::string before = p.snapshot();

  Cmd c = p.qosrun("attach " + fixed + " " + p.if_a + " --reflector " + p.ip_b);
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("link adaptive MIN-MAX"), std::string::npos) << c.all();
  c = p.qosrun("attach " + adaptive + " " + p.if_a + " --reflector example.org");
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("is not an IPv4 or IPv6 address"), std::string::npos) << c.all();
  // No --reflector and no default route: say what to give.
  c = p.qosrun("attach " + adaptive + " " + p.if_a);
  EXPECT_EQ(c.rc, 1);
  EXPECT_NE(c.err.find("--reflector ADDR"), std::string::npos) << c.all();
  EXPECT_EQ(p.snapshot(), before);
  EXPECT_EQ(p.leftovers(), "");

  // With a default route, its gateway is the reflector, and qosrun says so.
  ASSERT_EQ(p.in_a("ip route add default via " + p.ip_b).rc, 0);
  c = p.qosrun("attach " + adaptive + " " + p.if_a);
  ASSERT_EQ(c.rc, 0) << c.all();
  EXPECT_NE(c.err.find("probing " + p.if_a + "'s gateway " + p.ip_b), std::string::npos) << c.all();
  EXPECT_FALSE(wait_live(p).is_null()) << "the gateway answers the probes";
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.snapshot(), before);
}

TEST(AttachAdaptive, ADeadSupervisorIsAProblemInStatus) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ad4");
  std::string obj = compile("adaptive-plain2", adaptive_policy("link adaptive 10mbit-100mbit;"), "");
  ASSERT_FALSE(obj.empty());
  ASSERT_EQ(p.qosrun("attach " + obj + " " + p.if_a + " --reflector " + p.ip_b).rc, 0);
  pid_t sup = status_json(p, p.if_a)["adaptive"].value("supervisor_pid", 0);
  ASSERT_TRUE(process_alive(sup));
  ::kill(sup, SIGKILL);
  for (int i = 0; i < 50 && process_alive(sup); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Cmd s = p.qosrun("status " + p.if_a);
  EXPECT_NE(s.out.find("supervisor (pid " + std::to_string(sup) + ") is gone"), std::string::npos) << s.all();
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachAdaptive, TheForegroundFormRunsTheControllerItself) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ad5");
  std::string obj = compile("adaptive-plain3", adaptive_policy("link adaptive 10mbit-100mbit;"), "");
  ASSERT_FALSE(obj.empty());
  Background fg = start_background(p.qosrun_cmdline(obj + " " + p.if_a + " --reflector " + p.ip_b), "ad5-fg");
  ASSERT_TRUE(fg.wait_for("Ctrl-C detaches", 15000)) << fg.out() << fg.err();
  auto live = wait_live(p);
  ASSERT_FALSE(live.is_null()) << fg.err();
  EXPECT_EQ(status_json(p, p.if_a)["adaptive"].value("supervisor_pid", -1), 0) << "no supervisor process";
  ::kill(fg.pid, SIGTERM);
  EXPECT_EQ(fg.wait(), 0) << fg.err();
  EXPECT_EQ(p.leftovers(), "");
}

TEST(AttachAdaptive, DownloadRateShapesTheIfb) {
  REQUIRE_ROOT();
  MAKE_PAIR(p, "ad6");
  std::string obj = compile("adaptive-download", adaptive_policy("link 100mbit;", "  download 30mbit;\n"), "");
  ASSERT_FALSE(obj.empty());
  Cmd a = p.qosrun("attach " + obj + " " + p.if_a + " --ingress-shape");
  ASSERT_EQ(a.rc, 0) << a.all();
  auto st = status_json(p, p.if_a);
  std::string ifb = st["ingress"].value("ifb", "");
  ASSERT_FALSE(ifb.empty()) << st.dump(2);
  EXPECT_EQ(class_rate(p, p.if_a, "1:1"), 100'000'000u);
  EXPECT_EQ(class_rate(p, ifb, "1:1"), 30'000'000u) << "the IFB is shaped to `download`, not `link`";
  ASSERT_EQ(p.qosrun("detach " + p.if_a).rc, 0);
  EXPECT_EQ(p.leftovers(), "");
}

}  // namespace
