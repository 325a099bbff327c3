#pragma once
// Rates and sizes as the policy language writes them: the units, exact
// scaling of "DIGITS[.FRACTION]UNIT", and the one way qosc and qosrun print a
// rate. The parser words its diagnostics around these (front/parser.cpp).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace qosc::units {

struct Unit {
  std::string_view name;   // lower case, as the language spells it
  uint64_t multiplier;
};

// Rates are bits per second, powers of 1000; sizes are bytes, powers of 1024.
inline constexpr Unit kRateUnits[] = {
    {"bit", 1}, {"kbit", 1000}, {"mbit", 1000000}, {"gbit", 1000000000}, {"tbit", 1000000000000}};
inline constexpr Unit kSizeUnits[] = {{"b", 1}, {"kb", 1024}, {"mb", 1024 * 1024}, {"gb", 1024ull * 1024 * 1024}};
// Durations (`delay 5ms` of an adaptive link) are microseconds.
inline constexpr Unit kDurationUnits[] = {{"us", 1}, {"ms", 1000}, {"s", 1000000}};

// "2.5mbit" -> {"2", "5", "mbit"}: digits, fraction digits, and the rest.
struct Quantity {
  std::string digits, frac, unit;
};
Quantity split_quantity(std::string_view text);

// digits.frac x multiplier exactly; nullopt on overflow of 64 bits,
// *whole = false when the product is not an integer (it is rounded down).
std::optional<uint64_t> scale(const Quantity& q, uint64_t multiplier, bool* whole);

// The unit of `units` named `name` (case-insensitive), or nullptr.
const Unit* find_unit(std::span<const Unit> units, std::string_view name);

// A rate in the language's own syntax, exact: the largest unit that divides
// it ("100mbit", "1500kbit", "7bit"), so the text parses back to `bps`.
std::string format_rate(uint64_t bps);
// A duration in microseconds in the language's syntax, exact ("5ms", "1500us", "1s").
std::string format_duration(uint64_t us);

}  // namespace qosc::units
