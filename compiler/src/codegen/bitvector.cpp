#include "bitvector.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "qosc/region.hpp"

namespace qosc::codegen {
namespace {

// Half-open [lo, hi) ranges of raw class indices, sorted and disjoint.
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges normalise(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (auto [lo, hi] : r) {
    if (lo >= hi) continue;
    if (!out.empty() && lo <= out.back().second) out.back().second = std::max(out.back().second, hi);
    else out.emplace_back(lo, hi);
  }
  return out;
}

Ranges complement(const Ranges& r, uint32_t k) {
  Ranges out;
  uint32_t at = 0;
  for (auto [lo, hi] : r) {
    if (lo > at) out.emplace_back(at, lo);
    at = hi;
  }
  if (at < k) out.emplace_back(at, k);
  return out;
}

Ranges intersect(const Ranges& a, const Ranges& b) {
  Ranges out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    uint32_t lo = std::max(a[i].first, b[j].first), hi = std::min(a[i].second, b[j].second);
    if (lo < hi) out.emplace_back(lo, hi);
    if (a[i].second < b[j].second) ++i;
    else ++j;
  }
  return out;
}

uint64_t count(const Ranges& r) {
  uint64_t n = 0;
  for (auto [lo, hi] : r) n += hi - lo;
  return n;
}

bool addr_covered(const ir::Prefix& p, const std::array<uint8_t, 16>& a) {
  for (unsigned bit = 0; bit < p.len; ++bit) {
    unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
    if ((p.addr[byte] & mask) != (a[byte] & mask)) return false;
  }
  return true;
}

bool is_addr_dim(Dim d) { return d >= Dim::Saddr4; }
bool addr_dim_dst(Dim d) { return d == Dim::Daddr4 || d == Dim::Daddr6; }
ir::Family addr_dim_family(Dim d) { return (d == Dim::Saddr4 || d == Dim::Daddr4) ? ir::Family::V4 : ir::Family::V6; }

// One dimension's raw classes and every live rule's set of raw classes where
// it holds (nullopt: the rule does not constrain the dimension).
struct RawDim {
  uint32_t k = 0;
  std::vector<std::optional<Ranges>> holds;   // per live rule
  std::vector<uint32_t> port_bounds;          // ports: elementary interval starts (+ 65536)
  std::vector<ir::Prefix> prefixes;           // addresses: raw class i+1 = prefixes[i]
};

RawDim raw_kind(const ir::Policy& policy, const std::vector<uint32_t>& live) {
  RawDim d;
  d.k = kKindKeys;
  for (uint32_t ri : live) {
    const auto& r = policy.rules[ri];
    Ranges rs;
    for (int fam : {4, 6}) {
      ir::Family f = fam == 4 ? ir::Family::V4 : ir::Family::V6;
      if (r.family != ir::Family::Any && r.family != f) continue;
      bool addrs_ok = std::all_of(r.addrs.begin(), r.addrs.end(), [&](const ir::AddrMatch& m) { return m.family == f; });
      if (!addrs_ok) continue;
      for (int proto = -1; proto < 256; ++proto) {
        if (r.protos && (proto < 0 || !r.protos->test(size_t(proto)))) continue;
        for (int l4 = 0; l4 < 2; ++l4) {
          if ((r.sport || r.dport) && !l4) continue;
          uint32_t key = kind_key(fam, proto, l4 != 0);
          rs.emplace_back(key, key + 1);
        }
      }
    }
    d.holds.push_back(normalise(std::move(rs)));
  }
  return d;
}

RawDim raw_ports(const ir::Policy& policy, const std::vector<uint32_t>& live, bool dst) {
  RawDim d;
  const std::vector<uint32_t> cuts = ir::port_cut_points(policy, live, dst);
  d.port_bounds = cuts;
  d.k = uint32_t(cuts.size() - 1);
  for (uint32_t ri : live) {
    const auto& set = dst ? policy.rules[ri].dport : policy.rules[ri].sport;
    if (!set) {
      d.holds.emplace_back();
      continue;
    }
    Ranges rs;
    for (const auto& iv : *set) {
      auto lo = uint32_t(std::lower_bound(cuts.begin(), cuts.end(), uint32_t(iv.lo)) - cuts.begin());
      auto hi = uint32_t(std::lower_bound(cuts.begin(), cuts.end(), uint32_t(iv.hi) + 1) - cuts.begin());
      rs.emplace_back(lo, hi);
    }
    d.holds.push_back(normalise(std::move(rs)));
  }
  return d;
}

RawDim raw_dscp(const ir::Policy& policy, const std::vector<uint32_t>& live) {
  RawDim d;
  d.k = 64;
  for (uint32_t ri : live) {
    const auto& r = policy.rules[ri];
    if (!r.dscp) {
      d.holds.emplace_back();
      continue;
    }
    Ranges rs;
    for (uint32_t v = 0; v < 64; ++v)
      if (r.dscp->test(v)) rs.emplace_back(v, v + 1);
    d.holds.push_back(normalise(std::move(rs)));
  }
  return d;
}

bool prefix_less(const ir::Prefix& a, const ir::Prefix& b) { return std::tie(a.addr, a.len) < std::tie(b.addr, b.len); }

RawDim raw_addr(const ir::Policy& policy, const std::vector<uint32_t>& live, Dim dim) {
  RawDim d;
  const bool dst = addr_dim_dst(dim);
  const ir::Family fam = addr_dim_family(dim);
  auto mine = [&](const ir::AddrMatch& m) { return m.dst == dst && m.family == fam; };
  for (uint32_t ri : live)
    for (const auto& m : policy.rules[ri].addrs)
      if (mine(m)) d.prefixes.insert(d.prefixes.end(), m.prefixes.begin(), m.prefixes.end());
  // Preorder: an ancestor sorts right before its descendants, which are contiguous.
  std::sort(d.prefixes.begin(), d.prefixes.end(), prefix_less);
  d.prefixes.erase(std::unique(d.prefixes.begin(), d.prefixes.end(),
                               [](const ir::Prefix& a, const ir::Prefix& b) { return a.addr == b.addr && a.len == b.len; }),
                   d.prefixes.end());
  const uint32_t np = uint32_t(d.prefixes.size());
  d.k = np + 1;
  // Subtree end of each prefix (raw class numbering: prefix i is class i + 1).
  std::vector<uint32_t> end(np);
  for (uint32_t i = 0; i < np; ++i) {
    // Descendants are contiguous after i: binary search the first non-descendant.
    uint32_t lo = i + 1, hi = np;
    while (lo < hi) {
      uint32_t mid = (lo + hi) / 2;
      if (ir::prefix_contains(d.prefixes[i], d.prefixes[mid])) lo = mid + 1;
      else hi = mid;
    }
    end[i] = lo;
  }
  auto index_of = [&](const ir::Prefix& p) {
    auto it = std::lower_bound(d.prefixes.begin(), d.prefixes.end(), p, prefix_less);
    return uint32_t(it - d.prefixes.begin());
  };
  for (uint32_t ri : live) {
    std::optional<Ranges> holds;
    for (const auto& m : policy.rules[ri].addrs) {
      if (!mine(m)) continue;
      Ranges rs;
      for (const auto& p : m.prefixes) {
        uint32_t i = index_of(p);
        rs.emplace_back(i + 1, end[i] + 1);
      }
      rs = normalise(std::move(rs));
      if (m.negated) rs = complement(rs, d.k);
      holds = holds ? intersect(*holds, rs) : rs;
    }
    d.holds.push_back(std::move(holds));
  }
  return d;
}

uint32_t ctz64(uint64_t x) { return uint32_t(__builtin_ctzll(x)); }
uint32_t popcount64(uint64_t x) { return uint32_t(__builtin_popcountll(x)); }

// Total delta entries above which the maps strategy refuses a policy (the
// tables would not fit kernel memory sensibly): 64M rule bits.
constexpr uint64_t kMaxDeltaEntries = 64ull << 20;

}  // namespace

