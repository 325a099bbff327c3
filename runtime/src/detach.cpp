// detach: see qosrun/attach.hpp.
#include "qosrun/attach.hpp"

#include <net/if.h>

#include <cerrno>
#include <ostream>

#include <fmt/format.h>

#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"

#include "lifecycle.hpp"

namespace qosrun {

using namespace lifecycle;   // the steps the commands share (lifecycle.hpp)

Status detach(const DetachOptions& o, std::ostream& log, std::vector<std::string>* warnings) {
  if (Status st = require_admin("qosrun detach"); !st) return st;
  auto lock = state::Lock::acquire(o.ifname);
  if (!lock) return lock.error();
  auto rec = state::read(o.ifname);
  if (!rec) return rec.error();
  if (!*rec) {
    lock->remove_file();
    if (o.as_owner) return {};   // someone detached us already
    Error e{fmt::format("{} has no qosc policy attached (no {})", o.ifname, state::paths_for(o.ifname).state_file)};
    if (if_nametoindex(o.ifname.c_str()) == 0)
      e.message = fmt::format("no interface named {} in this network namespace, and no qosc state for it", o.ifname);
    e.code = ENOENT;
    return e;
  }
  state::Record& r = **rec;
  if (o.as_owner && r.owner_pid != o.as_owner) {
    log << fmt::format("qosrun: {} was taken over by another qosrun (--force); leaving it attached\n", o.ifname);
    return {};
  }
  if (!r.in_this_netns()) {
    if (!o.force)
      return Error{fmt::format("the qosc state of {} was made in another network namespace: run qosrun detach there "
                               "(or detach --force here to discard the record, e.g. when that namespace is gone)",
                               o.ifname)};
    log << fmt::format("qosrun: note: discarding the record of {} made in another network namespace; nothing there "
                       "was touched\n",
                       o.ifname);
    (void)state::remove_pins(r.pin_dir);
    return state::remove(o.ifname);
  }
  if (!o.as_owner && r.foreground && !r.stale() && !o.force)
    return Error{fmt::format("{} is run by the foreground qosrun pid {}: stop it (Ctrl-C there, or kill {}), or "
                             "detach --force",
                             o.ifname, r.owner_pid, r.owner_pid)};
  auto sock = nl::RtnlSocket::open();
  if (!sock) return sock.error();
  // An interrupted reload first, so that the programs on the interface are the recorded ones.
  if (Status st = recover_interrupted_reload(r, *sock, log, o.verbosity); !st)
    log << "qosrun: note: " << st.error().message << "\n";
  r.phase = state::Phase::Detaching;
  (void)state::write(r);
  Teardown t;
  teardown(r, *sock, t, log, o.verbosity);
  for (const auto& w : t.warnings) {
    log << "qosrun: note: " << w << "\n";
    if (warnings) warnings->push_back(w);
  }
  if (t.error) {
    (void)state::write(r);   // what is left, for the next try
    return with_undo_result(Error{fmt::format("detaching from {} did not finish: {}", o.ifname, t.error->message)},
                            Teardown{});
  }
  if (Status st = state::remove(o.ifname); !st) return st;
  lock->remove_file();
  return {};
}

}  // namespace qosrun
