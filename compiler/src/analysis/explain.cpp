// `qosc explain`: why a packet gets its class. Every answer comes from the
// compiler's own lowering (sema) and the reference interpreter (interp.cpp):
// the whole policy for the outcome, each rule and each match on its own for
// the reasons.
#include <fmt/format.h>

#include <arpa/inet.h>

#include <algorithm>

#include "qos_abi.h"
#include "qosc/frontend.hpp"
#include "qosc/literals.hpp"
#include "qosc/review.hpp"

namespace qosc {

namespace {

std::string address_text(const std::array<uint8_t, 16>& a, ir::Family f) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(f == ir::Family::V6 ? AF_INET6 : AF_INET, a.data(), buf, sizeof buf);
  return buf;
}

std::string proto_text(int proto) {
  if (proto < 0) return "unknown";
  std::string n = literals::proto_name(proto);
  return n.empty() ? std::to_string(proto) : n;
}

std::string family_text(ir::Family f) { return f == ir::Family::V6 ? "IPv6" : "IPv4"; }

std::string loc_text(const ReviewedPolicy& p, Loc l) { return fmt::format("{}:{}", p.file_name, l.line); }

// A match as the user wrote it; port matches with their tcp/udp.
std::string match_text(const ast::Match& m) {
  if (m.kind == ast::MatchKind::Sport || m.kind == ast::MatchKind::Dport)
    return fmt::format("{} {}", ast::to_string(m.l4), print_match(m));
  return print_match(m);
}

}  // namespace

std::string outcome_name(const ir::Policy& policy, int32_t outcome) {
  if (outcome == ir::kDrop) return "drop";
  return size_t(outcome) < policy.classes.size() ? policy.classes[size_t(outcome)].name : "?";
}

std::string packet_side_of(const ast::Match& m, const PacketFields& p) {
  using K = ast::MatchKind;
  if (!p.ip) return "the frame is not IP";
  switch (m.kind) {
    case K::Ip: case K::Ip6: return fmt::format("the packet is {}", family_text(p.family));
    case K::IpSaddr: case K::IpDaddr: case K::Ip6Saddr: case K::Ip6Daddr: {
      const bool v6 = m.kind == K::Ip6Saddr || m.kind == K::Ip6Daddr;
      const bool dst = m.kind == K::IpDaddr || m.kind == K::Ip6Daddr;
      if ((p.family == ir::Family::V6) != v6) return fmt::format("the packet is {}", family_text(p.family));
      return fmt::format("the {} address is {}", dst ? "destination" : "source", address_text(dst ? p.daddr : p.saddr, p.family));
    }
    case K::Icmp: case K::Icmpv6:
      if ((p.family == ir::Family::V6) != (m.kind == K::Icmpv6)) return fmt::format("the packet is {}", family_text(p.family));
      return fmt::format("the protocol is {}", proto_text(p.proto));
    case K::Tcp: case K::Udp: case K::Proto: return fmt::format("the protocol is {}", proto_text(p.proto));
    case K::Sport: case K::Dport: {
      int want = m.l4 == K::Udp ? 17 : 6;
      if (p.proto != want) return fmt::format("the protocol is {}", proto_text(p.proto));
      if (!p.l4) return "the packet is a fragment without ports";
      return fmt::format("the {} port is {}", m.kind == K::Sport ? "source" : "destination",
                         m.kind == K::Sport ? p.sport : p.dport);
    }
    case K::Dscp: {
      std::string n = literals::dscp_name(p.dscp & 63);
      return n.empty() ? fmt::format("the DSCP is {}", p.dscp & 63) : fmt::format("the DSCP is {} ({})", n, p.dscp & 63);
    }
  }
  return "";
}

std::optional<ReviewedPolicy> review_policy(const SourceFile& file, Diagnostics& diags) {
  FrontendResult fe = compile_frontend(file, diags);
  if (!fe.ast || !fe.ir || diags.has_errors()) return std::nullopt;
  const SourceFile& src = diags.file() ? *diags.file() : file;   // a .json profile: its .qos translation
  ReviewedPolicy r;
  r.file_name = src.name();   // lines of a .json profile are those of its translation
  r.ast = std::move(*fe.ast);
  r.ir = std::move(*fe.ir);

  Diagnostics quiet(&src);
  auto every = detail::check_and_lower_keep_dead(r.ast, src, quiet);
  if (!every || every->rules.size() != r.ast.rules.size()) {
    diags.error(Loc{}, "internal error: the policy's rules do not lower one by one; please report this policy");
    return std::nullopt;
  }
  r.every_rule = std::move(*every);

  // Each match alone: policies with the same classes and sets and a rule per
  // match, lowered in chunks (the checks compare each rule with the earlier
  // ones of its policy: chunks keep that cost linear in the policy's size).
  constexpr size_t kChunk = 256;
  ast::Policy solo;
  solo.name = r.ast.name;
  solo.loc = r.ast.loc;
  solo.name_loc = r.ast.name_loc;
  solo.links = r.ast.links;
  solo.downloads = r.ast.downloads;
  solo.sets = r.ast.sets;
  solo.classes = r.ast.classes;
  solo.schedulers.swap(r.ast.schedulers);    // not copyable (rank expressions); given back below
  std::vector<std::pair<size_t, size_t>> owner;   // (rule, match) of each solo rule
  for (size_t i = 0; i < r.ast.rules.size(); ++i)
    for (size_t j = 0; j < r.ast.rules[i].matches.size(); ++j) owner.push_back({i, j});
  r.match_alone.resize(r.ast.rules.size());
  std::vector<ir::Rule> lowered;
  bool ok = true;
  for (size_t start = 0; start < owner.size() && ok; start += kChunk) {
    solo.rules.clear();
    for (size_t k = start; k < std::min(owner.size(), start + kChunk); ++k) {
      const auto& rule = r.ast.rules[owner[k].first];
      const auto& m = rule.matches[owner[k].second];
      ast::RuleDecl d;
      d.loc = rule.loc;
      d.drop = rule.drop;
      d.target = rule.target;
      d.target_loc = rule.target_loc;
      if (m.kind == ast::MatchKind::Sport || m.kind == ast::MatchKind::Dport) {
        ast::Match l4;   // a port match needs its tcp/udp
        l4.kind = m.l4;
        l4.loc = m.loc;
        d.matches.push_back(l4);
      }
      d.matches.push_back(m);
      solo.rules.push_back(std::move(d));
    }
    Diagnostics quiet2(&src);
    auto alone = detail::check_and_lower_keep_dead(solo, src, quiet2);
    ok = alone && alone->rules.size() == solo.rules.size();
    if (ok) lowered.insert(lowered.end(), alone->rules.begin(), alone->rules.end());
  }
  solo.schedulers.swap(r.ast.schedulers);
  if (ok)   // else: explain names rules but not their failing matches
    for (size_t k = 0; k < owner.size(); ++k) r.match_alone[owner[k].first].push_back(lowered[k]);
  return r;
}