const char* dim_name(Dim d) {
  switch (d) {
    case Dim::Kind: return "kind";
    case Dim::Sport: return "sport";
    case Dim::Dport: return "dport";
    case Dim::Dscp: return "dscp";
    case Dim::Saddr4: return "saddr4";
    case Dim::Daddr4: return "daddr4";
    case Dim::Saddr6: return "saddr6";
    case Dim::Daddr6: return "daddr6";
  }
  return "?";
}

size_t BitTables::bytes() const {
  size_t n = pool.size() * 8 + descs.size() * (3 * summary_words + 1) * 8 + rule_index.size() * 8;
  for (const auto& d : dims) n += d.value_class.size() * 4 + d.prefix_class.size() * 24;
  return n;
}

BitTables build_bit_tables(const ir::Policy& policy, const std::vector<uint32_t>& dead) {
  BitTables t;
  std::vector<bool> is_dead(policy.rules.size(), false);
  for (uint32_t i : dead) is_dead[i] = true;
  std::vector<uint32_t> live;
  for (uint32_t i = 0; i < policy.rules.size(); ++i)
    if (!is_dead[i]) live.push_back(i);
  if (live.size() > kMaxBitvectorRules)
    throw std::length_error(fmt::format("{} live rules; the maps strategy takes at most {}", live.size(),
                                        kMaxBitvectorRules));
  t.nrules = uint32_t(live.size());
  t.words = (t.nrules + 63) / 64;
  t.summary_words = std::max<uint32_t>(1, (t.words + 63) / 64);
  t.rule_index = live;
  for (uint32_t ri : live) t.rule_target.push_back(policy.rules[ri].target);
  t.pool.push_back(0);
  const uint32_t W = t.words, S = t.summary_words;
  uint64_t delta_total = 0;

  for (size_t di = 0; di < kNumDims; ++di) {
    const Dim dim = Dim(di);
    RawDim raw;
    switch (dim) {
      case Dim::Kind: raw = raw_kind(policy, live); break;
      case Dim::Sport: raw = raw_ports(policy, live, false); break;
      case Dim::Dport: raw = raw_ports(policy, live, true); break;
      case Dim::Dscp: raw = raw_dscp(policy, live); break;
      default: raw = raw_addr(policy, live, dim); break;
    }
    DimTables& dt = t.dims[di];
    // Used when some rule does not hold everywhere; the kind dimension always is
    // (so that the AND below has at least one operand).
    bool used = dim == Dim::Kind;
    for (const auto& h : raw.holds)
      if (h && count(*h) != raw.k) used = true;
    if (!used || t.nrules == 0) continue;
    dt.used = true;

    // Base vector (majority) and per raw class the rules whose bit differs from it.
    std::vector<uint64_t> base(W, 0);
    std::vector<std::vector<uint32_t>> delta(raw.k);
    for (uint32_t bit = 0; bit < t.nrules; ++bit) {
      const auto& h = raw.holds[bit];
      if (!h) {
        base[bit / 64] |= 1ull << (bit % 64);
        continue;
      }
      const bool b = count(*h) * 2 > raw.k;
      if (b) base[bit / 64] |= 1ull << (bit % 64);
      const Ranges d = b ? complement(*h, raw.k) : *h;
      delta_total += count(d);
      if (delta_total > kMaxDeltaEntries)
        throw std::length_error("the rules' value sets overlap too much for the maps strategy's tables");
      for (auto [lo, hi] : d)
        for (uint32_t c = lo; c < hi; ++c) delta[c].push_back(bit);
    }
    // Classes: raw classes with equal deltas share one (raw class 0 -> class 0).
    std::map<std::vector<uint32_t>, uint32_t> ids;
    std::vector<uint32_t> raw_to_class(raw.k);
    std::vector<const std::vector<uint32_t>*> class_delta;
    for (uint32_t c = 0; c < raw.k; ++c) {
      auto [it, fresh] = ids.emplace(delta[c], uint32_t(class_delta.size()));
      if (fresh) class_delta.push_back(&it->first);
      raw_to_class[c] = it->second;
    }
    dt.nclasses = uint32_t(class_delta.size());
    dt.desc_base = uint32_t(t.descs.size());
    const bool base_nonzero = std::any_of(base.begin(), base.end(), [](uint64_t w) { return w != 0; });
    if (base_nonzero) {
      dt.base_off = uint32_t(t.pool.size());
      t.pool.insert(t.pool.end(), base.begin(), base.end());
    }
    std::vector<uint64_t> base_sum(S, 0);
    for (uint32_t w = 0; w < W; ++w)
      if (base[w]) base_sum[w / 64] |= 1ull << (w % 64);
    for (const auto* dl : class_delta) {
      ClassDesc cd;
      cd.eff = base_sum;
      cd.dsum.assign(S, 0);
      cd.dbase.assign(S, 0);
      cd.off = t.pool.size();
      // Group the delta bits by word (ascending).
      std::vector<std::pair<uint32_t, uint64_t>> words;
      for (uint32_t bit : *dl) {
        if (words.empty() || words.back().first != bit / 64) words.emplace_back(bit / 64, 0);
        words.back().second |= 1ull << (bit % 64);
      }
      for (auto [w, bits] : words) {
        cd.dsum[w / 64] |= 1ull << (w % 64);
        t.pool.push_back(bits);
        if ((base[w] ^ bits) != 0) cd.eff[w / 64] |= 1ull << (w % 64);
        else cd.eff[w / 64] &= ~(1ull << (w % 64));
      }
      uint64_t run = 0;
      for (uint32_t s = 0; s < S; ++s) {
        cd.dbase[s] = run;
        run += popcount64(cd.dsum[s]);
      }
      t.descs.push_back(std::move(cd));
    }
    // Lookup side.
    switch (dim) {
      case Dim::Kind:
      case Dim::Dscp: dt.value_class = raw_to_class; break;
      case Dim::Sport:
      case Dim::Dport:
        dt.value_class.assign(65536, 0);
        for (uint32_t c = 0; c < raw.k; ++c)
          for (uint32_t v = raw.port_bounds[c]; v < raw.port_bounds[c + 1]; ++v) dt.value_class[v] = raw_to_class[c];
        break;
      default:
        {
          std::vector<uint8_t> lens;
          for (uint32_t i = 0; i < raw.prefixes.size(); ++i) {
            const auto& pf = raw.prefixes[i];
            if (pf.len == 0) {
              dt.fallback_class = raw_to_class[i + 1];   // /0 covers every address
              continue;
            }
            dt.prefix_class.emplace_back(pf, raw_to_class[i + 1]);
            lens.push_back(pf.len);
          }
          std::sort(lens.begin(), lens.end(), std::greater<>());
          lens.erase(std::unique(lens.begin(), lens.end()), lens.end());
          if (lens.size() <= kMaxHashLengths) dt.hash_lengths = lens;
        }
        break;
    }
  }
  return t;
}

