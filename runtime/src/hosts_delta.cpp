// The quick path of `qosrun hosts apply` (qosrun/hosts.hpp; docs/hosts.md,
// "Applying a table"): a table that differs from the last one applied in a few lines is
// planned from those lines. The whole path reads, checks and plans every
// host of the table and of the placement (10,000 hosts: ~15 ms); this one
// compares the table with the bytes of the last one applied, parses only
// the lines that differ, reads of the placement its head (groups and
// tallies) and the lines of the hosts those lines name (by binary search),
// and writes the next placement from the old one's lines of every
// untouched host. Whatever it cannot show to be what
// the whole path would do (any problem in the table, plan rates that move,
// a new group, an interrupted apply) goes to the whole path, which also
// words every error.
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string_view>

#include <fmt/format.h>

#include "qosc/text.hpp"
#include "qosrun/hosts.hpp"

#include "hosts_placement.hpp"

namespace qosrun::hosts {

std::string applied_table_file(const std::string& placement_path) { return placement_path + ".table"; }

Status write_applied_table(const std::string& placement_path, uint64_t generation, std::string_view text) {
  const std::string head = fmt::format("generation {}\n", generation);
  const std::string_view parts[] = {head, text};
  return replace_file(applied_table_file(placement_path), parts);
}

namespace {

using detail::num;

// The first line that is neither blank nor a comment (a CSV table's
// header): its number (0-based) and text; npos when there is none.
std::pair<size_t, std::string_view> header_of(std::string_view text) {
  size_t pos = 0;
  for (size_t n = 0; pos < text.size(); ++n) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view l = text.substr(pos, nl - pos);
    size_t c = l.find_first_not_of(" \t\r");
    if (c != std::string_view::npos && l[c] != '#') return {n, l};
    pos = nl + 1;
  }
  return {std::string_view::npos, {}};
}

// One table's side of a comparison: its lines between the head and the
// tail both tables share (an edit of a few lines leaves most of the file on
// either side), and which of them have an equal line in the other's middle.
struct Middle {
  size_t first_line = 0;   // the number (0-based) of its first line
  std::vector<std::string_view> lines;
  std::vector<bool> paired;
};

void compare_tables(std::string_view a, std::string_view b, Middle& ma, Middle& mb) {
  const size_t n = std::min(a.size(), b.size());
  // Equal bytes from the start and from the end, a block at a time (memcmp), then byte by byte.
  constexpr size_t kBlock = 256;
  size_t head = 0;
  while (head + kBlock <= n && std::memcmp(a.data() + head, b.data() + head, kBlock) == 0) head += kBlock;
  while (head < n && a[head] == b[head]) ++head;
  if (head < a.size() || head < b.size())
    while (head > 0 && a[head - 1] != '\n') --head;   // whole lines
  size_t tail = 0;
  while (tail + kBlock <= n - head &&
         std::memcmp(a.data() + a.size() - tail - kBlock, b.data() + b.size() - tail - kBlock, kBlock) == 0)
    tail += kBlock;
  while (tail < n - head && a[a.size() - 1 - tail] == b[b.size() - 1 - tail]) ++tail;
  // The tail starts a line in both (right after a newline, or where the head ends).
  auto starts_line = [&](std::string_view t, size_t at) { return at == head || t[at - 1] == '\n'; };
  while (tail > 0 && !(starts_line(a, a.size() - tail) && starts_line(b, b.size() - tail))) {
    size_t nl = a.substr(a.size() - tail).find('\n');
    tail = nl == std::string_view::npos ? 0 : tail - nl - 1;
  }
  for (auto [t, m] : {std::pair{a, &ma}, std::pair{b, &mb}}) {
    m->first_line = static_cast<size_t>(std::count(t.begin(), t.begin() + static_cast<long>(head), '\n'));
    m->lines = qosc::split_lines(t.substr(head, t.size() - tail - head));
    m->paired.assign(m->lines.size(), false);
  }
  // Lines of the two middles paired as equal, wherever they are (each at
  // most once): one hash table of a's, open addressing.
  size_t cap = 16;
  while (cap < 2 * ma.lines.size()) cap *= 2;
  std::vector<uint32_t> slot(cap, 0);   // index + 1 of a line of a; 0: empty
  const std::hash<std::string_view> hash;
  for (size_t i = 0; i < ma.lines.size(); ++i) {
    size_t k = hash(ma.lines[i]) & (cap - 1);
    while (slot[k]) k = (k + 1) & (cap - 1);
    slot[k] = static_cast<uint32_t>(i + 1);
  }
  for (size_t j = 0; j < mb.lines.size(); ++j)
    for (size_t k = hash(mb.lines[j]) & (cap - 1); slot[k]; k = (k + 1) & (cap - 1)) {
      const size_t i = slot[k] - 1;
      if (!ma.paired[i] && ma.lines[i] == mb.lines[j]) {
        ma.paired[i] = mb.paired[j] = true;
        break;
      }
    }
}

// A table's text with only its header and its middle's unpaired lines, the
// others left empty so that the lines parsed keep their numbers.
std::string only_changed(const Middle& m, size_t header, std::string_view header_text) {
  std::string out;
  for (size_t i = 0; i < m.first_line; ++i) {
    if (i == header) out.append(header_text);
    out.push_back('\n');
  }
  for (size_t i = 0; i < m.lines.size(); ++i) {
    if (!m.paired[i]) out.append(m.lines[i]);
    out.push_back('\n');
  }
  return out;
}

// The next tab-separated field of `rest`, cut off it.
std::string_view next_field(std::string_view& rest) {
  const size_t tab = rest.find('\t');
  std::string_view f = rest.substr(0, tab);
  rest.remove_prefix(tab == std::string_view::npos ? rest.size() : tab + 1);
  return f;
}

// A "host" line's fields, as views into it (no allocation); the line as
// to_text() writes it, else std::invalid_argument. Its assured rate and
// fingerprint stay text until asked for.
struct HostLine {
  uint32_t group = 0, slot = 0;
  std::string_view rate, fingerprint, name, plan, prefixes, leaves;
  uint64_t rate_bps() const { return num(rate); }
};

HostLine host_line(std::string_view line) {
  // One pass for the ten fields: memchr per field costs more on fields this short.
  std::string_view f[10];
  size_t n = 0, from = 0;
  for (size_t i = 0; i < line.size() && n < 9; ++i)
    if (line[i] == '\t') {
      f[n++] = line.substr(from, i - from);
      from = i + 1;
    }
  f[n++] = line.substr(from);
  if (n != 10 || f[0] != "host" || f[9].find('\t') != std::string_view::npos || f[8].empty())
    throw std::invalid_argument("a host line of another form");
  HostLine h;
  h.group = static_cast<uint32_t>(num(f[1]));
  h.slot = static_cast<uint32_t>(num(f[2]));
  h.rate = f[4];
  h.fingerprint = f[5];
  h.name = f[6];
  h.plan = f[7];
  h.prefixes = f[8];
  h.leaves = f[9];
  return h;
}

std::string_view name_of(std::string_view line) {
  std::string_view rest = line;
  for (int i = 0; i < 6; ++i) next_field(rest);
  return next_field(rest);
}

size_t count_words(std::string_view s) { return s.empty() ? 0 : 1 + static_cast<size_t>(std::count(s.begin(), s.end(), ' ')); }

PlacedHost placed(std::string_view line) {
  std::vector<std::string_view> f;
  detail::split(line, '\t', f);
  return detail::host_from_fields(f);
}

}  // namespace