Explanation explain(const ReviewedPolicy& policy, const PacketFields& packet) {
  Explanation e;
  e.deciding_rule = first_match(policy.every_rule, packet);
  e.outcome = classify(policy.ir, packet);
  const size_t upto = e.deciding_rule < 0 ? policy.ast.rules.size() : size_t(e.deciding_rule);
  for (size_t i = 0; i < upto; ++i) {
    Explanation::Miss m;
    m.rule = i;
    for (size_t j = 0; j < policy.match_alone[i].size(); ++j)
      if (!rule_matches(policy.match_alone[i][j], packet)) m.failed.push_back(j);
    e.earlier.push_back(std::move(m));
  }
  return e;
}

std::string render_explanation(const ReviewedPolicy& p, const NotatedPacket& packet, const Explanation& e,
                               bool verbose) {
  std::string s = fmt::format("{} -> {}\n", format_packet(packet), outcome_name(p.ir, e.outcome));
  if (e.deciding_rule >= 0) {
    const auto& r = p.ast.rules[size_t(e.deciding_rule)];
    s += fmt::format("  decided by {}: {}\n", loc_text(p, r.loc), print_rule(r));
  } else {
    const auto& c = p.ir.classes[p.ir.default_class];
    s += fmt::format("  no rule matched: '{}' is the default class ({})\n", c.name, loc_text(p, c.loc));
  }
  if (e.outcome >= 0 && size_t(e.outcome) < p.ir.classes.size() && packet.fields.ip) {
    const auto& c = p.ir.classes[size_t(e.outcome)];
    if (c.set_dscp) {
      auto text = [](int v) {
        std::string n = literals::dscp_name(v);
        return n.empty() ? std::to_string(v) : fmt::format("{} ({})", n, v);
      };
      s += fmt::format("  on egress: DSCP {} -> {} (set dscp of class '{}', {})\n", text(packet.fields.dscp),
                       text(*c.set_dscp), c.name, loc_text(p, c.loc));
    }
  }
  // The controller's probes of an adaptive link bypass the classes (qos_probe.h);
  // a packet written in the notation carries no ICMP identifier, so say when it would.
  const auto& f = packet.fields;
  if (p.ir.adaptive() && f.ip && ((f.family == ir::Family::V4 && f.proto == 1) || (f.family == ir::Family::V6 && f.proto == 58)))
    s += fmt::format("  unless it is an echo request or reply with identifier {:#x}: qosrun's probes of the adaptive "
                     "rate bypass the classes (HTB's direct queue, never policed)\n", QOS_PROBE_ICMP_ID);
  if (e.earlier.empty()) return s;
  s += e.deciding_rule >= 0 ? "  earlier rules:\n" : "  rules:\n";
  for (const auto& m : e.earlier) {
    const auto& r = p.ast.rules[m.rule];
    if (verbose) s += fmt::format("    {}: {}\n", loc_text(p, r.loc), print_rule(r));
    if (m.failed.empty()) {
      // Cannot happen when each match was lowered alone (a packet that
      // passes every match passes the rule); said plainly if it does.
      std::string why = p.match_alone[m.rule].empty() ? "does not match" : "can never match (see `qosc check`)";
      s += verbose ? "        " + why + "\n" : fmt::format("    {}: {}\n", loc_text(p, r.loc), why);
      continue;
    }
    for (size_t j : m.failed) {
      const auto& match = r.matches[j];
      std::string why = fmt::format("{}: {}", match_text(match), packet_side_of(match, packet.fields));
      if (!verbose) {
        s += fmt::format("    {}: {}\n", loc_text(p, r.loc), why);
        break;
      }
      s += "        " + why + "\n";
    }
  }
  return s;
}

}  // namespace qosc
