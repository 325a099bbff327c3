// Where hosts live in the HTB tree and with which parameters: see
// qosrun/hosts.hpp and docs/hosts.md. Plain computation, no kernel.
#include <algorithm>
#include <bitset>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>
#include <tuple>
#include <unistd.h>

#include <fmt/compile.h>
#include <fmt/format.h>
#include <iterator>

#include "qosrun/hosts.hpp"
#include "qosrun/state.hpp"
#include "qosrun/txq.hpp"

#include "hosts_placement.hpp"

namespace qosrun::hosts {

// ---- placement ---------------------------------------------------------------------------------

const Group* Placement::group(uint32_t index) const {
  auto it = std::lower_bound(groups.begin(), groups.end(), index,
                             [](const Group& g, uint32_t i) { return g.index < i; });
  return it != groups.end() && it->index == index ? &*it : nullptr;
}

const PlacedHost* Placement::host(const std::string& name) const {
  auto it = std::lower_bound(hosts.begin(), hosts.end(), name,
                             [](const PlacedHost& h, const std::string& n) { return h.name < n; });
  return it != hosts.end() && it->name == name ? &*it : nullptr;
}

namespace detail {

void append_head(fmt::memory_buffer& b, uint32_t next_host_id, uint64_t generation) {
  fmt::format_to(fmt::appender(b), FMT_COMPILE("qosc-hosts\t1\nnext_host_id\t{}\ngeneration\t{}\n"), next_host_id,
                 generation);
}

void append_group(fmt::memory_buffer& b, const Group& g) {
  fmt::format_to(fmt::appender(b), FMT_COMPILE("group\t{}\t{}\t{}\t{}\n"), g.index, g.major >> 16, g.rate_bps, g.queue);
}

void append_host(fmt::memory_buffer& b, const PlacedHost& h) {
  fmt::appender out(b);
  fmt::format_to(out, FMT_COMPILE("host\t{}\t{}\t{}\t{}\t{:x}\t{}\t{}\t"), h.group, h.slot, h.host_id, h.rate_bps,
                 h.fingerprint, h.name, h.plan);
  for (size_t i = 0; i < h.prefixes.size(); ++i) {
    char text[Prefix::kTextMax];
    if (i) b.push_back(' ');
    b.append(text, text + h.prefixes[i].write_text(text));
  }
  b.push_back('\t');
  bool first = true;
  for (const auto& [cls, handle] : h.leaves) {
    fmt::format_to(out, FMT_COMPILE("{}{}:{}"), first ? "" : " ", cls, handle >> 16);
    first = false;
  }
  b.push_back('\n');
}

void append_pending(fmt::memory_buffer& b, const std::vector<uint32_t>& deletes) {
  if (deletes.empty()) return;
  fmt::format_to(fmt::appender(b), FMT_COMPILE("pending"));
  for (uint32_t c : deletes) fmt::format_to(fmt::appender(b), FMT_COMPILE("\t{}"), c);
  b.push_back('\n');
}

Tallies Tallies::of(const Placement& p) {
  Tallies t;
  t.keep_groups(p.groups, {});
  for (const auto& h : p.hosts) t.add(h);
  return t;
}

void Tallies::add(const PlacedHost& h) {
  uint64_t& held = slots[h.group];
  if (h.slot < kHostsPerGroup) held |= uint64_t{1} << h.slot;   // a damaged placement's slot: held nowhere
  Plan& p = plans[h.plan];
  if (p.hosts++ == 0) {
    p.rate_bps = h.rate_bps;
    p.fingerprint = h.fingerprint;
    p.alike = true;
  } else if (p.rate_bps != h.rate_bps || p.fingerprint != h.fingerprint) {
    p.alike = false;
  }
  prefixes += h.prefixes.size();
  for (const auto& [cls, handle] : h.leaves) handles.set(handle >> 16);
}

void Tallies::remove(const PlacedHost& h) {
  if (auto s = slots.find(h.group); s != slots.end() && h.slot < kHostsPerGroup) s->second &= ~(uint64_t{1} << h.slot);
  if (auto p = plans.find(h.plan); p != plans.end() && --p->second.hosts == 0) plans.erase(p);
  prefixes -= std::min(prefixes, h.prefixes.size());
  for (const auto& [cls, handle] : h.leaves) handles.reset(handle >> 16);
}

void Tallies::keep_groups(const std::vector<Group>& groups, const std::vector<Group>& before) {
  for (const auto& g : before) {
    if (std::any_of(groups.begin(), groups.end(), [&](const Group& k) { return k.index == g.index; })) continue;
    slots.erase(g.index);
    handles.reset(g.major >> 16);
  }
  for (const auto& g : groups) {
    slots.emplace(g.index, 0);
    handles.set(g.major >> 16);
  }
}

void Tallies::append(fmt::memory_buffer& b) const {
  fmt::appender out(b);
  for (const auto& [g, bits] : slots) fmt::format_to(out, FMT_COMPILE("tally\tslots\t{}\t{:x}\n"), g, bits);
  for (const auto& [name, p] : plans) {
    if (p.alike)
      fmt::format_to(out, FMT_COMPILE("tally\tplan\t{}\t{}\t{}\t{:x}\n"), name, p.hosts, p.rate_bps, p.fingerprint);
    else
      fmt::format_to(out, FMT_COMPILE("tally\tplan\t{}\t{}\t-\t-\n"), name, p.hosts);
  }
  fmt::format_to(out, FMT_COMPILE("tally\tprefixes\t{}\n"), prefixes);
  // Ranges of consecutive majors: handles are taken lowest first, so a few.
  fmt::format_to(out, FMT_COMPILE("tally\thandles"));
  for (size_t x = 0; x < handles.size(); ++x) {
    if (!handles.test(x)) continue;
    size_t last = x;
    while (last + 1 < handles.size() && handles.test(last + 1)) ++last;
    if (last == x) fmt::format_to(out, FMT_COMPILE("\t{}"), x);
    else fmt::format_to(out, FMT_COMPILE("\t{}-{}"), x, last);
    x = last;
  }
  b.push_back('\n');
}

void Tallies::read(const std::vector<std::string_view>& f) {
  if (f.size() == 4 && f[1] == "slots") {
    slots[static_cast<uint32_t>(num(f[2]))] = num(f[3], 16);
  } else if (f.size() == 6 && f[1] == "plan") {
    Plan& p = plans[std::string(f[2])];
    p.hosts = num(f[3]);
    p.alike = f[4] != "-";
    if (p.alike) {
      p.rate_bps = num(f[4]);
      p.fingerprint = num(f[5], 16);
    }
  } else if (f.size() == 3 && f[1] == "prefixes") {
    prefixes = num(f[2]);
  } else if (f.size() >= 2 && f[1] == "handles") {
    for (size_t i = 2; i < f.size(); ++i) {
      const size_t dash = f[i].find('-');
      const uint64_t a = num(f[i].substr(0, dash));
      const uint64_t b = dash == std::string_view::npos ? a : num(f[i].substr(dash + 1));
      if (b < a || b >= handles.size()) throw std::invalid_argument("a handle range out of order");
      for (uint64_t x = a; x <= b; ++x) handles.set(x);
    }
  } else {
    throw std::invalid_argument("an unknown tally");
  }
}

void split(std::string_view s, char sep, std::vector<std::string_view>& out) {
  out.clear();
  size_t i = 0;
  for (;;) {
    size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) return;
    i = j + 1;
  }
}

uint64_t num(std::string_view s, int base) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) throw std::invalid_argument("not a number");
  return v;
}

