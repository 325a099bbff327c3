// Import of the dissertation's JSON profiles (Appendix B format) as .qos text.
//
// The importer only translates structure; values are checked by the normal
// front end afterwards (so a priority of 9 gets the same diagnostic as in a
// .qos file). Structural problems are reported here with the JSON path.
//
// Mapping (docs/language.md, "JSON profiles"):
// - link: profiles have none; 1gbit is assumed (the dissertation's Raspberry
//   Pi 4 testbed used gigabit Ethernet) and a comment says so.
// - classes in file order; rate_limit_mbps -> `rate Nmbit` (0 or absent: no
//   cap), burst_size_kb -> `burst Nkb` (only with a rate), quantum -> bytes.
// - default class: the class with the highest `priority` number (the least
//   important one); ties go to the highest `id`. A `# note:` says which.
// - rules sorted by ascending `priority` (stable); 0.0.0.0/0 (or ::/0) = any
//   address; a port pair with min = max = 0 = any port; protocol any = no
//   protocol match. The dissertation's program matched port ranges against
//   whichever of TCP/UDP it parsed, so a rule with ports and protocol any
//   becomes two rules, one `tcp` and one `udp`, in that order.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "qosc/frontend.hpp"

namespace qosc {
namespace {

using nlohmann::json;

struct ImportError {
  std::string path, message;
};

[[noreturn]] void fail(const std::string& path, const std::string& msg) { throw ImportError{path, msg}; }

const json& field(const json& obj, const std::string& path, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(path, fmt::format("missing field '{}'", key));
  return *it;
}

int64_t get_int(const json& obj, const std::string& path, const char* key, std::optional<int64_t> def = std::nullopt) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (def) return *def;
    fail(path, fmt::format("missing field '{}'", key));
  }
  if (!it->is_number_integer()) fail(path + "." + key, "expected an integer");
  return it->get<int64_t>();
}

std::string number_text(const json& v, const std::string& path) {
  if (v.is_number_integer()) return fmt::format("{}", v.get<int64_t>());
  if (v.is_number_float()) {
    std::string s = fmt::format("{}", v.get<double>());
    return s;
  }
  fail(path, "expected a number");
}

bool valid_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(uint8_t(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(uint8_t(c)) || c == '_' || c == '-'; });
}

std::string policy_name_from(const std::string& file) {
  std::string base = file.substr(file.find_last_of('/') == std::string::npos ? 0 : file.find_last_of('/') + 1);
  if (auto dot = base.rfind('.'); dot != std::string::npos) base = base.substr(0, dot);
  std::string out;
  for (char c : base) out += (std::isalnum(uint8_t(c)) || c == '_' || c == '-') ? c : '_';
  if (out.empty() || std::isdigit(uint8_t(out[0])) || out[0] == '-') out = "p_" + out;
  static const char* reserved[] = {"policy", "link", "scheduler", "set", "class", "rule", "priority", "weight",
                                   "quantum", "rate", "burst", "default", "drop", "ip", "ip6", "tcp", "udp",
                                   "icmp", "icmpv6", "sport", "dport", "proto", "dscp", "saddr", "daddr"};
  for (const char* r : reserved)
    if (out == r) return out + "_profile";  // e.g. default.json -> policy default_profile
  return out;
}

