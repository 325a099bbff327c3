// fuzz_host_tables: a mutation fuzzer of host tables (qosrun/host_table.hpp),
// built with ASan + UBSan. Seed tables (CSV and JSON, good and bad) are
// mutated the ways tables get damaged or edited: bytes flipped, inserted or
// deleted; lines deleted, duplicated or swapped; fields swapped; quotes,
// commas, slashes and digits inserted; prefixes widened or given host bits;
// truncated. Each copy must be either
//   - accepted, and then really clean: no two hosts of one name, every plan
//     known, every prefix canonical, no prefix inside another, within the
//     map's room; or
//   - refused with every line of the message "SOURCE:LINE: ..." (or
//     "SOURCE: ..." for the table as a whole) and the count of problems
//     equal to the lines listed.
// Anything else (a crash, a sanitizer report, another message) fails.
//
//   fuzz_host_tables [--iterations N] [--seed S]     (scripts/fuzz-host-tables.sh)
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "qosrun/host_table.hpp"

using qosrun::hosts::HostTable;
using qosrun::hosts::TableRules;

namespace {

const char* kSeeds[] = {
    "host,plan,prefixes\nalice,basic,10.0.0.5\n\"bob, 2nd\",premium,\"10.0.1.0/24 2001:db8:1::/48\"\n# c\n\n"
    "carol,basic,2001:db8:2::7\n",
    "# customers\nhost,plan,prefixes\na,basic,192.168.0.0/30\nb,basic,192.168.0.4/30\nc,premium,fd00::/8\n"
    "d,basic,0.0.0.0/0\n",
    "[\n {\"host\": \"alice\", \"plan\": \"basic\", \"prefixes\": [\"10.0.0.5\", \"2001:db8::/32\"]},\n"
    " {\"host\": \"bob\", \"plan\": \"premium\", \"prefixes\": \"10.9.0.0/16 10.10.0.0/16\"}\n]\n",
    "host,plan,prefixes\na,gold,10.0.0.1/24\na,basic,10.0.0.0/24\nb,basic,10.0.0.7\n",
};

struct Rng {
  std::mt19937_64 g;
  size_t below(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(g) : 0; }
};

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find('\n', i);
    if (j == std::string::npos) j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "\n" : "") + v[i];
  return s;
}

std::string mutate(std::string s, Rng& r) {
  static const char* kBits[] = {",", "\"", "/", " ", "\n", "#", "0", "9", ":", ".", "::", "/0", "/33", "/129",
                                "premium", "gold", "\"\"", "[", "]", "{", "}", "\\", "\t", "255", "ffff", "\x01"};
  const int n = 1 + static_cast<int>(r.below(4));
  for (int k = 0; k < n; ++k) {
    switch (r.below(9)) {
      case 0:
        if (!s.empty()) s[r.below(s.size())] ^= static_cast<char>(1 + r.below(255));
        break;
      case 1: s.insert(r.below(s.size() + 1), kBits[r.below(std::size(kBits))]); break;
      case 2:
        if (!s.empty()) s.erase(r.below(s.size()), 1 + r.below(4));
        break;
      case 3: {
        auto l = lines_of(s);
        l.erase(l.begin() + static_cast<long>(r.below(l.size())));
        s = join(l);
        break;
      }
      case 4: {
        auto l = lines_of(s);
        size_t i = r.below(l.size());
        l.insert(l.begin() + static_cast<long>(r.below(l.size() + 1)), l[i]);
        s = join(l);
        break;
      }
      case 5: {
        auto l = lines_of(s);
        std::swap(l[r.below(l.size())], l[r.below(l.size())]);
        s = join(l);
        break;
      }
      case 6: s.resize(r.below(s.size() + 1)); break;
      case 7: {   // a digit for a digit: an address or length that still reads as one
        std::vector<size_t> at;
        for (size_t i = 0; i < s.size(); ++i)
          if (s[i] >= '0' && s[i] <= '9') at.push_back(i);
        if (!at.empty()) s[at[r.below(at.size())]] = static_cast<char>('0' + r.below(10));
        break;
      }
      case 8: {   // a whole new host line, maybe overlapping others
        std::string line = "h" + std::to_string(r.below(50)) + "," + (r.below(2) ? "basic" : "premium") + ",10." +
                           std::to_string(r.below(3)) + "." + std::to_string(r.below(3)) + ".0/" +
                           std::to_string(8 + r.below(25));
        auto l = lines_of(s);
        l.insert(l.begin() + static_cast<long>(r.below(l.size() + 1)), line);
        s = join(l);
        break;
      }
    }
  }
  return s;
}