PlacedHost host_from_fields(const std::vector<std::string_view>& f) {
  if (f.size() != 10 || f[0] != "host") throw std::invalid_argument("not a host line");
  PlacedHost h;
  h.group = static_cast<uint32_t>(num(f[1]));
  h.slot = static_cast<uint32_t>(num(f[2]));
  h.host_id = static_cast<uint32_t>(num(f[3]));
  h.rate_bps = num(f[4]);
  h.fingerprint = num(f[5], 16);
  h.name = std::string(f[6]);
  h.plan = std::string(f[7]);
  thread_local std::vector<std::string_view> words;   // reused: a placement reads 10,000 hosts
  split(f[8], ' ', words);
  h.prefixes.reserve(words.size());
  for (auto t : words) {
    auto pr = parse_prefix(t);
    if (!pr) throw std::invalid_argument(pr.error().message);
    h.prefixes.push_back(*pr);
  }
  for_each_leaf(f[9], [&](uint32_t cls, uint32_t handle) { h.leaves.set(cls, handle); });
  return h;
}

void read_other_line(const std::vector<std::string_view>& f, Placement& p) {
  if (f[0] == "qosc-hosts") {
    if (f.size() < 2 || f[1] != "1") throw std::invalid_argument("a format this qosrun does not know");
  } else if (f[0] == "generation" && f.size() == 2) {
    p.generation = num(f[1]);
  } else if (f[0] == "next_host_id" && f.size() == 2) {
    p.next_host_id = static_cast<uint32_t>(num(f[1]));
  } else if (f[0] == "group" && (f.size() == 4 || f.size() == 5)) {   // 4: before TX queues (queue 0)
    Group g{static_cast<uint32_t>(num(f[1])), static_cast<uint32_t>(num(f[2]) << 16), num(f[3])};
    if (f.size() == 5) g.queue = static_cast<uint32_t>(num(f[4]));
    p.groups.push_back(g);
  } else if (f[0] == "tally") {
    // Derived from the hosts (Tallies): what reads every host has no use for them.
  } else if (f[0] == "pending") {
    for (size_t i = 1; i < f.size(); ++i) p.pending_deletes.push_back(static_cast<uint32_t>(num(f[i])));
  } else {
    throw std::invalid_argument("an unknown line");
  }
}

}  // namespace detail

