#pragma once
// Inside the hosts code (hosts_layout.cpp, hosts_delta.cpp): the placement
// file one line at a time, the pool of qdisc handles and a plan's classes,
// shared by the whole planning (plan_placement) and the quick planning of a
// table that changed in a few lines (plan_delta), so that both write the
// same lines and take the same handles.
#include <bitset>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "qosrun/hosts.hpp"

namespace qosrun::hosts::detail {

// The placement file (/run/qosc/<if>/hosts.state): one line per group and
// per host, tab-separated (names hold no control characters), hosts in name
// order. to_text() is these in order.
void append_head(fmt::memory_buffer& b, uint32_t next_host_id, uint64_t generation);
void append_group(fmt::memory_buffer& b, const Group& g);
void append_host(fmt::memory_buffer& b, const PlacedHost& h);
void append_pending(fmt::memory_buffer& b, const std::vector<uint32_t>& deletes);   // nothing when empty

// What the quick path needs to know about every host without reading every
// host line: which slots each group's hosts hold, how many hosts each plan
// has and as what they were placed, how many prefixes there are, and which
// qdisc handles groups and leaves hold. Derived from the hosts (of(): also
// what plan_placement keeps taken); to_text() writes them as "tally" lines
// between the groups and the hosts, the quick path keeps them up to date
// from the hosts it changes (and the test of the quick path checks the two
// byte for byte). Readers of the whole placement skip them.
struct Tallies {
  struct Plan {
    size_t hosts = 0;
    uint64_t rate_bps = 0, fingerprint = 0;   // of its hosts, when all alike
    bool alike = true;
  };
  std::map<uint32_t, uint64_t> slots;   // group index -> a bit per slot held
  std::map<std::string, Plan, std::less<>> plans;   // plans with hosts
  size_t prefixes = 0;
  std::bitset<0x10000> handles;         // majors of groups' qdiscs and leaves' queues
  static Tallies of(const Placement& p);
  void add(const PlacedHost& h);
  void remove(const PlacedHost& h);
  // The placement's groups are now `groups` (they were `before`): a group
  // gone loses its slots and its qdisc's handle, each of `groups` holds its handle.
  void keep_groups(const std::vector<Group>& groups, const std::vector<Group>& before);
  void append(fmt::memory_buffer& b) const;
  // One line's fields after "tally"; throws std::invalid_argument.
  void read(const std::vector<std::string_view>& f);
};

// Fields of one line, without allocating per line (the vector is reused).
void split(std::string_view s, char sep, std::vector<std::string_view>& out);
// A whole field as a number; throws std::invalid_argument.
uint64_t num(std::string_view s, int base = 10);
// The fields of a "host" line (10) as a host; throws std::invalid_argument.
PlacedHost host_from_fields(const std::vector<std::string_view>& f);
// The fields of any other line ("qosc-hosts", "generation", "next_host_id",
// "group", "pending") into `p` (a group appended as read); throws
// std::invalid_argument on a line of another kind or form.
void read_other_line(const std::vector<std::string_view>& f, Placement& p);
// `each(class id, handle)` for every CLASS:HANDLE of a host line's leaves
// field (the handle as a major, << 16); throws std::invalid_argument.
template <class F>
void for_each_leaf(std::string_view field, F&& each) {
  while (!field.empty()) {
    const size_t sp = field.find(' '), colon = field.find(':');
    if (colon >= sp) throw std::invalid_argument("a leaf is not CLASS:HANDLE");
    each(static_cast<uint32_t>(num(field.substr(0, colon))),
         static_cast<uint32_t>(num(field.substr(colon + 1, sp - colon - 1)) << 16));
    field.remove_prefix(sp == std::string_view::npos ? field.size() : sp + 1);
  }
}

// Qdisc handles (majors) for host groups and leaf queues: the lowest free
// one from kFirstHandle on, a group's in kGroupHashBucket, a queue's in any
// other bucket (hosts.hpp).
class HandlePool {
 public:
  explicit HandlePool(const Shape& s);
  void take(uint32_t major) { used_.set(major & 0xffff); }
  void take(const std::bitset<0x10000>& majors) { used_ |= majors; }
  Result<uint32_t> next(bool group = false);   // major << 16

 private:
  std::bitset<0x10000> used_;
  uint32_t last_;
  uint32_t cursor_ = 0, group_cursor_ = 0;
};

// The classes a host of plan `plan` has: the plan's list, else every class.
std::vector<uint32_t> plan_class_ids(const qosc::Manifest& m, const std::string& plan);

}  // namespace qosrun::hosts::detail
