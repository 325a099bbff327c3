// Token-bucket accuracy of the XDP policer: for a class with `rate R; burst
// B;`, packets offered far above R through qos_xdp (BPF_PROG_TEST_RUN with
// `repeat`) over a measured window t must pass R*t + B bytes within 1%,
// from one thread and from two threads pinned to different CPUs (the bucket
// is shared by all CPUs: two CPUs must not get 2R).
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "pipeline.hpp"
#include "qosrun/classify.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/testrun.hpp"

using namespace qosc::difftest;
using qosrun::Hook;

namespace {

constexpr uint64_t kRateBps = 200'000'000;   // 200mbit = 25 MB/s
constexpr uint64_t kBurstBytes = 256 * 1024; // 256kb
constexpr size_t kFrame = 1000;
constexpr double kWindow = 1.0;              // seconds of offered load per scenario

const std::string kPolicy = R"(policy tb {
    link 10gbit;
    class limited { priority 1; rate 200mbit; burst 256kb; }
    class other   { priority 2; default; }
    rule udp dport 5001 -> limited;
}
)";

std::vector<uint8_t> udp_frame(uint16_t dport, size_t len) {
  std::vector<uint8_t> f(len, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  const size_t ip_len = len - 14;
  f[16] = static_cast<uint8_t>(ip_len >> 8);
  f[17] = static_cast<uint8_t>(ip_len);
  f[22] = 64;
  f[23] = 17;
  f[26] = 10, f[29] = 1, f[30] = 10, f[33] = 2;
  f[34] = 0x9c, f[35] = 0x40;   // sport 40000
  f[36] = static_cast<uint8_t>(dport >> 8);
  f[37] = static_cast<uint8_t>(dport);
  f[38] = static_cast<uint8_t>((ip_len - 20) >> 8);
  f[39] = static_cast<uint8_t>(ip_len - 20);
  return f;
}

bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

struct Outcome {
  uint64_t passed = 0, policed = 0;
  double seconds = 0;
};

// Offers packets from `threads` threads (pinned to CPUs 0..threads-1) for
// kWindow seconds to a freshly loaded policy (a full bucket at the start).
Outcome offer(const std::vector<unsigned char>& object, int threads, std::string* error) {
  Outcome out;
  auto loaded = qosrun::LoadedPolicy::load_memory(object, "tb.bpf.o");
  if (!loaded) {
    *error = loaded.error().message;
    return out;
  }
  const auto frame = udp_frame(5001, kFrame);
  const int fd = loaded->prog_fd(Hook::Xdp);
  std::atomic<bool> failed{false};
  std::string thread_error;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::chrono::steady_clock::time_point t0, t1;
  auto worker = [&](int cpu) {
    if (!pin_to_cpu(cpu)) failed = true;
    ready++;
    while (!go) std::this_thread::yield();
    const auto end = t0 + std::chrono::duration<double>(kWindow);
    while (std::chrono::steady_clock::now() < end) {
      auto r = qosrun::test_run(fd, Hook::Xdp, frame, 2000, false);
      if (!r) {
        failed = true;
        thread_error = r.error().message;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker, i);
  while (ready < threads) std::this_thread::yield();
  t0 = std::chrono::steady_clock::now();
  go = true;
  for (auto& t : pool) t.join();
  t1 = std::chrono::steady_clock::now();
  if (failed) {
    *error = thread_error.empty() ? "could not pin a thread to its CPU" : thread_error;
    return out;
  }
  out.seconds = std::chrono::duration<double>(t1 - t0).count();
  auto c = qosrun::read_class_counters(*loaded);
  if (!c) {
    *error = c.error().message;
    return out;
  }
  const auto& cls = (*c)[0];   // class "limited" has id 0
  out.policed = cls.drop_policer[0];
  out.passed = cls.packets[0] - cls.drop_policer[0];
  return out;
}

}  // namespace

TEST(TokenBucket, PassesRateTimesTimePlusBurstWithinOnePercent) {
  if (!qosrun::can_load_bpf()) GTEST_SKIP() << "needs root: loads compiled policies into the kernel";
  std::string error;
  auto compiled = compile_text("tb.qos", kPolicy, &error);
  ASSERT_TRUE(compiled) << error;
  ASSERT_EQ(compiled->ir.classes.at(0).rate_bps, kRateBps);
  ASSERT_EQ(compiled->ir.classes.at(0).burst_bytes, kBurstBytes);
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  for (int threads : {1, 2}) {
    if (threads > ncpu) {
      std::cerr << "token bucket: skipping the 2-thread run: only one CPU online\n";
      continue;
    }
    Outcome o = offer(compiled->object, threads, &error);
    ASSERT_TRUE(error.empty()) << error;
    const double expected = static_cast<double>(kRateBps) / 8.0 * o.seconds + static_cast<double>(kBurstBytes);
    const double passed = static_cast<double>(o.passed) * kFrame;
    const double offered = static_cast<double>(o.passed + o.policed) * kFrame;
    std::cerr << fmt::format(
        "token bucket, {} thread(s): window {:.3f} s, offered {:.1f} MB ({:.1f}x the rate), passed {:.0f} bytes, "
        "expected R*t+B = {:.0f} bytes, error {:+.3f}%\n",
        threads, o.seconds, offered / 1e6, offered / (expected - kBurstBytes), passed, expected,
        (passed - expected) / expected * 100);
    ASSERT_GT(offered, 3 * expected) << "the test did not offer enough load to exercise the policer";
    EXPECT_NEAR(passed, expected, expected * 0.01) << threads << " thread(s)";
  }
}