// 10,000 hosts read and write in a few milliseconds, which a JSON document
// of the same does not.
std::string to_text(const Placement& p, const std::vector<uint32_t>* pending) {
  fmt::memory_buffer b;
  b.reserve(128 * p.hosts.size() + 64 * p.groups.size() + 64);
  detail::append_head(b, p.next_host_id, p.generation);
  for (const auto& g : p.groups) detail::append_group(b, g);
  detail::Tallies::of(p).append(b);
  for (const auto& h : p.hosts) detail::append_host(b, h);
  detail::append_pending(b, pending ? *pending : p.pending_deletes);
  return fmt::to_string(b);
}

Result<Placement> placement_from_text(const std::string& text, const std::string& source) {
  Placement p;
  p.hosts.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')));
  size_t lineno = 0;
  try {
    std::string_view all(text);
    std::vector<std::string_view> f;
    f.reserve(12);
    for (size_t pos = 0; pos < all.size();) {
      size_t nl = all.find('\n', pos);
      if (nl == std::string_view::npos) nl = all.size();
      std::string_view line = all.substr(pos, nl - pos);
      pos = nl + 1;
      ++lineno;
      if (line.empty()) continue;
      detail::split(line, '\t', f);
      if (f[0] == "host" && f.size() == 10) p.hosts.push_back(detail::host_from_fields(f));
      else detail::read_other_line(f, p);
    }
  } catch (const std::exception& e) {
    return Error{fmt::format("{}:{} is damaged ({}): the hosts on the interface are still shaped; detach and attach "
                             "again to start afresh",
                             source, lineno, e.what())};
  }
  std::sort(p.groups.begin(), p.groups.end(), [](const Group& a, const Group& b) { return a.index < b.index; });
  auto by_name = [](const PlacedHost& a, const PlacedHost& b) { return a.name < b.name; };
  if (!std::is_sorted(p.hosts.begin(), p.hosts.end(), by_name))   // to_text writes them sorted
    std::sort(p.hosts.begin(), p.hosts.end(), by_name);
  return p;
}

Result<Placement> read_placement(const std::string& path) {
  auto text = read_file_text(path);
  if (!text) {
    if (text.error().code == ENOENT) return Placement{};
    return text.error();
  }
  auto p = placement_from_text(*text, path);
  if (!p) return p;
  p->journal_deletes = read_journal(path, p->generation);
  return p;
}

std::string journal_file(const std::string& placement_path) { return placement_path + ".journal"; }

std::vector<uint32_t> read_journal(const std::string& placement_path, uint64_t generation) {
  std::vector<uint32_t> creating;
  auto journal = read_file_text(journal_file(placement_path));
  if (!journal) return creating;
  std::istringstream j(*journal);
  std::string tag;
  uint64_t gen = 0;
  if (j >> tag >> gen && tag == "generation" && gen == generation) {
    uint32_t c;
    while (j >> c) creating.push_back(c);
  }
  return creating;
}

