// The adaptive rate on an attached policy (qosrun/adaptive.hpp): probes,
// the HTB root's counters, rate changes in place, the live state file, and
// the supervisor process of the persistent form.
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qosrun/adaptive.hpp"
#include "qosrun/cli.hpp"
#include "qosrun/htb.hpp"
#include "qosrun/netlink.hpp"
#include "qosrun/state.hpp"

namespace qosrun::adaptive {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double unix_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::optional<DirectionConfig> config_of(const char* name, const std::optional<qosc::ManifestAdaptive>& a) {
  if (!a) return std::nullopt;
  DirectionConfig c;
  c.name = name;
  c.min_bps = a->min_bps;
  c.max_bps = a->max_bps;
  c.start_bps = a->start_bps;
  c.delay_ms = a->delay_us / 1000.0;
  return c;
}

// One shaped side (the interface, or the IFB): its tree as the kernel has it
// and the byte counter of its link class over a short window.
struct Side {
  bool present = false;
  int ifindex = 0;
  std::string ifname;
  htb::Where where = htb::Where::Interface;
  htb::Plan applied;           // what the kernel has
  uint32_t mtu = 1500, max_skb = 0;
  std::deque<std::pair<double, uint64_t>> bytes;   // (time, sent bytes of 1:1)

  // Bits per second over the last `window` seconds (0 until two readings).
  uint64_t achieved(nl::RtnlSocket& s, double t, double window) {
    auto c = nl::class_counters(s, ifindex, applied.link.classid);
    if (!c || !c->found) return 0;
    bytes.emplace_back(t, c->bytes);
    while (bytes.size() > 2 && bytes[1].first <= t - window) bytes.pop_front();
    if (bytes.size() < 2) return 0;
    double dt = bytes.back().first - bytes.front().first;
    if (dt <= 0) return 0;
    return static_cast<uint64_t>(double(bytes.back().second - bytes.front().second) * 8 / dt);
  }
};

// The sides of a record: the interface's tree with `link adaptive`, the IFB's
// with `download adaptive` and --ingress-shape.
void sides_of(const state::Record& r, Side (&sides)[2]) {
  for (auto& s : sides) s = Side{};
  const qosc::Manifest& m = r.manifest;
  if (m.link_adaptive && r.main.has_queues) {
    Side& s = sides[RateController::kUp];
    s.present = true;
    s.ifindex = r.main.ifindex;
    s.ifname = r.ifname;
    s.applied = r.main.queues.plan;
  }
  if (m.download_adaptive && r.ingress && r.ingress->ifb.has_queues) {
    Side& s = sides[RateController::kDown];
    s.present = true;
    s.ifindex = r.ingress->ifb_ifindex;
    s.ifname = r.ingress->ifb_name;
    s.where = htb::Where::Ifb;
    s.applied = r.ingress->ifb.queues.plan;
  }
  // Planned as attach planned them: the interface's MTU and largest skb (what
  // GRO on the interface builds is what reaches the IFB).
  for (auto& s : sides) {
    s.mtu = nl::link_mtu(r.ifname);
    s.max_skb = nl::link_max_skb(r.ifname);
  }
}

}  // namespace

nlohmann::json to_json(const Snapshot& s) {
  auto dir = [](const DirectionView& d) {
    return nlohmann::json{{"rate_bps", d.rate_bps},
                          {"min_bps", d.config.min_bps},
                          {"max_bps", d.config.max_bps},
                          {"start_bps", d.config.start_bps},
                          {"delay_threshold_ms", d.config.delay_ms},
                          {"achieved_bps", d.achieved_bps},
                          {"load", std::round(d.load * 1000) / 1000},
                          {"cuts", d.cuts},
                          {"rises", d.rises},
                          {"last_decision", d.last_decision}};
  };
  nlohmann::json j{{"time", s.unix_time}, {"pid", s.pid}, {"generation", s.generation}};
  if (s.upload) j["upload"] = dir(*s.upload);
  if (s.download) j["download"] = dir(*s.download);
  nlohmann::json refl = nlohmann::json::array();
  for (const auto& r : s.reflectors)
    refl.push_back({{"addr", r.addr},
                    {"alive", r.alive},
                    {"baseline_ms", std::round(r.baseline_ms * 1000) / 1000},
                    {"delay_ms", std::round(r.delay_ms * 1000) / 1000},
                    {"last_rtt_ms", std::round(r.last_rtt_ms * 1000) / 1000},
                    {"sent", r.sent},
                    {"received", r.received},
                    {"note", r.note}});
  j["reflectors"] = refl;
  j["holding"] = s.holding;
  j["decisions"] = s.decisions;
  return j;
}

