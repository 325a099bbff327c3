// The commands `attach`, `detach`, `status`, `reload` and the foreground form
// `qosrun OBJ IFACE`; the work is in attach.cpp, detach.cpp, reload.cpp and status.cpp (qosrun/attach.hpp).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qos_abi.h"
#include "qosc/units.hpp"
#include "qosrun/adaptive.hpp"
#include "qosrun/attach.hpp"
#include "qosrun/cli.hpp"
#include "qosrun/txq.hpp"

namespace qosrun {

namespace {

std::mutex g_view_mu;
ForegroundView g_view;   // empty: the basic view

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);
void qosrun_attach_on_stop(int) { g_stop.store(true); }

void install_stop_handlers() {
  struct sigaction sa{};
  sa.sa_handler = qosrun_attach_on_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;   // no SA_RESTART: sleeps end early
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

void print_notes(std::ostream& err, const std::vector<std::string>& notes) {
  for (const auto& n : notes) err << "qosrun: note: " << n << "\n";
}

std::string summary(const state::Record& r) {
  std::string s = fmt::format("policy '{}' ({} classes, {}) on {}: XDP {} (id {}), TC egress (id {})", r.manifest.policy,
                              r.manifest.classes.size(), r.manifest.scheduler, r.ifname, to_string(r.xdp.mode), r.xdp.prog_id,
                              r.main.tc.prog_id);
  if (r.main.has_queues) {
    s += fmt::format(", htb {:x}: at {} with {} leaves", r.main.queues.plan.major,
                     qosc::units::format_rate(r.main.queues.plan.link.rate_bps), r.main.queues.plan.leaves.size());
    if (const auto& tx = r.main.queues.tx)
      s += fmt::format(" under mq {:x}: with an htb per TX queue ({} queues)", txq::kMqMajor, tx->real);
  } else
    s += ", no queues (--queues none)";
  if (r.ingress) s += fmt::format(", downloads shaped on {}", r.ingress->ifb_name);
  for (const auto& st : r.steering)
    s += fmt::format(", steering from {} (XDP {}, id {})", st.ifname, to_string(st.xdp.mode), st.xdp.prog_id);
  return s;
}

// ---- status output ------------------------------------------------------------------------------

nlohmann::json status_json(const StatusReport& s) {
  nlohmann::json j{{"interface", s.ifname}, {"attached", s.attached}, {"xdp_now", s.xdp_now},
                   {"root_qdisc_now", s.root_qdisc_now}};
  if (!s.attached) return j;
  const state::Record& r = s.record;
  j["policy"] = r.manifest.policy;
  j["object"] = r.object;
  j["scheduler"] = r.manifest.scheduler;
  j["link_bps"] = r.manifest.link_bps;
  j["classes"] = r.manifest.classes.size();
  j["since"] = r.created;
  j["generation"] = r.generation;
  j["mode"] = r.foreground ? "foreground" : "persistent";
  j["owner_pid"] = r.owner_pid;
  j["stale"] = s.stale;
  j["xdp"] = {{"mode", to_string(r.xdp.mode)}, {"prog_id", r.xdp.prog_id}, {"ok", s.xdp_ok}, {"meta", r.xdp_meta}};
  j["tc"] = {{"prog_id", r.main.tc.prog_id}, {"priority", r.main.tc.priority}, {"handle", r.main.tc.handle},
             {"ok", s.tc_ok}};
  j["queues"] = r.main.has_queues ? nlohmann::json(htb::to_json(r.main.queues.plan)) : nlohmann::json("none");
  j["queues_ok"] = s.queues_ok;
  j["tx_queues"] = r.main.has_queues && r.main.queues.tx ? txq::to_json(*r.main.queues.tx) : nlohmann::json(nullptr);
  j["ingress"] = r.ingress ? nlohmann::json{{"ifb", r.ingress->ifb_name}, {"ok", s.ingress_ok}} : nlohmann::json(nullptr);
  j["steering"] = nlohmann::json::array();
  for (size_t i = 0; i < r.steering.size(); ++i)
    j["steering"].push_back({{"interface", r.steering[i].ifname},
                             {"mode", to_string(r.steering[i].xdp.mode)},
                             {"prog_id", r.steering[i].xdp.prog_id},
                             {"ok", i < s.steering_ok.size() && s.steering_ok[i]}});
  j["pin_dir"] = r.pin_dir;
  j["state_file"] = state::state_file(r.ifname);
  if (r.adaptive) {
    nlohmann::json a{{"reflectors", r.adaptive->reflectors},
                     {"supervisor_pid", r.adaptive->supervisor_pid},
                     {"state_file", adaptive::state_file(r.ifname)}};
    if (auto live = adaptive::read_snapshot(r.ifname)) {
      if (live->upload) a["upload_bps"] = live->upload->rate_bps;
      if (live->download) a["download_bps"] = live->download->rate_bps;
      a["holding"] = live->holding;
    }
    j["adaptive"] = a;
  }
  j["problems"] = s.problems;
  return j;
}

std::string status_text(const StatusReport& s, int verbosity) {
  if (!s.attached) return fmt::format("{}: no qosc policy attached (root qdisc {}, XDP {})\n", s.ifname,
                                      s.root_qdisc_now.empty() ? "-" : s.root_qdisc_now, s.xdp_now);
  const state::Record& r = s.record;
  auto ok = [](bool b) { return b ? "ok" : "MISSING"; };
  std::string out = fmt::format("{}: policy '{}' from {}\n", s.ifname, r.manifest.policy, r.object);
  out += fmt::format("  {} since {}{}{}\n", r.foreground ? fmt::format("foreground (qosrun pid {})", r.owner_pid)
                                                         : std::string("persistent"),
                     r.created, r.generation ? fmt::format(", reloaded {} time(s)", r.generation) : "",
                     s.stale ? "  STALE" : "");
  out += fmt::format("  scheduler {}, link {}, {} classes\n", r.manifest.scheduler,
                     qosc::units::format_rate(r.manifest.link_bps), r.manifest.classes.size());
  out += fmt::format("  xdp     {:<7} prog id {:<6} {}\n", to_string(r.xdp.mode), r.xdp.prog_id, ok(s.xdp_ok));
  out += fmt::format("  tc      egress  prog id {:<6} {}\n", r.main.tc.prog_id, ok(s.tc_ok));
  for (size_t i = 0; i < r.steering.size(); ++i)
    out += fmt::format("  steer   {:<7} prog id {:<6} {}  (XDP on {}: hosts' packets to their queue's CPU)\n",
                       to_string(r.steering[i].xdp.mode), r.steering[i].xdp.prog_id,
                       ok(i < s.steering_ok.size() && s.steering_ok[i]), r.steering[i].ifname);
  if (r.main.has_queues) {
    out += fmt::format("  queues  htb {:x}: {} leaves {}\n", r.main.queues.plan.major, r.main.queues.plan.leaves.size(),
                       ok(s.queues_ok));
    if (const auto& tx = r.main.queues.tx) out += "          " + txq::describe(*tx) + "\n";
    if (verbosity >= 1) {
      std::string d = htb::describe(r.main.queues.plan);
      for (size_t pos = 0; pos < d.size();) {
        size_t nl = d.find('\n', pos);
        out += "          " + d.substr(pos, nl - pos) + "\n";
        pos = nl == std::string::npos ? d.size() : nl + 1;
      }
    }
  } else {
    out += "  queues  none (--queues none)\n";
  }
  if (r.ingress) out += fmt::format("  ingress shaped on {} {}\n", r.ingress->ifb_name, ok(s.ingress_ok));
  if (r.adaptive) {
    std::string rates;
    if (auto live = adaptive::read_snapshot(r.ifname))
      for (const auto* d : {&live->upload, &live->download})
        if (*d) rates += fmt::format(", {} now {}", (*d)->config.name, qosc::units::format_rate((*d)->rate_bps));
    std::string refl;
    for (const auto& x : r.adaptive->reflectors) refl += (refl.empty() ? "" : " ") + x;
    out += fmt::format("  adaptive reflectors {}{}{}\n", refl,
                       r.adaptive->supervisor_pid ? fmt::format(", supervisor pid {}", r.adaptive->supervisor_pid) : "",
                       rates);
  }
  out += fmt::format("  pins    {}\n", r.pin_dir);
  for (const auto& p : s.problems) out += "  problem: " + p + "\n";
  return out;
}

// ---- the basic foreground view ---------------------------------------------------------------------

Result<std::vector<qos_class_stats>> read_percpu_stats(int fd, uint32_t slots) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return errno_error(-ncpu, "cannot count CPUs");
  std::vector<qos_class_stats> per(static_cast<size_t>(ncpu));
  std::vector<qos_class_stats> sum(slots);
  for (uint32_t k = 0; k < slots; ++k) {
    if (bpf_map_lookup_elem(fd, &k, per.data()) != 0) return errno_error(errno, "cannot read the statistics map");
    for (const auto& c : per)
      for (int h = 0; h < QOS_NHOOKS; ++h) {
        sum[k].packets[h] += c.packets[h];
        sum[k].bytes[h] += c.bytes[h];
        sum[k].drop_policer[h] += c.drop_policer[h];
        sum[k].drop_rule[h] += c.drop_rule[h];
      }
  }
  return sum;
}

}  // namespace

