// Loader and test-run helpers against hand-written fixture objects.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "frames.hpp"
#include "qosrun/classify.hpp"
#include "qosrun/loader.hpp"
#include "temp_dir.hpp"
#include "qosrun/testrun.hpp"

using namespace qosrun;
using qosrun::test::fixture;
using qosrun::test::read_file;
using qosrun::test::tcp4;
using qosrun::test::udp4;
using qosrun::test::with_flipped_byte;

#define NEED_BPF()                                                                         \
  do {                                                                                     \
    if (!qosrun::can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel"; \
  } while (0)

namespace {

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')) + 1; }

}  // namespace

static_assert(!std::is_copy_constructible_v<LoadedPolicy> && std::is_nothrow_move_constructible_v<LoadedPolicy>);
static_assert(!std::is_copy_constructible_v<Fd> && std::is_nothrow_move_constructible_v<Fd>);

TEST(Loader, RefusesSomethingThatIsNotAnObject) {
  const std::string text = "policy gaming { }\n-- certainly not an ELF object, but long enough to have a header";
  std::vector<unsigned char> bytes(text.begin(), text.end());
  auto r = LoadedPolicy::open_memory(bytes, "gaming.qos");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("gaming.qos is not a BPF object"), std::string::npos) << r.error().message;
}

TEST(Loader, MissingFileSaysWhatToDo) {
  auto r = LoadedPolicy::open_file("no-such-dir/policy.bpf.o");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot open no-such-dir/policy.bpf.o"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("qosc POLICY.qos -o"), std::string::npos) << r.error().message;
}

TEST(Loader, ObjectWithoutManifestIsRefused) {
  auto bytes = read_file(fixture("nomanifest.bpf.o"));
  ASSERT_FALSE(bytes.empty());
  auto r = LoadedPolicy::open_memory(bytes, "stripped.bpf.o");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "stripped.bpf.o has no usable qosc manifest (no .qosc.manifest section) and no digest: qosc did not "
            "write it, or it was damaged or changed after qosc wrote it; compile the policy with `qosc POLICY -o "
            "stripped.bpf.o`");
  // ... but hand-written objects may be opened on purpose.
  LoadOptions o;
  o.require_manifest = false;
  auto r2 = LoadedPolicy::open_memory(bytes, "stripped.bpf.o", o);
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  EXPECT_FALSE(r2->has_manifest());
  EXPECT_NE(r2->program(Hook::Xdp), nullptr);
}

// ---- the object digest (qosc/object_digest.hpp): checked before libbpf reads a byte

TEST(Loader, DamagedObjectIsRefusedBeforeLibbpfReadsIt) {
  const auto mini = read_file(fixture("mini.bpf.o"));
  ASSERT_GT(mini.size(), 64u);
  ASSERT_TRUE(LoadedPolicy::open_memory(mini, "mini.bpf.o").ok());
  // One bit of the XDP program: libbpf would load it and the verifier would
  // see damaged code, or worse, it would verify and classify differently.
  auto r = LoadedPolicy::open_memory(with_flipped_byte(mini, "xdp", 10), "mini.bpf.o");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "mini.bpf.o was damaged or changed after qosc wrote it (digest mismatch): recompile it with `qosc "
            "POLICY -o mini.bpf.o`");
  EXPECT_EQ(r.error().kind, ErrorKind::Damaged);
  // Cut short: the walk finds the section header table outside the file.
  auto half = mini;
  half.resize(mini.size() / 2);
  r = LoadedPolicy::open_memory(half, "half.bpf.o");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("half.bpf.o was damaged or changed after qosc wrote it (the section header table (",
                                    0),
            0u)
      << r.error().message;
  EXPECT_NE(r.error().message.find("lies past the end of the " + std::to_string(half.size()) + "-byte file)"),
            std::string::npos)
      << r.error().message;
  // Shorter than an ELF header, the magic intact.
  half.resize(40);
  r = LoadedPolicy::open_memory(half, "forty.bpf.o");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "forty.bpf.o was damaged or changed after qosc wrote it (truncated: 40 bytes, shorter than an ELF header "
            "(64 bytes)): recompile it with `qosc POLICY -o forty.bpf.o`");
}

TEST(Loader, DamagedFileIsNamedByItsPath) {
  qt_support::TempDir dir("qt-loader");
  ASSERT_TRUE(dir.ok());
  const std::string path = (dir / "mini.bpf.o").string();
  qosrun::test::write_file(path, with_flipped_byte(read_file(fixture("mini.bpf.o")), ".qosc.manifest", 3));
  auto r = LoadedPolicy::open_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, path + " was damaged or changed after qosc wrote it (digest mismatch): recompile it "
                                      "with `qosc POLICY -o " + path + "`");
}

