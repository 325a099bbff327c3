#include "random_policy.hpp"

#include <fmt/format.h>

#include <vector>

namespace qosc::testsupport {
namespace {

struct Gen {
  std::mt19937_64& rng;
  const RandomPolicyOptions& o;

  uint64_t u(uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); }
  bool coin(int percent = 50) { return u(0, 99) < uint64_t(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[u(0, v.size() - 1)]; }

  uint16_t port() {
    static const std::vector<uint16_t> pool = {0, 1, 22, 53, 80, 443, 1024, 3074, 3075, 5060, 8080, 27015, 65535};
    return o.narrow_values && coin(80) ? pick(pool) : uint16_t(u(0, 65535));
  }
  std::string port_elem() {
    if (coin(70)) return fmt::format("{}", port());
    uint16_t a = port(), b = port();
    if (a > b) std::swap(a, b);
    return fmt::format("{}-{}", a, b);
  }
  std::string v4_prefix() {
    static const std::vector<std::string> pool = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3",
                                                  "192.168.0.0/16", "192.168.1.0/24", "192.168.1.7/32", "0.0.0.0/0",
                                                  "172.16.0.0/12", "10.1.2.128/25"};
    if (o.narrow_values && coin(80)) return pick(pool);
    unsigned len = unsigned(u(0, 32));
    uint32_t a = uint32_t(u(0, 0xffffffffu));
    if (len < 32) a &= len == 0 ? 0 : ~((1u << (32 - len)) - 1);
    return fmt::format("{}.{}.{}.{}/{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, len);
  }
  std::string v6_prefix() {
    static const std::vector<std::string> pool = {"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1", "::/0",
                                                  "fe80::/10", "2001:db8:1:2::/64", "::1", "fd00::/8"};
    return pick(pool);
  }
  std::string dscp_elem() {
    static const std::vector<std::string> names = {"ef", "af11", "af41", "cs0", "cs1", "cs6", "le", "af23"};
    if (coin(50)) return pick(names);
    if (coin(20)) {
      uint64_t a = u(0, 63), b = u(0, 63);
      if (a > b) std::swap(a, b);
      return fmt::format("{}-{}", a, b);
    }
    return fmt::format("{}", u(0, 63));
  }
  std::string proto_elem() {
    static const std::vector<std::string> names = {"tcp", "udp", "icmp", "gre", "esp", "sctp", "6", "17", "47", "58"};
    return pick(names);
  }

  // A value: single, inline set or named set reference, maybe negated.
  struct SetPool {
    std::vector<std::pair<std::string, std::string>> decls;  // name, body
    std::vector<std::string> ports, v4, v6, dscp;
  } sets;

  template <class F>
  std::string value(F elem, std::vector<std::string>* named) {
    std::string neg = coin(20) ? "!= " : "";
    int form = int(u(0, 9));
    if (named && !named->empty() && form < 2) return neg + "@" + pick(*named);
    if (form < 5) {
      size_t n = size_t(u(1, 4));
      std::string s;
      for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + elem();
      return neg + "{ " + s + " }";
    }
    return neg + elem();
  }

  std::string match(int& family, bool& have_l4) {
    // family: 0 any, 4, 6. Pick kinds compatible with it so most rules are live.
    for (;;) {
      int k = int(u(0, 9));
      switch (k) {
        case 0: case 1: {
          if (have_l4) break;
          have_l4 = true;
          std::string s = coin() ? "tcp" : "udp";
          if (coin(70)) s += " sport " + value([&] { return port_elem(); }, &sets.ports);
          if (coin(70) || s.size() == 3) s += " dport " + value([&] { return port_elem(); }, &sets.ports);
          return s;
        }
        case 2: {
          if (family == 6) break;
          family = 4;
          return std::string("ip ") + (coin() ? "saddr " : "daddr ") + value([&] { return v4_prefix(); }, &sets.v4);
        }
        case 3: {
          if (family == 4) break;
          family = 6;
          return std::string("ip6 ") + (coin() ? "saddr " : "daddr ") + value([&] { return v6_prefix(); }, &sets.v6);
        }
        case 4: return "dscp " + value([&] { return dscp_elem(); }, &sets.dscp);
        case 5: {
          if (have_l4) break;
          have_l4 = true;
          return "proto " + value([&] { return proto_elem(); }, nullptr);
        }
        case 6: {
          if (have_l4) break;
          have_l4 = true;
          if (family == 6) return "icmpv6";
          if (family == 4) return "icmp";
          family = coin() ? 4 : 6;
          return family == 4 ? "icmp" : "icmpv6";
        }
        case 7: case 8: {
          if (have_l4) break;
          have_l4 = true;
          return coin() ? "tcp" : "udp";
        }
        default: return "dscp " + value([&] { return dscp_elem(); }, &sets.dscp);
      }
    }
  }

  std::string rank_expr(int depth) {
    static const std::vector<std::string> fields = {"class.priority", "class.weight", "pkt.len", "flow.bytes",
                                                    "flow.packets", "now_us"};
    if (depth <= 0 || coin(40)) return coin(60) ? pick(fields) : fmt::format("{}", u(0, 1000));
    switch (u(0, 5)) {
      case 0: return fmt::format("{} + {}", rank_expr(depth - 1), rank_expr(depth - 1));
      case 1: return fmt::format("({} - {})", rank_expr(depth - 1), rank_expr(depth - 1));
      case 2: return fmt::format("{} * {}", rank_expr(depth - 1), rank_expr(depth - 1));
      case 3: return fmt::format("{} / {}", rank_expr(depth - 1), u(1, 64));
      case 4: return fmt::format("min({}, {})", rank_expr(depth - 1), rank_expr(depth - 1));
      default: return fmt::format("max({}, {})", rank_expr(depth - 1), rank_expr(depth - 1));
    }
  }

  std::string run() {
    static const std::vector<std::string> scheds = {"strict_priority", "sp", "round_robin", "rr",
                                                    "deficit_round_robin", "drr", "weighted_fair_queuing", "wfq",
                                                    "pifo"};
    std::string out = fmt::format("# generated by qosc_testsupport random_policy\npolicy p{} {{\n", u(0, 9999));
    uint64_t link_mbit = pick(std::vector<uint64_t>{10, 100, 1000, 10000});
    out += fmt::format("    link {}mbit;\n", link_mbit);
    std::string sched = pick(scheds);
    if (sched == "pifo" && !o.allow_pifo) sched = "sp";
    if (sched == "pifo") {
      out += "    scheduler pifo {";
      if (coin(80)) out += " rank = " + rank_expr(3) + ";";
      if (coin(50)) out += fmt::format(" bands {};", u(1, 8));
      out += " }\n";
    } else {
      out += fmt::format("    scheduler {};\n", sched);
    }
    // Named sets of each kind.
    auto make_set = [&](const char* prefix, std::vector<std::string>& names, auto elem) {
      size_t n = size_t(u(0, 2));
      for (size_t i = 0; i < n; ++i) {
        std::string name = fmt::format("{}{}", prefix, names.size());
        size_t k = size_t(u(1, 4));
        std::string body;
        for (size_t j = 0; j < k; ++j) body += (j ? ", " : "") + elem();
        out += fmt::format("    set {} = {{ {} }};\n", name, body);
        names.push_back(name);
      }
    };
    make_set("ports", sets.ports, [&] { return port_elem(); });
    make_set("nets", sets.v4, [&] { return v4_prefix(); });
    make_set("nets6_", sets.v6, [&] { return v6_prefix(); });
    make_set("marks", sets.dscp, [&] { return dscp_elem(); });

    size_t nclasses = size_t(u(2, std::max<size_t>(2, o.max_classes)));
    size_t def = size_t(u(0, nclasses - 1));
    std::vector<std::string> names;
    for (size_t i = 0; i < nclasses; ++i) {
      std::string name = fmt::format("c{}", i);
      names.push_back(name);
      std::string attrs;
      if (coin(80)) attrs += fmt::format(" priority {};", u(0, 7));
      if (coin(50)) attrs += fmt::format(" weight {};", u(1, 1000));
      if (coin(40)) attrs += fmt::format(" quantum {}b;", u(64, 20000));
      if (coin(50)) {
        uint64_t rate = u(1, link_mbit);
        attrs += fmt::format(" rate {}mbit;", rate);
        if (coin(60)) attrs += fmt::format(" burst {}kb;", u(2, 1024));
      }
      if (i == def) attrs += " default;";
      if (o.set_dscp_percent > 0 && coin(o.set_dscp_percent)) {
        static const std::vector<std::string> names = {"ef", "af41", "cs1", "le", "cs0", "af13"};
        attrs += coin(50) ? fmt::format(" set dscp {};", u(0, 63)) : fmt::format(" set dscp {};", pick(names));
      }
      out += fmt::format("    class {} {{{} }}\n", name, attrs);
    }
    size_t nrules = size_t(u(o.min_rules, std::max(o.min_rules, o.max_rules)));
    for (size_t r = 0; r < nrules; ++r) {
      int family = 0;
      bool have_l4 = false;
      size_t nm = size_t(u(1, std::max<size_t>(1, o.max_matches)));
      std::string ms;
      for (size_t m = 0; m < nm; ++m) ms += " " + match(family, have_l4);
      std::string target = o.allow_drop && coin(10) ? "drop" : pick(names);
      out += fmt::format("    rule{} -> {};\n", ms, target);
    }
    out += "}\n";
    return out;
  }
};

}  // namespace

std::string random_policy(std::mt19937_64& rng, const RandomPolicyOptions& opts) {
  Gen g{rng, opts, {}};
  return g.run();
}

}  // namespace qosc::testsupport