Status write_journal(const std::string& placement_path, const Placement& p, const std::vector<uint32_t>& creating) {
  std::string text = fmt::format("generation {}\n", p.generation);
  for (uint32_t c : creating) fmt::format_to(std::back_inserter(text), "{}\n", c);
  return replace_file(journal_file(placement_path), text);
}

Status write_placement(const std::string& path, const Placement& p, const std::vector<uint32_t>* pending) {
  const std::string text = to_text(p, pending);
  const std::string_view parts[] = {text};
  return write_placement_text(path, parts);
}

Status write_placement_text(const std::string& path, std::span<const std::string_view> parts) {
  if (Status f = state::fail_point("hosts-state"); !f) return f;
  return replace_file(path, parts);
}

std::string placement_file(const std::string& ifname) { return state::paths_for(ifname).hosts_file; }

TableRules rules_for(const qosc::Manifest& m, size_t map_entries) {
  TableRules r;
  for (const auto& p : m.plans) r.plans.push_back(p.name);
  r.max_prefixes = map_entries;
  if (m.hosts) r.map_name = m.hosts->map;
  return r;
}

// ---- shape -------------------------------------------------------------------------------------

Shape Shape::of(const qosc::Manifest& m, const htb::Plan& root, uint32_t mtu, uint32_t max_skb) {
  Shape s;
  s.manifest = &m;
  s.link_bps = root.link.ceil_bps;
  s.mtu = mtu;
  s.max_skb = max_skb;
  s.reserved_majors.push_back({0, kFirstHandle - 1});
  bool isolation = false;
  for (const auto& l : root.leaves) {
    s.reserved_majors.push_back({l.minor, l.minor});
    if (l.nested) isolation = true;
  }
  for (const auto& c : m.classes)
    if (c.isolate && c.isolate->host_major)
      s.reserved_majors.push_back({c.isolate->host_major, c.isolate->host_major + c.isolate->slots});
  // The kernel numbers qdiscs made without a handle (isolation's sub-queue
  // bfifos) from 0x8000 up: stay below them.
  s.last_handle = isolation ? kAutoHandleFirst - 1 : 0xffff;
  return s;
}

uint32_t Shape::hosts_per_group() const {
  size_t k = 1;
  for (const auto& p : manifest->plans) k = std::max(k, p.classes.empty() ? manifest->classes.size() : p.classes.size());
  return static_cast<uint32_t>(std::clamp<size_t>(kClassesPerGroup / (1 + k), 1, kHostsPerGroup));
}

void make_room_for_hosts(htb::Plan& root) {
  for (auto& l : root.leaves)
    l.params.rate_bps = std::max(htb::kMinRateBps, l.params.rate_bps / kUnlistedShare);
}

std::map<std::string, uint64_t> plan_rates(const Shape& shape, const std::vector<std::string>& plan_of_each_host) {
  std::map<std::string, size_t, std::less<>> hosts_on;
  for (const auto& name : plan_of_each_host) ++hosts_on[name];
  return plan_rates(shape, hosts_on);
}

std::map<std::string, uint64_t> plan_rates(const Shape& shape, const std::map<std::string, size_t, std::less<>>& hosts_on) {
  const qosc::Manifest& m = *shape.manifest;
  const uint64_t L = shape.link_bps;
  const long double budget = (long double)(L - L / kUnlistedShare);
  long double sum = 0;   // exact: whole numbers far below 2^64
  for (const auto& [name, n] : hosts_on)
    if (const auto* p = m.find_plan(name)) sum += (long double)p->rate_bps * (long double)n;
  int k = 0;
  long double scale = 1;
  while (sum * scale > budget && k < 400) scale = std::pow(2.0L, -(long double)(++k) / 4);
  std::map<std::string, uint64_t> out;
  for (const auto& p : m.plans)
    out[p.name] = std::max<uint64_t>(htb::kMinRateBps,
                                     static_cast<uint64_t>(std::min<long double>((long double)p.rate_bps, L) * scale));
  return out;
}

// ---- classes -----------------------------------------------------------------------------------

