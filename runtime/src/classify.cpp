// `qosrun classify`: see qosrun/classify.hpp.
#include "qosrun/classify.hpp"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qosrun/cli.hpp"
#include "qosrun/testrun.hpp"

namespace qosrun {

bool can_load_bpf() {
  if (geteuid() == 0) return true;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1u; };
#ifdef CAP_BPF
  if (has(CAP_BPF)) return true;
#else
  if (has(39)) return true;
#endif
  return has(CAP_SYS_ADMIN);
}

namespace {
// The HTB class a TC verdict steers to, in tc's notation; an isolated class's
// packets name their sub-queue in the nested HTB too, or the sparse leaf.
std::string queue_text(const Verdict& v) {
  uint32_t minor = v.priority & 0xffffu;
  std::string s = fmt::format("{:x}:{:x}", v.priority >> 16, minor);
  if (minor >= QOS_HTB_SPARSE_BASE) return s + " (sparse)";
  if (v.subqueue) s += fmt::format(" > {:x}:{:x}", v.subqueue >> 16, v.subqueue & 0xffffu);
  return s;
}
}  // namespace

Result<std::vector<PacketAnswer>> classify_capture(const LoadedPolicy& policy, Hook hook, const Capture& capture) {
  TestRunner runner(policy);
  std::vector<PacketAnswer> answers;
  answers.reserve(capture.packets.size());
  for (size_t i = 0; i < capture.packets.size(); ++i) {
    const auto& frame = capture.packets[i].frame;
    PacketAnswer a;
    a.index = i;
    a.bytes = static_cast<uint32_t>(frame.size());
    if (frame.size() < kMinTestFrame || frame.size() > max_test_frame(hook)) {
      a.error = frame.size() < kMinTestFrame
                    ? fmt::format("{} bytes is shorter than an Ethernet header; the kernel cannot run it",
                                  frame.size())
                    : fmt::format("{} bytes is more than a test run takes ({}); capture without GRO/TSO",
                                  frame.size(), max_test_frame(hook));
      answers.push_back(std::move(a));
      continue;
    }
    auto v = runner.run(hook, frame);
    if (!v) {
      // The program misbehaved (no class in the metadata ...) or the kernel
      // refused the run: that is the same for every packet, so stop.
      Error e = v.error();
      e.message = fmt::format("packet {}: {}", i, e.message);
      return e;
    }
    a.pass = v->pass;
    a.policed = v->policed;
    a.probe = v->probe;
    a.cls = runner.class_name(*v);
    if (hook == Hook::Tc && v->pass) {
      a.queue = queue_text(*v);
      a.dscp_in = frame_dscp(frame);
      a.dscp_out = frame_dscp(v->frame_out);
    }
    answers.push_back(std::move(a));
  }
  return answers;
}

std::string json_line(const PacketAnswer& a, bool with_dscp, bool with_queue) {
  if (!a.error.empty())
    return fmt::format(R"({{"packet": {}, "class": null, "verdict": "error", "error": {}}})", a.index,
                       nlohmann::json(a.error).dump());
  std::string dscp;
  if (with_dscp && a.dscp_in >= 0 && a.dscp_out >= 0)
    dscp = fmt::format(R"(, "dscp": {{"in": {}, "out": {}}})", a.dscp_in, a.dscp_out);
  if (with_queue && !a.queue.empty()) dscp += fmt::format(R"(, "queue": {})", nlohmann::json(a.queue).dump());
  if (a.probe)
    return fmt::format(R"({{"packet": {}, "class": null, "verdict": "probe"{}}})", a.index, dscp);
  return fmt::format(R"({{"packet": {}, "class": {}, "verdict": "{}"{}}})", a.index, nlohmann::json(a.cls).dump(),
                     a.pass ? "pass" : "drop", dscp);
}

