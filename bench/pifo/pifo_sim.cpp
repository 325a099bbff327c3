// How far is qosc's PIFO from an exact PIFO? A trace-driven replay.
//
// The TC program approximates PIFO with SP-PIFO over N strict-priority bands
// (templates/qos_pifo.h, included here verbatim: the same code that runs in
// the kernel decides the band). HTB serves the bands in strict priority, each
// FIFO inside. This program replays one arrival trace through three queues
// fed and drained identically:
//   exact PIFO  - always sends the lowest rank queued (the reference),
//   SP-PIFO(N)  - qos_sp_pifo() picks the band, lowest non-empty band first,
//   FIFO        - what a plain queue does (for scale),
// and counts an inversion each time a packet leaves while a packet of
// strictly lower rank is still waiting (the SP-PIFO paper's measure), plus
// the mean rank distance of those inversions.
//
//   qosc-pifo-sim [--packets N] [--seed S] [--load L] [--csv]
// Traces: ranks uniform 0..99; the gaming-style rank
// `class.priority * 1000 + pkt.len / 100` over a mix of small game packets and
// bulk frames; and a rank that grows with flow.bytes (shortest-flow-first).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <set>
#include <string>
#include <vector>

// The template is BPF C; on the host only its arithmetic is used, so skip
// libbpf's helper declarations (their include guard) and give it inline.
#define __BPF_HELPERS__
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
extern "C" {
#include "qos_abi.h"
#include "qos_pifo.h"
}