void set_foreground_view(ForegroundView view) {
  std::lock_guard lock(g_view_mu);
  g_view = std::move(view);
}

int basic_foreground_view(const ForegroundContext& ctx) {
  static_assert(sizeof(qos_class_stats) % 8 == 0, "per-CPU values are 8-byte aligned");
  const uint32_t slots = static_cast<uint32_t>(ctx.manifest.classes.size()) + 1;
  auto t0 = std::chrono::steady_clock::now();
  auto next = t0;
  while (!ctx.stop.load()) {
    next += std::chrono::seconds(1);
    while (!ctx.stop.load() && std::chrono::steady_clock::now() < next)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (ctx.stop.load()) break;
    auto st = read_percpu_stats(ctx.stats_fd, slots);
    if (!st) {
      print_error(st.error(), ctx.verbosity);
      return cli::kExitError;
    }
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
    std::string line = fmt::format("[{:>5}s] packets out/in:", secs);
    for (uint32_t i = 0; i + 1 < slots; ++i)
      line += fmt::format(" {} {}/{}", ctx.manifest.classes[i].name, (*st)[i].packets[QOS_HOOK_TC],
                          (*st)[i].packets[QOS_HOOK_XDP]);
    const auto& d = (*st)[slots - 1];
    if (d.drop_rule[0] + d.drop_rule[1]) line += fmt::format(" | dropped by rule {}", d.drop_rule[0] + d.drop_rule[1]);
    std::cout << line << std::endl;
  }
  return cli::kExitOk;
}

