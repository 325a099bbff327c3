// status: see qosrun/attach.hpp.
#include "qosrun/attach.hpp"

#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <fmt/format.h>

#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"
#include "qosrun/txq.hpp"

#include "lifecycle.hpp"

namespace qosrun {

using namespace lifecycle;   // the steps the commands share (lifecycle.hpp)

Result<StatusReport> status_of(const std::string& ifname) {
  StatusReport s;
  s.ifname = ifname;
  auto rec = state::read(ifname);
  if (!rec) return rec.error();
  int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex > 0) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) == 0 && q.prog_id) {
      const char* mode = q.attach_mode == XDP_ATTACHED_SKB ? "skb" : q.attach_mode == XDP_ATTACHED_DRV ? "native"
                                                                                                       : "multi";
      s.xdp_now = fmt::format("id {} {}", q.prog_id, mode);
    } else {
      s.xdp_now = "none";
    }
    if (auto sock = nl::RtnlSocket::open()) {
      if (auto root = nl::root_qdisc(*sock, ifindex); root && *root) s.root_qdisc_now = nl::describe(**root);
    }
  }
  if (!*rec) return s;
  s.attached = true;
  s.record = **rec;
  const state::Record& r = s.record;
  // Staleness is judged against this namespace's interfaces: only here.
  const bool here = r.in_this_netns();
  const std::string stale_why = here ? r.stale_reason() : std::string();
  s.stale = !stale_why.empty();
  if (ifindex <= 0) {
    s.problems.push_back(fmt::format("interface {} is gone", ifname));
    return s;
  }
  if (!here) {
    s.problems.push_back("the record was made in another network namespace");
    return s;
  }
  s.xdp_ok = r.xdp.attached && xdp_prog_now(ifindex, r.xdp.mode) == r.xdp.prog_id;
  if (!s.xdp_ok) s.problems.push_back(fmt::format("XDP: expected program id {} ({}), found {}", r.xdp.prog_id,
                                                  to_string(r.xdp.mode), s.xdp_now));
  for (const auto& st : r.steering) {
    const bool ok = st.xdp.attached && ifname_of(st.ifindex) == st.ifname &&
                    xdp_prog_now(st.ifindex, st.xdp.mode) == st.xdp.prog_id;
    s.steering_ok.push_back(ok);
    if (!ok) s.problems.push_back(fmt::format("steering: expected XDP program id {} on {}", st.xdp.prog_id, st.ifname));
  }
  uint32_t tc = tc_prog_now(ifindex, BPF_TC_EGRESS, r.main.tc.handle, r.main.tc.priority);
  s.tc_ok = r.main.tc.attached && tc == r.main.tc.prog_id;
  if (!s.tc_ok) s.problems.push_back(fmt::format("TC egress: expected program id {}, found {}", r.main.tc.prog_id, tc));
  if (r.main.has_queues) {
    const auto& tx = r.main.queues.tx;
    const std::string want = tx ? fmt::format("mq {:x}:", txq::kMqMajor) : fmt::format("htb {:x}:", r.main.queues.plan.major);
    s.queues_ok = s.root_qdisc_now == want;
    if (!s.queues_ok)
      s.problems.push_back(fmt::format("queues: expected {} as root qdisc, found {}", want,
                                       s.root_qdisc_now.empty() ? "none" : s.root_qdisc_now));
    if (tx) {
      // The program's queue choice holds only while XPS is off and the queues are those it was built for.
      if (auto real = txq::real_tx_queues(ifname); real && *real != tx->real)
        s.problems.push_back(fmt::format("{} has {} TX queues now, {} when attached: hosts on queues that are gone "
                                         "are sent through another queue's stray leaf; detach and attach again",
                                         ifname, *real, tx->real));
      if (auto xps = txq::xps_now(ifname); xps && !xps->empty())
        s.problems.push_back(fmt::format("XPS is on again ({} = {}{}): hosts' packets may go to queues without their "
                                         "class (sent through the stray leaf); write 0 there, or detach and attach "
                                         "again",
                                         xps->front().file, xps->front().value,
                                         xps->size() > 1 ? fmt::format(" and {} more", xps->size() - 1) : ""));
    }
  } else {
    s.queues_ok = true;
  }
  if (r.ingress) {
    s.ingress_ok = ifname_of(r.ingress->ifb_ifindex) == r.ingress->ifb_name;
    if (!s.ingress_ok) s.problems.push_back(fmt::format("ingress: {} is gone", r.ingress->ifb_name));
  } else {
    s.ingress_ok = true;
  }
  if (r.adaptive && r.adaptive->supervisor_pid &&
      !state::process_alive(r.adaptive->supervisor_pid, r.adaptive->supervisor_start))
    s.problems.push_back(fmt::format("the adaptive rate's supervisor (pid {}) is gone: the rate stays where it was; "
                                     "detach and attach again (its log: {}/supervisor.log)",
                                     r.adaptive->supervisor_pid, state::paths_for(ifname).state_dir));
  if (r.reloading && r.reloading->interrupted())
    s.problems.push_back(fmt::format("a reload to {} by qosrun pid {} was interrupted: the next `qosrun reload` or "
                                     "`qosrun detach` of {} puts the recorded policy back first",
                                     r.reloading->object, r.reloading->pid, ifname));
  if (s.stale) s.problems.push_back(fmt::format("stale: {}; `qosrun detach {}` cleans up", stale_why, ifname));
  return s;
}

}  // namespace qosrun
