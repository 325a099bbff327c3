// `qosrun stats IFACE [--json] [--watch [SECS]] [--flows N] [--metrics ADDR]`
// and the live view the foreground mode shows. See qosrun/stats.hpp.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qosrun/attach.hpp"
#include "qosrun/classify.hpp"   // can_load_bpf
#include "qosrun/cli.hpp"
#include "qosrun/stats.hpp"

namespace qosrun {

namespace {

std::atomic<bool> g_signalled{false};
extern "C" void on_stop_signal(int) { g_signalled.store(true); }

// SIGINT/SIGTERM set g_signalled while this object lives.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_{}, old_term_{};
};

bool stopped(const std::atomic<bool>* stop) { return g_signalled.load() || (stop && stop->load()); }

// Sleeps up to `secs`, waking every 50 ms to look at the stop flags; false when stopped.
bool sleep_for(double secs, const std::atomic<bool>* stop) {
  using namespace std::chrono;
  auto until = steady_clock::now() + duration_cast<steady_clock::duration>(duration<double>(secs));
  while (steady_clock::now() < until) {
    if (stopped(stop)) return false;
    steady_clock::duration left = until - steady_clock::now();
    std::this_thread::sleep_for(std::min<steady_clock::duration>(left, milliseconds(50)));
  }
  return !stopped(stop);
}

bool is_tty(const std::ostream& out) { return &out == &std::cout && isatty(STDOUT_FILENO); }

// Redraws the view in place: home, each line cleared to its end, the rest of the screen cleared.
void draw_in_place(std::ostream& out, const std::string& text, bool first) {
  std::string frame = first ? "\x1b[?25l\x1b[2J\x1b[H" : "\x1b[H";
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    frame.append(text, pos, nl - pos);
    frame += "\x1b[K\n";
    pos = nl + 1;
  }
  frame += "\x1b[J";
  out << frame << std::flush;
}

// Shared state between the sampling loop and the metrics endpoint.
struct Shared {
  std::mutex mu;
  const StatsSource* src = nullptr;
  SampleOptions sopts;
  size_t top_flows = 0;
  std::optional<Sample> last_scrape;
};

}  // namespace