struct Delta::Text {
  MappedFile placement;             // the placement file as read
  std::string_view hosts;           // its host lines (each with its newline), in name order
  detail::Tallies tallies;          // as read from it
  std::set<std::string, std::less<>> touched;   // the hosts in old_part or next_part

  // The host line that starts at `at` (without its newline) and where the next one starts.
  std::string_view line_at(size_t at) const { return hosts.substr(at, hosts.find('\n', at) - at); }
  size_t after(size_t at) const { return hosts.find('\n', at) + 1; }
  // Where the first host line whose name is not before `name` starts
  // (hosts.size(): none), by binary search over the bytes.
  size_t lower_bound(std::string_view name) const {
    size_t lo = 0, hi = hosts.size();   // both start a line
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      const size_t at = mid ? hosts.rfind('\n', mid - 1) + 1 : 0;   // >= lo: lo starts a line
      if (name_of(line_at(at)) < name) lo = after(at);
      else hi = at;
    }
    return lo;
  }
  // The line of host `name`; empty when it has none.
  std::string_view find(std::string_view name) const {
    const size_t at = lower_bound(name);
    if (at == hosts.size()) return {};
    const std::string_view l = line_at(at);
    return name_of(l) == name ? l : std::string_view{};
  }
  // The hosts as they are counted by plan.
  size_t host_count() const {
    size_t n = 0;
    for (const auto& [name, p] : tallies.plans) n += p.hosts;
    return n;
  }
};