int run_classify(const ClassifyOptions& opts, std::ostream& out, std::ostream& err) {
  // Read the capture first: a bad capture is worth reporting without root.
  auto cap = read_capture(opts.pcap);
  if (!cap) {
    print_error(err, cap.error(), opts.verbosity);
    return cli::kExitError;
  }
  // Then the object (its digest, its manifest): a damaged file is worth reporting without root too.
  LoadOptions lo;
  lo.verbosity = opts.verbosity;
  lo.load_xdp = opts.hook == Hook::Xdp;
  lo.load_tc = opts.hook == Hook::Tc;
  auto policy = LoadedPolicy::open_file(opts.object, lo);
  if (!policy) {
    print_error(err, policy.error(), opts.verbosity);
    return cli::exit_code_for(policy.error());
  }
  if (!can_load_bpf()) {
    err << "qosrun: error: classify runs the policy in the kernel (BPF_PROG_TEST_RUN), which needs root "
           "(or CAP_BPF): run it with sudo\n";
    return cli::kExitError;
  }
  if (Status s = policy->load(); !s) {
    print_error(err, s.error(), opts.verbosity);
    return cli::exit_code_for(s.error());
  }
  if (opts.verbosity >= 1)
    err << fmt::format("qosrun: loaded {} (policy {}, {} classes, {} rules) in {:.1f} ms; {} packets from {}\n",
                       opts.object, policy->manifest().policy, policy->class_count(), policy->manifest().rule_count,
                       policy->load_seconds() * 1e3, cap->packets.size(), opts.pcap);

  auto answers = classify_capture(*policy, opts.hook, *cap);
  if (!answers) {
    print_error(err, answers.error(), opts.verbosity);
    return cli::kExitInternal;
  }
  size_t errors = 0;
  // `set dscp` is the TC program's: show the DSCP column for TC runs of such policies.
  bool rewrites = false;
  for (const auto& c : policy->manifest().classes) rewrites |= c.set_dscp.has_value();
  const bool with_dscp = rewrites && opts.hook == Hook::Tc;
  // `isolate` picks a sub-queue in the TC program: show where each packet is queued.
  const bool with_queue = opts.hook == Hook::Tc &&
                          std::any_of(policy->manifest().classes.begin(), policy->manifest().classes.end(),
                                      [](const auto& c) { return c.isolate.has_value(); });
  if (rewrites && opts.hook == Hook::Xdp)
    err << "qosrun: note: this policy has `set dscp`, which the TC program applies: --hook tc shows the rewritten DSCP\n";
  auto dscp_text = [](const PacketAnswer& a) -> std::string {
    if (a.dscp_in < 0 || a.dscp_out < 0) return "-";
    if (a.dscp_in == a.dscp_out) return fmt::format("{}", a.dscp_in);
    return fmt::format("{} -> {}", a.dscp_in, a.dscp_out);
  };
  if (opts.json) {
    for (const auto& a : *answers) {
      out << json_line(a, with_dscp, with_queue) << '\n';
      errors += !a.error.empty();
    }
  } else {
    size_t width = 5;
    for (const auto& c : policy->manifest().classes) width = std::max(width, c.name.size());
    if (policy->manifest().adaptive()) width = std::max(width, std::string_view("(probe)").size());
    if (with_dscp)
      out << fmt::format("{:>7}  {:>5}  {:<{}}  {:<8}  {}\n", "packet", "bytes", "class", width, "dscp", "verdict");
    else
      out << fmt::format("{:>7}  {:>5}  {:<{}}  {}\n", "packet", "bytes", "class", width, "verdict");
    std::map<std::string, size_t> per_class;
    size_t dropped = 0;
    for (const auto& a : *answers) {
      if (!a.error.empty()) {
        ++errors;
        out << fmt::format("{:>7}  {:>5}  {:<{}}  not run: {}\n", a.index, a.bytes, "-", width, a.error);
        continue;
      }
      std::string verdict = a.probe     ? "pass (a probe of the adaptive rate: no class, unshaped)"
                            : a.pass    ? "pass"
                            : a.policed ? "drop (over the class's rate)"
                                        : "drop (rule)";
      if (with_queue && !a.queue.empty()) verdict += "  queue " + a.queue;
      if (with_dscp)
        out << fmt::format("{:>7}  {:>5}  {:<{}}  {:<8}  {}\n", a.index, a.bytes, a.cls, width, dscp_text(a), verdict);
      else
        out << fmt::format("{:>7}  {:>5}  {:<{}}  {}\n", a.index, a.bytes, a.cls, width, verdict);
      ++per_class[a.cls];
      dropped += !a.pass;
    }
    std::string summary;
    for (const auto& [name, n] : per_class) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", name, n);
    out << fmt::format("{} packets ({} hook): {}{}; {} dropped\n", answers->size(), to_string(opts.hook),
                       summary.empty() ? "none classified" : summary, errors ? fmt::format(", {} not run", errors) : "",
                       dropped);
  }
  if (errors) {
    err << fmt::format("qosrun: {} packet(s) could not be run through the program (see their lines)\n", errors);
    return cli::kExitError;
  }
  return cli::kExitOk;
}

namespace cli {

void register_classify(CommandTable& t) {
  auto opts = std::make_shared<ClassifyOptions>();
  auto hook = std::make_shared<std::string>("xdp");
  CLI::App* sub = t.add(
      "classify",
      "Run every packet of a capture through a compiled policy in the kernel (BPF_PROG_TEST_RUN, no interface "
      "needed) and print each packet's class. Needs root.",
      [opts, hook, &g = t.globals()] {
        opts->hook = *hook == "tc" ? Hook::Tc : Hook::Xdp;
        opts->verbosity = g.verbosity;
        return run_classify(*opts, std::cout, std::cerr);
      });
  sub->add_option("OBJ", opts->object, "compiled policy (.bpf.o written by qosc)")->required();
  sub->add_option("--pcap", opts->pcap, "capture file (pcap or pcapng, e.g. from tcpdump -w)")->required();
  sub->add_option("--hook", *hook, "which program: xdp (ingress, default) or tc (egress)")
      ->check(CLI::IsMember({"xdp", "tc"}));
  sub->add_flag("--json", opts->json,
                R"(one JSON object per line: {"packet": 0, "class": "gaming", "verdict": "pass"})");
}

}  // namespace cli
}  // namespace qosrun
