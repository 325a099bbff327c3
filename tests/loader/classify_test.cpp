// `qosrun classify` end to end: the real binary on a fixture object and
// captures written by the test.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frames.hpp"
#include "qosrun/classify.hpp"
#include "qosrun/pcap.hpp"
#include "temp_dir.hpp"
#include "qosrun/testrun.hpp"

namespace fs = std::filesystem;
using namespace qosrun;
using qosrun::test::fixture;
using qosrun::test::tcp4;
using qosrun::test::udp4;

namespace {

struct Output {
  int status = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Classify : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }
  // Runs qosrun with `args` (a shell fragment); optional `prefix` runs it under another program.
  Output qosrun(const std::string& args, const std::string& prefix = "") {
    Output o;
    const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
    std::string cmd = prefix + " " + QOSRUN_BIN + " " + args + " >" + out.string() + " 2>" + err.string();
    int rc = std::system(cmd.c_str());
    o.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    o.out = slurp(out);
    o.err = slurp(err);
    return o;
  }
  std::string pcap(const std::string& name, const std::vector<std::vector<uint8_t>>& frames) {
    const fs::path p = dir_ / name;
    Status s = write_pcap(p.string(), frames);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return p.string();
  }
  qt_support::TempDir dir_{"qt-classify"};
};

}  // namespace

TEST(ClassifyJson, LineFormatIsTheContracts) {
  PacketAnswer a;
  a.index = 0;
  a.cls = "gaming";
  a.pass = true;
  EXPECT_EQ(json_line(a), R"({"packet": 0, "class": "gaming", "verdict": "pass"})");
  a.index = 12;
  a.cls = "drop";
  a.pass = false;
  EXPECT_EQ(json_line(a), R"({"packet": 12, "class": "drop", "verdict": "drop"})");
}

// With `set dscp` in the policy, TC runs add the DSCP before and after.
TEST(ClassifyJson, DscpOnlyWhenAsked) {
  PacketAnswer a;
  a.cls = "voip";
  a.pass = true;
  a.dscp_in = 0;
  a.dscp_out = 46;
  EXPECT_EQ(json_line(a), R"({"packet": 0, "class": "voip", "verdict": "pass"})");
  EXPECT_EQ(json_line(a, true), R"({"packet": 0, "class": "voip", "verdict": "pass", "dscp": {"in": 0, "out": 46}})");
  a.dscp_in = a.dscp_out = -1;   // not IP
  EXPECT_EQ(json_line(a, true), R"({"packet": 0, "class": "voip", "verdict": "pass"})");
}

TEST(FrameDscp, ReadsIpv4Ipv6AndVlanTagged) {
  std::vector<uint8_t> f = udp4(53);
  f[15] = 46 << 2 | 1;
  EXPECT_EQ(frame_dscp(f), 46);
  std::vector<uint8_t> tagged(f.begin(), f.begin() + 12);
  for (uint8_t b : {0x81, 0x00, 0x00, 0x05}) tagged.push_back(b);
  tagged.insert(tagged.end(), f.begin() + 12, f.end());
  EXPECT_EQ(frame_dscp(tagged), 46);
  std::vector<uint8_t> v6(14 + 40, 0);
  v6[12] = 0x86, v6[13] = 0xdd;
  v6[14] = 0x60 | (10 << 2) >> 4;
  v6[15] = uint8_t(((10 << 2) & 0x0f) << 4);
  EXPECT_EQ(frame_dscp(v6), 10);
  v6.resize(40);
  EXPECT_EQ(frame_dscp(v6), -1);   // IPv6 header cut
}

TEST_F(Classify, JsonLinesForEveryPacketOnBothHooks) {
  if (!can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  std::vector<uint8_t> tiny(10, 0);
  const std::string cap = pcap("mix.pcap", {udp4(53), tcp4(23), udp4(80), udp4(7), udp4(7), udp4(7)});
  for (const char* hook : {"xdp", "tc"}) {
    Output o = qosrun("classify " + fixture("mini.bpf.o") + " --pcap " + cap + " --hook " + hook + " --json");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out,
              "{\"packet\": 0, \"class\": \"dns\", \"verdict\": \"pass\"}\n"
              "{\"packet\": 1, \"class\": \"drop\", \"verdict\": \"drop\"}\n"
              "{\"packet\": 2, \"class\": \"other\", \"verdict\": \"pass\"}\n"
              "{\"packet\": 3, \"class\": \"limited\", \"verdict\": \"pass\"}\n"
              "{\"packet\": 4, \"class\": \"limited\", \"verdict\": \"pass\"}\n"
              "{\"packet\": 5, \"class\": \"limited\", \"verdict\": \"drop\"}\n")
        << "hook " << hook;
    EXPECT_EQ(o.err, "");
  }
}

