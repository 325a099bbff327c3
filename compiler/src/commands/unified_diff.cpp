// Unified diffs: see unified_diff.hpp. The middle that differs (after the
// common head and tail) is aligned by longest common subsequence when it is
// small, else shown as one replacement; policy files are small.
#include "unified_diff.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <vector>

#include "qosc/text.hpp"

namespace qosc::cli {
namespace {

struct Op {
  char kind;       // ' ', '-', '+'
  size_t a, b;     // line indexes in a and b (the one that applies)
};

std::vector<Op> edit_script(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b) {
  size_t head = 0;
  while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
  size_t tail = 0;
  while (tail < a.size() - head && tail < b.size() - head && a[a.size() - 1 - tail] == b[b.size() - 1 - tail]) ++tail;
  const size_t n = a.size() - head - tail, m = b.size() - head - tail;
  std::vector<Op> ops;
  for (size_t i = 0; i < head; ++i) ops.push_back({' ', i, i});
  if (n * m <= 4'000'000) {
    std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
    for (size_t i = n; i-- > 0;)
      for (size_t j = m; j-- > 0;)
        lcs[i][j] = a[head + i] == b[head + j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[head + i] == b[head + j]) ops.push_back({' ', head + i++, head + j++});
      else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) ops.push_back({'-', head + i++, head + j});
      else ops.push_back({'+', head + i, head + j++});
    }
  } else {
    for (size_t i = 0; i < n; ++i) ops.push_back({'-', head + i, head});
    for (size_t j = 0; j < m; ++j) ops.push_back({'+', head + n, head + j});
  }
  for (size_t t = 0; t < tail; ++t) ops.push_back({' ', a.size() - tail + t, b.size() - tail + t});
  return ops;
}

}  // namespace

std::string unified_diff(const std::string& at, const std::string& bt, const std::string& a_name,
                         const std::string& b_name) {
  const auto a = qosc::split_lines(at), b = qosc::split_lines(bt);
  auto ops = edit_script(a, b);
  std::string out = fmt::format("--- {}\n+++ {}\n", a_name, b_name);
  const size_t ctx = 3;
  size_t k = 0;
  while (k < ops.size()) {
    while (k < ops.size() && ops[k].kind == ' ') ++k;
    if (k == ops.size()) break;
    size_t start = k >= ctx ? k - ctx : 0;
    // Extend the hunk while changes are within 2*ctx lines of each other.
    size_t end = k;
    while (end < ops.size()) {
      if (ops[end].kind != ' ') {
        ++end;
        continue;
      }
      size_t run = end;
      while (run < ops.size() && ops[run].kind == ' ') ++run;
      if (run == ops.size() || run - end > 2 * ctx) {
        end = std::min(ops.size(), end + ctx);
        break;
      }
      end = run;
    }
    size_t a0 = ops[start].a, b0 = ops[start].b, na = 0, nb = 0;
    std::string body;
    for (size_t i = start; i < end; ++i) {
      const Op& o = ops[i];
      if (o.kind != '+') ++na;
      if (o.kind != '-') ++nb;
      body += o.kind;
      body += o.kind == '+' ? b[o.b] : a[o.a];
      body += '\n';
    }
    out += fmt::format("@@ -{},{} +{},{} @@\n", na ? a0 + 1 : a0, na, nb ? b0 + 1 : b0, nb) + body;
    k = end;
  }
  return out;
}

uint32_t first_different_line(const std::string& a, const std::string& b) {
  uint32_t line = 1;
  for (size_t i = 0; i < a.size() && i < b.size() && a[i] == b[i]; ++i)
    if (a[i] == '\n') ++line;
  return line;
}

}  // namespace qosc::cli
