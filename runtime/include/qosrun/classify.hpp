#pragma once
// `qosrun classify OBJ --pcap FILE [--hook xdp|tc] [--json]`: every packet of
// a capture through the compiled program in the kernel (BPF_PROG_TEST_RUN),
// one answer per packet.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "qosrun/loader.hpp"
#include "qosrun/pcap.hpp"

namespace qosrun {

struct ClassifyOptions {
  std::string object;      // .bpf.o written by qosc
  std::string pcap;        // capture file
  Hook hook = Hook::Xdp;
  bool json = false;       // one JSON object per line (the contract's format)
  int verbosity = 0;
};

struct PacketAnswer {
  size_t index = 0;
  uint32_t bytes = 0;
  std::string cls;         // class name, or "drop" for a `drop` rule
  bool pass = false;
  bool policed = false;    // dropped by the class's rate/burst policer
  bool probe = false;      // the adaptive rate's probe: no class (cls "(probe)"), JSON verdict "probe"
  std::string error;       // non-empty: this packet could not be run
  std::string queue;       // TC: the HTB class it was steered to, e.g. "1:11" or "1:11 > 11:14" (isolated class)
  // TC hook: the DSCP before and after the program (`set dscp` rewrites it);
  // -1 for a non-IP packet and on the XDP hook, which never rewrites.
  int dscp_in = -1, dscp_out = -1;
};

// Runs every packet of `capture` through `policy`'s program for `hook`.
Result<std::vector<PacketAnswer>> classify_capture(const LoadedPolicy& policy, Hook hook, const Capture& capture);

// The contract's line: {"packet": 0, "class": "gaming", "verdict": "pass"}.
// With `with_dscp` (a TC run of a policy with `set dscp`), IP packets also
// get "dscp": {"in": 0, "out": 46}; with `with_queue` (a TC run of a policy
// with `isolate`), "queue": "1:11 > 11:14".
std::string json_line(const PacketAnswer& a, bool with_dscp = false, bool with_queue = false);

// The whole command; returns the exit code (0 ok, 1 input/environment error,
// 2 internal error such as a verifier rejection of qosc's output).
int run_classify(const ClassifyOptions& opts, std::ostream& out, std::ostream& err);

// True when this process may load BPF programs (root, CAP_BPF or CAP_SYS_ADMIN).
bool can_load_bpf();

}  // namespace qosrun
