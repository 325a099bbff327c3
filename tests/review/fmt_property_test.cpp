// `qosc fmt` properties: on every example, every golden file that parses,
// every fuzz corpus entry, and random policies with comments sprinkled in,
// the canonical layout keeps every comment in order, means the same (the
// same items and the same IR) and is a fixed point.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "qosc/frontend.hpp"
#include "random_policy.hpp"

namespace qosc {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> comments_of(const std::string& text) {
  std::vector<std::string> r;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '#') continue;
    size_t e = text.find('\n', i);
    if (e == std::string::npos) e = text.size();
    std::string c = text.substr(i, e - i);
    while (!c.empty() && (c.back() == ' ' || c.back() == '\t' || c.back() == '\r' || c.back() == '\v' || c.back() == '\f')) c.pop_back();
    r.push_back(c);
    i = e;
  }
  return r;
}

std::string dump_without_locations(const ir::Policy& p) {
  // dump_ir names lines; rules' file positions change with the layout.
  std::string s = dump_ir(p), out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find(" (line ");
    if (at != std::string::npos) line.erase(at, line.find(')', at) - at + 1);
    out += line + "\n";
  }
  return out;
}

// Returns "" when every property holds, else what failed.
std::string check_fmt(const std::string& name, const std::string& text) {
  SourceFile f(name, text);
  Diagnostics d(&f);
  auto ast = parse_policy(f, d);
  if (!ast) return "";   // not a policy: fmt refuses it (tested elsewhere)
  auto once = format_policy_file(*ast, f);
  if (!once) return "format_policy_file refused a file the parser accepted";
  SourceFile g(name, *once);
  Diagnostics d2(&g);
  auto ast2 = parse_policy(g, d2);
  if (!ast2) return "the formatted text does not parse:\n" + d2.str() + "\n" + *once;
  if (print_policy(*ast2) != print_policy(*ast)) return "the items changed:\n" + *once;
  auto twice = format_policy_file(*ast2, g);
  if (!twice || *twice != *once) return "not idempotent:\n" + *once + "---\n" + twice.value_or("(refused)");
  if (comments_of(*once) != comments_of(text)) return "comments lost, added or reordered:\n" + *once;
  Diagnostics q1(&f), q2(&g);
  auto ir1 = check_and_lower(*ast, f, q1);
  auto ir2 = check_and_lower(*ast2, g, q2);
  if (bool(ir1) != bool(ir2)) return "one lowers and the other does not:\n" + *once;
  if (ir1 && dump_without_locations(*ir1) != dump_without_locations(*ir2)) return "the IR changed:\n" + *once;
  return "";
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Fmt, ExamplesGoldenFilesAndFuzzCorpus) {
  size_t files = 0;
  for (const char* dir : {"/examples", "/tests/frontend/golden", "/tests/fuzz/corpus"}) {
    const fs::path root = fs::path(QOSC_SOURCE_DIR) / (dir + 1);
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file() || e.path().extension() == ".err" || e.path().extension() == ".json" ||
          e.path().extension() == ".tests")
        continue;
      ++files;
      EXPECT_EQ(check_fmt(e.path().string(), read(e.path())), "") << e.path();
    }
  }
  EXPECT_GT(files, 35u);
}

TEST(Fmt, ExamplesAreFormatted) {
  for (const auto& e : fs::directory_iterator(fs::path(QOSC_SOURCE_DIR) / "examples")) {
    if (e.path().extension() != ".qos") continue;
    std::string text = read(e.path());
    SourceFile f(e.path().string(), text);
    Diagnostics d(&f);
    auto ast = parse_policy(f, d);
    ASSERT_TRUE(ast);
    EXPECT_EQ(format_policy_file(*ast, f).value_or(""), text) << e.path();
  }
}

// Random policies with comments put after random tokens: trailing, on lines of
// their own, inside classes, sets and rules.
TEST(Fmt, RandomPoliciesWithComments) {
  std::mt19937_64 rng(3);
  int checked = 0;
  testsupport::RandomPolicyOptions opts;
  opts.set_dscp_percent = 30;
  for (int i = 0; i < 300; ++i) {
    std::string text = testsupport::random_policy(rng, opts), noisy;
    int n = 0;
    for (size_t k = 0; k < text.size(); ++k) {
      noisy += text[k];
      const char c = text[k];
      if ((c == ';' || c == '{' || c == ',' || c == ' ') && rng() % 6 == 0) {
        switch (rng() % 3) {
          case 0: noisy += "  # c" + std::to_string(n++) + "\n"; break;
          case 1: noisy += "\n# c" + std::to_string(n++) + "\n"; break;
          default: noisy += "\n\n   # c" + std::to_string(n++) + "\n\n"; break;
        }
      }
    }
    noisy = "# head\n\n" + noisy + "# tail\n";
    ASSERT_EQ(check_fmt("r.qos", noisy), "") << noisy;
    ++checked;
  }
  EXPECT_EQ(checked, 300);
}

}  // namespace
}  // namespace qosc