// Without a digest, the manifest's format tells the era: format 1 is from
// before digests (refused, since an unchecked object may crash libbpf 1.1.2);
// format 2 lost its digest.
TEST(Loader, ObjectWithoutDigestIsOldOrDamaged) {
  const std::pair<const char*, std::string> cases[] = {
      {"mini-format1.bpf.o", "mini-format1.bpf.o was compiled by an older qosc (manifest format 1), which wrote no "
                             "digest to check it by: recompile it with `qosc POLICY -o mini-format1.bpf.o`"},
      {"mini-unsealed.bpf.o", "mini-unsealed.bpf.o was damaged or changed after qosc wrote it (its .qosc.digest "
                              "section is missing): recompile it with `qosc POLICY -o mini-unsealed.bpf.o`"},
  };
  for (const auto& [file, message] : cases) {
    auto r = LoadedPolicy::open_memory(read_file(fixture(file)), file);
    ASSERT_FALSE(r.ok()) << file;
    EXPECT_EQ(r.error().message, message);
  }
}

TEST(Loader, VerifierSummaryPicksTheReason) {
  const char* log =
      "0: R1=ctx() R10=fp0\n"
      "1: (71) r1 = *(u8 *)(r1 +100)\n"
      "invalid access to packet, off=100 size=1, R1(id=0,off=100,r=0)\n"
      "R1 offset is outside of the packet\n"
      "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n"
      "\n";
  EXPECT_EQ(verifier_summary(log), "R1 offset is outside of the packet");
  EXPECT_EQ(verifier_summary("BPF program is too large. Processed 1000001 insn\nprocessed 1000001 insns (limit "
                             "1000000)\nverification time 1 usec\nstack depth 0\n"),
            "BPF program is too large. Processed 1000001 insn");
  EXPECT_EQ(verifier_summary(""), "");
}

TEST(Loader, LoadsWithoutBpffsAndFindsEverythingByRole) {
  NEED_BPF();
  // The fixture declares qos_flows pinned; without a pin root nothing is pinned.
  auto p = LoadedPolicy::load_file(fixture("mini.bpf.o"));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_TRUE(p->loaded());
  EXPECT_EQ(p->manifest().policy, "mini");
  EXPECT_EQ(p->class_count(), 3u);
  EXPECT_GE(p->prog_fd(Hook::Xdp), 0);
  EXPECT_GE(p->prog_fd(Hook::Tc), 0);
  EXPECT_GE(p->map_fd(MapRole::Stats), 0);
  EXPECT_GE(p->map_fd(MapRole::Flows), 0);
  EXPECT_EQ(p->class_name(1), "dns");
  EXPECT_EQ(p->class_name(-1), "drop");
  EXPECT_EQ(p->class_from_htb_minor(0x12), 2);
  EXPECT_EQ(p->class_from_htb_minor(0x13), -1);
  // Moving keeps the fds alive in the new owner.
  int fd = p->prog_fd(Hook::Xdp);
  LoadedPolicy moved = std::move(p.value());
  EXPECT_EQ(moved.prog_fd(Hook::Xdp), fd);
  auto run = test_run(moved.prog_fd(Hook::Xdp), Hook::Xdp, udp4(53));
  EXPECT_TRUE(run.ok()) << run.error().message;
}

TEST(Loader, VerifierRejectionIsASummaryNotALog) {
  NEED_BPF();
  auto p = LoadedPolicy::load_file(fixture("rejected.bpf.o"));
  ASSERT_FALSE(p.ok());
  const Error& e = p.error();
  EXPECT_EQ(e.message.rfind("the kernel's verifier rejected program qos_xdp of rejected.bpf.o: ", 0), 0u) << e.message;
  EXPECT_TRUE(e.message.find("outside of the packet") != std::string::npos ||
              e.message.find("invalid access to packet") != std::string::npos)
      << e.message;
  EXPECT_LE(count_lines(e.message), 3u) << e.message;
  // Its digest matched: the code is as qosc wrote it, so the rejection is qosc's bug.
  EXPECT_NE(e.message.find("this is a bug in qosc"), std::string::npos) << e.message;
  EXPECT_EQ(e.kind, ErrorKind::QoscBug);
  EXPECT_EQ(e.message.find("processed "), std::string::npos) << "the full log leaked into the message";
  EXPECT_NE(e.detail.find("processed "), std::string::npos) << "the full log belongs in the detail";
  // Loading only the program that verifies works.
  LoadOptions o;
  o.load_xdp = false;
  auto tc_only = LoadedPolicy::load_file(fixture("rejected.bpf.o"), o);
  ASSERT_TRUE(tc_only.ok()) << tc_only.error().message;
  EXPECT_EQ(tc_only->prog_fd(Hook::Xdp), -1);
  EXPECT_GE(tc_only->prog_fd(Hook::Tc), 0);
}

