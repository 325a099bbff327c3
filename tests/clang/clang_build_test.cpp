// Tests of the in-process BPF compiler (qosc/clang_build.hpp): objects are
// BPF ELF with BTF, libbpf opens them, as root they load and give the
// packet-dependent results, errors come back as ClangDiag, and nothing is
// read from the host's include directories.
#include <elf.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "qosc/clang_build.hpp"
#include "qosc/diag.hpp"

namespace {

using qosc::BpfCompileOptions;
using qosc::ClangDiag;
using qosc::compile_bpf_c;

// ---------------------------------------------------------------- programs

// XDP: IPv4/UDP to port 9 -> DROP, other IPv4 -> PASS, anything else ->
// ABORTED; counts IPv4 packets in a BTF-defined array map.
const char* kXdpProgram = R"(#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ipv4_count SEC(".maps");

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_ABORTED;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return XDP_ABORTED;
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&ipv4_count, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	if (ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct udphdr *udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	return udp->dest == bpf_htons(9) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
)";

// TC: IPv6/TCP to port 443 -> priority 1:2, mark = traffic class, OK;
// other IPv6 -> OK with priority 1:3; non-IPv6 -> SHOT.
const char* kTcProgram = R"(#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int tc_classify(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_SHOT;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > data_end)
		return TC_ACT_SHOT;
	skb->priority = 0x10003;
	if (ip6->nexthdr != IPPROTO_TCP)
		return TC_ACT_OK;
	struct tcphdr *tcp = (void *)(ip6 + 1);
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	if (tcp->dest == bpf_htons(443)) {
		skb->priority = 0x10002;
		skb->mark = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
)";

// ---------------------------------------------------------------- helpers

std::string show(const qosc::BpfCompileResult& r) { return r.diag_text(); }

// Section names of an ELF64 little-endian relocatable, or empty if it is not one.
std::set<std::string> elf_sections(const std::vector<unsigned char>& obj, uint16_t* machine = nullptr) {
  std::set<std::string> names;
  if (obj.size() < sizeof(Elf64_Ehdr) || std::memcmp(obj.data(), ELFMAG, SELFMAG) != 0) return names;
  Elf64_Ehdr eh;
  std::memcpy(&eh, obj.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_type != ET_REL) return names;
  if (machine) *machine = eh.e_machine;
  if (eh.e_shoff + uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > obj.size() || eh.e_shstrndx >= eh.e_shnum) return names;
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  std::memcpy(sh.data(), obj.data() + eh.e_shoff, eh.e_shnum * sizeof(Elf64_Shdr));
  const Elf64_Shdr& str = sh[eh.e_shstrndx];
  for (const auto& s : sh) {
    if (str.sh_offset + s.sh_name >= obj.size()) continue;
    names.insert(reinterpret_cast<const char*>(obj.data() + str.sh_offset + s.sh_name));
  }
  return names;
}

struct ObjectCloser {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using ObjectPtr = std::unique_ptr<bpf_object, ObjectCloser>;

ObjectPtr open_mem(const std::vector<unsigned char>& obj, const char* name) {
  LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = name);
  bpf_object* o = bpf_object__open_mem(obj.data(), obj.size(), &oo);
  return ObjectPtr(libbpf_get_error(o) ? nullptr : o);
}

bool is_root() { return geteuid() == 0; }

// Ethernet + IPv4 + UDP, 64 bytes.
std::vector<uint8_t> udp4_frame(uint16_t dport) {
  std::vector<uint8_t> p(64, 0);
  p[12] = 0x08, p[13] = 0x00;                     // ETH_P_IP
  p[14] = 0x45;                                   // v4, IHL 5
  p[16] = 0, p[17] = 50;                          // total length
  p[22] = 64, p[23] = 17;                         // TTL, UDP
  p[26] = 10, p[29] = 1, p[30] = 10, p[33] = 2;   // 10.0.0.1 -> 10.0.0.2
  p[34] = 0x30, p[35] = 0x39;                     // sport 12345
  p[36] = uint8_t(dport >> 8), p[37] = uint8_t(dport);
  p[38] = 0, p[39] = 30;                          // UDP length
  return p;
}

// Ethernet + IPv6 + TCP, traffic class tclass.
std::vector<uint8_t> tcp6_frame(uint16_t dport, uint8_t tclass) {
  std::vector<uint8_t> p(14 + 40 + 20 + 10, 0);
  p[12] = 0x86, p[13] = 0xdd;                                  // ETH_P_IPV6
  p[14] = uint8_t(0x60 | tclass >> 4), p[15] = uint8_t(tclass << 4);
  p[18] = 0, p[19] = 30;                                       // payload length
  p[20] = 6, p[21] = 64;                                       // TCP, hop limit
  p[22] = 0xfd, p[37] = 1, p[38] = 0xfd, p[53] = 2;            // fd00::1 -> fd00::2
  p[54] = 0xc0, p[55] = 0x00;                                  // sport 49152
  p[56] = uint8_t(dport >> 8), p[57] = uint8_t(dport);
  p[66] = 0x50;                                                // data offset 5
  return p;
}

bool has_error_at(const qosc::BpfCompileResult& r, const std::string& file, unsigned line) {
  for (const auto& d : r.diags)
    if (d.level == ClangDiag::Error && d.file == file && d.line == line) return true;
  return false;
}

// ---------------------------------------------------------------- tests

TEST(ClangBuild, XdpProgramIsBpfElfWithBtfAndOpens) {
  auto r = compile_bpf_c("xdp_filter.c", kXdpProgram);
  ASSERT_TRUE(r.ok) << show(r);
  uint16_t machine = 0;
  auto secs = elf_sections(r.object, &machine);
  EXPECT_EQ(machine, EM_BPF);
  for (const char* s : {".BTF", ".BTF.ext", "xdp", ".maps", "license"}) EXPECT_TRUE(secs.count(s)) << "no section " << s;
  std::printf("[ timing ] in-process compile of a small XDP program: %.2f ms\n", r.millis);

  auto obj = open_mem(r.object, "xdp_filter");
  ASSERT_TRUE(obj) << "bpf_object__open_mem failed";
  bpf_program* prog = bpf_object__find_program_by_name(obj.get(), "xdp_filter");
  ASSERT_NE(prog, nullptr);
  EXPECT_EQ(bpf_program__type(prog), BPF_PROG_TYPE_XDP);
  bpf_map* map = bpf_object__find_map_by_name(obj.get(), "ipv4_count");
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(bpf_map__type(map), BPF_MAP_TYPE_ARRAY);
  EXPECT_EQ(bpf_map__value_size(map), 8u);
  EXPECT_NE(bpf_object__btf(obj.get()), nullptr);
}

TEST(ClangBuild, TcProgramIsBpfElfWithBtfAndOpens) {
  auto r = compile_bpf_c("tc_classify.c", kTcProgram);
  ASSERT_TRUE(r.ok) << show(r);
  auto secs = elf_sections(r.object);
  for (const char* s : {".BTF", ".BTF.ext", "tc", "license"}) EXPECT_TRUE(secs.count(s)) << "no section " << s;
  auto obj = open_mem(r.object, "tc_classify");
  ASSERT_TRUE(obj);
  bpf_program* prog = bpf_object__find_program_by_name(obj.get(), "tc_classify");
  ASSERT_NE(prog, nullptr);
  EXPECT_EQ(bpf_program__type(prog), BPF_PROG_TYPE_SCHED_CLS);
}

TEST(ClangBuild, XdpProgramRunsOnPackets) {
  if (!is_root()) GTEST_SKIP() << "needs root: loads the program and runs BPF_PROG_TEST_RUN";
  auto r = compile_bpf_c("xdp_filter.c", kXdpProgram);
  ASSERT_TRUE(r.ok) << show(r);
  auto obj = open_mem(r.object, "xdp_filter");
  ASSERT_TRUE(obj);
  ASSERT_EQ(bpf_object__load(obj.get()), 0) << "load failed (see libbpf output above)";
  int fd = bpf_program__fd(bpf_object__find_program_by_name(obj.get(), "xdp_filter"));
  auto run = [&](std::vector<uint8_t> pkt) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_size_in = uint32_t(pkt.size()), .repeat = 1);
    EXPECT_EQ(bpf_prog_test_run_opts(fd, &o), 0) << strerror(errno);
    return o.retval;
  };
  EXPECT_EQ(run(udp4_frame(9)), unsigned(XDP_DROP));
  EXPECT_EQ(run(udp4_frame(53)), unsigned(XDP_PASS));
  auto arp = udp4_frame(9);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_EQ(run(arp), unsigned(XDP_ABORTED));
  auto tcp = udp4_frame(9);
  tcp[23] = 6;
  EXPECT_EQ(run(tcp), unsigned(XDP_PASS));

  // Three IPv4 frames were counted in the map.
  uint32_t k = 0;
  uint64_t v = 0;
  ASSERT_EQ(bpf_map__lookup_elem(bpf_object__find_map_by_name(obj.get(), "ipv4_count"), &k, sizeof k, &v, sizeof v, 0), 0);
  EXPECT_EQ(v, 3u);
}