Snapshot snapshot_from_json(const nlohmann::json& j) {
  auto dir = [](const nlohmann::json& d, const char* name) {
    DirectionView v;
    v.config.name = name;
    v.rate_bps = d.at("rate_bps").get<uint64_t>();
    v.config.min_bps = d.at("min_bps").get<uint64_t>();
    v.config.max_bps = d.at("max_bps").get<uint64_t>();
    v.config.start_bps = d.at("start_bps").get<uint64_t>();
    v.config.delay_ms = d.at("delay_threshold_ms").get<double>();
    v.achieved_bps = d.at("achieved_bps").get<uint64_t>();
    v.load = d.at("load").get<double>();
    v.cuts = d.at("cuts").get<uint64_t>();
    v.rises = d.at("rises").get<uint64_t>();
    v.last_decision = d.at("last_decision").get<std::string>();
    return v;
  };
  Snapshot s;
  s.unix_time = j.at("time").get<double>();
  s.pid = j.at("pid").get<pid_t>();
  s.generation = j.at("generation").get<uint32_t>();
  if (j.contains("upload")) s.upload = dir(j.at("upload"), "upload");
  if (j.contains("download")) s.download = dir(j.at("download"), "download");
  for (const auto& r : j.at("reflectors")) {
    ReflectorView v;
    v.addr = r.at("addr").get<std::string>();
    v.alive = r.at("alive").get<bool>();
    v.baseline_ms = r.at("baseline_ms").get<double>();
    v.delay_ms = r.at("delay_ms").get<double>();
    v.last_rtt_ms = r.at("last_rtt_ms").get<double>();
    v.sent = r.at("sent").get<uint64_t>();
    v.received = r.at("received").get<uint64_t>();
    v.note = r.at("note").get<std::string>();
    s.reflectors.push_back(std::move(v));
  }
  s.holding = j.at("holding").get<std::string>();
  s.decisions = j.at("decisions").get<std::vector<std::string>>();
  return s;
}

Snapshot snapshot_of(const RateController& c) {
  Snapshot s;
  s.unix_time = unix_s();
  s.pid = ::getpid();
  if (c.has(RateController::kUp)) s.upload = c.view(RateController::kUp);
  if (c.has(RateController::kDown)) s.download = c.view(RateController::kDown);
  s.reflectors = c.reflectors();
  s.holding = c.holding();
  s.decisions.assign(c.decisions().begin(), c.decisions().end());
  return s;
}

std::string state_file(const std::string& ifname) { return state::paths_for(ifname).adaptive_file; }

std::optional<Snapshot> read_snapshot(const std::string& ifname) {
  std::ifstream f(state_file(ifname));
  if (!f) return std::nullopt;
  try {
    Snapshot s = snapshot_from_json(nlohmann::json::parse(f));
    if (s.unix_time < unix_s() - 5) return std::nullopt;   // not rewritten: the controller was killed
    return s;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;   // being replaced (rename is atomic, but be safe) or damaged
  }
}

uint64_t current_rate(const std::string& ifname, size_t dir) {
  auto s = read_snapshot(ifname);
  if (!s || !s->direction(dir)) return 0;
  return s->direction(dir)->rate_bps;
}

