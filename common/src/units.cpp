// Rates and sizes: see qosc/units.hpp.
#include "qosc/units.hpp"

#include <cctype>
#include <limits>

#include <fmt/format.h>

namespace qosc::units {

Quantity split_quantity(std::string_view s) {
  Quantity q;
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) q.digits += s[i++];
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) q.frac += s[i++];
  }
  q.unit = std::string(s.substr(i));
  return q;
}

__extension__ typedef unsigned __int128 u128;

std::optional<uint64_t> scale(const Quantity& q, uint64_t mult, bool* whole) {
  u128 v = 0;
  for (char c : q.digits) {
    v = v * 10 + unsigned(c - '0');
    if (v > std::numeric_limits<uint64_t>::max()) return std::nullopt;
  }
  v *= mult;
  u128 num = 0, den = 1;
  for (char c : q.frac) {
    if (den > std::numeric_limits<uint64_t>::max()) break;  // ignore absurd precision
    num = num * 10 + unsigned(c - '0');
    den *= 10;
  }
  num *= mult;
  *whole = num % den == 0;
  v += num / den;
  if (v > std::numeric_limits<uint64_t>::max()) return std::nullopt;
  return uint64_t(v);
}

const Unit* find_unit(std::span<const Unit> units, std::string_view name) {
  for (const auto& u : units) {
    if (u.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(name[i])) == u.name[i];
    if (same) return &u;
  }
  return nullptr;
}

std::string format_rate(uint64_t bps) {
  size_t u = 0;
  while (u + 1 < std::size(kRateUnits) && bps >= 1000 && bps % 1000 == 0) bps /= 1000, ++u;
  return fmt::format("{}{}", bps, kRateUnits[u].name);
}

std::string format_duration(uint64_t us) {
  size_t u = 0;
  while (u + 1 < std::size(kDurationUnits) && us >= 1000 && us % 1000 == 0) us /= 1000, ++u;
  return fmt::format("{}{}", us, kDurationUnits[u].name);
}

}  // namespace qosc::units
