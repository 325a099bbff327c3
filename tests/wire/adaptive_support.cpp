// See adaptive_support.hpp.
#include "adaptive_support.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace qt::adaptive {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string trim(std::string s) {
  s.erase(s.find_last_not_of(" \n\t") + 1);
  return s;
}

std::string mbit(double bps) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", std::round(bps / 1e5) / 10);
  return b;
}

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

double env_seconds(const char* name, double dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return end != v && d > 0 ? d : dflt;
}

std::string tbf_args(double bps) {
  const auto limit = static_cast<uint64_t>(bps * kModemBufferS / 8);
  const auto burst = std::max<uint64_t>(static_cast<uint64_t>(bps * 0.002 / 8), 10 * 1514);
  return "rate " + std::to_string(static_cast<uint64_t>(bps)) + "bit burst " + std::to_string(burst) + " limit " +
         std::to_string(limit);
}

// ---- topology ---------------------------------------------------------------------------------

Topology::Topology(double modem_bps) {
  ns_ = std::make_unique<Netns>(std::vector<std::string>{kCli, kRtr, kMdm, kSrv});
  if (!ns_->ok()) {
    error_ = ns_->error();
    return;
  }
  // GSO/TSO/GRO off on every link, as in the gaming latency test: the queues
  // (the router's HTB, the modem's tbf) then hold real frames, as a modem's
  // does, and a game packet never waits behind a 64 KB super-packet. At these
  // rates (≤ 100 Mbit/s, ~8 kpps) that costs little CPU.
  std::string err;
  if (!make_veth({kCli, "ad-c0", kIpCli, kRtr, "ad-r0", "10.221.1.1"}, &err) ||
      !make_veth({kRtr, kRtrWan, "10.221.2.1", kMdm, "ad-m0", "10.221.2.2"}, &err) ||
      !make_veth({kMdm, kMdmWan, "10.221.3.1", kSrv, "ad-s0", kIpSrv}, &err)) {
    error_ = err;
    return;
  }
  auto run = [&](const char* ns, const std::string& cmd) {
    CmdResult r = ns_->exec(ns, cmd);
    if (r.rc != 0) error_ += std::string(ns) + ": " + cmd + ": " + r.out + "\n";
  };
  run(kCli, "ip route add default via 10.221.1.1");
  run(kRtr, "sysctl -qw net.ipv4.ip_forward=1 && ip route add 10.221.3.0/24 via 10.221.2.2");
  run(kMdm, "sysctl -qw net.ipv4.ip_forward=1 && ip route add 10.221.1.0/24 via 10.221.2.1");
  run(kSrv, "ip route add default via 10.221.3.1");
  // The second reflector: another address of the server, its neighbour entry static like the first.
  std::string mac = trim(sh(std::string("ip -n ") + kSrv + " -br link show ad-s0 | awk '{print $3}'").out);
  run(kSrv, std::string("ip addr add ") + kIpSrv2 + "/24 dev ad-s0");
  run(kMdm, std::string("ip neigh replace ") + kIpSrv2 + " lladdr " + mac + " dev " + kMdmWan + " nud permanent");
  // New namespaces inherit the host's congestion control (bbr hides the bloat): cubic is pinned on
  // the upload's socket (TcpBulk, TCP_CONGESTION, which fails loudly); the namespaces' default too
  // where the host allows it (not when cubic is missing from tcp_allowed_congestion_control).
  for (const char* n : {kCli, kRtr, kMdm, kSrv}) ns_->exec(n, "sysctl -qw net.ipv4.tcp_congestion_control=cubic");
  run(kMdm, std::string("tc qdisc add dev ") + kMdmWan + " root handle 1: tbf " + tbf_args(modem_bps));
}

Topology::~Topology() { ns_.reset(); }

bool Topology::set_modem(double bps, std::string* err) const {
  CmdResult r = ns_->exec(kMdm, std::string("tc qdisc change dev ") + kMdmWan + " root handle 1: tbf " + tbf_args(bps));
  if (r.rc != 0 && err) *err = "tc qdisc change (modem): " + r.out;
  return r.rc == 0;
}

bool Topology::drop_probes_to(const std::string& addr, std::string* err) const {
  CmdResult r = ns_->exec(kSrv, "nft add table ip qtad && "
                                "nft 'add chain ip qtad in { type filter hook input priority 0 ; }' && "
                                "nft add rule ip qtad in ip daddr " + addr + " icmp type echo-request drop");
  if (r.rc != 0 && err) *err = "nft (server): " + r.out;
  return r.rc == 0;
}

