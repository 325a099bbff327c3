#pragma once
// A policy with plans and hosts, built in code (the tests of the runtime's
// hosts do not depend on the compiler): strict priority, classes game
// (priority 0) and bulk (priority 5, default); plans basic (10 Mbit, every
// class), premium (50 Mbit, ceil 200 Mbit) and game_only (5 Mbit, game only).
#include <string>

#include "qosc/manifest.hpp"
#include "qosrun/host_table.hpp"

namespace qh_test {

inline qosc::Manifest hosts_manifest(uint64_t link_bps = 1000000000ull) {
  qosc::Manifest m;
  m.policy = "isp";
  m.link_bps = link_bps;
  m.scheduler = "strict_priority";
  qosc::ManifestClass game;
  game.id = 0;
  game.name = "game";
  game.priority = 0;
  qosc::ManifestClass bulk;
  bulk.id = 1;
  bulk.name = "bulk";
  bulk.priority = 5;
  bulk.is_default = true;
  m.classes = {game, bulk};
  m.default_class = 1;
  m.plans = {{"basic", 10000000, 0, 0, {}}, {"premium", 50000000, 200000000, 200000, {}}, {"game_only", 5000000, 0, 0, {0}}};
  m.hosts = qosc::ManifestHosts{"saddr", false, "qos_hosts"};
  return m;
}

// Host i: "h<i>" on `plan` with 10.<i/256>.<i%256>.1/32 (and, every third, an IPv6 /64 too).
inline std::string table_csv(int from, int to, const std::string& plan = "basic") {
  std::string s = "host,plan,prefixes\n";
  for (int i = from; i < to; ++i) {
    s += "h" + std::to_string(i) + "," + plan + ",10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".1";
    if (i % 3 == 0) s += " 2001:db8:" + std::to_string(i) + "::/64";
    s += "\n";
  }
  return s;
}

inline qosrun::hosts::HostTable parse(const std::string& csv, const qosc::Manifest& m) {
  qosrun::hosts::TableRules r;
  for (const auto& p : m.plans) r.plans.push_back(p.name);
  r.max_prefixes = 1 << 20;
  auto t = qosrun::hosts::parse_host_table(csv, "test.csv", r);
  if (!t) throw std::runtime_error(t.error().message);
  return *t;
}

}  // namespace qh_test
