#pragma once
// What attach, detach, reload and status share (runtime/src/attach.cpp,
// detach.cpp, reload.cpp, status.cpp; not installed): lookups of interfaces
// and BPF objects, progress lines, the teardown that an attach's undo, detach
// and the cleanup of a stale record all use, and pinning a loaded policy.
#include <bpf/libbpf.h>
#include <linux/pkt_sched.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "qosrun/loader.hpp"
#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"

namespace qosrun::lifecycle {

inline constexpr uint32_t kClsactParent = TC_H_CLSACT;   // ffff:fff1
inline constexpr uint32_t kIngressParent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
inline constexpr uint32_t kEgressParent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);

// EPERM saying "WHAT needs root" unless this process may load BPF and change interfaces.
Status require_admin(const std::string& what);
// The interface's index in this network namespace; an error that says how to list them.
Result<int> ifindex_of(const std::string& ifname);
std::string ifname_of(int ifindex);          // "" when no interface has it (renamed, removed)
uint32_t prog_id_of(int fd);                 // the kernel's id of a program / map fd; 0 when unknown
uint32_t map_id_of(int fd);
std::string prog_name_of_id(uint32_t id);    // "" when no program has it
std::string absolute(const std::string& path);
uint32_t xdp_mode_flag(state::XdpAttachMode mode);   // as XDP_FLAGS_*
// The XDP program attached now in `mode`, 0 if none.
uint32_t xdp_prog_now(int ifindex, state::XdpAttachMode mode);
uint32_t tc_prog_now(int ifindex, bpf_tc_attach_point where, uint32_t handle, uint32_t prio);
// "qosrun: LINE" on `log` when `verbosity` >= `level`.
void say(std::ostream& log, int verbosity, int level, const std::string& line);

// What a teardown could not do: the first failed step, and what it noted.
struct Teardown {
  std::vector<std::string> warnings;
  std::optional<Error> error;   // a step that failed (the interface may not be as before)
  void fail(const Error& e) {
    if (!error) error = e;
  }
};

// Takes everything `r` records off its interface (supervisor, ingress
// redirect and IFB, steering programs on other interfaces, XDP, TC, clsact,
// the root qdisc as it was, pins) and
// marks in `r` what is gone; failures are collected in `t`.
void teardown(state::Record& r, nl::RtnlSocket& s, Teardown& t, std::ostream& log, int v);
// `e` with what the teardown that undid a failed step could not do.
Error with_undo_result(Error e, const Teardown& t);
// Pins programs and maps of a loaded policy; fills rec.progs/maps.
Status pin_all(const LoadedPolicy& p, state::Record& rec);
// A reload whose process died (r.reloading, see state::ReloadJournal) undone:
// the recorded programs and trees put back, the journal cleared and `r`
// written. Nothing to do (ok) without an interrupted reload. Called under the
// interface's lock by every command that changes the interface.
Status recover_interrupted_reload(state::Record& r, nl::RtnlSocket& s, std::ostream& log, int v);

}  // namespace qosrun::lifecycle