int run_foreground(const AttachOptions& opts_in, std::ostream& out, std::ostream& err) {
  AttachOptions opts = opts_in;
  opts.foreground = true;
  g_stop.store(false);
  install_stop_handlers();
  auto a = attach(opts, err);
  if (!a) {
    print_error(a.error(), opts.verbosity);
    return cli::exit_code_for(a.error());
  }
  print_notes(err, a->notes);
  out << "qosrun: " << summary(a->record) << "\nqosrun: Ctrl-C detaches and restores " << opts.ifname << std::endl;
  int rc = cli::kExitOk;
  // The adaptive rate's controller runs beside the view until the signal.
  std::thread controller;
  if (a->record.adaptive) {
    adaptive::RunOptions ro;
    ro.ifname = opts.ifname;
    ro.reflectors = a->record.adaptive->reflectors;
    ro.stop = &g_stop;
    ro.verbosity = opts.verbosity;
    controller = std::thread([ro, &err] { (void)adaptive::run_adaptive(ro, err); });
  }
  if (!g_stop.load()) {
    ForegroundContext ctx{a->policy.manifest(),
                          opts.ifname,
                          a->policy.map_fd(MapRole::Stats),
                          a->policy.map_fd(MapRole::Flows),
                          a->record.pin_dir,
                          g_stop,
                          opts.verbosity};
    ForegroundView view;
    {
      std::lock_guard lock(g_view_mu);
      view = g_view;
    }
    rc = view ? view(ctx) : basic_foreground_view(ctx);
  }
  g_stop.store(true);   // the view may have ended on its own (an error): stop the controller too
  if (controller.joinable()) controller.join();
  DetachOptions d;
  d.ifname = opts.ifname;
  d.as_owner = ::getpid();
  d.verbosity = opts.verbosity;
  if (Status st = detach(d, err); !st) {
    print_error(st.error(), opts.verbosity);
    return cli::kExitError;
  }
  out << "qosrun: detached from " << opts.ifname << "; it is as it was before" << std::endl;
  return rc;
}

// ---- commands ----------------------------------------------------------------------------------------

