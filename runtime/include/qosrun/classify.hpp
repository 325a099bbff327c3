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
  std::string error;       // non-empty: this packet could not be run
  std::string queue;       // TC: the HTB class it was steered to, e.g. "1:11" or "1:11 > 11:14" (isolated class)
};

// Runs every packet of `capture` through `policy`'s program for `hook`.
Result<std::vector<PacketAnswer>> classify_capture(const LoadedPolicy& policy, Hook hook, const Capture& capture);

// The contract's line: {"packet": 0, "class": "gaming", "verdict": "pass"}.
std::string json_line(const PacketAnswer& a);

// The whole command; returns the exit code (0 ok, 1 input/environment error,
// 2 internal error such as a verifier rejection of qosc's output).
int run_classify(const ClassifyOptions& opts, std::ostream& out, std::ostream& err);

// True when this process may load BPF programs (root, CAP_BPF or CAP_SYS_ADMIN).
bool can_load_bpf();

}  // namespace qosrun
