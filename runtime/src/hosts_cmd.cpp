// `qosrun hosts apply IFACE TABLE` and `qosrun hosts show IFACE`; the work is
// in hosts_iface.cpp (qosrun/hosts.hpp, docs/hosts.md).
#include <cstdlib>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qosc/units.hpp"
#include "qosrun/cli.hpp"
#include "qosrun/hosts.hpp"

namespace qosrun::cli {

namespace {

std::string summary_line(const std::string& ifname, const hosts::Summary& s) {
  return fmt::format("hosts on {}: {} added, {} changed, {} removed, {} unchanged in {:.1f} ms", ifname, s.added,
                     s.changed, s.removed, s.unchanged, s.seconds * 1e3);
}

std::string prefixes_text(const hosts::PlacedHost& h) {
  std::string s;
  for (const auto& p : h.prefixes) s += (s.empty() ? "" : " ") + p.text();
  return s;
}

int show(const std::string& ifname, bool json, int verbosity) {
  auto r = hosts::show(ifname);
  if (!r) {
    print_error(r.error(), verbosity);
    return kExitError;
  }
  if (json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& v : r->hosts)
      a.push_back({{"host", v.host.name},
                   {"plan", v.host.plan},
                   {"prefixes", prefixes_text(v.host)},
                   {"group", v.host.group},
                   {"queue", v.queue},
                   {"class", nl::handle_string(v.classid)},
                   {"rate_bps", v.host.rate_bps},
                   {"bytes", v.bytes},
                   {"packets", v.packets},
                   {"drops", v.drops},
                   {"backlog_bytes", v.backlog},
                   {"present", v.found}});
    std::cout << nlohmann::json{{"interface", r->ifname}, {"policy", r->policy}, {"groups", r->groups},
                                {"tx_queues", r->tx_queues}, {"groups_per_queue", r->groups_per_queue}, {"hosts", a}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  // With one HTB per TX queue: which queue each group is on (one column more).
  const bool mq = r->tx_queues > 1;
  std::string per_queue;
  for (size_t q = 0; q < r->groups_per_queue.size(); ++q) per_queue += fmt::format("{}{}", q ? "/" : "", r->groups_per_queue[q]);
  std::cout << fmt::format("{}: policy '{}', {} hosts in {} groups{}\n", r->ifname, r->policy, r->hosts.size(), r->groups,
                           mq ? fmt::format(" on {} TX queues ({} groups per queue)", r->tx_queues, per_queue) : "");
  if (r->hosts.empty()) return kExitOk;
  const std::string qhead = mq ? fmt::format(" {:>5}", "QUEUE") : "";
  std::cout << fmt::format("{:<20} {:<10} {:>5}{} {:<10} {:>10} {:>12} {:>10} {:>6}  {}\n", "HOST", "PLAN", "GROUP",
                           qhead, "CLASS", "RATE", "BYTES", "PACKETS", "DROPS", "PREFIXES");
  for (const auto& v : r->hosts)
    std::cout << fmt::format("{:<20} {:<10} {:>5}{} {:<10} {:>10} {:>12} {:>10} {:>6}  {}{}\n", v.host.name, v.host.plan,
                             v.host.group, mq ? fmt::format(" {:>5}", v.queue) : "", nl::handle_string(v.classid),
                             qosc::units::format_rate(v.host.rate_bps), v.bytes, v.packets, v.drops,
                             prefixes_text(v.host), v.found ? "" : "  (class MISSING)");
  return kExitOk;
}

}  // namespace

void register_hosts(CommandTable& t) {
  Globals& g = t.globals();
  struct Args {
    hosts::ApplyOptions apply;
    std::string show_ifname;
    bool json = false;
    CLI::App* apply_cmd = nullptr;
    CLI::App* show_cmd = nullptr;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = t.add("hosts",
                        "Per-host plans of an attached policy (docs/hosts.md): apply a host table, show the hosts.",
                        [a, &g]() -> int {
                          if (a->apply_cmd->parsed()) {
                            hosts::ApplyOptions o = a->apply;
                            o.verbosity = g.verbosity;
                            // QOSRUN_HOSTS_QUICK=0: always the whole path, for measuring what the quick one gives (bench/hosts).
                            const char* quick = std::getenv("QOSRUN_HOSTS_QUICK");
                            o.quick = !(quick && std::string(quick) == "0");
                            auto s = hosts::apply_table(o, std::cerr);
                            if (!s) {
                              print_error(s.error(), g.verbosity);
                              return kExitError;
                            }
                            for (const auto& n : s->notes) std::cerr << "qosrun: note: " << n << "\n";
                            std::cout << "qosrun: " << summary_line(o.ifname, *s) << "\n";
                            return kExitOk;
                          }
                          if (a->show_cmd->parsed()) return show(a->show_ifname, a->json, g.verbosity);
                          std::cerr << "qosrun: error: `qosrun hosts` needs apply or show (qosrun hosts -h)\n";
                          return kExitError;
                        });
  a->apply_cmd = sub->add_subcommand(
      "apply",
      "Make the hosts on IFACE those of TABLE (CSV host,plan,prefixes or JSON): only new, changed and removed hosts "
      "are touched; a table with any problem changes nothing. Needs root.");
  a->apply_cmd->add_option("IFACE", a->apply.ifname, "network interface")->required();
  a->apply_cmd->add_option("TABLE", a->apply.table, "host table (.csv or .json)")->required();
  a->apply_cmd->add_option("--drain-ms", a->apply.drain_ms,
                           "how long a removed host's queue may take to send what it holds (200)");
  a->show_cmd = sub->add_subcommand("show", "List the hosts on IFACE with their plan, group and class counters.");
  a->show_cmd->add_option("IFACE", a->show_ifname, "network interface")->required();
  a->show_cmd->add_flag("--json", a->json, "one JSON object");
  sub->require_subcommand(1);
}

}  // namespace qosrun::cli