Delta::Delta() : text_(std::make_unique<Text>()) {}
Delta::~Delta() = default;
Delta::Delta(Delta&&) noexcept = default;
Delta& Delta::operator=(Delta&&) noexcept = default;

std::vector<std::string_view> Delta::placement_parts(const Placement& next, const std::vector<uint32_t>& pending,
                                                     std::string& head, std::string& lines) const {
  const Text& t = *text_;
  fmt::memory_buffer b;
  detail::append_head(b, next.next_host_id, next.generation);
  for (const auto& g : next.groups) detail::append_group(b, g);
  detail::Tallies tallies = t.tallies;
  for (const auto& h : old_part.hosts) tallies.remove(h);
  for (const auto& h : next.hosts) tallies.add(h);
  tallies.keep_groups(next.groups, old_part.groups);
  tallies.append(b);
  head.assign(b.data(), b.size());
  // The hosts written anew, and where each ends.
  b.clear();
  std::vector<size_t> end_of;
  for (const auto& h : next.hosts) {
    detail::append_host(b, h);
    end_of.push_back(b.size());
  }
  detail::append_pending(b, pending);
  lines.assign(b.data(), b.size());
  const std::string_view fresh(lines);
  auto fresh_line = [&](size_t j) {
    const size_t from = j ? end_of[j - 1] : 0;
    return fresh.substr(from, end_of[j] - from);
  };
  // In name order: runs of the untouched hosts' lines as they were, each
  // touched host's old line left out and its new one (if it stays) put in.
  // `next` holds touched hosts only, in name order.
  std::vector<std::string_view> parts{head};
  size_t run = 0;   // where the old lines not yet in parts start (in t.hosts)
  size_t j = 0;     // the next host of `next`
  for (const std::string& name : t.touched) {
    const size_t at = t.lower_bound(name);
    if (at > run) parts.push_back(t.hosts.substr(run, at - run));
    run = std::max(run, at);
    if (j < next.hosts.size() && next.hosts[j].name == name) parts.push_back(fresh_line(j++));
    if (run < t.hosts.size() && name_of(t.line_at(run)) == name) run = t.after(run);   // its old line
  }
  if (run < t.hosts.size()) parts.push_back(t.hosts.substr(run));
  parts.push_back(fresh.substr(j ? end_of[j - 1] : 0));   // the pending line
  return parts;
}

std::string Delta::placement_text(const Placement& next, const std::vector<uint32_t>& pending) const {
  std::string head, lines, out;
  for (std::string_view p : placement_parts(next, pending, head, lines)) out.append(p);
  return out;
}

Status Delta::record(const std::string& placement_path, const Placement& next,
                     const std::vector<uint32_t>& pending) const {
  std::string head, lines;
  return write_placement_text(placement_path, placement_parts(next, pending, head, lines));
}