namespace cli {

namespace {

struct AttachArgs {
  AttachOptions o;
  std::string mode = "auto";
  std::string queues = "htb";
  std::string tx_queues = "auto";
};

void add_attach_options(CLI::App* app, AttachArgs& a, bool positionals_required) {
  auto* obj = app->add_option("OBJ", a.o.object, "compiled policy (.bpf.o written by qosc)");
  auto* ifc = app->add_option("IFACE", a.o.ifname, "network interface (e.g. eth0)");
  if (positionals_required) {
    obj->required();
    ifc->required();
  }
  app->add_option("--mode", a.mode,
                  "XDP mode: native (driver) or skb (generic); default: native, falling back to skb with a note")
      ->check(CLI::IsMember({"auto", "native", "skb"}));
  app->add_option("--queues", a.queues,
                  "htb: build the HTB tree from the policy (default); none: only the programs, nothing queues "
                  "(the dissertation's setup, for comparison)")
      ->check(CLI::IsMember({"htb", "none"}));
  app->add_flag("--ingress-shape", a.o.ingress_shape,
                "also shape downloads: redirect ingress to an IFB device with its own HTB tree");
  app->add_flag("--xdp-meta", a.o.xdp_meta,
                "XDP also writes the class into the packet's metadata, for a tc ingress program or AF_XDP "
                "reader of your own (costs ~9 ns per packet; qosc's own programs do not need it)");
  app->add_flag("--force", a.o.force,
                "replace a qosc policy already attached, and a root qdisc qosrun could not restore exactly");
  app->add_option("--reflector", a.o.reflectors,
                  "adaptive rate (`link adaptive MIN-MAX;`): a host beyond the link that answers ping, IPv4 or IPv6; "
                  "repeatable; default: the interface's gateway")
      ->allow_extra_args(false);
  app->add_option("--hosts", a.o.hosts_table,
                  "a host table (CSV host,plan,prefixes or JSON) for a policy with `hosts`: each host gets its plan's "
                  "subtree (docs/hosts.md); `qosrun hosts apply` changes it later");
  app->add_option("--steer-from", a.o.steer_from,
                  "with hosts on several TX queues: an interface where the hosts' packets come in (repeatable); its "
                  "XDP program sends each listed host's packet to the CPU of its TX queue, so each queue's HTB is "
                  "run by one CPU (docs/hosts.md, \"Steering\")")
      ->allow_extra_args(false);
  app->add_option("--tx-queues", a.tx_queues,
                  "a policy with hosts on an interface of several TX queues: auto (default) spreads host groups over "
                  "every TX queue, each with its own HTB under an mq root, so CPUs never share a lock (XPS is off "
                  "while attached); N: over queues 0..N-1; 1: one HTB for everything (docs/hosts.md, \"Every core\")")
      ->check([](const std::string& v) -> std::string {
        if (v == "auto") return {};
        char* end = nullptr;
        unsigned long n = std::strtoul(v.c_str(), &end, 10);
        return v.empty() || *end || n == 0 ? "auto or a number of queues (1 or more)" : "";
      });
}

AttachOptions finish(const AttachArgs& a, int verbosity) {
  AttachOptions o = a.o;
  o.mode = a.mode == "native" ? XdpMode::Native : a.mode == "skb" ? XdpMode::Skb : XdpMode::Auto;
  o.queues = a.queues != "none";
  o.tx_queues = a.tx_queues == "auto" ? 0 : static_cast<uint32_t>(std::strtoul(a.tx_queues.c_str(), nullptr, 10));
  o.verbosity = verbosity;
  return o;
}

}  // namespace

void register_attach(CommandTable& t) {
  Globals& g = t.globals();

  // attach
  auto at = std::make_shared<AttachArgs>();
  CLI::App* sub = t.add("attach",
                        "Attach a compiled policy to an interface and leave it there (XDP on ingress, TC on egress, "
                        "HTB queues from the policy). State is pinned under /sys/fs/bpf/qosc/IFACE. Needs root.",
                        [at, &g] {
                          AttachOptions o = finish(*at, g.verbosity);
                          auto a = attach(o, std::cerr);
                          if (!a) {
                            print_error(a.error(), g.verbosity);
                            return cli::exit_code_for(a.error());
                          }
                          print_notes(std::cerr, a->notes);
                          std::cout << "qosrun: attached " << summary(a->record) << "\n";
                          if (!a->hosts.empty()) std::cout << "qosrun: " << a->hosts << "\n";
                          return kExitOk;
                        });
  add_attach_options(sub, *at, true);

  // detach
  auto dt = std::make_shared<DetachOptions>();
  sub = t.add("detach",
              "Remove the policy from an interface and restore what was there before (qdisc, filters, XDP). Also "
              "cleans up after a qosrun that was killed.",
              [dt, &g] {
                DetachOptions o = *dt;
                o.verbosity = g.verbosity;
                if (Status st = detach(o, std::cerr); !st) {
                  print_error(st.error(), g.verbosity);
                  return kExitError;
                }
                std::cout << "qosrun: detached from " << o.ifname << "\n";
                return kExitOk;
              });
  sub->add_option("IFACE", dt->ifname, "network interface")->required();
  sub->add_flag("--force", dt->force, "detach even while a foreground qosrun runs on it");

  // status
  struct StatusArgs {
    std::string ifname;
    bool json = false;
  };
  auto sa = std::make_shared<StatusArgs>();
  sub = t.add("status", "Show which policies are attached (all interfaces, or IFACE), checked against the kernel.",
              [sa, &g] {
                std::vector<std::string> names;
                if (!sa->ifname.empty()) names.push_back(sa->ifname);
                else names = state::list();
                nlohmann::json all = nlohmann::json::array();
                int rc = kExitOk;
                for (const auto& n : names) {
                  auto s = status_of(n);
                  if (!s) {
                    print_error(s.error(), g.verbosity);
                    rc = kExitError;
                    continue;
                  }
                  if (!sa->ifname.empty() && !s->attached && s->xdp_now.empty() && s->root_qdisc_now.empty()) {
                    std::cerr << "qosrun: error: no interface named " << n << " in this network namespace\n";
                    rc = kExitError;
                    continue;
                  }
                  if (sa->json) all.push_back(status_json(*s));
                  else std::cout << status_text(*s, g.verbosity);
                }
                if (sa->json) std::cout << all.dump(2) << "\n";
                else if (names.empty()) std::cout << "no qosc policy attached\n";
                return rc;
              });
  sub->add_option("IFACE", sa->ifname, "only this interface");
  sub->add_flag("--json", sa->json, "a JSON array, one object per interface");

  // reload
  auto rl = std::make_shared<ReloadOptions>();
  sub = t.add("reload",
              "Swap the policy on an interface without a gap: programs replaced atomically, statistics kept where "
              "the classes are the same, HTB classes changed in place.",
              [rl, &g] {
                ReloadOptions o = *rl;
                o.verbosity = g.verbosity;
                auto r = reload(o, std::cerr);
                if (!r) {
                  print_error(r.error(), g.verbosity);
                  return cli::exit_code_for(r.error());
                }
                print_notes(std::cerr, r->notes);
                std::cout << "qosrun: reloaded " << summary(r->record) << "\n";
                if (g.verbosity >= 1 && !r->reused_maps.empty()) {
                  std::string names;
                  for (const auto& n : r->reused_maps) names += (names.empty() ? "" : ", ") + n;
                  std::cerr << "qosrun: kept maps " << names << "\n";
                }
                return kExitOk;
              });
  sub->add_option("OBJ", rl->object, "the new compiled policy")->required();
  sub->add_option("IFACE", rl->ifname, "network interface")->required();
  sub->add_option("--drain-ms", rl->drain_ms, "how long a removed class may take to send what it holds (200)");

  // foreground: qosrun OBJ IFACE
  auto fg = std::make_shared<AttachArgs>();
  add_attach_options(&t.app(), *fg, false);
  t.set_default([fg, &g, &app = t.app()] {
    if (fg->o.object.empty() || fg->o.ifname.empty()) {
      if (!fg->o.object.empty()) {
        std::cerr << fmt::format("qosrun: error: '{}' is not a command, and the foreground form needs an interface "
                                 "too: qosrun OBJ IFACE (qosrun -h lists the commands)\n",
                                 fg->o.object);
        return kExitError;
      }
      std::fputs(app.help().c_str(), stderr);
      return kExitError;
    }
    if (::access(fg->o.object.c_str(), F_OK) != 0) {
      std::cerr << fmt::format("qosrun: error: '{}' is neither a command nor a file: qosrun OBJ IFACE runs a "
                               "compiled policy in the foreground; qosrun -h lists the commands\n",
                               fg->o.object);
      return kExitError;
    }
    return run_foreground(finish(*fg, g.verbosity), std::cout, std::cerr);
  });
}

}  // namespace cli
}  // namespace qosrun