namespace {

struct Pkt {
  int64_t rank;
  uint64_t seq;
};

struct Result {
  uint64_t departures = 0, inversions = 0;
  double distance = 0;  // sum over inversions of (rank sent - lowest rank waiting)
};

// The multiset of queued ranks, to detect inversions at each departure.
struct Waiting {
  std::multiset<int64_t> ranks;
  void add(int64_t r) { ranks.insert(r); }
  void remove(int64_t r) { ranks.erase(ranks.find(r)); }
  int64_t lowest() const { return *ranks.begin(); }
};

class Queue {
 public:
  virtual ~Queue() = default;
  virtual void push(Pkt p) = 0;
  virtual bool pop(Pkt* p) = 0;
};

class ExactPifo : public Queue {
  std::set<std::pair<int64_t, uint64_t>> q_;
 public:
  void push(Pkt p) override { q_.insert({p.rank, p.seq}); }
  bool pop(Pkt* p) override {
    if (q_.empty()) return false;
    *p = {q_.begin()->first, q_.begin()->second};
    q_.erase(q_.begin());
    return true;
  }
};

class Fifo : public Queue {
  std::deque<Pkt> q_;
 public:
  void push(Pkt p) override { q_.push_back(p); }
  bool pop(Pkt* p) override {
    if (q_.empty()) return false;
    *p = q_.front();
    q_.pop_front();
    return true;
  }
};

class SpPifo : public Queue {
  qos_pifo_state st_{};
  uint32_t n_;
  std::vector<std::deque<Pkt>> bands_;
 public:
  explicit SpPifo(uint32_t n) : n_(n), bands_(n) {}
  void push(Pkt p) override { bands_[qos_sp_pifo(&st_, p.rank, n_)].push_back(p); }
  bool pop(Pkt* p) override {
    for (auto& b : bands_)
      if (!b.empty()) {
        *p = b.front();
        b.pop_front();
        return true;
      }
    return false;
  }
};

struct Arrival {
  int64_t rank;
};

// Arrivals per departure slot: Poisson with mean `load` (load > 1 keeps a
// backlog, which is when order matters); the queue holds at most `limit`.
Result replay(Queue& q, const std::vector<std::vector<Arrival>>& slots, size_t limit) {
  Result r;
  Waiting w;
  size_t queued = 0;
  uint64_t seq = 0;
  for (const auto& slot : slots) {
    for (const auto& a : slot) {
      if (queued >= limit) continue;  // tail drop, identical for every queue
      q.push({a.rank, seq++});
      w.add(a.rank);
      ++queued;
    }
    Pkt p;
    if (q.pop(&p)) {
      --queued;
      if (p.rank > w.lowest()) {
        ++r.inversions;
        r.distance += double(p.rank - w.lowest());
      }
      w.remove(p.rank);
      ++r.departures;
    }
  }
  return r;
}

std::vector<std::vector<Arrival>> make_trace(const std::string& kind, size_t packets, double load, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::poisson_distribution<int> arrivals(load);
  std::vector<std::vector<Arrival>> slots;
  std::vector<uint64_t> flow_bytes(64, 0);
  size_t n = 0;
  while (n < packets) {
    std::vector<Arrival> slot;
    int k = arrivals(rng);
    for (int i = 0; i < k && n < packets; ++i, ++n) {
      int64_t rank = 0;
      if (kind == "uniform") {
        rank = int64_t(rng() % 100);
      } else if (kind == "gaming") {
        // 10% game packets (priority 0, ~100 B), 90% bulk (priority 5, 1500 B).
        bool game = rng() % 10 == 0;
        int64_t prio = game ? 0 : 5, len = game ? 60 + int64_t(rng() % 120) : 1500;
        rank = prio * 1000 + len / 100;
      } else {  // sjf: shortest flow first, rank = flow.bytes / 1000
        size_t f = rng() % flow_bytes.size();
        if (rng() % 200 == 0) flow_bytes[f] = 0;  // flows end and restart
        flow_bytes[f] += 1500;
        rank = int64_t(flow_bytes[f] / 1000);
      }
      slot.push_back({rank});
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

}  // namespace

int main(int argc, char** argv) {
  size_t packets = 200000;
  uint64_t seed = 1;
  double load = 1.2;
  size_t limit = 256;
  bool csv = false, check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--packets" && i + 1 < argc) packets = std::stoul(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else if (a == "--load" && i + 1 < argc) load = std::stod(argv[++i]);
    else if (a == "--limit" && i + 1 < argc) limit = std::stoul(argv[++i]);
    else if (a == "--csv") csv = true;
    else if (a == "--check") check = true;
    else {
      std::fprintf(stderr, "usage: %s [--packets N] [--seed S] [--load L] [--limit Q] [--csv] [--check]\n", argv[0]);
      return 2;
    }
  }
  if (csv) std::printf("trace,queue,departures,inversions,inversion_pct,mean_distance\n");
  else
    std::printf("PIFO approximation vs exact PIFO: %zu packets, offered load %.2f x link, queue limit %zu, seed %llu\n\n"
                "| trace | queue | inversions | of departures | mean rank distance |\n|---|---|---|---|---|\n",
                packets, load, limit, (unsigned long long)seed);
  int failures = 0;
  for (std::string trace : {"uniform", "gaming", "sjf"}) {
    auto slots = make_trace(trace, packets, load, seed);
    uint64_t fifo_inv = 0, sp8_inv = 0;
    auto row = [&](const std::string& name, Queue& q) {
      Result r = replay(q, slots, limit);
      if (name == "FIFO") fifo_inv = r.inversions;
      if (name == "SP-PIFO 8 bands") sp8_inv = r.inversions;
      if (name == "exact PIFO" && r.inversions) ++failures;
      double pct = r.departures ? 100.0 * double(r.inversions) / double(r.departures) : 0;
      double dist = r.inversions ? r.distance / double(r.inversions) : 0;
      if (csv)
        std::printf("%s,%s,%llu,%llu,%.3f,%.2f\n", trace.c_str(), name.c_str(), (unsigned long long)r.departures,
                    (unsigned long long)r.inversions, pct, dist);
      else
        std::printf("| %s | %s | %llu | %.2f%% | %.1f |\n", trace.c_str(), name.c_str(), (unsigned long long)r.inversions,
                    pct, dist);
    };
    ExactPifo exact;
    row("exact PIFO", exact);
    for (uint32_t bands : {8u, 4u, 2u, 1u}) {
      SpPifo sp(bands);
      row("SP-PIFO " + std::to_string(bands) + " bands", sp);
    }
    Fifo fifo;
    row("FIFO", fifo);
    // --check (ctest): the approximation must beat FIFO clearly, and keep a
    // two-level rank (the gaming trace) exactly in order with 8 bands.
    if (sp8_inv * 10 > fifo_inv * 7) ++failures;
    if (trace == "gaming" && sp8_inv > 0) ++failures;
  }
  if (check && failures) std::fprintf(stderr, "pifo-sim: %d check(s) failed\n", failures);
  return check && failures ? 1 : 0;
}