namespace {

uint64_t fnv(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xff;
    h *= 0x100000001b3ull;
  }
  return h;
}
uint64_t fnv_params(uint64_t h, const nl::HtbClassParams& p) {
  for (uint64_t v : {p.rate_bps, p.ceil_bps, uint64_t{p.burst_bytes}, uint64_t{p.cburst_bytes}, uint64_t{p.quantum},
                     uint64_t{p.prio}})
    h = fnv(h, v);
  return h;
}

uint64_t unlimited(uint64_t link) { return std::max<uint64_t>(link * 10, 1000000000ull); }

// The classes of a host on `plan` assured `rate`, without classids.
Result<HostClasses> classes_for(const Shape& shape, const qosc::ManifestPlan& plan, uint64_t rate) {
  const qosc::Manifest& m = *shape.manifest;
  const uint32_t frame = std::max<uint32_t>(shape.mtu, 68) + 14;
  const uint32_t minq = htb::min_quantum(shape.mtu, shape.max_skb);
  const uint64_t L = shape.link_bps;
  const uint64_t ceil = std::min(L, std::max(plan.ceil_bps ? plan.ceil_bps : plan.rate_bps, rate));
  rate = std::min(rate, ceil);
  HostClasses hc;
  hc.host.rate_bps = rate;
  hc.host.ceil_bps = ceil;
  hc.host.burst_bytes = plan.burst_bytes ? std::max<uint32_t>(static_cast<uint32_t>(std::min<uint64_t>(plan.burst_bytes, 0x7fffffff)), frame)
                                         : htb::default_burst(rate, frame);
  hc.host.cburst_bytes = plan.burst_bytes ? hc.host.burst_bytes : htb::default_burst(ceil, frame);
  hc.host.quantum = minq;
  hc.host.prio = 0;

  // The policy's scheduler inside the host, with the host's ceiling as the
  // link and its leaves' assured rates scaled down to the host's rate.
  qosc::Manifest sub = m;
  sub.link_bps = ceil;
  sub.link_adaptive.reset();
  sub.download_adaptive.reset();
  sub.download_bps = 0;
  if (sub.scheduler == "pifo") sub.scheduler = "strict_priority";   // bands mix classes; hosts keep classes
  sub.classes.clear();
  for (const auto& c : m.classes)
    if (plan.classes.empty() || std::find(plan.classes.begin(), plan.classes.end(), c.id) != plan.classes.end()) {
      qosc::ManifestClass x = c;
      x.isolate.reset();
      sub.classes.push_back(std::move(x));
    }
  auto p = htb::plan(sub, shape.mtu, shape.max_skb);
  if (!p) return Error{fmt::format("plan {}: {}", plan.name, p.error().message)};
  for (const auto& l : p->leaves) {
    if (l.class_id < 0) continue;
    HostClasses::Leaf leaf;
    leaf.class_id = static_cast<uint32_t>(l.class_id);
    leaf.params = l.params;
    long double scaled = (long double)l.params.rate_bps * (long double)rate / (long double)ceil;
    leaf.params.rate_bps = std::min<uint64_t>(l.params.ceil_bps,
                                              std::max<uint64_t>(htb::kMinRateBps, static_cast<uint64_t>(scaled)));
    leaf.params.burst_bytes = htb::default_burst(leaf.params.rate_bps, frame);
    leaf.queue = htb::leaf_queue(leaf.params.ceil_bps, frame, minq + frame);
    hc.class_mask |= 1ull << leaf.class_id;
    hc.leaves.push_back(leaf);
  }
  if (hc.leaves.empty()) return Error{fmt::format("plan {} has no class", plan.name)};
  // The policy's default class takes what the plan lacks, else the plan's last class.
  hc.default_leaf = hc.leaves.back().class_id;
  if (hc.class_mask >> m.default_class & 1) hc.default_leaf = m.default_class;
  uint64_t f = fnv_params(0xcbf29ce484222325ull, hc.host);
  for (const auto& l : hc.leaves)
    f = fnv(fnv(fnv(fnv_params(f, l.params), l.class_id), l.queue.limit), l.queue.split_above);
  hc.fingerprint = fnv(fnv(f, hc.class_mask), hc.default_leaf);
  return hc;
}

}  // namespace