TEST(ClangBuild, TcProgramRunsOnPackets) {
  if (!is_root()) GTEST_SKIP() << "needs root: loads the program and runs BPF_PROG_TEST_RUN";
  auto r = compile_bpf_c("tc_classify.c", kTcProgram);
  ASSERT_TRUE(r.ok) << show(r);
  auto obj = open_mem(r.object, "tc_classify");
  ASSERT_TRUE(obj);
  ASSERT_EQ(bpf_object__load(obj.get()), 0);
  int fd = bpf_program__fd(bpf_object__find_program_by_name(obj.get(), "tc_classify"));
  struct Out {
    int ret;
    uint32_t priority, mark;
  };
  auto run = [&](std::vector<uint8_t> pkt) {
    __sk_buff in{}, out{};
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt.data(), .data_size_in = uint32_t(pkt.size()), .ctx_in = &in,
                .ctx_out = &out, .ctx_size_in = sizeof in, .ctx_size_out = sizeof out, .repeat = 1);
    EXPECT_EQ(bpf_prog_test_run_opts(fd, &o), 0) << strerror(errno);
    return Out{int(o.retval), out.priority, out.mark};
  };
  auto https = run(tcp6_frame(443, 0xb8));
  EXPECT_EQ(https.ret, TC_ACT_OK);
  EXPECT_EQ(https.priority, 0x10002u);
  EXPECT_EQ(https.mark, 0xb8u);
  auto web = run(tcp6_frame(80, 0xb8));
  EXPECT_EQ(web.ret, TC_ACT_OK);
  EXPECT_EQ(web.priority, 0x10003u);
  EXPECT_EQ(web.mark, 0u);
  EXPECT_EQ(run(udp4_frame(443)).ret, TC_ACT_SHOT);
}