TEST_F(Classify, TableWithoutJson) {
  if (!can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  const std::string cap = pcap("t.pcap", {udp4(53), tcp4(23)});
  Output o = qosrun("classify " + fixture("mini.bpf.o") + " --pcap " + cap);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.out.find("dns"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("drop (rule)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("2 packets (xdp hook): dns 1, drop 1; 1 dropped"), std::string::npos) << o.out;
}

TEST_F(Classify, BadInputsExitOneWithAReason) {
  const std::string cap = pcap("t.pcap", {udp4(53)});
  const fs::path junk = dir_ / "junk.pcap";
  std::ofstream(junk) << "this is not a capture";
  Output o = qosrun("classify " + fixture("mini.bpf.o") + " --pcap " + junk.string() + " --json");
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.err.find("is not a packet capture"), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");

  o = qosrun("classify " + fixture("mini.bpf.o") + " --pcap " + cap + " --hook egress");
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.err.find("--hook"), std::string::npos) << o.err;

  o = qosrun("classify " + fixture("mini.bpf.o"));
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.err.find("--pcap is required"), std::string::npos) << o.err;

  if (!can_load_bpf()) return;
  o = qosrun("classify " + (dir_ / "missing.bpf.o").string() + " --pcap " + cap);
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.err.find("cannot open"), std::string::npos) << o.err;
  o = qosrun("classify " + cap + " --pcap " + cap);
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.err.find("is not a BPF object"), std::string::npos) << o.err;
}

TEST_F(Classify, VerifierRejectionIsShortUnlessVeryVerbose) {
  if (!can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  const std::string cap = pcap("t.pcap", {udp4(53)});
  Output o = qosrun("classify " + fixture("rejected.bpf.o") + " --pcap " + cap);
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("the kernel's verifier rejected program qos_xdp"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("-vv"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("processed "), std::string::npos) << "no raw verifier dump by default:\n" << o.err;
  EXPECT_LE(std::count(o.err.begin(), o.err.end(), '\n'), 4) << o.err;
  o = qosrun("classify " + fixture("rejected.bpf.o") + " --pcap " + cap + " -vv");
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("processed "), std::string::npos) << "-vv shows the full log:\n" << o.err;
  // The TC program of the same object verifies.
  o = qosrun("classify " + fixture("rejected.bpf.o") + " --pcap " + cap + " --hook tc --json");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "{\"packet\": 0, \"class\": \"all\", \"verdict\": \"pass\"}\n");
}

// A damaged object never reaches libbpf or the verifier: exit 1 with what
// happened, not a crash and not "a bug in qosc".
TEST_F(Classify, DamagedObjectExitsOneAndSaysSo) {
  if (!can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
  const std::string cap = pcap("t.pcap", {udp4(53)});
  const auto mini = qosrun::test::read_file(fixture("mini.bpf.o"));
  const std::string obj = (dir_ / "mini.bpf.o").string();
  struct Case {
    std::vector<unsigned char> bytes;
    std::string why;
  } cases[] = {
      {qosrun::test::with_flipped_byte(mini, "xdp", 16), "digest mismatch"},
      {qosrun::test::with_flipped_byte(mini, ".qosc.manifest", 12), "digest mismatch"},
      {std::vector<unsigned char>(mini.begin(), mini.begin() + long(mini.size() - 100)),
       "the section header table"},
  };
  for (const auto& c : cases) {
    qosrun::test::write_file(obj, c.bytes);
    for (const char* hook : {"xdp", "tc"}) {
      Output o = qosrun("classify " + obj + " --pcap " + cap + " --hook " + hook + " --json");
      EXPECT_EQ(o.status, 1) << o.err;
      EXPECT_EQ(o.out, "");
      EXPECT_EQ(o.err.rfind("qosrun: error: " + obj + " was damaged or changed after qosc wrote it (" + c.why, 0), 0u)
          << o.err;
      EXPECT_NE(o.err.find("): recompile it with `qosc POLICY -o " + obj + "`\n"), std::string::npos) << o.err;
      EXPECT_EQ(o.err.find("bug in qosc"), std::string::npos) << o.err;
    }
  }
  Output o = qosrun("classify " + fixture("mini-format1.bpf.o") + " --pcap " + cap);
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_NE(o.err.find("mini-format1.bpf.o was compiled by an older qosc (manifest format 1)"), std::string::npos)
      << o.err;
}

TEST_F(Classify, SaysSoWhenNotRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  if (std::system("command -v setpriv >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs setpriv (util-linux)";
  const std::string cap = pcap("t.pcap", {udp4(53)});
  fs::permissions(dir_.path(), fs::perms::all);
  fs::permissions(cap, fs::perms::all);
  Output o = qosrun("classify " + fixture("mini.bpf.o") + " --pcap " + cap + " --json",
                    "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all");
  if (o.err.find("Permission denied") != std::string::npos && o.err.find("qosrun") == std::string::npos)
    GTEST_SKIP() << "the qosrun binary is not reachable by an unprivileged user here: " << o.err;
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_NE(o.err.find("needs root"), std::string::npos) << o.err;
  // A damaged object is reported as such, root or not: the digest is checked before the privilege.
  const std::string obj = (dir_ / "damaged.bpf.o").string();
  qosrun::test::write_file(obj, qosrun::test::with_flipped_byte(qosrun::test::read_file(fixture("mini.bpf.o")), "xdp", 16));
  fs::permissions(obj, fs::perms::all);
  o = qosrun("classify " + obj + " --pcap " + cap + " --json", "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all");
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_NE(o.err.find("was damaged or changed after qosc wrote it"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("needs root"), std::string::npos) << o.err;
}

TEST_F(Classify, VersionAndHelp) {
  Output o = qosrun("--version");
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out.rfind("qosrun ", 0), 0u) << o.out;
  o = qosrun("classify -h");
  EXPECT_EQ(o.status, 0);
  EXPECT_NE(o.out.find("--pcap"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("--hook"), std::string::npos) << o.out;
}