Result<const HostClasses*> ClassCache::get(const Shape& shape, const std::string& plan_name, uint64_t rate) {
  auto key = std::make_pair(plan_name, rate);
  if (auto it = entries.find(key); it != entries.end()) return &it->second;
  const qosc::ManifestPlan* plan = shape.manifest->find_plan(plan_name);
  if (!plan) return Error{fmt::format("the policy has no plan '{}'", plan_name)};
  auto c = classes_for(shape, *plan, rate);
  if (!c) return c.error();
  return &entries.emplace(key, std::move(*c)).first->second;
}

Result<HostClasses> host_classes(const Shape& shape, const Group& g, const PlacedHost& h, ClassCache* cache) {
  ClassCache local;
  auto c = (cache ? *cache : local).get(shape, h.plan, h.rate_bps);
  if (!c) return Error{fmt::format("host '{}': {}", h.name, c.error().message)};
  HostClasses hc = **c;
  hc.host.classid = g.major | h.host_minor();
  hc.host.parent = g.major | 1;
  for (auto& l : hc.leaves) {
    l.params.classid = g.major | (h.minor_base() + l.class_id);
    l.params.parent = hc.host.classid;
  }
  return hc;
}

uint32_t Group::leaf_classid() const { return htb::classid(txq::htb_major(queue), kGroupMinorBase + index); }

nl::HtbClassParams group_leaf(const Shape& shape, const Group& g) {
  const uint32_t frame = std::max<uint32_t>(shape.mtu, 68) + 14;
  nl::HtbClassParams c;
  c.classid = g.leaf_classid();
  c.parent = htb::classid(txq::htb_major(g.queue), htb::kRootMinor);   // each queue's HTB has the link at :1
  c.ceil_bps = shape.link_bps;
  c.rate_bps = std::clamp<uint64_t>(g.rate_bps, htb::kMinRateBps, shape.link_bps);
  c.burst_bytes = htb::default_burst(c.rate_bps, frame);
  c.cburst_bytes = htb::default_burst(c.ceil_bps, frame);
  c.quantum = htb::min_quantum(shape.mtu, shape.max_skb);
  c.prio = 0;
  return c;
}

nl::HtbClassParams group_root(const Shape& shape, const Group& g) {
  const uint32_t minq = htb::min_quantum(shape.mtu, shape.max_skb);
  nl::HtbClassParams c;
  c.classid = g.major | 1;
  c.parent = g.major;
  c.rate_bps = c.ceil_bps = unlimited(shape.link_bps);
  c.burst_bytes = c.cburst_bytes = 4 * minq;
  c.quantum = minq;
  return c;
}

qos_host_key map_key(const Prefix& p) {
  qos_host_key k{};
  k.prefixlen = p.len;
  std::memcpy(k.addr, p.addr.data(), 16);
  return k;
}

qos_host_val map_value(const Shape& shape, const Group& g, const PlacedHost& h, const HostClasses& c) {
  qos_host_val v{};
  v.outer_classid = g.leaf_classid();
  v.group_major = static_cast<uint16_t>(g.major >> 16);
  v.minor_base = static_cast<uint16_t>(h.minor_base());
  v.class_mask = c.class_mask;
  v.default_leaf = c.default_leaf;
  v.queue = shape.tx_queues > 1 ? txq::queue_mapping(g.queue) : QOS_HOST_ANY_QUEUE;
  v.host_id = h.host_id;
  return v;
}

nl::NlMessage leaf_queue_message(int ifindex, const HostClasses::Leaf& l, uint32_t handle, uint16_t flags) {
  return htb::leaf_queue_message(ifindex, l.params.classid, handle, l.queue, flags);
}

// ---- planning ----------------------------------------------------------------------------------

