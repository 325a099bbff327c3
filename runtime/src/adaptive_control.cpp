// The adaptive rate's decisions (qosrun/adaptive.hpp, docs/adaptive.md).
//
// In the spirit of cake-autorate: raise the rate while the link is loaded and
// the delay stays low, cut it towards what was achieved when the delay rises,
// drift back to the start rate when the link is idle. Two differences, both
// measured by the wire test: decisions come every probe (20 ms), not every
// few hundred ms, so a delay rise is seen after ~40 ms of queue; and after a
// cut the rate climbs slowly near the rate it was cut at, so it does not keep
// overshooting the same capacity at full speed.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "qosc/units.hpp"
#include "qosrun/adaptive.hpp"

namespace qosrun::adaptive {

namespace {
std::string mbit(double bps) { return fmt::format("{:.1f} Mbit/s", bps / 1e6); }
}  // namespace

RateController::RateController(std::optional<DirectionConfig> upload, std::optional<DirectionConfig> download,
                               std::vector<std::string> reflectors, Tuning tuning)
    : tuning_(tuning) {
  std::optional<DirectionConfig> cfg[2] = {std::move(upload), std::move(download)};
  for (size_t i = 0; i < 2; ++i) {
    if (!cfg[i]) continue;
    Direction& d = dirs_[i];
    d.present = true;
    d.view.config = *cfg[i];
    d.rate = d.applied = static_cast<double>(std::clamp(cfg[i]->start_bps, cfg[i]->min_bps, cfg[i]->max_bps));
    d.view.rate_bps = static_cast<uint64_t>(d.rate);
  }
  for (auto& a : reflectors) {
    Reflector r;
    r.view.addr = std::move(a);
    refl_.push_back(std::move(r));
  }
}

void RateController::set_rate(size_t dir, uint64_t bps) {
  Direction& d = dirs_[dir];
  if (!d.present) return;
  d.rate = d.applied = static_cast<double>(std::clamp(bps, d.view.config.min_bps, d.view.config.max_bps));
  d.view.rate_bps = static_cast<uint64_t>(d.rate);
}

void RateController::reconfigure(size_t dir, const DirectionConfig& c) {
  Direction& d = dirs_[dir];
  d.view.config = c;
  if (!d.present) {
    d.present = true;
    d.rate = d.applied = static_cast<double>(std::clamp(c.start_bps, c.min_bps, c.max_bps));
  }
  d.rate = std::clamp(d.rate, double(c.min_bps), double(c.max_bps));
  d.applied = d.rate;
  d.view.rate_bps = static_cast<uint64_t>(d.rate);
}

void RateController::note(double t, const std::string& what) {
  decisions_.push_back(fmt::format("+{:.1f}s {}", t - t0_, what));
  while (decisions_.size() > 10) decisions_.pop_front();
}

void RateController::on_sent(size_t r, double t) {
  if (r >= refl_.size()) return;
  refl_[r].view.sent++;
  refl_[r].last_sent = t;
  if (t0_ < 0) t0_ = t;
}

void RateController::on_rtt(size_t r, double t, double rtt_ms) {
  if (r >= refl_.size() || !(rtt_ms >= 0)) return;
  Reflector& x = refl_[r];
  if (t0_ < 0) t0_ = t;
  x.view.received++;
  x.last_answer = t;
  last_answer_ = std::max(last_answer_, t);
  x.fresh = true;
  x.view.last_rtt_ms = rtt_ms;
  if (!x.view.alive) {
    if (x.view.received > 1) note(t, fmt::format("reflector {} answers again", x.view.addr));
    x.view.alive = true;
    x.view.note.clear();
  }
  if (x.view.received == 1) x.view.baseline_ms = rtt_ms;
  double threshold = 1e9;
  for (const auto& d : dirs_)
    if (d.present) threshold = std::min(threshold, d.view.config.delay_ms);
  double delta = rtt_ms - x.view.baseline_ms;
  if (delta < 0) {
    // A lower RTT is the path without queues: follow it quickly.
    x.view.baseline_ms += 0.5 * delta;
  } else if (delta < threshold / 2) {
    // Slow drift inside the normal band (about 30 s to follow a change); a
    // jump is handled by the re-basing rule in tick().
    x.view.baseline_ms += delta * std::min(1.0, 0.02 * tuning_.probe_interval_s * refl_.size());
  }
  x.view.delay_ms = rtt_ms - x.view.baseline_ms;
  x.over = x.view.delay_ms > threshold ? x.over + 1 : 0;
  if (x.low_since >= 0) x.low_min = std::min(x.low_min, rtt_ms);
}

size_t RateController::alive_reflectors() const {
  return static_cast<size_t>(std::count_if(refl_.begin(), refl_.end(), [](const Reflector& r) { return r.view.alive; }));
}

std::vector<ReflectorView> RateController::reflectors() const {
  std::vector<ReflectorView> v;
  for (const auto& r : refl_) v.push_back(r.view);
  return v;
}

bool RateController::tick(double t, uint64_t achieved_up_bps, uint64_t achieved_down_bps) {
  if (t0_ < 0) t0_ = t;
  const double dt = last_tick_ < 0 ? 0 : std::max(0.0, t - last_tick_);
  last_tick_ = t;
  const uint64_t achieved[2] = {achieved_up_bps, achieved_down_bps};
  double max_load = 0;
  for (size_t i = 0; i < 2; ++i) {
    Direction& d = dirs_[i];
    if (!d.present) continue;
    d.view.achieved_bps = achieved[i];
    d.view.load = d.rate > 0 ? static_cast<double>(achieved[i]) / d.rate : 0;
    max_load = std::max(max_load, d.view.load);
  }

  // Which reflectors count: those that answered within the timeout.
  for (auto& r : refl_) {
    bool waiting = r.last_sent >= 0 && (r.last_answer < 0 || r.last_sent > r.last_answer);
    if (r.view.alive && waiting && t - std::max(r.last_answer, 0.0) > tuning_.reflector_timeout_s &&
        r.last_answer >= 0) {
      r.view.alive = false;
      r.over = 0;
      r.view.note = fmt::format("no answer for {:.1f} s", t - r.last_answer);
      note(t, fmt::format("reflector {} left out: no answer for {:.1f} s", r.view.addr, t - r.last_answer));
    } else if (!r.view.alive && r.last_answer < 0 && r.last_sent >= 0 && t - t0_ > tuning_.reflector_timeout_s) {
      r.view.note = "has not answered";
    }
  }
  const size_t alive = alive_reflectors();

  // A baseline the path left for good (a route change): while the link is
  // unloaded every sample stays above it, so the queue is not ours.
  for (auto& r : refl_) {
    if (!r.view.alive || !r.fresh) continue;
    double threshold = 1e9;
    for (const auto& d : dirs_)
      if (d.present) threshold = std::min(threshold, d.view.config.delay_ms);
    if (max_load < 0.25 && r.view.delay_ms > threshold) {
      if (r.low_since < 0) {
        r.low_since = t;
        r.low_min = r.view.last_rtt_ms;
      } else if (t - r.low_since >= tuning_.rebase_after_s) {
        note(t, fmt::format("reflector {} re-based: {:.2f} -> {:.2f} ms (its RTT stayed higher on an unloaded link)",
                            r.view.addr, r.view.baseline_ms, r.low_min));
        r.view.baseline_ms = r.low_min;
        r.view.delay_ms = r.view.last_rtt_ms - r.view.baseline_ms;
        r.over = 0;
        r.low_since = -1;
      }
    } else {
      r.low_since = -1;
    }
  }

  for (auto& r : refl_) r.fresh = false;
  if (alive == 0) {
    bool probing = std::any_of(refl_.begin(), refl_.end(), [](const Reflector& r) { return r.last_sent >= 0; });
    if (probing && t - t0_ > tuning_.reflector_timeout_s) {
      std::string rates;
      for (const auto& d : dirs_)
        if (d.present) rates += fmt::format("{}{} {}", rates.empty() ? "" : ", ", d.view.config.name, mbit(d.rate));
      std::string h = fmt::format("every reflector stopped answering: holding {}", rates);
      if (holding_.empty()) note(t, h);
      holding_ = h;
    }
    return false;
  }
  if (!holding_.empty()) {
    note(t, "a reflector answers: adapting again");
    holding_.clear();
  }

  // Which directions a delay rise is blamed on (an RTT cannot tell).
  bool carrying[2] = {false, false};
  double top_load = 0;
  for (size_t i = 0; i < 2; ++i) {
    const Direction& d = dirs_[i];
    if (!d.present) continue;
    carrying[i] = static_cast<double>(d.view.achieved_bps) >= tuning_.carrying_of_min * double(d.view.config.min_bps);
    if (carrying[i]) top_load = std::max(top_load, d.view.load);
  }
  bool changed = false;
  for (size_t i = 0; i < 2; ++i) {
    Direction& d = dirs_[i];
    if (!d.present) continue;
    size_t votes = 0;
    for (const auto& r : refl_)
      if (r.view.alive && r.over >= tuning_.bloat_samples &&
          r.view.delay_ms > d.view.config.delay_ms)
        ++votes;
    bool bloated = votes > 0 && votes * 2 >= alive;
    decide(d, t, dt, bloated, carrying[i] && d.view.load >= 0.5 * top_load);
    double step = std::abs(d.rate - d.applied) / std::max(d.applied, 1.0);
    if (step >= tuning_.rate_step_min || (d.rate != d.applied && (d.rate == d.view.config.min_bps ||
                                                                  d.rate == d.view.config.max_bps))) {
      d.applied = d.rate;
      d.view.rate_bps = static_cast<uint64_t>(std::llround(d.rate));
      changed = true;
    }
  }
  return changed;
}

void RateController::decide(Direction& d, double t, double dt, bool bloated, bool to_blame) {
  const DirectionConfig& c = d.view.config;
  const double lo = static_cast<double>(c.min_bps), hi = static_cast<double>(c.max_bps);
  const double achieved = static_cast<double>(d.view.achieved_bps);
  const bool refractory = t - d.last_cut < tuning_.refractory_s;
  if (bloated && to_blame) {
    if (refractory) return;
    double before = d.rate;
    // Towards what the link carried: the shaper's rate may be far above it.
    d.rate = std::clamp(std::min(d.rate, achieved) * tuning_.cut_factor, lo, hi);
    d.cut_rate = std::min(before, achieved);
    d.last_cut = t;
    d.view.cuts++;
    double worst = 0;
    std::string who;
    for (const auto& r : refl_)
      if (r.view.alive && r.view.delay_ms > worst) {
        worst = r.view.delay_ms;
        who = r.view.addr;
      }
    d.view.last_decision = fmt::format("cut {} {} -> {}: RTT +{:.1f} ms over baseline ({}), achieved {}", c.name,
                                       mbit(before), mbit(d.rate), worst, who, mbit(achieved));
    note(t, d.view.last_decision);
    return;
  }
  if (refractory) return;
  if (d.cut_rate > 0 && (t - d.last_cut > tuning_.near_memory_s || d.rate > d.cut_rate * (1 + tuning_.near)))
    d.cut_rate = 0;   // past the point of the last cut without a delay rise: the capacity grew
  // Rising or drifting needs to see that the delay is low now, not on answers
  // that stopped coming.
  if (t - last_answer_ > tuning_.fresh_s) return;
  if (!bloated && d.view.load >= tuning_.high_load) {
    bool near = d.cut_rate > 0 && d.rate >= d.cut_rate * (1 - tuning_.near);
    double per_s = near ? tuning_.near_rise_per_s : tuning_.rise_per_s;
    double before = d.rate;
    d.rate = std::clamp(d.rate * std::pow(1 + per_s, dt), lo, hi);
    if (d.rate > before && d.view.rises++ % 50 == 0) {
      d.view.last_decision = fmt::format("raise {} from {}: loaded ({:.0f} %), delay low", c.name, mbit(before),
                                         d.view.load * 100);
    }
    return;
  }
  if (!bloated && d.view.load < tuning_.high_load) {
    // Idle or lightly loaded: drift back towards the start rate, slowly, so a
    // rate learnt under load is not forgotten at once.
    double target = static_cast<double>(c.start_bps);
    if (d.rate > target) d.rate = std::max(target, d.rate * std::pow(1 - tuning_.drift_per_s, dt));
    else if (d.rate < target) d.rate = std::min(target, d.rate * std::pow(1 + tuning_.drift_per_s, dt));
  }
}

}  // namespace qosrun::adaptive