std::string convert(const json& doc, const std::string& file_name) {
  if (!doc.is_object()) fail("(top level)", "expected a JSON object with scheduler, classes and rules");
  std::string out;
  out += fmt::format("# converted from {} (dissertation JSON profile) by qosc convert\n",
                     file_name.substr(file_name.find_last_of('/') == std::string::npos ? 0 : file_name.find_last_of('/') + 1));
  out += "# note: the profile names no link rate; 1gbit is assumed (the dissertation's\n"
         "#       Raspberry Pi 4 testbed used gigabit Ethernet)\n";

  const json& sched = field(doc, "(top level)", "scheduler");
  if (!sched.is_string()) fail("scheduler", "expected a string such as \"strict_priority\"");

  const json& classes = field(doc, "(top level)", "classes");
  if (!classes.is_array() || classes.empty()) fail("classes", "expected a non-empty array of classes");
  struct Cls { int64_t id, priority; std::string name; };
  std::vector<Cls> cls;
  std::map<int64_t, std::string> by_id;
  std::string body;
  for (size_t i = 0; i < classes.size(); ++i) {
    std::string path = fmt::format("classes[{}]", i);
    const json& c = classes[i];
    if (!c.is_object()) fail(path, "expected an object");
    int64_t id = get_int(c, path, "id");
    const json& name = field(c, path, "name");
    if (!name.is_string()) fail(path + ".name", "expected a string");
    std::string n = name.get<std::string>();
    if (!valid_name(n)) fail(path + ".name", fmt::format("'{}' is not a valid class name (letters, digits, _ and -, starting with a letter or _)", n));
    if (by_id.count(id)) fail(path + ".id", fmt::format("id {} is used by class '{}' already", id, by_id[id]));
    for (const auto& o : cls)
      if (o.name == n) fail(path + ".name", fmt::format("class name '{}' is used twice", n));
    by_id[id] = n;
    int64_t prio = get_int(c, path, "priority", 4);
    cls.push_back({id, prio, n});
    std::string attrs = fmt::format(" priority {};", prio);
    if (c.contains("weight")) attrs += fmt::format(" weight {};", get_int(c, path, "weight"));
    if (c.contains("quantum")) attrs += fmt::format(" quantum {}b;", get_int(c, path, "quantum"));
    bool rated = false;
    if (auto it = c.find("rate_limit_mbps"); it != c.end()) {
      std::string r = number_text(*it, path + ".rate_limit_mbps");
      if (r.find('-') != std::string::npos) fail(path + ".rate_limit_mbps", "must not be negative");
      if (r != "0") {
        attrs += fmt::format(" rate {}mbit;", r);
        rated = true;
      }
    }
    if (auto it = c.find("burst_size_kb"); it != c.end() && rated) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0) fail(path + ".burst_size_kb", "expected a non-negative integer");
      attrs += fmt::format(" burst {}kb;", it->get<int64_t>());
    }
    body += fmt::format("    class {} {{{} @DEFAULT_{}@ }}\n", n, attrs, i);
  }
  // Default: highest priority number, ties -> highest id.
  size_t def = 0;
  for (size_t i = 1; i < cls.size(); ++i)
    if (cls[i].priority > cls[def].priority || (cls[i].priority == cls[def].priority && cls[i].id > cls[def].id)) def = i;
  for (size_t i = 0; i < cls.size(); ++i) {
    std::string key = fmt::format(" @DEFAULT_{}@", i);
    body.replace(body.find(key), key.size(), i == def ? " default;" : "");
  }
  out += fmt::format("# note: default class '{}' chosen: profiles name no default, so the class with\n"
                     "#       the highest priority number (the least important) is used; ties go to\n"
                     "#       the highest id\n", cls[def].name);
  out += fmt::format("policy {} {{\n    link 1gbit;\n    scheduler {};\n\n", policy_name_from(file_name), sched.get<std::string>());
  out += body;

  std::vector<std::pair<int64_t, size_t>> order;
  const json* rules = nullptr;
  if (auto it = doc.find("rules"); it != doc.end()) {
    if (!it->is_array()) fail("rules", "expected an array of rules");
    rules = &*it;
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string path = fmt::format("rules[{}]", i);
      if (!(*rules)[i].is_object()) fail(path, "expected an object");
      order.push_back({get_int((*rules)[i], path, "priority", 0), i});
    }
  }
  std::stable_sort(order.begin(), order.end(), [](auto a, auto b) { return a.first < b.first; });
  if (!order.empty()) out += "\n";
  for (auto [prio, i] : order) {
    const json& r = (*rules)[i];
    std::string path = fmt::format("rules[{}]", i);
    std::string addr;
    for (auto [key, dir] : {std::pair{"src_ip", "saddr"}, std::pair{"dst_ip", "daddr"}}) {
      auto it = r.find(key);
      if (it == r.end()) continue;
      if (!it->is_string()) fail(path + "." + key, "expected a CIDR string such as \"192.168.1.0/24\"");
      std::string v = it->get<std::string>();
      if (v == "0.0.0.0/0" || v == "::/0" || v.empty()) continue;
      if (v.find_first_not_of("0123456789abcdefABCDEF.:/") != std::string::npos)
        fail(path + "." + key, fmt::format("'{}' is not an IP address or CIDR prefix", v));
      addr += fmt::format(" {} {} {}", v.find(':') != std::string::npos ? "ip6" : "ip", dir, v);
    }
    std::string ports;
    for (auto [key, kw] : {std::pair{"src_port", "sport"}, std::pair{"dst_port", "dport"}}) {
      int64_t lo = get_int(r, path, (std::string(key) + "_min").c_str(), 0);
      int64_t hi = get_int(r, path, (std::string(key) + "_max").c_str(), 0);
      if (lo == 0 && hi == 0) continue;
      if (lo < 0 || hi < 0) fail(fmt::format("{}.{}_min", path, key), "ports must not be negative");
      if (hi == 0) hi = lo;  // only a minimum given: that one port
      ports += lo == hi ? fmt::format(" {} {}", kw, lo) : fmt::format(" {} {}-{}", kw, lo, hi);
    }
    const json& proto = field(r, path, "protocol");
    std::string p = proto.is_string() ? proto.get<std::string>() : "";
    if (p != "tcp" && p != "udp" && p != "icmp" && p != "any")
      fail(path + ".protocol", "expected one of tcp, udp, icmp, any");
    int64_t cid = get_int(r, path, "class_id");
    auto cit = by_id.find(cid);
    if (cit == by_id.end()) fail(path + ".class_id", fmt::format("no class has id {}", cid));
    std::vector<std::string> l4;
    if (p == "any") {
      if (ports.empty()) l4.push_back("");
      else l4 = {" tcp", " udp"};  // the dissertation matched ports of either L4
    } else {
      if (p == "icmp" && !ports.empty()) fail(path + ".protocol", "icmp has no ports: set the port fields to 0 or use tcp/udp");
      l4.push_back(" " + p);
    }
    for (const auto& proto_kw : l4) {
      std::string matches = addr + proto_kw + ports;
      if (matches.empty()) matches = " ip";  // an any/any rule: every IPv4 packet
      out += fmt::format("    rule{} -> {};   # rules[{}], priority {}\n", matches, cit->second, i, prio);
    }
  }
  out += "}\n";
  return out;
}

Loc offset_loc(const std::string& text, size_t off) {
  Loc l{1, 1, 1};
  for (size_t i = 0; i < off && i < text.size(); ++i) {
    if (text[i] == '\n') ++l.line, l.col = 1;
    else ++l.col;
  }
  return l;
}

}  // namespace

std::optional<std::string> json_profile_to_qos(const SourceFile& file, Diagnostics& diags) {
  json doc;
  try {
    doc = json::parse(file.text(), nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 2, column 16: syntax error ..." -> "syntax error ..."
    if (auto c = what.find("column "); c != std::string::npos)
      if (auto p = what.find(": ", c); p != std::string::npos) what = what.substr(p + 2);
    diags.error(offset_loc(file.text(), e.byte > 0 ? e.byte - 1 : 0), fmt::format("invalid JSON: {}", what));
    return std::nullopt;
  }
  try {
    return convert(doc, file.name());
  } catch (const ImportError& e) {
    diags.error(Loc{}, fmt::format("{}: {}", e.path, e.message));
    return std::nullopt;
  } catch (const json::exception& e) {
    diags.error(Loc{}, fmt::format("malformed profile: {}", e.what()));
    return std::nullopt;
  }
}

}  // namespace qosc