namespace detail {

HandlePool::HandlePool(const Shape& s) : last_(s.last_handle) {
  for (auto [a, b] : s.reserved_majors)
    for (uint32_t x = a; x <= std::min<uint32_t>(b, 0xffff); ++x) used_.set(x);
}

Result<uint32_t> HandlePool::next(bool group) {
  uint32_t& cursor = group ? group_cursor_ : cursor_;
  for (uint32_t i = 0; i <= last_; ++i) {
    uint32_t x = kFirstHandle + (cursor + i) % (last_ + 1 - kFirstHandle);
    if (!used_.test(x) && (qdisc_hash_bucket(x) == kGroupHashBucket) == group) {
      used_.set(x);
      cursor = x + 1 - kFirstHandle;
      return x << 16;
    }
  }
  return Error{fmt::format("out of qdisc handles: an interface has {} for host groups and queues (one per group and "
                           "one per class of each host; docs/hosts.md, \"Limits\"): shard the hosts across "
                           "interfaces or machines, or give plans fewer classes",
                           last_ + 1 - kFirstHandle)};
}

std::vector<uint32_t> plan_class_ids(const qosc::Manifest& m, const std::string& plan) {
  std::vector<uint32_t> ids;
  const auto* p = m.find_plan(plan);
  if (!p) return ids;
  if (!p->classes.empty()) return p->classes;
  for (const auto& c : m.classes) ids.push_back(c.id);
  return ids;
}

}  // namespace detail

namespace {

// Where a new group goes: the TX queue whose hosts are assured the least
// (then: fewest groups, then a queue other than 0, which also carries the
// traffic of no listed host). Groups never move, so this balances as hosts come.
class QueueLoad {
 public:
  explicit QueueLoad(uint32_t queues) : rate_(std::max<uint32_t>(queues, 1), 0), groups_(rate_.size(), 0) {}
  void add(uint32_t q, uint64_t rate) {
    if (q < rate_.size()) rate_[q] += rate;
  }
  void add_group(uint32_t q) {
    if (q < groups_.size()) ++groups_[q];
  }
  uint32_t lightest() const {
    uint32_t best = 0;
    auto key = [&](uint32_t q) { return std::make_tuple(rate_[q], groups_[q], q == 0 ? 1 : 0, q); };
    for (uint32_t q = 1; q < rate_.size(); ++q)
      if (key(q) < key(best)) best = q;
    return best;
  }

 private:
  std::vector<uint64_t> rate_;
  std::vector<uint32_t> groups_;
};

}  // namespace