TEST(ClangBuild, SyntaxErrorGivesDiagnosticWithLine) {
  const char* src =
      "#include <linux/bpf.h>\n"
      "int ok(void) { return 1; }\n"
      "\n"
      "int broken(void) { return 1 }\n";
  auto r = compile_bpf_c("broken.c", src);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.object.empty());
  ASSERT_TRUE(has_error_at(r, "broken.c", 4)) << show(r);
  for (const auto& d : r.diags)
    if (d.level == ClangDiag::Error) {
      EXPECT_NE(d.message.find("expected ';'"), std::string::npos) << d.message;
      EXPECT_EQ(d.col, 28u);  // just after "1", where the ; belongs
      break;
    }
}

TEST(ClangBuild, HostHeadersAreNeverRead) {
  ASSERT_EQ(access("/usr/include/stdio.h", R_OK), 0) << "test premise: the host has <stdio.h>";
  auto r = compile_bpf_c("host.c", "#include <stdio.h>\nint x;\n");
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(has_error_at(r, "host.c", 1)) << show(r);
  EXPECT_NE(show(r).find("'stdio.h' file not found"), std::string::npos) << show(r);

  // Not even by absolute path, nor a header that exists on the host but is
  // outside the embedded set.
  auto abs = compile_bpf_c("abs.c", "#include \"/usr/include/linux/bpf.h\"\n");
  EXPECT_FALSE(abs.ok) << "read a host file by absolute path";
  auto other = compile_bpf_c("other.c", "#include <linux/netfilter.h>\n");
  EXPECT_FALSE(other.ok) << "read a host header that is not embedded";
}