int run_live_view(const StatsSource& src, const LiveViewOptions& opts, const std::atomic<bool>& stop) {
  std::ostream& out = opts.out ? *opts.out : std::cout;
  const bool tty = is_tty(out);
  SampleOptions so;
  so.flows = opts.top_flows > 0;
  std::optional<Sample> prev;
  bool first = true;
  int rc = cli::kExitOk;
  while (!stop.load()) {
    auto s = src.sample(so);
    if (!s) {
      if (tty && !first) out << "\x1b[?25h";
      print_error(s.error(), 0);
      rc = cli::kExitError;
      break;
    }
    View v = make_view(src.manifest(), src.ifname(), *s, prev ? &*prev : nullptr, opts.top_flows);
    std::string text = render_text(v, opts.color && tty);
    if (tty) {
      draw_in_place(out, text + "Ctrl-C detaches and exits.\n", first);
    } else {
      out << text << "\n" << std::flush;
    }
    first = false;
    prev = std::move(*s);
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(opts.interval_s);
    while (!stop.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (tty && !first) out << "\x1b[?25h" << std::flush;
  return rc;
}

int run_stats(const StatsOptions& opts, std::ostream& out, std::ostream& err, const std::atomic<bool>* stop) {
  if (opts.ifname.empty()) {
    err << "qosrun: error: stats needs an interface: qosrun stats IFACE\n";
    return cli::kExitError;
  }
  if (opts.interval_s <= 0 || opts.interval_s > 3600) {
    err << "qosrun: error: --watch/--interval takes seconds between 0 and 3600, e.g. --watch 1\n";
    return cli::kExitError;
  }
  if (!can_load_bpf()) {
    err << "qosrun: error: stats reads the policy's BPF maps, which needs root (or CAP_BPF); run it with sudo\n";
    return cli::kExitError;
  }
  auto src = StatsSource::open_pinned(opts.ifname, opts.pin_dir);
  if (!src) {
    print_error(err, src.error(), opts.verbosity);
    return cli::kExitError;
  }
  StopSignals signals;
  g_signalled.store(false);

  const bool tty = is_tty(out);
  const size_t top = opts.top_flows;
  SampleOptions so;
  so.flows = top > 0;

  Shared shared;
  shared.src = &*src;
  shared.sopts = so;
  shared.top_flows = top;
  std::unique_ptr<MetricsServer> server;
  if (!opts.metrics.empty()) {
    auto srv = MetricsServer::start(opts.metrics, opts.metrics_allow_remote, [&shared]() -> std::string {
      std::lock_guard<std::mutex> lock(shared.mu);
      auto s = shared.src->sample(shared.sopts);
      if (!s) throw std::runtime_error(s.error().message);
      View v = make_view(shared.src->manifest(), shared.src->ifname(), *s,
                         shared.last_scrape ? &*shared.last_scrape : nullptr, shared.top_flows);
      shared.last_scrape = std::move(*s);
      return prometheus_text(v);
    });
    if (!srv) {
      print_error(err, srv.error(), opts.verbosity);
      return cli::kExitError;
    }
    server = std::move(*srv);
    err << fmt::format("qosrun: serving metrics on http://{}/metrics (Ctrl-C stops)\n", server->address())
        << std::flush;
  }

  auto take = [&]() -> Result<Sample> {
    std::lock_guard<std::mutex> lock(shared.mu);
    return src->sample(so);
  };

  if (!opts.watch) {
    if (server) {   // metrics only: serve until stopped
      while (sleep_for(0.2, stop)) {
      }
      return cli::kExitOk;
    }
    auto a = take();
    if (!a) {
      print_error(err, a.error(), opts.verbosity);
      return cli::kExitError;
    }
    std::optional<Sample> b;
    if (opts.interval_s > 0 && opts.window) {
      sleep_for(opts.interval_s, stop);
      auto s = take();
      if (!s) {
        print_error(err, s.error(), opts.verbosity);
        return cli::kExitError;
      }
      b = std::move(*s);
    }
    View v = b ? make_view(src->manifest(), opts.ifname, *b, &*a, top)
               : make_view(src->manifest(), opts.ifname, *a, nullptr, top);
    if (opts.json)
      out << to_json(v).dump() << "\n";
    else
      out << render_text(v, tty);
    out << std::flush;
    return cli::kExitOk;
  }

  std::optional<Sample> prev;
  bool first = true;
  uint64_t printed = 0;
  int rc = cli::kExitOk;
  for (;;) {
    auto s = take();
    if (!s) {
      if (tty && !opts.json && !first) out << "\x1b[?25h" << std::flush;
      print_error(err, s.error(), opts.verbosity);
      rc = cli::kExitError;
      break;
    }
    View v = make_view(src->manifest(), opts.ifname, *s, prev ? &*prev : nullptr, top);
    if (opts.json) {
      out << to_json(v).dump() << "\n" << std::flush;
    } else if (tty) {
      draw_in_place(out, render_text(v, true), first);
    } else {
      out << render_text(v, false) << "\n" << std::flush;
    }
    first = false;
    prev = std::move(*s);
    ++printed;
    if (opts.count && printed >= opts.count) break;
    if (!sleep_for(opts.interval_s, stop)) break;
  }
  if (tty && !opts.json && !first) out << "\x1b[?25h" << std::flush;
  return rc;
}

namespace cli {

void register_stats(CommandTable& t) {
  // `qosrun OBJ IFACE` (attach_cmd.cpp) shows this live view while it runs.
  set_foreground_view([](const ForegroundContext& ctx) -> int {
    auto src = StatsSource::from_fds(ctx.manifest, ctx.stats_fd, ctx.flows_fd, ctx.ifname);
    if (!src) {
      print_error(src.error(), ctx.verbosity);
      return basic_foreground_view(ctx);
    }
    LiveViewOptions o;
    // Not a terminal (a service's journal, a pipe): one view a minute, not
    // forty lines a second.
    if (!isatty(STDOUT_FILENO)) o.interval_s = 60;
    return run_live_view(*src, o, ctx.stop);
  });
  auto opts = std::make_shared<StatsOptions>();
  auto watch = std::make_shared<std::vector<std::string>>();
  auto flows = std::make_shared<int>(-1);
  CLI::App* sub = t.add(
      "stats",
      "Show the statistics of the policy attached to IFACE: per class packets, bytes, rates, drops by reason "
      "(policer, drop rule, queue), queue backlog and delay, top flows. Needs root.",
      [opts, watch, flows, &g = t.globals()]() -> int {
        opts->verbosity = g.verbosity;
        // --watch takes an optional number: `stats --watch eth0` means the interface, not a period.
        if (!watch->empty()) {
          const std::string& w = watch->front();
          char* end = nullptr;
          double secs = std::strtod(w.c_str(), &end);
          if (end && *end == '\0' && !w.empty()) {
            opts->interval_s = secs;
          } else if (opts->ifname.empty()) {
            opts->ifname = w;
          } else {
            std::cerr << fmt::format("qosrun: error: --watch takes seconds (e.g. --watch 2), not '{}'\n", w);
            return kExitError;
          }
        }
        if (*flows >= 0)
          opts->top_flows = static_cast<size_t>(*flows);
        else
          opts->top_flows = opts->json ? 0 : 5;
        return run_stats(*opts, std::cout, std::cerr);
      });
  sub->add_option("IFACE", opts->ifname, "interface a policy is attached to (qosrun attach)");
  sub->add_flag("--json", opts->json, "one JSON object per sample (one line each), for scripts");
  CLI::Option* w = sub->add_option("--watch", *watch, "redraw every SECS seconds (default 1) until Ctrl-C")
                       ->expected(0, 1);
  w->type_name("[SECS]");
  sub->add_option_function<double>(
      "--interval", [opts](double v) { opts->interval_s = v; },
      "seconds between samples; without --watch, the window rates are measured over (default 1)");
  sub->add_flag_function(
      "--no-rates", [opts](int64_t) { opts->window = false; },
      "without --watch: print counters at once, without measuring rates");
  sub->add_option("--flows", *flows, "show the N top flows (default 5 in the terminal view, 0 with --json)");
  sub->add_option("--count", opts->count, "with --watch: stop after N samples");
  sub->add_option("--metrics", opts->metrics,
                  "serve Prometheus metrics on ADDR:PORT (e.g. 127.0.0.1:9464; loopback only by default)");
  sub->add_flag("--metrics-allow-remote", opts->metrics_allow_remote,
                "allow --metrics on a non-loopback address (exposes your traffic statistics)");
  sub->add_option("--pin-dir", opts->pin_dir, "bpffs directory of the attachment (default: where qosrun attach pins)");
  sub->callback([sub, opts, watch] { opts->watch = sub->count("--watch") > 0; });
}

}  // namespace cli
}  // namespace qosrun
