// The adaptive rate's decisions on a simulated link: a modem whose capacity
// steps, a FIFO in front of it, a bulk upload that keeps the shaper busy and
// is ACK-clocked by the modem, probes whose RTT is the base RTT plus the
// modem's queue. What the issue asks of the real link (tests/wire) is asked of
// the model here too, so a change to the decisions that breaks it fails
// without a kernel.
#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "qosrun/adaptive.hpp"

namespace {

using qosrun::adaptive::DirectionConfig;
using qosrun::adaptive::RateController;

DirectionConfig upload(uint64_t min, uint64_t max, uint64_t start = 0) {
  DirectionConfig c;
  c.name = "upload";
  c.min_bps = min;
  c.max_bps = max;
  c.start_bps = start ? start : max;
  c.delay_ms = 5;
  return c;
}

struct Phase {
  double start_s = 0, capacity_bps = 0;
};

// One run of the model: every 20 ms a probe to the next live reflector, then
// a decision, as run_adaptive does.
struct LinkModel {
  std::vector<Phase> phases;
  double base_rtt_ms = 10;
  double buffer_s = 0.25;       // the modem's buffer, in time at its rate
  bool loaded = true;           // a backlogged upload
  double dt = 0.02;
  double now = 0;               // runs continue where the last one ended
  double queue_bits = 0;
  // Per step: the modem's queue delay (ms) and the shaper's rate.
  struct Sample {
    double t, capacity, rate, queue_ms;
  };
  std::vector<Sample> samples;

  double capacity(double t) const {
    double c = phases.front().capacity_bps;
    for (const auto& p : phases)
      if (t >= p.start_s) c = p.capacity_bps;
    return c;
  }

  // `answers(r, t)`: whether reflector r answers at t; `extra_ms(r, t)`: a
  // path change of its own.
  template <class Answers, class Extra>
  void run(RateController& ctl, double seconds, size_t reflectors, Answers answers, Extra extra_ms) {
    size_t next = 0;
    for (const double end = now + seconds; now < end; now += dt) {
      const double t = now;
      const double c = capacity(t);
      const double rate = static_cast<double>(ctl.rate_bps(RateController::kUp));
      // ACK-clocked bulk: while the modem queues, the sender runs at about the
      // modem's rate (+5 % of cubic's probing); otherwise as fast as the shaper lets it.
      double sent = !loaded ? 0 : queue_bits > 0 ? std::min(rate, 1.05 * c) : rate;
      queue_bits = std::clamp(queue_bits + (sent - c) * dt, 0.0, buffer_s * c);
      const double queue_ms = queue_bits / c * 1e3;
      size_t r = next++ % reflectors;
      ctl.on_sent(r, t);
      if (answers(r, t)) ctl.on_rtt(r, t + 0.001, base_rtt_ms + queue_ms + extra_ms(r, t));
      ctl.tick(t + 0.002, static_cast<uint64_t>(sent), 0);
      samples.push_back({t, c, rate, queue_ms});
    }
  }
  void run(RateController& ctl, double seconds, size_t reflectors = 1) {
    run(ctl, seconds, reflectors, [](size_t, double) { return true; }, [](size_t, double) { return 0.0; });
  }