int run_adaptive(const RunOptions& o, std::ostream& err) {
  auto rec = state::read(o.ifname);
  if (!rec || !*rec) {
    err << fmt::format("qosrun: error: {} has no qosc policy attached\n", o.ifname);
    return cli::kExitError;
  }
  uint32_t generation = (*rec)->generation;
  Side sides[2];
  sides_of(**rec, sides);
  const qosc::Manifest* m = &(*rec)->manifest;
  auto up = sides[0].present ? config_of("upload", m->link_adaptive) : std::nullopt;
  auto down = sides[1].present ? config_of("download", m->download_adaptive) : std::nullopt;
  if (!up && !down) {
    err << fmt::format("qosrun: error: policy '{}' on {} has no adaptive rate to control\n", m->policy, o.ifname);
    return cli::kExitError;
  }
  auto prober = Prober::open(o.ifname, o.reflectors);
  if (!prober) {
    print_error(prober.error(), o.verbosity);
    return cli::kExitError;
  }
  auto sock = nl::RtnlSocket::open();
  if (!sock) {
    print_error(sock.error(), o.verbosity);
    return cli::kExitError;
  }
  RateController ctl(up, down, o.reflectors, o.tuning);
  for (size_t d = 0; d < 2; ++d)
    if (sides[d].present) ctl.set_rate(d, sides[d].applied.link.rate_bps);   // what attach or reload applied

  // A reload planned its tree at our rate: continue from its tree and its
  // range. False when the policy is gone or no longer adaptive.
  auto follow = [&](std::optional<state::Record>&& now_rec) -> bool {
    if (!now_rec) return false;
    if (now_rec->generation == generation) return true;
    generation = now_rec->generation;
    *rec = std::move(now_rec);
    sides_of(**rec, sides);
    m = &(*rec)->manifest;
    for (size_t d = 0; d < 2; ++d) {
      auto c = config_of(d == 0 ? "upload" : "download", d == 0 ? m->link_adaptive : m->download_adaptive);
      if (c && sides[d].present) ctl.reconfigure(d, *c);
    }
    return sides[0].present || sides[1].present;
  };

  const std::string file = state_file(o.ifname);
  const double interval = o.tuning.probe_interval_s;
  const size_t n = o.reflectors.size();
  double t = now_s();
  double next_probe = t, next_write = t, next_check = t + 1;
  size_t next_reflector = 0;
  std::vector<double> last_probe(n, -1e9);
  std::vector<pollfd> pfds;
  for (int fd : prober->fds()) pfds.push_back({fd, POLLIN, 0});

  while (!(o.stop && o.stop->load())) {
    t = now_s();
    if (t >= next_probe) {
      // Round robin over the reflectors; one left out is still asked once a
      // second, so it comes back when it answers again.
      auto refl = ctl.reflectors();
      for (size_t k = 0; k < n; ++k) {
        size_t r = (next_reflector + k) % n;
        if (!refl[r].alive && refl[r].received > 0 && t - last_probe[r] < 1.0) continue;
        next_reflector = r + 1;
        last_probe[r] = t;
        ctl.on_sent(r, t);
        (void)prober->send(r);
        break;
      }
      next_probe += interval;
      if (next_probe < t) next_probe = t + interval;   // fell behind (a stopped process): no burst
    }
    int wait_ms = static_cast<int>(std::max(0.0, (next_probe - now_s()) * 1000));
    if (::poll(pfds.data(), pfds.size(), std::min(wait_ms, 50)) < 0 && errno != EINTR) break;
    t = now_s();
    for (auto [r, rtt] : prober->receive()) ctl.on_rtt(r, t, rtt);
    if (t + 0.001 < next_probe) continue;   // decide once per probe interval, right before the next probe

    uint64_t achieved[2] = {0, 0};
    for (size_t d = 0; d < 2; ++d)
      if (sides[d].present) achieved[d] = sides[d].achieved(*sock, t, 0.2);
    if (ctl.tick(t, achieved[0], achieved[1])) {
      // Changed under the interface's lock, so a reload never interleaves.
      auto lock = state::Lock::acquire_file(state::paths_for(o.ifname).lock_file, o.ifname, 0);
      if (lock) {
        auto now_rec = state::read(o.ifname);
        if (!now_rec || !follow(std::move(*now_rec))) break;   // detached, or no longer adaptive
        for (size_t d = 0; d < 2; ++d) {
          Side& s = sides[d];
          if (!s.present || ctl.rate_bps(d) == s.applied.link.rate_bps) continue;
          auto to = htb::plan_for(*m, s.where, s.mtu, s.max_skb, ctl.rate_bps(d));
          if (!to) continue;
          if (Status st = htb::change_rate(*sock, s.ifindex, s.applied, *to); !st) {
            err << fmt::format("qosrun: note: cannot change the rate of {}: {}\n", s.ifname, st.error().message);
            continue;
          }
          s.applied = std::move(*to);
        }
      }
    }
    if (t >= next_write) {
      Snapshot snap = snapshot_of(ctl);
      snap.generation = generation;
      (void)replace_file(file, to_json(snap).dump() + "\n");   // a snapshot for `status`: the next one tries again
      next_write = t + 0.5;
    }
    if (t >= next_check) {
      next_check = t + 1;
      auto r = state::read(o.ifname);
      if (r && !follow(std::move(*r))) break;   // detached, or no longer adaptive
    }
  }
  (void)::unlink(file.c_str());
  return cli::kExitOk;
}

}  // namespace qosrun::adaptive