uint32_t lookup_class(const DimTables& t, Dim d, const PacketFields& pkt) {
  switch (d) {
    case Dim::Kind:
      return t.value_class[kind_key(pkt.family == ir::Family::V6 ? 6 : 4, pkt.proto, pkt.l4)];
    case Dim::Sport: return t.value_class[pkt.sport];
    case Dim::Dport: return t.value_class[pkt.dport];
    case Dim::Dscp: return t.value_class[pkt.dscp & 63];
    default: {
      const auto& a = addr_dim_dst(d) ? pkt.daddr : pkt.saddr;
      uint32_t cls = t.fallback_class;
      int best = -1;
      for (const auto& [p, c] : t.prefix_class)
        if (int(p.len) > best && addr_covered(p, a)) {
          best = p.len;
          cls = c;
        }
      return cls;
    }
  }
}

int BitTables::first_match(const PacketFields& pkt) const {
  last_words_examined = 0;
  if (!pkt.ip || nrules == 0) return -1;
  const bool v6 = pkt.family == ir::Family::V6;
  std::vector<const ClassDesc*> ds;
  std::vector<uint32_t> base_offs;
  for (size_t di = 0; di < kNumDims; ++di) {
    const Dim d = Dim(di);
    if (!dims[di].used) continue;
    if (is_addr_dim(d) && (addr_dim_family(d) == ir::Family::V6) != v6) continue;
    ds.push_back(&descs[dims[di].desc_base + lookup_class(dims[di], d, pkt)]);
    base_offs.push_back(dims[di].base_off);
  }
  std::vector<uint64_t> acc(summary_words, ~0ull);
  for (const auto* d : ds)
    for (uint32_t s = 0; s < summary_words; ++s) acc[s] &= d->eff[s];
  for (uint32_t s = 0; s < summary_words; ++s) {
    while (acc[s]) {
      const uint32_t w = s * 64 + ctz64(acc[s]);
      acc[s] &= acc[s] - 1;
      ++last_words_examined;
      uint64_t x = ~0ull;
      for (size_t k = 0; k < ds.size(); ++k) {
        const ClassDesc& d = *ds[k];
        uint64_t word = base_offs[k] ? pool.at(base_offs[k] + w) : 0;
        const uint32_t b = w % 64;
        const uint64_t bit = (d.dsum[s] >> b) & 1;
        const uint64_t idx = bit ? d.off + d.dbase[s] + popcount64(d.dsum[s] & ((1ull << b) - 1)) : 0;
        word ^= pool.at(idx);
        x &= word;
      }
      if (x) return int(rule_index.at(w * 64 + ctz64(x)));
    }
  }
  return -1;
}

}  // namespace qosc::codegen