  // Over [from, to): the 99th percentile of the queue delay and the mean rate sent.
  struct Summary {
    double p99_ms = 0, mean_rate = 0, capacity = 0;
  };
  Summary summary(double from, double to) const {
    std::vector<double> q;
    double sum = 0, cap = 0;
    for (const auto& s : samples)
      if (s.t >= from && s.t < to) {
        q.push_back(s.queue_ms);
        sum += std::min(s.rate, s.capacity);
        cap = s.capacity;
      }
    std::sort(q.begin(), q.end());
    Summary out;
    if (q.empty()) return out;
    out.p99_ms = q[std::min(q.size() - 1, static_cast<size_t>(0.99 * q.size()))];
    out.mean_rate = sum / q.size();
    out.capacity = cap;
    return out;
  }
};

TEST(AdaptiveController, FollowsTheIssuesSteps) {
  // Modem 100 -> 30 -> 60 Mbit/s, 15 s each; policy link adaptive 10mbit-100mbit.
  RateController ctl(upload(10'000'000, 100'000'000), std::nullopt, {"r"});
  LinkModel m;
  m.phases = {{0, 100e6}, {15, 30e6}, {30, 60e6}};
  m.run(ctl, 45);
  for (double start : {0.0, 15.0, 30.0}) {
    auto s = m.summary(start + 3, start + 15);
    SCOPED_TRACE(testing::Message() << "phase at " << start << " s: capacity " << s.capacity / 1e6 << " Mbit/s");
    EXPECT_LE(s.p99_ms, 10.0) << "queue delay p99 after the first 3 s";
    EXPECT_GE(s.mean_rate, 0.75 * s.capacity) << "mean rate " << s.mean_rate / 1e6;
  }
  for (const auto& s : m.samples) {
    ASSERT_GE(s.rate, 10e6);
    ASSERT_LE(s.rate, 100e6);
  }
  EXPECT_GE(ctl.view(RateController::kUp).cuts, 1u);
}

TEST(AdaptiveController, WithoutItTheModemQueueFills) {
  // The model itself shows the problem: a shaper held at 100 Mbit/s (MIN = MAX)
  // leaves the queue in the modem.
  RateController ctl(upload(100'000'000, 100'000'000), std::nullopt, {"r"});
  LinkModel m;
  m.phases = {{0, 100e6}, {15, 30e6}};
  m.run(ctl, 30);
  EXPECT_GT(m.summary(18, 30).p99_ms, 200.0);
}

TEST(AdaptiveController, IdleLinkKeepsItsRate) {
  RateController ctl(upload(10'000'000, 100'000'000, 50'000'000), std::nullopt, {"r"});
  LinkModel m;
  m.phases = {{0, 30e6}};
  m.loaded = false;
  m.run(ctl, 60);
  EXPECT_EQ(ctl.rate_bps(RateController::kUp), 50'000'000u);
  EXPECT_EQ(ctl.view(RateController::kUp).cuts, 0u);
}

TEST(AdaptiveController, DriftsBackToTheStartRateWhenIdle) {
  RateController ctl(upload(10'000'000, 100'000'000), std::nullopt, {"r"});
  LinkModel m;
  m.phases = {{0, 30e6}};
  m.run(ctl, 10);
  uint64_t loaded_rate = ctl.rate_bps(RateController::kUp);
  EXPECT_LT(loaded_rate, 40'000'000u);
  m.loaded = false;
  m.run(ctl, 30);
  uint64_t later = ctl.rate_bps(RateController::kUp);
  EXPECT_GT(later, loaded_rate * 1.2) << "1 %/s upwards while idle";
  EXPECT_LT(later, 100'000'000u) << "slowly: a rate learnt under load is not forgotten at once";
}

TEST(AdaptiveController, DelayWithoutLoadIsNotCut) {
  // Someone else's traffic delays the probes; our shaper carries nothing.
  RateController ctl(upload(10'000'000, 100'000'000), std::nullopt, {"r"});
  for (int i = 0; i < 500; ++i) {
    double t = i * 0.02;
    ctl.on_sent(0, t);
    ctl.on_rtt(0, t + 0.001, i < 50 ? 10 : 60);
    ctl.tick(t + 0.002, 1'000'000, 0);
  }
  EXPECT_EQ(ctl.view(RateController::kUp).cuts, 0u);
  EXPECT_EQ(ctl.rate_bps(RateController::kUp), 100'000'000u);
}

TEST(AdaptiveController, ABaselineThatMovesForGoodIsRebased) {
  RateController ctl(upload(10'000'000, 100'000'000), std::nullopt, {"r"});
  for (int i = 0; i < 1000; ++i) {   // 20 s: a route change at 2 s adds 40 ms
    double t = i * 0.02;
    ctl.on_sent(0, t);
    ctl.on_rtt(0, t + 0.001, i < 100 ? 10 : 50);
    ctl.tick(t + 0.002, 0, 0);
  }
  auto r = ctl.reflectors();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NEAR(r[0].baseline_ms, 50, 1);
  bool said = false;
  for (const auto& d : ctl.decisions()) said |= d.find("re-based") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(AdaptiveController, ASilentReflectorIsLeftOutAndTheOthersCarryOn) {
  RateController ctl(upload(10'000'000, 100'000'000), std::nullopt, {"a", "b"});
  LinkModel m;
  m.phases = {{0, 100e6}, {10, 30e6}};
  // b stops answering at 5 s, before the step.
  m.run(ctl, 25, 2, [](size_t r, double t) { return r == 0 || t < 5; }, [](size_t, double) { return 0.0; });
  auto refl = ctl.reflectors();
  EXPECT_TRUE(refl[0].alive);
  EXPECT_FALSE(refl[1].alive);
  EXPECT_TRUE(ctl.holding().empty());
  auto s = m.summary(13, 25);
  EXPECT_LE(s.p99_ms, 10.0);
  EXPECT_LT(ctl.rate_bps(RateController::kUp), 35'000'000u);
}

TEST(AdaptiveController, EveryReflectorSilentHoldsTheRateAndSaysWhy) {
  RateController ctl(upload(10'000'000, 100'000'000), std::nullopt, {"a", "b"});
  LinkModel m;
  m.phases = {{0, 30e6}};
  m.run(ctl, 10, 2);
  auto silent = [](size_t, double) { return false; };
  auto no_extra = [](size_t, double) { return 0.0; };
  // The last answers (at most fresh_s old) may still move it; then it holds.
  m.run(ctl, 0.5, 2, silent, no_extra);
  uint64_t before = ctl.rate_bps(RateController::kUp);
  m.run(ctl, 10, 2, silent, no_extra);
  EXPECT_EQ(ctl.rate_bps(RateController::kUp), before);
  EXPECT_NE(ctl.holding().find("every reflector stopped answering"), std::string::npos) << ctl.holding();
  EXPECT_EQ(ctl.alive_reflectors(), 0u);
}

TEST(AdaptiveController, RatesStayInTheirRange) {
  RateController ctl(upload(20'000'000, 50'000'000), std::nullopt, {"r"});
  LinkModel m;
  m.phases = {{0, 5e6}, {10, 500e6}};
  m.run(ctl, 30);
  for (const auto& s : m.samples) {
    ASSERT_GE(s.rate, 20e6);
    ASSERT_LE(s.rate, 50e6);
  }
  EXPECT_EQ(ctl.rate_bps(RateController::kUp), 50'000'000u);
  ctl.set_rate(RateController::kUp, 1);
  EXPECT_EQ(ctl.rate_bps(RateController::kUp), 20'000'000u);
}

}  // namespace