// ---- the persistent form: a supervisor process -------------------------------------------------------

namespace qosrun::adaptive {

Result<std::pair<pid_t, uint64_t>> start_supervisor(const std::string& ifname) {
  const state::Paths paths = state::paths_for(ifname);
  std::string log = paths.state_dir + "/supervisor.log";
  pid_t pid = ::fork();
  if (pid < 0) return errno_error(errno, "cannot start the adaptive rate's supervisor");
  if (pid == 0) {
    // A session of its own: the terminal's Ctrl-C and the attaching shell's
    // exit do not reach it; only detach stops it.
    ::setsid();
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    const char* argv[] = {"qosrun", "supervise", ifname.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  return std::make_pair(pid, state::process_start_time(pid));
}

void stop_supervisor(pid_t pid, uint64_t start) {
  if (pid <= 0 || !state::process_alive(pid, start)) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 200 && state::process_alive(pid, start); ++i) {
    (void)::waitpid(pid, nullptr, WNOHANG);   // our own child (an attach that failed)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (state::process_alive(pid, start)) ::kill(pid, SIGKILL);
  (void)::waitpid(pid, nullptr, WNOHANG);
}

}  // namespace qosrun::adaptive

namespace qosrun::cli {

namespace {
std::atomic<bool> g_supervisor_stop{false};
void supervisor_on_stop(int) { g_supervisor_stop.store(true); }
}  // namespace

void register_supervise(CommandTable& t) {
  auto ifname = std::make_shared<std::string>();
  CLI::App* sub = t.add("supervise",
                        "(started by attach) run the adaptive rate's controller of the policy on IFACE until detach",
                        [ifname, &g = t.globals()] {
                          struct sigaction sa{};
                          sa.sa_handler = supervisor_on_stop;
                          sigemptyset(&sa.sa_mask);
                          for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
                          // attach writes our pid into the record after starting us: wait for it.
                          std::optional<state::Record> rec;
                          for (int i = 0; i < 100 && !g_supervisor_stop.load(); ++i) {
                            auto r = state::read(*ifname);
                            if (r && *r && (*r)->phase == state::Phase::Attached && (*r)->adaptive &&
                                (*r)->adaptive->supervisor_pid == ::getpid()) {
                              rec = **r;
                              break;
                            }
                            std::this_thread::sleep_for(std::chrono::milliseconds(50));
                          }
                          if (!rec) {
                            std::cerr << "qosrun supervise: " << *ifname
                                      << ": no attached record names this process as its supervisor\n";
                            return kExitError;
                          }
                          adaptive::RunOptions o;
                          o.ifname = *ifname;
                          o.reflectors = rec->adaptive->reflectors;
                          o.stop = &g_supervisor_stop;
                          o.verbosity = g.verbosity;
                          return adaptive::run_adaptive(o, std::cerr);
                        });
  sub->add_option("IFACE", *ifname, "the interface")->required();
  sub->group("");   // internal: not listed in --help
}

}  // namespace qosrun::cli