uint64_t netns_cookie(const std::string& ns) {
  int fd = socket_in_netns(ns, AF_INET, SOCK_DGRAM);
  if (fd < 0) return 0;
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) cookie = 0;
  close(fd);
  return cookie;
}

// ---- the shaper's rate ------------------------------------------------------------------------

ShaperProbe::ShaperProbe(const Netns& ns, std::string nsname, std::string ifname)
    : ns_(ns), nsname_(std::move(nsname)), ifname_(std::move(ifname)) {
  // An adaptive policy's record names the controller's live state.
  CmdResult r = ns_.exec(nsname_, qosrun_bin() + " status " + ifname_ + " --json 2>/dev/null", 30);
  try {
    json j = json::parse(r.out);
    if (j.is_array() && !j.empty()) j = j[0];
    if (j.contains("adaptive")) file_ = j["adaptive"].at("state_file").get<std::string>();
  } catch (const std::exception&) {
  }
}

std::optional<json> ShaperProbe::adaptive_state() {
  if (file_.empty()) return std::nullopt;
  std::ifstream in(file_);
  if (!in) return std::nullopt;
  try {
    json j = json::parse(in);   // rewritten atomically (rename): never half a file
    source_ = "adaptive.json";
    return j;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

double ShaperProbe::tc_rate_bps() const {
  CmdResult r = sh("tc -n " + nsname_ + " class show dev " + ifname_ + " classid 1:1", 10);
  static const std::regex re(R"(\brate ([0-9.]+)([KMGT]?)bit\b)");
  std::smatch m;
  if (r.rc != 0 || !std::regex_search(r.out, m, re)) return NAN;
  double v = std::stod(m[1].str());
  const std::string u = m[2].str();
  if (u == "K") v *= 1e3;
  else if (u == "M") v *= 1e6;
  else if (u == "G") v *= 1e9;
  else if (u == "T") v *= 1e12;
  return v;
}

double ShaperProbe::rate_bps() {
  if (auto a = adaptive_state()) {
    try {
      return a->at("upload").at("rate_bps").get<double>();
    } catch (const std::exception&) {
    }
  }
  double v = tc_rate_bps();
  source_ = std::isfinite(v) ? "tc class 1:1" : "none";
  return v;
}

// ---- the scenario -------------------------------------------------------------------------------

Result run_scenario(const Topology& topo, ShaperProbe& shaper, const Options& o) {
  Result res;
  if (o.steps.empty()) {
    res.error = "no steps";
    return res;
  }
  if (!topo.set_modem(o.steps[0].modem_bps, &res.error)) return res;
  res.loadavg_before = loadavg();
  if (o.game && o.idle_s > 0) {
    OneWay idle = one_way_delays(kCli, kIpCli, kSrv, kIpSrv, kGamePort, o.idle_s);
    if (idle.sent < 0) {
      res.error = "the game flow could not open its sockets";
      return res;
    }
    res.idle_p50_ms = idle.p50();
    res.idle_p99_ms = idle.p99();
    res.idle_n = static_cast<long>(idle.ms.size());
  }

  double total = 0;
  for (const auto& s : o.steps) total += s.seconds;
  TcpSink sink(kSrv, kIpSrv, {kBulkPort});
  if (!sink.ok()) {
    res.error = "the TCP sink could not bind";
    return res;
  }
  std::unique_ptr<TcpBulk> bulk;
  if (o.bulk) {
    bulk = std::make_unique<TcpBulk>(kCli, kIpSrv, kBulkPort, "cubic");
    if (!bulk->error().empty()) {
      res.error = bulk->error();
      return res;
    }
  }

  // Everything below is timed from t0 (unix seconds for the game flow's stamps, steady for sleeping).
  const double t0 = unix_now();
  const auto c0 = Clock::now();
  auto at = [&](double s) { return c0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - c0).count(); };

  OneWay game;
  std::thread game_thread;
  if (o.game) game_thread = std::thread([&] { game = one_way_delays(kCli, kIpCli, kSrv, kIpSrv, kGamePort, total); });

  struct Raw {
    double t, modem, shaper;
    uint64_t bytes;
  };
  std::vector<Raw> raw;
  std::atomic<double> modem_now{o.steps[0].modem_bps};
  std::atomic<bool> stop{false};
  std::thread sampler([&] {
    raw.push_back({0, modem_now.load(), shaper.rate_bps(), sink.snapshot()[kBulkPort]});
    for (int k = 1; !stop.load() && k * o.sample_s <= total + 1e-9; ++k) {
      std::this_thread::sleep_until(at(k * o.sample_s));
      const double t = elapsed();
      const uint64_t b = sink.snapshot()[kBulkPort];
      const double m = modem_now.load();
      raw.push_back({t, m, shaper.rate_bps(), b});
    }
  });

  std::vector<std::pair<uint64_t, uint64_t>> bytes(o.steps.size());
  double planned = 0;
  for (size_t i = 0; i < o.steps.size(); ++i) {
    const Step& s = o.steps[i];
    std::this_thread::sleep_until(at(planned));
    Phase ph;
    ph.modem_bps = s.modem_bps;
    if (i > 0) {
      std::string err;
      if (!topo.set_modem(s.modem_bps, &err)) res.error += err;
    }
    modem_now.store(s.modem_bps);
    ph.start_s = elapsed();
    if (s.at_start) s.at_start();
    const double settle = std::min(o.settle_s, s.seconds / 2);
    std::this_thread::sleep_until(at(planned + settle));
    bytes[i].first = sink.snapshot()[kBulkPort];
    planned += s.seconds;
    std::this_thread::sleep_until(at(planned));
    bytes[i].second = sink.snapshot()[kBulkPort];
    ph.end_s = elapsed();
    res.phases.push_back(ph);
  }
  stop.store(true);
  sampler.join();
  if (game_thread.joinable()) game_thread.join();
  if (bulk) bulk->stop();
  sink.stop();
  res.loadavg_after = loadavg();
  res.shaper_source = shaper.source();

  // Per phase: the game flow's delays sent in [start + settle, end), the bulk's goodput, the shaper's rate.
  std::vector<double> sent_rel(game.sent_at.size());
  for (size_t k = 0; k < sent_rel.size(); ++k) sent_rel[k] = game.sent_at[k] - t0;
  for (size_t i = 0; i < res.phases.size(); ++i) {
    Phase& ph = res.phases[i];
    const double from = ph.start_s + std::min(o.settle_s, o.steps[i].seconds / 2), to = ph.end_s;
    std::vector<double> d;
    for (size_t k = 0; k < sent_rel.size(); ++k)
      if (sent_rel[k] >= from && sent_rel[k] < to) d.push_back(game.ms[k]);
    ph.game_n = static_cast<long>(d.size());
    ph.game_expected = o.game ? static_cast<long>((to - from) / 0.010) : 0;
    if (!d.empty()) {
      ph.game_p50_ms = percentile(d, 50);
      ph.game_p99_ms = percentile(d, 99);
      ph.game_max_ms = *std::max_element(d.begin(), d.end());
    }
    ph.bulk_bps = 8.0 * static_cast<double>(bytes[i].second - bytes[i].first) / (to - from);
    double sum = 0;
    int n = 0;
    for (const auto& r : raw) {
      if (r.t < from || r.t > to || !std::isfinite(r.shaper)) continue;
      ph.shaper_min_bps = n ? std::min(ph.shaper_min_bps, r.shaper) : r.shaper;
      ph.shaper_max_bps = n ? std::max(ph.shaper_max_bps, r.shaper) : r.shaper;
      sum += r.shaper;
      ++n;
    }
    if (n) ph.shaper_mean_bps = sum / n;
  }
  // The series: per interval (previous sample, this sample].
  for (size_t k = 1; k < raw.size(); ++k) {
    Sample s;
    s.t_s = raw[k].t;
    s.modem_bps = raw[k].modem;
    s.shaper_bps = raw[k].shaper;
    s.bulk_bps = 8.0 * static_cast<double>(raw[k].bytes - raw[k - 1].bytes) / (raw[k].t - raw[k - 1].t);
    for (size_t i = 0; i < res.phases.size(); ++i)
      if (s.t_s > res.phases[i].start_s) s.phase = static_cast<int>(i) + 1;
    std::vector<double> d;
    for (size_t j = 0; j < sent_rel.size(); ++j)
      if (sent_rel[j] > raw[k - 1].t && sent_rel[j] <= raw[k].t) d.push_back(game.ms[j]);
    s.game_n = static_cast<long>(d.size());
    if (!d.empty()) {
      s.game_max_ms = *std::max_element(d.begin(), d.end());
      s.game_p99_ms = percentile(d, 99);
    }
    res.series.push_back(s);
  }

  // Files: the scratch directory, and QT_ADAPTIVE_OUT when set (the bench's).
  std::vector<std::string> dirs{scratch_dir("adaptive-" + o.label)};
  if (const char* out = std::getenv("QT_ADAPTIVE_OUT"); out && *out) {
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    dirs.push_back(out);
  }
  for (const auto& dir : dirs) {
    const std::string csv = dir + "/" + o.label + ".csv", js = dir + "/" + o.label + ".json";
    {
      std::ofstream f(csv);
      f << "t_s,phase,modem_mbit,shaper_mbit,bulk_mbit,game_max_ms,game_p99_ms,game_n\n";
      char line[256];
      for (const auto& s : res.series) {
        std::snprintf(line, sizeof line, "%.3f,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%ld\n", s.t_s, s.phase, s.modem_bps / 1e6,
                      s.shaper_bps / 1e6, s.bulk_bps / 1e6, s.game_max_ms, s.game_p99_ms, s.game_n);
        f << line;
      }
    }
    {
      std::ofstream f(js);
      f << res.to_json(o).dump(1) << "\n";
    }
    res.files.push_back(csv);
    res.files.push_back(js);
  }
  return res;
}

nlohmann::json Result::to_json(const Options& o) const {
  json j{{"label", o.label},
         {"policy", o.policy},
         {"settle_s", o.settle_s},
         {"sample_s", o.sample_s},
         {"shaper_source", shaper_source},
         {"loadavg_before", loadavg_before},
         {"loadavg_after", loadavg_after},
         {"idle", {{"game_p50_ms", num(idle_p50_ms)}, {"game_p99_ms", num(idle_p99_ms)}, {"game_n", idle_n}}},
         {"error", error}};
  json ph = json::array();
  for (const auto& p : phases)
    ph.push_back({{"modem_bps", p.modem_bps},
                  {"start_s", p.start_s},
                  {"end_s", p.end_s},
                  {"game_p50_ms", num(p.game_p50_ms)},
                  {"game_p99_ms", num(p.game_p99_ms)},
                  {"game_max_ms", num(p.game_max_ms)},
                  {"game_n", p.game_n},
                  {"game_expected", p.game_expected},
                  {"bulk_bps", num(p.bulk_bps)},
                  {"bulk_fraction", num(p.bulk_fraction())},
                  {"shaper_min_bps", num(p.shaper_min_bps)},
                  {"shaper_mean_bps", num(p.shaper_mean_bps)},
                  {"shaper_max_bps", num(p.shaper_max_bps)}});
  j["phases"] = ph;
  return j;
}

std::string Result::table(const std::string& title) const {
  std::string s = "[ measured ] " + title + " (load average before " + loadavg_before + ", after " + loadavg_after +
                  "; shaper from " + shaper_source + ")\n";
  char line[320];
  std::snprintf(line, sizeof line, "[ measured ]   %-6s %7s %26s %24s %20s\n", "phase", "modem", "game p50/p99/max ms",
                "bulk Mbit/s (% modem)", "shaper Mbit/s min-max");
  s += line;
  if (idle_n > 0) {
    std::snprintf(line, sizeof line, "[ measured ]   %-6s %7s %8.2f/%7.2f/%9s %24s %20s\n", "idle", "", idle_p50_ms,
                  idle_p99_ms, "-", "-", "-");
    s += line;
  }
  for (size_t i = 0; i < phases.size(); ++i) {
    const Phase& p = phases[i];
    char gm[64], bk[64], sh[64];
    std::snprintf(gm, sizeof gm, "%8.2f/%7.2f/%9.2f", p.game_p50_ms, p.game_p99_ms, p.game_max_ms);
    std::snprintf(bk, sizeof bk, "%6.1f (%5.1f %%)", p.bulk_bps / 1e6, 100 * p.bulk_fraction());
    std::snprintf(sh, sizeof sh, "%s-%s", mbit(p.shaper_min_bps).c_str(), mbit(p.shaper_max_bps).c_str());
    std::snprintf(line, sizeof line, "[ measured ]   %-6zu %7s %26s %24s %20s   (game %ld of %ld)\n", i + 1,
                  mbit(p.modem_bps).c_str(), gm, bk, sh, p.game_n, p.game_expected);
    s += line;
  }
  return s;
}

}  // namespace qt::adaptive