class MiniRun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_load_bpf()) GTEST_SKIP() << "needs root: loads BPF programs into the kernel";
    auto p = LoadedPolicy::load_file(fixture("mini.bpf.o"));
    ASSERT_TRUE(p.ok()) << p.error().message;
    policy_.emplace(std::move(p.value()));
  }
  std::optional<LoadedPolicy> policy_;
};

TEST_F(MiniRun, XdpClassComesFromTheMetadata) {
  TestRunner r(*policy_);
  auto v = r.run(Hook::Xdp, udp4(53));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_TRUE(v->pass);
  EXPECT_EQ(v->class_id, 1);
  EXPECT_EQ(r.class_name(*v), "dns");
  // The raw run really returns the metadata in front of the packet.
  auto raw = test_run(policy_->prog_fd(Hook::Xdp), Hook::Xdp, udp4(53));
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->data_out.size(), udp4(53).size() + 8);
  EXPECT_EQ(raw->data_out[0] | raw->data_out[1] << 8, 0x51c0);

  v = r.run(Hook::Xdp, udp4(80));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->class_id, 0);
  v = r.run(Hook::Xdp, tcp4(23));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_FALSE(v->pass);
  EXPECT_EQ(v->class_id, -1);
  EXPECT_TRUE(v->attributed);
  EXPECT_FALSE(v->policed);
  EXPECT_EQ(r.class_name(*v), "drop");
}

TEST_F(MiniRun, TcClassComesFromThePriority) {
  TestRunner r(*policy_);
  auto v = r.run(Hook::Tc, udp4(53));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_TRUE(v->pass);
  EXPECT_EQ(v->priority, 0x10011u);
  EXPECT_EQ(v->class_id, 1);
  v = r.run(Hook::Tc, tcp4(23));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_FALSE(v->pass);
  EXPECT_EQ(v->class_id, -1);
  EXPECT_EQ(v->retval, 2u);   // TC_ACT_SHOT
}

TEST_F(MiniRun, PolicerDropsAreAttributedToTheirClass) {
  TestRunner r(*policy_);
  for (int i = 0; i < 4; ++i) {
    auto v = r.run(i % 2 ? Hook::Tc : Hook::Xdp, udp4(7));
    ASSERT_TRUE(v.ok()) << v.error().message;
    EXPECT_EQ(v->class_id, 2) << "packet " << i;
    EXPECT_EQ(v->pass, i < 2) << "packet " << i;
    EXPECT_EQ(v->policed, i >= 2) << "packet " << i;
  }
  auto v = r.run(Hook::Xdp, tcp4(23));   // a rule drop right after policer drops
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->class_id, -1);
  EXPECT_FALSE(v->policed);
  auto c = read_class_counters(*policy_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->size(), 4u);
  EXPECT_EQ((*c)[2].packets[0] + (*c)[2].packets[1], 4u);
  EXPECT_EQ((*c)[2].drop_policer[0], 1u);
  EXPECT_EQ((*c)[2].drop_policer[1], 1u);
  EXPECT_EQ((*c)[3].drop_rule[0], 1u);
}

TEST_F(MiniRun, FramesTheKernelCannotRunGetAClearError) {
  std::vector<uint8_t> tiny(13, 0);
  auto v = test_run(policy_->prog_fd(Hook::Xdp), Hook::Xdp, tiny);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("shorter than an Ethernet header"), std::string::npos);
  for (Hook h : {Hook::Xdp, Hook::Tc}) {
    std::vector<uint8_t> big = udp4(80);
    big.resize(max_test_frame(h), 0);
    EXPECT_TRUE(test_run(policy_->prog_fd(h), h, big).ok()) << to_string(h) << " at the limit";
    big.resize(max_test_frame(h) + 1, 0);
    auto too_big = test_run(policy_->prog_fd(h), h, big);
    ASSERT_FALSE(too_big.ok());
    EXPECT_NE(too_big.error().message.find("larger than a test run takes"), std::string::npos);
  }
}

TEST_F(MiniRun, RepeatReportsAMeanDuration) {
  auto v = test_run(policy_->prog_fd(Hook::Xdp), Hook::Xdp, udp4(80), 10000, false);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->retval, 2u);   // XDP_PASS
  EXPECT_GT(v->duration_ns, 0u);
  EXPECT_LT(v->duration_ns, 100000u);
}