TEST(ClangBuild, EveryPublicHeaderCompilesFreestanding) {
  std::string src;
  for (const char* h : {"linux/types.h", "linux/bpf.h", "linux/if_ether.h", "linux/ip.h", "linux/ipv6.h", "linux/in.h",
                        "linux/in6.h", "linux/tcp.h", "linux/udp.h", "linux/icmp.h", "linux/icmpv6.h", "linux/pkt_cls.h",
                        "bpf/bpf_helpers.h", "bpf/bpf_endian.h", "stddef.h", "stdbool.h", "stdint.h", "stdarg.h"})
    src += std::string("#include <") + h + ">\n";
  src +=
      "_Static_assert(sizeof(uint64_t) == 8 && sizeof(__u32) == 4 && sizeof(size_t) == 8, \"types\");\n"
      "_Static_assert(sizeof(struct icmphdr) == 8 && sizeof(struct icmp6hdr) == 8, \"icmp\");\n"
      "_Static_assert(offsetof(struct iphdr, daddr) == 16, \"ip\");\n"
      "SEC(\"xdp\") int p(struct xdp_md *c) { bool t = true; return t ? XDP_PASS : XDP_DROP; }\n"
      "char LICENSE[] SEC(\"license\") = \"GPL\";\n";
  auto r = compile_bpf_c("all.c", src);
  EXPECT_TRUE(r.ok) << show(r);
  EXPECT_TRUE(r.diags.empty()) << show(r);
}

TEST(ClangBuild, EmbeddedFilesAndTemplates) {
  std::set<std::string> paths;
  for (const auto& f : qosc::embedded_bpf_files()) {
    EXPECT_GT(f.size, 0u) << f.path;
    EXPECT_TRUE(paths.insert(f.path).second) << "duplicate " << f.path;
  }
  for (const char* p : {"linux/bpf.h", "linux/types.h", "asm/types.h", "bpf/bpf_helpers.h", "bpf/bpf_helper_defs.h",
                        "bpf/bpf_endian.h", "stddef.h", "stdint.h"})
    EXPECT_TRUE(paths.count(p)) << "not embedded: " << p;

  // Every templates/*.h (and qos_abi.h) on disk is embedded with the same contents.
  int templates = 0;
  for (const auto& f : qosc::embedded_bpf_files()) {
    std::string_view p = f.path;
    if (!p.starts_with("templates/")) continue;
    ++templates;
    const std::string name(p.substr(10));
    std::ifstream in(std::string(name == "qos_abi.h" ? QOSC_ABI_INCLUDE_DIR : QOSC_TEMPLATES_DIR) + "/" + name,
                     std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), f.text()) << p << " differs from the file on disk: rebuild";
    auto t = qosc::embedded_template(p.substr(10));
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->data(), f.data);
  }
  EXPECT_GT(templates, 0);
  EXPECT_FALSE(qosc::embedded_template("no_such_template.h").has_value());
}

TEST(ClangBuild, TemplatesAreIncludable) {
  if (!qosc::embedded_template("qos_parse.h")) GTEST_SKIP() << "templates/qos_parse.h not present";
  // Quoted include (as generated code does) and through <templates/...>.
  const char* src = R"(#include <linux/bpf.h>
#include "qos_parse.h"
#include <templates/qos_parse.h>
SEC("xdp") int p(struct xdp_md *ctx)
{
	struct qos_pkt pkt = {};
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	qos_parse(data, end, (__u32)(end - data), &pkt);
	return pkt.dport == 9 ? XDP_DROP : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
)";
  auto r = compile_bpf_c("tmpl.c", src);
  ASSERT_TRUE(r.ok) << show(r);
  EXPECT_TRUE(open_mem(r.object, "tmpl"));
}

TEST(ClangBuild, ExtraFilesAndDefines) {
  BpfCompileOptions o;
  o.extra_files = {{"gen/rules.h", "#define RULES (BASE + 1)\n"}, {"/abs/other.h", "#define OTHER 5\n"}};
  o.defines = {"BASE=41", "FLAG"};
  const char* src =
      "#include \"gen/rules.h\"\n"
      "#include \"/abs/other.h\"\n"
      "#ifndef FLAG\n#error FLAG not defined\n#endif\n"
      "_Static_assert(RULES == 42 && OTHER == 5, \"values\");\n"
      "int x = RULES;\n";
  auto r = compile_bpf_c("extra.c", src, o);
  EXPECT_TRUE(r.ok) << show(r);
  o.defines = {"BASE=1", "FLAG"};
  auto bad = compile_bpf_c("extra.c", src, o);
  EXPECT_FALSE(bad.ok);
  EXPECT_TRUE(has_error_at(bad, "extra.c", 6)) << show(bad);
}

