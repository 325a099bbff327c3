// The front-end driver and the IR's helpers: to_string, find_class, dump_ir.
#include <fmt/format.h>

#include <deque>
#include <memory>
#include <mutex>

#include "qosc/frontend.hpp"
#include "qosc/match_text.hpp"
#include "qosc/units.hpp"

namespace qosc {

namespace ir {

const char* to_string(IsolateMode m) {
  switch (m) {
    case IsolateMode::None: return "none";
    case IsolateMode::Flows: return "flows";
    case IsolateMode::Saddr: return "saddr";
    case IsolateMode::Daddr: return "daddr";
  }
  return "none";
}

const char* to_string(SchedKind k) {
  switch (k) {
    case SchedKind::StrictPriority: return "strict_priority";
    case SchedKind::RoundRobin: return "round_robin";
    case SchedKind::DeficitRoundRobin: return "deficit_round_robin";
    case SchedKind::WeightedFairQueuing: return "weighted_fair_queuing";
    case SchedKind::Pifo: return "pifo";
  }
  return "?";
}

const char* to_string(RankField f) {
  switch (f) {
    case RankField::ClassPriority: return "class.priority";
    case RankField::ClassWeight: return "class.weight";
    case RankField::PktLen: return "pkt.len";
    case RankField::FlowBytes: return "flow.bytes";
    case RankField::FlowPackets: return "flow.packets";
    case RankField::NowUs: return "now_us";
  }
  return "?";
}

std::string to_string(const RankExpr& e) {
  using Op = RankExpr::Op;
  auto arg = [&](size_t i) { return i < e.args.size() ? to_string(e.args[i]) : std::string("?"); };
  switch (e.op) {
    case Op::Const: return e.value < 0 ? fmt::format("(0 - {})", -e.value) : fmt::format("{}", e.value);
    case Op::Field: return to_string(e.field);
    case Op::Add: return fmt::format("({} + {})", arg(0), arg(1));
    case Op::Sub: return fmt::format("({} - {})", arg(0), arg(1));
    case Op::Mul: return fmt::format("({} * {})", arg(0), arg(1));
    case Op::Div: return fmt::format("({} / {})", arg(0), arg(1));
    case Op::Min: return fmt::format("min({}, {})", arg(0), arg(1));
    case Op::Max: return fmt::format("max({}, {})", arg(0), arg(1));
    case Op::Neg: return fmt::format("(0 - {})", arg(0));
  }
  return "?";
}

const Class* Policy::find_class(std::string_view n) const {
  for (const auto& c : classes)
    if (c.name == n) return &c;
  return nullptr;
}

}  // namespace ir

namespace {

std::string fmt_ports(const ir::PortSet& s) {
  std::string r;
  for (auto iv : s) {
    if (!r.empty()) r += ", ";
    r += iv.lo == iv.hi ? fmt::format("{}", iv.lo) : fmt::format("{}-{}", iv.lo, iv.hi);
  }
  return "{ " + r + " }";
}

template <size_t N>
std::string fmt_bits(const std::bitset<N>& b) {
  std::string r;
  for (size_t i = 0; i < N;) {
    if (!b.test(i)) { ++i; continue; }
    size_t j = i;
    while (j + 1 < N && b.test(j + 1)) ++j;
    if (!r.empty()) r += ", ";
    r += i == j ? fmt::format("{}", i) : fmt::format("{}-{}", i, j);
    i = j + 1;
  }
  return "{ " + r + " }";
}

const char* fam(ir::Family f) { return f == ir::Family::V4 ? "ipv4" : f == ir::Family::V6 ? "ipv6" : "any"; }

}  // namespace

std::string dump_ir(const ir::Policy& p) {
  std::string s = fmt::format("policy {} (from {})\n", p.name, p.source_name);
  // An adaptive rate: its range, start and delay, every default filled in.
  auto rate = [](const char* what, uint64_t bps, const std::optional<ir::Adaptive>& a) {
    if (!a) return fmt::format("  {} {} ({} bit/s)\n", what, units::format_rate(bps), bps);
    return fmt::format("  {} adaptive {}-{} start={} delay={} ({}-{} bit/s)\n", what, units::format_rate(a->min_bps),
                       units::format_rate(a->max_bps), units::format_rate(a->start_bps), units::format_duration(a->delay_us),
                       a->min_bps, a->max_bps);
  };
  s += rate("link", p.link_bps, p.link_adaptive);
  if (p.download_bps) s += rate("download", p.download_bps, p.download_adaptive);
  s += fmt::format("  scheduler {}", ir::to_string(p.scheduler.kind));
  if (p.scheduler.kind == ir::SchedKind::Pifo)
    s += fmt::format(" rank={} bands={}", ir::to_string(p.scheduler.rank), p.scheduler.pifo_bands);
  s += "\n  classes:\n";
  for (const auto& c : p.classes) {
    s += fmt::format("    [{}] {:<12} priority={} weight={} quantum={}b", c.id, c.name, c.priority, c.weight, c.quantum);
    if (c.rate_bps) s += fmt::format(" rate={} burst={}b", units::format_rate(c.rate_bps), c.burst_bytes);
    else s += " rate=link";
    if (c.is_default) s += " default";
    if (c.set_dscp) s += fmt::format(" set_dscp={}", *c.set_dscp);
    s += "\n";
  }
  for (const auto& pl : p.plans) {
    s += fmt::format("  plan {} rate={}", pl.name, units::format_rate(pl.rate_bps));
    if (pl.ceil_bps) s += fmt::format(" ceil={}", units::format_rate(pl.ceil_bps));
    if (pl.burst_bytes) s += fmt::format(" burst={}b", pl.burst_bytes);
    std::string cs;
    for (uint32_t c : pl.classes) cs += (cs.empty() ? "" : ",") + p.classes[c].name;
    s += fmt::format(" classes={}\n", cs.empty() ? "all" : cs);
  }
  if (p.hosts) s += fmt::format("  hosts {}{}\n", p.hosts->dst ? "daddr" : "saddr", p.hosts->nat ? " nat" : "");
  s += fmt::format("  rules (first match wins; otherwise -> {}):\n",
                   p.default_class < p.classes.size() ? p.classes[p.default_class].name : "?");
  for (size_t i = 0; i < p.rules.size(); ++i) {
    const auto& r = p.rules[i];
    std::string m;
    if (r.family != ir::Family::Any) m += fmt::format(" family={}", fam(r.family));
    if (r.protos) m += fmt::format(" proto={}", fmt_bits(*r.protos));
    if (r.sport) m += fmt::format(" sport={}", fmt_ports(*r.sport));
    if (r.dport) m += fmt::format(" dport={}", fmt_ports(*r.dport));
    if (r.dscp) m += fmt::format(" dscp={}", fmt_bits(*r.dscp));
    for (const auto& a : r.addrs) {
      std::string ps;
      for (const auto& x : a.prefixes) ps += (ps.empty() ? "" : ", ") + ir::format_prefix(x);
      m += fmt::format(" {}{}{{ {} }}", a.dst ? "daddr" : "saddr", a.negated ? "!=" : "=", ps);
    }
    if (m.empty()) m = " (every IP packet)";
    std::string target = r.target == ir::kDrop ? "drop"
                         : size_t(r.target) < p.classes.size() ? p.classes[size_t(r.target)].name
                                                                : "?";
    s += fmt::format("    #{} (line {}):{} -> {}\n", r.index, r.loc.line, m, target);
  }
  return s;
}

FrontendResult compile_frontend(const SourceFile& file, Diagnostics& diags) {
  FrontendResult res;
  const SourceFile* src = &file;
  const std::string& n = file.name();
  if (n.size() >= 5 && n.compare(n.size() - 5, 5, ".json") == 0) {
    auto text = json_profile_to_qos(file, diags);
    if (!text) return res;
    // The converted text must outlive the diagnostics that point into it.
    static std::mutex mu;
    static std::deque<std::unique_ptr<SourceFile>> converted;
    std::lock_guard lock(mu);
    converted.push_back(std::make_unique<SourceFile>(n + " (converted to .qos)", *text));
    src = converted.back().get();
    diags.set_file(src);
  }
  res.ast = parse_policy(*src, diags);
  if (!res.ast || diags.has_errors()) return res;
  res.ir = check_and_lower(*res.ast, *src, diags);
  if (res.ir) res.ir->source_name = file.name();
  return res;
}

}  // namespace qosc
