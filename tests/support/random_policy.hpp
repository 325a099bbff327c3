#pragma once
// A generator of random, valid .qos policies for property and differential
// tests. Every match kind, negation, inline and named sets, overlapping rules,
// both address families and all five schedulers appear across seeds.
#include <cstddef>
#include <random>
#include <string>

namespace qosc::testsupport {

struct RandomPolicyOptions {
  size_t min_rules = 1;
  size_t max_rules = 12;
  size_t max_classes = 6;        // at least 2 are always generated
  size_t max_matches = 4;        // per rule (a tcp/udp with ports counts once)
  bool allow_drop = true;        // some rules target `drop`
  bool allow_pifo = true;        // pifo with a random rank expression
  // Draw values from small pools so that rules overlap and shadow each other
  // often (interesting for first-match semantics).
  bool narrow_values = true;
  // Percent of classes with `set dscp` (a name or a number); 0 draws nothing,
  // so policies of a seed are the same as before the attribute existed.
  int set_dscp_percent = 0;
};

std::string random_policy(std::mt19937_64& rng, const RandomPolicyOptions& opts = {});

}  // namespace qosc::testsupport