std::optional<Delta> plan_delta(const std::string& placement_path, const std::string& table_source,
                                std::string_view table, TableFormat format, const TableRules& rules,
                                const Shape& shape, std::string* why) {
  auto refuse = [&](std::string reason) -> std::optional<Delta> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  auto damaged = [&](std::string_view what) {
    return refuse(fmt::format("the placement is not in the form the quick path reads ({})", what));
  };
  if (table_format(table, format) == TableFormat::Json) return refuse("a JSON table");
  Delta d;
  Delta::Text& t = *d.text_;
  auto mapped = map_file(placement_path);
  if (!mapped) return refuse("no placement to start from");
  t.placement = std::move(*mapped);
  const std::string_view text = t.placement.text();
  // Every line ends with its newline: the walks over the host lines below rely on it.
  if (!text.empty() && text.back() != '\n') return damaged("a last line without its newline");

  // The placement's head: its numbers, groups and tallies (Tallies), up to
  // its first host line; and its last line when it is the pending one. The
  // host lines between are read only for the hosts the table touches.
  const qosc::Manifest& m = *shape.manifest;
  struct PlanTally {
    std::string_view name;
    size_t before = 0, after = 0;   // hosts on it
    uint64_t rate = 0, fingerprint = 0;   // as its hosts were placed, then as it is now
  };
  std::vector<PlanTally> plans;
  for (const auto& p : m.plans) plans.push_back({p.name});
  auto plan_named = [&](std::string_view name) -> PlanTally* {
    for (auto& p : plans)
      if (p.name == name) return &p;
    return nullptr;
  };
  struct GroupTally {
    bool exists = false;
    uint64_t held = 0;    // slots held (a bit each) by the old placement's hosts, then new ones
    uint64_t rate = 0;    // its hosts' assured rates after the change
    uint32_t hosts = 0;   // ... and their number
  };
  std::vector<GroupTally> tally;
  detail::HandlePool handles(shape);
  Placement& old = d.old_part;
  bool tallied = false;
  try {
    std::vector<std::string_view> f;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t nl = text.find('\n', pos);
      const std::string_view line = text.substr(pos, nl - pos);
      if (line.starts_with("host\t")) break;
      detail::split(line, '\t', f);
      if (f[0] == "tally") {
        t.tallies.read(f);
        tallied = true;
      } else {
        detail::read_other_line(f, old);
      }
      pos = nl + 1;
    }
    if (pos < text.size()) {   // host lines, then perhaps the pending line
      size_t end = text.size();
      const size_t last = text.rfind('\n', text.size() - 2) + 1;
      if (text.substr(last).starts_with("pending")) {
        detail::split(text.substr(last, text.size() - 1 - last), '\t', f);
        detail::read_other_line(f, old);
        end = last;
      }
      t.hosts = text.substr(pos, end - pos);
    }
  } catch (const std::exception& e) {
    return damaged(e.what());
  }
  if (!tallied) return refuse("a placement without tallies (written by an older qosrun)");
  for (const auto& g : old.groups) {
    if (tally.size() <= g.index) tally.resize(g.index + 1);
    GroupTally& gt = tally[g.index];
    gt.exists = true;
    gt.rate = g.rate_bps;   // the sum of its hosts' assured rates
    if (auto s = t.tallies.slots.find(g.index); s != t.tallies.slots.end()) gt.held = s->second;
    gt.hosts = static_cast<uint32_t>(__builtin_popcountll(gt.held));
  }
  handles.take(t.tallies.handles);
  for (const auto& [name, tp] : t.tallies.plans) {
    PlanTally* p = plan_named(name);
    if (!p) return refuse("a host on a plan the policy lacks");
    if (!tp.alike) return refuse("hosts of one plan placed unalike");
    p->before = tp.hosts;
    p->rate = tp.rate_bps;
    p->fingerprint = tp.fingerprint;
  }
  size_t prefixes = t.tallies.prefixes;
  if (!read_journal(placement_path, old.generation).empty()) return refuse("an interrupted apply to recover");
  auto applied = map_file(applied_table_file(placement_path));
  if (!applied) return refuse("no record of the table last applied");
  std::string_view last = applied->text();
  const size_t first_nl = last.find('\n');
  if (first_nl == std::string_view::npos || last.substr(0, first_nl) != fmt::format("generation {}", old.generation))
    return refuse("the table last applied does not belong to this placement (a reload or an older qosrun since)");
  last.remove_prefix(first_nl + 1);

  // Which lines differ.
  const auto [was_header, was_header_text] = header_of(last);
  const auto [now_header, now_header_text] = header_of(table);
  if (was_header == std::string_view::npos || was_header != now_header || was_header_text != now_header_text)
    return refuse("the header line changed");
  Middle was, now;
  compare_tables(last, table, was, now);
  if (was.first_line <= was_header) return refuse("the header line changed");
  for (bool p : was.paired) d.lines += !p;
  for (bool p : now.paired) d.lines += !p;
  // The lines that went and came, parsed and checked among themselves by the
  // table's own reader (problems: the whole path lists them all).
  auto gone = parse_host_table(only_changed(was, was_header, was_header_text), "the last table", rules,
                               TableFormat::Csv);
  if (!gone) return refuse("the lines that went do not read as they did");
  auto came = parse_host_table(only_changed(now, now_header, now_header_text), table_source, rules, TableFormat::Csv);
  if (!came) return refuse("the lines that changed have problems");

  // The hosts they name: each gone one was placed; a new line names no host
  // whose line stays.
  std::map<std::string_view, HostLine> gone_of;
  for (const auto& e : gone->hosts) {
    const std::string_view line = t.find(e.name);
    if (line.empty()) return refuse(fmt::format("host '{}' of the last table is not in the placement", e.name));
    HostLine h;
    try {
      h = host_line(line);
    } catch (const std::exception& ex) {
      return damaged(ex.what());
    }
    if (h.slot >= kHostsPerGroup || h.group >= tally.size() || !tally[h.group].exists)
      return damaged("a host outside the groups");
    gone_of.emplace(h.name, h);
  }
  std::vector<const HostEntry*> entries;
  for (const auto& e : came->hosts) {
    if (!t.find(e.name).empty() && !gone_of.count(e.name))
      return refuse(fmt::format("a changed line names host '{}', whose own line stays", e.name));
    entries.push_back(&e);
  }
  std::sort(entries.begin(), entries.end(), [](const HostEntry* a, const HostEntry* b) { return a->name < b->name; });
  try {
    for (const auto& [name, h] : gone_of) {   // in name order
      t.touched.emplace(name);
      old.hosts.push_back(placed(t.find(name)));   // as placed: what apply() changes from
    }
  } catch (const std::exception& e) {
    return damaged(e.what());
  }
  for (const HostEntry* e : entries) t.touched.emplace(e->name);

  // Prefixes new to their host overlap no untouched host's, and all fit the map.
  std::vector<Prefix> fresh;
  for (const auto& [name, h] : gone_of) prefixes -= count_words(h.prefixes);
  for (const HostEntry* e : entries) {
    prefixes += e->prefixes.size();
    const PlacedHost* was = old.host(e->name);
    for (const auto& p : e->prefixes)
      if (!was || std::find(was->prefixes.begin(), was->prefixes.end(), p) == was->prefixes.end()) fresh.push_back(p);
  }
  if (prefixes > rules.max_prefixes) return refuse("more prefixes than the map holds");
  if (!fresh.empty()) {
    std::vector<std::string_view> words;
    for (size_t at = 0; at < t.hosts.size(); at = t.after(at)) {
      HostLine h;
      try {
        h = host_line(t.line_at(at));
      } catch (const std::exception& e) {
        return damaged(e.what());
      }
      if (t.touched.count(h.name)) continue;
      detail::split(h.prefixes, ' ', words);
      for (std::string_view w : words) {
        auto q = parse_prefix(w);
        if (!q) return refuse("a prefix of the placement does not read");
        for (const auto& p : fresh)
          if (p.overlaps(*q)) return refuse(fmt::format("prefix {} overlaps host '{}'", p.text(), h.name));
      }
    }
  }

  // Plan rates must not move (else every host changes: the whole path), and
  // every untouched host must be placed as the whole path would place it again.
  for (auto& p : plans) p.after = p.before;
  for (const auto& [name, h] : gone_of) --plan_named(h.plan)->after;
  for (const HostEntry* e : entries) ++plan_named(e->plan)->after;   // the table's reader knows the plans
  std::map<std::string, size_t, std::less<>> before, after;
  for (const auto& p : plans) {
    before.emplace(p.name, p.before);
    after.emplace(p.name, p.after);
  }
  const auto rates = plan_rates(shape, before);
  if (plan_rates(shape, after) != rates) return refuse("the plans' assured rates move");
  ClassCache cache;
  for (auto& p : plans) {
    const uint64_t rate = rates.at(std::string(p.name));
    auto c = cache.get(shape, std::string(p.name), rate);
    if (!c) return refuse(c.error().message);
    if (p.before && (p.rate != rate || p.fingerprint != (*c)->fingerprint))
      return refuse(fmt::format("the hosts on plan '{}' are not placed as it is now", p.name));
    p.rate = rate;
    p.fingerprint = (*c)->fingerprint;
  }

  // Planning, as plan_placement does it for these hosts: a host that stays
  // keeps group, slot, id and the leaves its plan still has; a new one takes
  // the first free slot no host of the old placement holds.
  Placement& next = d.next_part;
  for (const auto& [name, h] : gone_of) {
    tally[h.group].rate -= h.rate_bps();
    --tally[h.group].hosts;
  }
  next.next_host_id = old.next_host_id;
  next.generation = old.generation + 1;
  const uint32_t per_group = shape.hosts_per_group();
  for (const HostEntry* e : entries) {
    const PlanTally& plan = *plan_named(e->plan);
    PlacedHost h;
    h.name = e->name;
    h.plan = e->plan;
    h.prefixes = e->prefixes;
    std::sort(h.prefixes.begin(), h.prefixes.end());
    h.rate_bps = plan.rate;
    h.fingerprint = plan.fingerprint;
    const std::vector<uint32_t> classes = detail::plan_class_ids(m, e->plan);
    if (const PlacedHost* was_placed = old.host(e->name)) {
      h.group = was_placed->group;
      h.slot = was_placed->slot;
      h.host_id = was_placed->host_id;
      for (uint32_t cls : classes)
        if (auto it = was_placed->leaves.find(cls); it != was_placed->leaves.end()) h.leaves.set(cls, it->second);
    } else {
      h.host_id = next.next_host_id++;
      bool found = false;   // the first group, by index, with room and a slot no host of the old placement holds
      for (const auto& g : old.groups) {
        GroupTally& gt = tally[g.index];
        if (static_cast<uint32_t>(__builtin_popcountll(gt.held)) >= per_group) continue;
        for (uint32_t slot = 0; slot < kHostsPerGroup && !found; ++slot)
          if (!(gt.held >> slot & 1)) {
            gt.held |= uint64_t{1} << slot;
            h.group = g.index;
            h.slot = slot;
            found = true;
          }
        if (found) break;
      }
      if (!found) return refuse("a new host needs a new group");
    }
    for (uint32_t cls : classes) {
      if (h.leaves.count(cls)) continue;
      auto handle = handles.next();
      if (!handle) return refuse(handle.error().message);
      h.leaves.set(cls, *handle);
    }
    tally[h.group].rate += h.rate_bps;
    ++tally[h.group].hosts;
    next.hosts.push_back(std::move(h));
  }
  for (Group g : old.groups) {
    if (!tally[g.index].hosts) continue;   // left empty: the group goes
    g.rate_bps = tally[g.index].rate;
    next.groups.push_back(g);
  }
  d.untouched = t.host_count() - gone_of.size();
  return d;
}

}  // namespace qosrun::hosts