TEST(ClangBuild, LineDirectivesAndWarningsAreReported) {
  const char* src =
      "#warning \"careful\"\n"
      "#line 7 \"policy.qos\"\n"
      "int f(void) { return undefined_name; }\n";
  auto r = compile_bpf_c("gen.c", src);
  EXPECT_FALSE(r.ok);
  bool warned = false;
  for (const auto& d : r.diags)
    if (d.level == ClangDiag::Warning && d.file == "gen.c" && d.line == 1 && d.message.find("careful") != std::string::npos)
      warned = true;
  EXPECT_TRUE(warned) << show(r);
  EXPECT_TRUE(has_error_at(r, "policy.qos", 7)) << show(r);
}

TEST(ClangBuild, BackendErrorsAreCaptured) {
  // Six arguments to a real (global) call: the BPF backend, not the parser, refuses.
  const char* src =
      "#include <linux/bpf.h>\n"
      "#include <bpf/bpf_helpers.h>\n"
      "__attribute__((noinline)) int f(int a, int b, int c, int d, int e, int g) { return a + b + c + d + e + g; }\n"
      "SEC(\"xdp\") int p(struct xdp_md *x) { return f(x->data, 1, 2, 3, 4, x->data_end); }\n"
      "char LICENSE[] SEC(\"license\") = \"GPL\";\n";
  auto r = compile_bpf_c("six.c", src);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(has_error_at(r, "six.c", 3)) << show(r);
  EXPECT_NE(show(r).find("stack arguments are not supported"), std::string::npos) << show(r);
  // ...and the next compile is unaffected.
  EXPECT_TRUE(compile_bpf_c("xdp_filter.c", kXdpProgram).ok);
}

TEST(ClangBuild, ClangPrintsNothing) {
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  auto r = compile_bpf_c("noisy.c", "#warning \"w\"\n#include <stdio.h>\nint f( {\n");
  std::string err = testing::internal::GetCapturedStderr();
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_FALSE(r.ok);
  EXPECT_GE(r.diags.size(), 2u);
  EXPECT_EQ(err, "");
  EXPECT_EQ(out, "");
}

TEST(ClangBuild, OptLevels) {
  for (int level : {0, 1, 2, 3}) {
    BpfCompileOptions o;
    o.opt_level = level;
    auto r = compile_bpf_c("xdp_filter.c", kXdpProgram, o);
    EXPECT_TRUE(r.ok) << "-O" << level << "\n" << show(r);
    EXPECT_TRUE(elf_sections(r.object).count(".BTF")) << "-O" << level;
  }
}

TEST(ClangBuild, ManyCompilesInOneProcess) {
  const int n = 200;
  auto first = compile_bpf_c("xdp_filter.c", kXdpProgram);
  ASSERT_TRUE(first.ok) << show(first);
  double total = 0, best = 1e9;
  for (int i = 0; i < n; ++i) {
    // Alternate good and bad inputs: an error must not poison later compiles.
    if (i % 10 == 5) {
      auto bad = compile_bpf_c("bad.c", "int f( {\n");
      ASSERT_FALSE(bad.ok);
      ASSERT_TRUE(has_error_at(bad, "bad.c", 1)) << show(bad);
      continue;
    }
    auto r = compile_bpf_c("xdp_filter.c", kXdpProgram);
    ASSERT_TRUE(r.ok) << i << "\n" << show(r);
    ASSERT_EQ(r.object, first.object) << "compile " << i << " differs: output is not deterministic";
    total += r.millis;
    best = std::min(best, r.millis);
  }
  std::printf("[ timing ] %d in-process compiles of the XDP program: mean %.2f ms, best %.2f ms\n", n - n / 10,
              total / (n - n / 10), best);
}

}  // namespace