Result<Placement> plan_placement(const Placement& old, const HostTable& table, const Shape& shape) {
  const qosc::Manifest& m = *shape.manifest;
  Placement next;
  next.next_host_id = old.next_host_id;
  next.generation = old.generation + 1;
  detail::HandlePool handles(shape);
  const uint32_t per_group = shape.hosts_per_group();
  // Everything the old placement holds stays taken during this change: the
  // classes of removed hosts are deleted last, after the new ones exist. (The
  // quick path reads the same tallies from the placement's head.)
  detail::Tallies held = detail::Tallies::of(old);
  handles.take(held.handles);
  std::map<uint32_t, uint64_t>& occupied = held.slots;   // group -> a bit per slot
  std::vector<std::string> plans;
  for (const auto& h : table.hosts) plans.push_back(h.plan);
  auto rates = plan_rates(shape, plans);

  std::vector<const HostEntry*> order;
  order.reserve(table.hosts.size());
  next.hosts.reserve(table.hosts.size());
  for (const auto& h : table.hosts) order.push_back(&h);
  // Stable (a merge sort): names like sub0 .. sub9999 in numeric order drive
  // std::sort's introsort into its slow heapsort fallback.
  std::stable_sort(order.begin(), order.end(), [](const HostEntry* a, const HostEntry* b) { return a->name < b->name; });
  // Each host's old self, found by walking both name-sorted lists together.
  std::vector<const PlacedHost*> was_of(order.size(), nullptr);
  for (size_t i = 0, j = 0; i < order.size() && j < old.hosts.size();) {
    const int c = order[i]->name.compare(old.hosts[j].name);
    if (c == 0) was_of[i++] = &old.hosts[j++];
    else if (c < 0) ++i;
    else ++j;
  }
  // Per plan, found once and not per host: its assured rate, its classes and
  // (at the end) the fingerprint of the classes that rate gives them.
  struct PlanInfo {
    uint64_t rate = 0;
    std::vector<uint32_t> class_ids;
    std::optional<uint64_t> fingerprint;
  };
  std::map<std::string, PlanInfo, std::less<>> plan_info;
  for (const auto& [name, rate] : rates) plan_info[name] = {rate, detail::plan_class_ids(m, name), std::nullopt};
  std::vector<PlanInfo*> plan_of(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    auto it = plan_info.find(order[i]->plan);
    if (it == plan_info.end()) return Error{fmt::format("host '{}': unknown plan '{}'", order[i]->name, order[i]->plan)};
    plan_of[i] = &it->second;
  }

  std::map<uint32_t, Group> groups;   // of the new placement, by index
  QueueLoad load(shape.tx_queues);
  for (const auto& g : old.groups) load.add_group(g.queue);
  for (size_t i = 0; i < order.size(); ++i)
    if (const PlacedHost* was = was_of[i])
      if (const Group* g = old.group(was->group)) load.add(g->queue, plan_of[i]->rate);
  for (size_t i = 0; i < order.size(); ++i) {
    const HostEntry* e = order[i];
    const std::vector<uint32_t>& plan_classes = plan_of[i]->class_ids;
    PlacedHost h;
    h.name = e->name;
    h.plan = e->plan;
    h.prefixes = e->prefixes;
    std::sort(h.prefixes.begin(), h.prefixes.end());
    h.rate_bps = plan_of[i]->rate;
    h.leaves.reserve(plan_classes.size());
    if (const PlacedHost* was = was_of[i]) {
      h.group = was->group;
      h.slot = was->slot;
      h.host_id = was->host_id;
      for (uint32_t cls : plan_classes) {
        auto it = was->leaves.find(cls);
        if (it != was->leaves.end()) h.leaves.set(cls, it->second);
      }
      if (!groups.count(h.group))
        if (const Group* g = old.group(h.group)) groups.emplace(h.group, *g);
    } else {
      h.host_id = next.next_host_id++;
      // The first group with a free slot that no host of the old placement holds.
      bool placed = false;
      for (auto& [idx, occ] : occupied) {
        if (static_cast<uint32_t>(__builtin_popcountll(occ)) >= per_group) continue;
        for (uint32_t s = 0; s < kHostsPerGroup; ++s)
          if (!(occ >> s & 1)) {
            occ |= uint64_t{1} << s;
            h.group = idx;
            h.slot = s;
            placed = true;
            break;
          }
        if (placed) break;
      }
      if (!placed) {
        uint32_t idx = 0;
        while (occupied.count(idx)) ++idx;
        if (idx >= kMaxGroups)
          return Error{fmt::format("out of host groups ({} of {} hosts each): shard the hosts across interfaces or "
                                   "machines (docs/hosts.md)",
                                   kMaxGroups, per_group)};
        auto major = handles.next(true);
        if (!major) return major.error();
        occupied[idx] = 1;   // slot 0
        h.group = idx;
        h.slot = 0;
        Group g;
        g.index = idx;
        g.major = *major;
        g.queue = load.lightest();
        load.add_group(g.queue);
        groups.emplace(idx, g);
      }
      if (!groups.count(h.group)) {
        if (const Group* g = old.group(h.group)) groups.emplace(h.group, *g);
      }
      if (auto it = groups.find(h.group); it != groups.end()) load.add(it->second.queue, h.rate_bps);
    }
    for (uint32_t cls : plan_classes) {
      if (h.leaves.count(cls)) continue;
      auto handle = handles.next();
      if (!handle) return handle.error();
      h.leaves.set(cls, *handle);
    }
    next.hosts.push_back(std::move(h));
  }
  // Group rates: their hosts' assured rates; fingerprints of every host.
  for (auto& [idx, g] : groups) g.rate_bps = 0;
  ClassCache cache;
  for (size_t i = 0; i < next.hosts.size(); ++i) {
    PlacedHost& h = next.hosts[i];
    PlanInfo& plan = *plan_of[i];
    groups.at(h.group).rate_bps += h.rate_bps;
    if (!plan.fingerprint) {   // a plan's hosts share one rate, so one fingerprint
      auto c = cache.get(shape, h.plan, h.rate_bps);
      if (!c) return Error{fmt::format("host '{}': {}", h.name, c.error().message)};
      plan.fingerprint = (*c)->fingerprint;
    }
    h.fingerprint = *plan.fingerprint;
  }
  for (auto& [idx, g] : groups) next.groups.push_back(g);
  return next;
}

}  // namespace qosrun::hosts