// Empty when the outcome is one of the two allowed ones; else why not.
std::string judge(const std::string& text, const qosrun::Result<HostTable>& t, const TableRules& rules) {
  if (t.ok()) {
    std::set<std::string> names;
    std::vector<qosrun::hosts::Prefix> all;
    for (const auto& h : t->hosts) {
      if (!names.insert(h.name).second) return "accepted a duplicate host " + h.name;
      if (std::find(rules.plans.begin(), rules.plans.end(), h.plan) == rules.plans.end())
        return "accepted unknown plan " + h.plan;
      if (h.prefixes.empty()) return "accepted a host without prefixes";
      for (const auto& p : h.prefixes) {
        auto again = qosrun::hosts::parse_prefix(p.text());
        if (!again.ok() || !(again->addr == p.addr) || again->len != p.len) return "a prefix is not canonical";
        all.push_back(p);
      }
    }
    if (all.size() > rules.max_prefixes) return "accepted more prefixes than the map holds";
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = i + 1; j < all.size(); ++j)
        if (all[i].overlaps(all[j])) return "accepted overlapping prefixes " + all[i].text() + " " + all[j].text();
    return {};
  }
  const std::string& m = t.error().message;
  const std::string head = "the host table fuzz.csv is refused: ";
  if (m.rfind(head, 0) != 0) return "refused without the heading: " + m.substr(0, 200);
  size_t count = std::strtoul(m.c_str() + head.size(), nullptr, 10);
  auto l = lines_of(m);
  if (l.size() != count + 1) return "the count of problems differs from the lines listed";
  for (size_t i = 1; i < l.size(); ++i) {
    const std::string& x = l[i];
    if (x.rfind("  fuzz.csv:", 0) == 0) {
      size_t k = 11;
      while (k < x.size() && std::isdigit(static_cast<unsigned char>(x[k]))) ++k;
      if (k == 11 || k + 1 >= x.size() || x[k] != ':' || x[k + 1] != ' ') return "a problem without FILE:LINE: " + x;
      size_t line = std::strtoul(x.c_str() + 11, nullptr, 10);
      if (line == 0 || line > lines_of(text).size()) return "a line number outside the table: " + x;
    } else if (x.rfind("  fuzz.csv: ", 0) != 0) {
      return "a problem not naming the table: " + x;
    }
  }
  (void)text;
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 20000;
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--iterations") iterations = std::atol(argv[i + 1]);
    else if (a == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
  }
  TableRules rules;
  rules.plans = {"basic", "premium"};
  rules.max_prefixes = 12;
  Rng r{std::mt19937_64(seed)};
  long accepted = 0, refused = 0;
  for (long it = 0; it < iterations; ++it) {
    std::string text = mutate(kSeeds[r.below(std::size(kSeeds))], r);
    auto t = qosrun::hosts::parse_host_table(text, "fuzz.csv", rules);
    std::string why = judge(text, t, rules);
    if (!why.empty()) {
      std::fprintf(stderr, "FAIL at iteration %ld (seed %llu): %s\n--- table ---\n%s\n--- answer ---\n%s\n", it,
                   static_cast<unsigned long long>(seed), why.c_str(), text.c_str(),
                   t.ok() ? "(accepted)" : t.error().message.c_str());
      return 1;
    }
    (t.ok() ? accepted : refused)++;
  }
  std::printf("fuzz_host_tables: %ld tables, %ld accepted, %ld refused with every problem at FILE:LINE\n", iterations,
              accepted, refused);
  return 0;
}
