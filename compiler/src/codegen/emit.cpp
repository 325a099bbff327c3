// generate_c: the decision plan and the targets -> one C translation unit.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bitvector.hpp"
#include "decision.hpp"
#include "qosc/reach.hpp"
#include "qos_abi.h"
#include "tables_section.hpp"
#include "qosc/codegen.hpp"
#include "qosc/version.hpp"
#include "source_builder.hpp"
#include "target.hpp"

namespace qosc {

const char* to_string(Strategy s) {
  switch (s) {
    case Strategy::Auto: return "auto";
    case Strategy::Tree: return "tree";
    case Strategy::Maps: return "maps";
  }
  return "?";
}

std::optional<Strategy> strategy_from_string(std::string_view s) {
  if (s == "auto") return Strategy::Auto;
  if (s == "tree") return Strategy::Tree;
  if (s == "maps") return Strategy::Maps;
  return std::nullopt;
}

namespace codegen {
namespace {

// Measured (kernel 6.18, clang-19 binary, random policies where every rule is
// live: tcp/udp + one dport + an IPv4 /24; tests/codegen Kernel.LargePolicies):
//   rules   C      generate+compile  verify(load)  object
//   64      30K    0.34 s            17 ms         97K
//   256     105K   0.47 s            24 ms         222K
//   1024    450K   2.95 s            50 ms         820K
//   4096    2.3M   39.9 s            295 ms        4.2M
// The verifier is not the limit up to 4k; clang time is (superlinear). The
// maps strategy (not implemented yet) is the planned fallback above ~2k.
// Rule lists up to this many checks are inlined into their caller; longer
// ones become global (BTF) subprograms verified once, split into chunks.
constexpr size_t kInlineRules = 16;
constexpr size_t kChunkRules = 256;
// Trees up to this many rule checks (and kInlineMaxTerms condition terms) are
// inlined whole into both programs: a BPF-to-BPF call costs ~9 ns on the
// machines measured (call and return go through retpoline and SRSO return
// thunks), more than deciding 256 rules does. Above it clang's time grows
// (inlined twice, into one huge function: 0.29 -> 0.67 s at 256 rules,
// 0.9 -> 2.4 s at 1k, clang binary), so larger trees stay global functions.
// The maps code is the same size for every policy and is always inlined.
constexpr size_t kInlineMaxChecks = 256;
constexpr size_t kInlineMaxTerms = 768;
// The kernel allows 256 subprograms per program (BPF_MAX_SUBPROGS).
constexpr size_t kMaxGlobalFuncs = 240;
// Auto strategy: the tree for policies up to this many live rules whose tree
// needs at most this many emitted rule checks; maps above (measured, see
// docs/codegen.md).
constexpr size_t kTreeMaxRules = 1000;
constexpr size_t kTreeMaxChecks = 768;
// ... and whose conditions have at most this many terms (port intervals and
// prefixes after merging; a rule with a set of 500 prefixes is one check but
// 500 terms), at most kTreeMaxRuleTerms in one rule: the tree tests a rule's
// set element by element (~0.25 ns each), the maps look it up.
constexpr size_t kTreeMaxTerms = 2048;
constexpr size_t kTreeMaxRuleTerms = 64;

uint32_t word_of(const std::array<uint8_t, 16>& a, unsigned w) {
  return uint32_t(a[4 * w]) << 24 | uint32_t(a[4 * w + 1]) << 16 | uint32_t(a[4 * w + 2]) << 8 | uint32_t(a[4 * w + 3]);
}

std::string prefix_cond(const ir::Prefix& p, const char* field) {
  if (p.len == 0) return "1";
  std::vector<std::string> parts;
  unsigned words = p.family == ir::Family::V4 ? 1 : 4;
  for (unsigned w = 0; w < words; ++w) {
    int bits = std::clamp(int(p.len) - int(32 * w), 0, 32);
    if (bits == 0) break;
    uint32_t mask = bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
    uint32_t val = word_of(p.addr, w) & mask;
    if (mask == 0xffffffffu) parts.push_back(fmt::format("qos_w(p->{}, {}) == 0x{:08x}u", field, w, val));
    else parts.push_back(fmt::format("(qos_w(p->{}, {}) & 0x{:08x}u) == 0x{:08x}u", field, w, mask, val));
  }
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? " && " : "") + parts[i];
  return parts.size() > 1 ? "(" + s + ")" : s;
}

std::string ports_cond(const ir::PortSet& set, const char* field) {
  std::vector<std::string> parts;
  for (const auto& iv : set) {
    if (iv.lo == iv.hi) parts.push_back(fmt::format("QOS_LD(p->{}) == {}", field, iv.lo));
    else if (iv.lo == 0) parts.push_back(fmt::format("QOS_LD(p->{}) <= {}", field, iv.hi));
    else if (iv.hi == 65535) parts.push_back(fmt::format("QOS_LD(p->{}) >= {}", field, iv.lo));
    else parts.push_back(fmt::format("(QOS_LD(p->{0}) >= {1} && QOS_LD(p->{0}) <= {2})", field, iv.lo, iv.hi));
  }
  if (parts.empty()) return "0";
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? " || " : "") + parts[i];
  return "(" + s + ")";
}

struct Emitter {
  Emitter(const ir::Policy& p, const CodegenOptions& o, std::string name, DecisionPlan dp)
      : policy(p), opts(o), source_name(std::move(name)), plan(std::move(dp)) {}
  const ir::Policy& policy;
  const CodegenOptions& opts;
  std::string source_name;
  DecisionPlan plan;
  SourceBuilder out{"qos_gen.c"};
  std::map<std::pair<std::vector<uint32_t>, int>, std::string> list_funcs;  // (rules, decided dim) -> callable
  size_t global_funcs = 0;
  // Classifier subprograms inlined into both programs (small trees, the maps
  // code) instead of global (BTF) functions: see kInlineMaxChecks.
  bool inline_subprogs = false;

  std::string subprog(const std::string& name) {
    if (inline_subprogs) return fmt::format("static __always_inline int {}(struct qos_pkt *p)", name);
    ++global_funcs;
    return fmt::format("__noinline int {}(struct qos_pkt *p)", name);
  }
  size_t checks = 0;
  size_t terms = 0;   // condition terms over all checks (code size)
  size_t max_rule_terms = 0;   // the largest single condition (evaluated linearly per packet)

  // decided: 0 none, 1 dport decided, 2 sport decided
  std::string rule_cond(const ir::Rule& r, int decided) {
    std::vector<std::string> c;
    // Size of the condition (what is emitted): one term per port interval and prefix.
    const size_t terms_before = terms;
    ++terms;
    if (r.sport && decided != 2) {
      c.push_back(ports_cond(*r.sport, "sport"));
      terms += r.sport->size();
    }
    if (r.dport && decided != 1) {
      c.push_back(ports_cond(*r.dport, "dport"));
      terms += r.dport->size();
    }
    if (r.dscp && !r.dscp->all()) c.push_back(fmt::format("((0x{:016x}ULL >> (QOS_LD(p->dscp) & 63)) & 1)", r.dscp->to_ullong()));
    for (const auto& m : r.addrs) {
      auto prefixes = merge_prefixes(m.prefixes);
      terms += prefixes.size();
      std::string any;
      for (size_t i = 0; i < prefixes.size(); ++i)
        any += (i ? " || " : "") + prefix_cond(prefixes[i], m.dst ? "daddr" : "saddr");
      if (prefixes.empty()) any = "0";
      c.push_back(fmt::format("{}({})", m.negated ? "!" : "", any));
    }
    max_rule_terms = std::max(max_rule_terms, terms - terms_before);
    if (c.empty()) return "1";
    std::string s;
    for (size_t i = 0; i < c.size(); ++i) s += (i ? " &&\n\t    " : "") + c[i];
    return s;
  }

  void emit_rule_checks(SourceBuilder& b, const std::vector<uint32_t>& rules, int decided) {
    for (uint32_t i : rules) {
      const auto& r = policy.rules[i];
      ++checks;
      b.line(fmt::format("/* rule {} (line {}) -> {} */", i, r.loc.line,
                         r.target == ir::kDrop ? std::string("drop") : policy.classes[size_t(r.target)].name));
      b.line(fmt::format("if (QOS_LD(p->best) < {}) return;", i));
      if (opts.line_directives && r.loc.valid()) b.line_directive(r.loc.line, source_name);
      b.line(fmt::format("if ({}) {{", rule_cond(r, decided)));
      b.line(fmt::format("\tp->best = {}; p->target = {}; return;", i, r.target));
      b.line("}");
      b.reset_line();
    }
  }

  // Returns a statement that checks `rules` (ascending) on p, defining the
  // functions it needs first (into `out`).
  std::string list_call(const std::vector<uint32_t>& rules, int decided) {
    if (rules.empty()) return "";
    auto key = std::make_pair(rules, decided);
    auto it = list_funcs.find(key);
    if (it != list_funcs.end()) return it->second;
    size_t id = list_funcs.size();
    std::string call;
    if (rules.size() <= kInlineRules) {
      std::string name = fmt::format("qos_rules_{}", id);
      out.open(fmt::format("static __always_inline void {}(struct qos_pkt *p)", name));
      emit_rule_checks(out, rules, decided);
      out.close().line("");
      call = name + "(p);";
    } else {
      for (size_t start = 0, chunk = 0; start < rules.size(); start += kChunkRules, ++chunk) {
        std::vector<uint32_t> part(rules.begin() + long(start),
                                   rules.begin() + long(std::min(rules.size(), start + kChunkRules)));
        std::string name = fmt::format("qos_list_{}_{}", id, chunk);
        out.open(fmt::format("static __always_inline void {}_body(struct qos_pkt *p)", name));
        emit_rule_checks(out, part, decided);
        out.close().line("");
        out.open(subprog(name));
        out.line("if (!p)").line("\treturn 0;").line(fmt::format("{}_body(p);", name)).line("return 0;");
        out.close().line("");
        call += name + "(p); ";
      }
    }
    list_funcs.emplace(key, call);
    return call;
  }

  void emit_search(SourceBuilder& b, const std::vector<Leaf>& leaves, const std::vector<std::string>& calls, size_t lo,
                   size_t hi) {  // leaves [lo, hi)
    if (hi - lo == 1) {
      if (!calls[lo].empty()) b.line(calls[lo]);
      b.line("return 0;");
      return;
    }
    size_t mid = (lo + hi) / 2;
    b.open(fmt::format("if (v < {})", leaves[mid].lo));
    emit_search(b, leaves, calls, lo, mid);
    b.close();
    emit_search(b, leaves, calls, mid, hi);
  }

  // A function deciding one port dimension by binary search. Always inlined:
  // it has one caller, qos_classify (inlined itself or a global function),
  // so this saves a call (~9 ns) without copying the code (measured at 768
  // rules: 50 -> 41 ns per packet, clang 0.45 -> 0.49 s).
  std::string tree_func(const std::vector<Leaf>& leaves, bool dst, size_t part) {
    std::vector<std::string> calls;
    for (const auto& l : leaves) calls.push_back(list_call(l.rules, dst ? 1 : 2));
    std::string name = fmt::format("qos_tree_{}_{}", part, dst ? "dport" : "sport");
    out.line(fmt::format("/* {} elementary {} intervals */", leaves.size(), dst ? "dport" : "sport"));
    out.open(fmt::format("static __always_inline int {}(struct qos_pkt *p)", name));
    out.line("__u32 v;").line("if (!p)").line("\treturn 0;");
    out.line(fmt::format("v = QOS_LD(p->{});", dst ? "dport" : "sport"));
    emit_search(out, leaves, calls, 0, leaves.size());
    out.close().line("");
    return name;
  }

  std::vector<std::string> partition_calls;

  void emit_partitions() {
    for (size_t i = 0; i < plan.partitions.size(); ++i) {
      const auto& p = plan.partitions[i];
      std::string body;
      std::string d = p.d.empty() ? "" : tree_func(p.d_leaves, true, i);
      std::string s = p.s.empty() ? "" : tree_func(p.s_leaves, false, i);
      std::string w = list_call(p.w, 0);
      std::string name = fmt::format("qos_part_{}", i);
      out.line(fmt::format("/* partition {}: {} rules ({} by dport, {} by sport, {} others) */", i, p.rules.size(),
                           p.d.size(), p.s.size(), p.w.size()));
      out.open(fmt::format("static __always_inline void {}(struct qos_pkt *p)", name));
      if (!d.empty() || !s.empty()) {
        out.open("if (QOS_LD(p->l4))");
        if (!d.empty()) out.line(d + "(p);");
        if (!s.empty()) out.line(s + "(p);");
        out.close();
      }
      if (!w.empty()) out.line(w);
      out.close().line("");
      partition_calls.push_back(name + "(p);");
    }
  }

  void emit_family_switch(const FamilyPlan& fp) {
    out.open("switch (QOS_LD(p->proto))");
    std::map<uint32_t, std::vector<int>> by_part;
    for (auto [proto, part] : fp.proto_case) by_part[part].push_back(proto);
    for (const auto& [part, protos] : by_part) {
      for (int proto : protos) out.line(fmt::format("case {}:", proto));
      if (part != UINT32_MAX) out.line("\t" + partition_calls[part]);
      out.line("\tbreak;");
    }
    out.line("default:");
    if (fp.fallback) out.line("\t" + partition_calls[*fp.fallback]);
    out.line("\tbreak;");
    out.close();
  }

  void emit_classifier() {
    emit_partitions();
    out.line("/* First-match classification: p->best = index of the first matching rule. */");
    out.open(subprog("qos_classify"));
    out.line("if (!p)").line("\treturn 0;");
    out.open("if (QOS_LD(p->family) == 4)");
    emit_family_switch(plan.v4);
    out.close(" else if (QOS_LD(p->family) == 6) {");
    out.indent();
    emit_family_switch(plan.v6);
    out.close();
    out.line("return 0;");
    out.close().line("");
  }

  // ---- maps strategy: bit vectors in maps filled at load (bitvector.hpp)
  void emit_classifier_maps(const BitTables& t) {
    const uint32_t S = t.summary_words;
    if (t.nrules == 0) {
      out.line("/* maps strategy: no live rules, every packet goes to the default class. */");
      out.open(subprog("qos_classify")).line("return 0;").close().line("");
      return;
    }
    out.line(fmt::format("/* maps strategy: {} live rules as bit vectors of {} words ({} summary words) in maps the",
                         t.nrules, t.words, S));
    out.line(" * loader fills from section " QOS_TABLES_SECTION " (docs/codegen.md). */");
    out.line(fmt::format("#define QOS_BV_S {}", S)).line(fmt::format("#define QOS_BV_W {}", t.words));
    out.open("struct qos_desc");
    out.line("__u64 eff[QOS_BV_S];    /* word w of the class's vector may be non-zero */");
    out.line("__u64 dsum[QOS_BV_S];   /* delta word w is stored in the pool */");
    out.line("__u64 dbase[QOS_BV_S];  /* delta words stored before summary word s */");
    out.line("__u64 off;              /* pool index of the first delta word */");
    out.close(";");
    out.open("struct qos_rule_ent").line("__s32 index;").line("__s32 target;").close(";");
    auto array_map = [&](const std::string& name, uint32_t entries, const char* value) {
      out.open("struct");
      out.line("__uint(type, BPF_MAP_TYPE_ARRAY);").line(fmt::format("__uint(max_entries, {});", std::max<uint32_t>(1, entries)));
      out.line("__type(key, __u32);").line(fmt::format("__type(value, {});", value));
      out.close(fmt::format(" {} SEC(\".maps\");", name));
    };
    array_map("qos_t_desc", uint32_t(t.descs.size()), "struct qos_desc");
    array_map("qos_t_pool", uint32_t(t.pool.size()), "__u64");
    array_map("qos_t_rules", t.nrules, "struct qos_rule_ent");
    bool v4_lpm = false, v6_lpm = false;
    for (size_t di = 0; di < kNumDims; ++di) {
      const auto& dt = t.dims[di];
      if (!dt.used) continue;
      const Dim d = Dim(di);
      if (!dt.value_class.empty()) {
        array_map(table_map_name(d), uint32_t(dt.value_class.size()), "__u32");
        continue;
      }
      const bool v4 = d == Dim::Saddr4 || d == Dim::Daddr4;
      if (v4 && !v4_lpm) out.open("struct qos_lpm4").line("__u32 prefixlen;").line("__u8 addr[4];").close(";");
      if (!v4 && !v6_lpm) out.open("struct qos_lpm6").line("__u32 prefixlen;").line("__u8 addr[16];").close(";");
      (v4 ? v4_lpm : v6_lpm) = true;
      out.open("struct");
      if (dt.hash_lengths.empty()) {
        out.line("__uint(type, BPF_MAP_TYPE_LPM_TRIE);");
        out.line("__uint(map_flags, BPF_F_NO_PREALLOC);");
      } else {
        std::string lens;
        for (unsigned l : dt.hash_lengths) lens += fmt::format("{}/{}", lens.empty() ? "" : ", ", l);
        out.line(fmt::format("__uint(type, BPF_MAP_TYPE_HASH);  /* prefix lengths {} only: a lookup per length */",
                             lens));
      }
      out.line(fmt::format("__uint(max_entries, {});", std::max<size_t>(1, dt.prefix_class.size())));
      out.line(fmt::format("__type(key, struct qos_lpm{});", v4 ? 4 : 6)).line("__type(value, __u32);");
      out.close(fmt::format(" {} SEC(\".maps\");", table_map_name(d)));
    }
    out.line("");
    out.line("/* Software popcount / count-trailing-zeros: BPF has no such instructions. */");
    out.open("static __always_inline __u64 qos_popcount(__u64 x)");
    out.line("x = x - ((x >> 1) & 0x5555555555555555ULL);");
    out.line("x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);");
    out.line("x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;");
    out.line("return (x * 0x0101010101010101ULL) >> 56;");
    out.close().line("");
    // "& 63" keeps the verifier's range of the result exact (0..63), so that
    // word indices stay provably inside a descriptor's QOS_BV_S words.
    out.open("static __always_inline __u32 qos_ctz(__u64 x)").line("return (__u32)qos_popcount((x & (0 - x)) - 1) & 63;").close().line("");
    out.line("/* Word w of a class's vector: base word (when the dimension has a base) XOR its delta word. */");
    out.open("static __always_inline __u64 qos_bv_word(const struct qos_desc *d, __u32 w, __u32 base_off)");
    out.line("__u32 s = w >> 6, b = w & 63, key;").line("__u64 ds, bit, x = 0, *v;");
    out.line("/* clang may know s < QOS_BV_S where the verifier does not: keep the check. */");
    out.line("barrier_var(s);");
    out.line("if (s >= QOS_BV_S)").line("\treturn 0;");
    out.line("ds = d->dsum[s];").line("bit = (ds >> b) & 1;");
    out.line("key = (__u32)((d->off + d->dbase[s] + qos_popcount(ds & ((1ULL << b) - 1))) & (0 - bit));");
    out.line("v = bpf_map_lookup_elem(&qos_t_pool, &key);").line("if (v)").line("\tx = *v;");
    out.open("if (base_off)");
    out.line("key = base_off + w;").line("v = bpf_map_lookup_elem(&qos_t_pool, &key);").line("if (v)").line("\tx ^= *v;");
    out.close();
    out.line("return x;");
    out.close().line("");

    for (int fam : {4, 6}) {
      std::vector<Dim> dims;
      for (size_t di = 0; di < kNumDims; ++di) {
        const Dim d = Dim(di);
        if (!t.dims[di].used) continue;
        if (d == Dim::Saddr4 || d == Dim::Daddr4) { if (fam != 4) continue; }
        else if (d == Dim::Saddr6 || d == Dim::Daddr6) { if (fam != 6) continue; }
        dims.push_back(d);
      }
      out.line(fmt::format("/* IPv{}: dimensions {} */", fam, [&] {
        std::string n;
        for (Dim d : dims) n += std::string(n.empty() ? "" : ", ") + dim_name(d);
        return n;
      }()));
      // The candidate-word loop runs in a bpf_loop callback: verified once,
      // whatever the number of words (a bounded loop of 256 words exceeds
      // the verifier's branch limit).
      out.open(fmt::format("struct qos_bv_ctx{}", fam));
      out.line(fmt::format("const struct qos_desc *d[{}];", dims.size()));
      out.line("__u64 a[QOS_BV_S];").line("struct qos_pkt *p;");
      out.close(";");
      // The step as an inline body (the first candidate, checked in line: no
      // call) and as the bpf_loop callback for the rest.
      out.open(fmt::format("static __always_inline long qos_bv_step{0}_body(__u32 i, struct qos_bv_ctx{0} *c)", fam));
      out.line("const struct qos_rule_ent *e;").line("__u32 w, key;").line("__u64 x;");
      for (uint32_t s2 = 0; s2 < S; ++s2) {
        out.line(fmt::format("{}if (c->a[{}]) {{", s2 ? "else " : "", s2));
        out.line(fmt::format("\tw = {}u + qos_ctz(c->a[{}]);", s2 * 64, s2));
        out.line(fmt::format("\tc->a[{0}] &= c->a[{0}] - 1;", s2));
        out.line("}");
      }
      out.line("else").line("\treturn 1;");
      for (size_t k = 0; k < dims.size(); ++k) {
        out.line(fmt::format("x {}= qos_bv_word(c->d[{}], w, {}u);", k ? "&" : "", k, t.dims[size_t(dims[k])].base_off));
        out.line("if (!x)").line("\treturn 0;");
      }
      out.line("key = w * 64 + qos_ctz(x);");
      out.line("e = bpf_map_lookup_elem(&qos_t_rules, &key);");
      out.open("if (e && c->p)").line("c->p->best = e->index;").line("c->p->target = e->target;").close();
      out.line("return 1;");
      out.close().line("");
      out.open(fmt::format("static long qos_bv_step{0}(__u32 i, struct qos_bv_ctx{0} *c)", fam));
      out.line(fmt::format("return qos_bv_step{}_body(i, c);", fam));
      out.close().line("");

      out.open(subprog(fmt::format("qos_bv_v{}", fam)));
      out.line(fmt::format("struct qos_bv_ctx{} c;", fam)).line("__u32 key, *c2;");
      out.line("if (!p)").line("\treturn 0;");
      for (size_t k = 0; k < dims.size(); ++k) {
        const Dim d = dims[k];
        const auto& dt = t.dims[size_t(d)];
        out.line(fmt::format("/* {}: {} classes */", dim_name(d), dt.nclasses));
        switch (d) {
          case Dim::Kind:
            out.line(fmt::format("key = {}u + ((__u32)(QOS_LD(p->proto) + 1) & 0x1ff) * 2 + (QOS_LD(p->l4) & 1);",
                                 fam == 6 ? 514 : 0));
            break;
          case Dim::Sport: out.line("key = QOS_LD(p->sport) & 0xffff;"); break;
          case Dim::Dport: out.line("key = QOS_LD(p->dport) & 0xffff;"); break;
          case Dim::Dscp: out.line("key = QOS_LD(p->dscp) & 63;"); break;
          default: break;
        }
        if (!dt.value_class.empty()) {
          out.line(fmt::format("c2 = bpf_map_lookup_elem(&{}, &key);", table_map_name(d)));
          out.line("if (!c2)").line("\treturn 0;");
          out.line(fmt::format("key = {}u + *c2;", dt.desc_base));
        } else {
          const bool v4 = d == Dim::Saddr4 || d == Dim::Daddr4;
          const bool dst = d == Dim::Daddr4 || d == Dim::Daddr6;
          out.open("");
          out.line(fmt::format("struct qos_lpm{} lk;", v4 ? 4 : 6));
          const char* field = dst ? "daddr" : "saddr";
          if (dt.hash_lengths.empty()) {
            out.line(fmt::format("lk.prefixlen = {};", v4 ? 32 : 128));
            out.line(fmt::format("__builtin_memcpy(lk.addr, p->{}, {});", field, v4 ? 4 : 16));
            out.line(fmt::format("c2 = bpf_map_lookup_elem(&{}, &lk);", table_map_name(d)));
          } else {
            out.line("c2 = 0;");
            for (size_t li = 0; li < dt.hash_lengths.size(); ++li) {
              const unsigned len = dt.hash_lengths[li];
              if (li) out.open("if (!c2)");
              out.line(fmt::format("lk.prefixlen = {};", len));
              for (unsigned w = 0; w < (v4 ? 1u : 4u); ++w) {
                const int bits = std::clamp(int(len) - int(32 * w), 0, 32);
                const uint32_t mask = bits == 0 ? 0 : bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
                out.line(fmt::format("*(__u32 *)(lk.addr + {0}) = *(volatile const __u32 *)(p->{1} + {0}) & "
                                     "bpf_htonl(0x{2:08x}u);",
                                     4 * w, field, mask));
              }
              out.line(fmt::format("c2 = bpf_map_lookup_elem(&{}, &lk);", table_map_name(d)));
              if (li) out.close();
            }
          }
          out.line(fmt::format("key = {}u + (c2 ? *c2 : {}u);", dt.desc_base, dt.fallback_class));
          out.close();
        }
        out.line(fmt::format("c.d[{}] = bpf_map_lookup_elem(&qos_t_desc, &key);", k));
        out.line(fmt::format("if (!c.d[{}])", k)).line("\treturn 0;");
        // Candidate summary so far; before the (dearer) address lookups and at
        // the end, stop when no candidate word is left: no rule matches.
        for (uint32_t s2 = 0; s2 < S; ++s2)
          out.line(fmt::format("c.a[{0}] {1}= c.d[{2}]->eff[{0}];", s2, k ? "&" : "", k));
        const bool last = k + 1 == dims.size();
        const bool before_addr = !last && dims[k + 1] >= Dim::Saddr4 && d < Dim::Saddr4;
        if (last || before_addr) {
          std::string any;
          for (uint32_t s2 = 0; s2 < S; ++s2) any += fmt::format("{}c.a[{}]", s2 ? " | " : "", s2);
          out.line(fmt::format("if (!({}))", any)).line("\treturn 0;  /* no candidate word: no rule matches */");
        }
      }
      out.line("c.p = p;");
      out.line("/* Candidate words in ascending order; the first non-zero AND holds the first match.");
      out.line(" * The first candidate inline (usually the answer), the rest in a bpf_loop. */");
      out.line(fmt::format("if (!qos_bv_step{}_body(0, &c))", fam));
      out.line(fmt::format("\tbpf_loop(QOS_BV_W, qos_bv_step{}, &c, 0);", fam));
      out.line("return 0;");
      out.close().line("");
    }
    out.line("/* First-match classification: p->best = index of the first matching rule. */");
    out.open(subprog("qos_classify"));
    out.line("if (!p)").line("\treturn 0;");
    out.line("if (QOS_LD(p->family) == 4)").line("\treturn qos_bv_v4(p);");
    out.line("if (QOS_LD(p->family) == 6)").line("\treturn qos_bv_v6(p);");
    out.line("return 0;");
    out.close().line("");
  }

  static bool rank_uses_now(const ir::RankExpr& e) {
    if (e.op == ir::RankExpr::Op::Field && e.field == ir::RankField::NowUs) return true;
    for (const auto& a : e.args)
      if (rank_uses_now(a)) return true;
    return false;
  }

  std::string rank_expr(const ir::RankExpr& e) {
    using Op = ir::RankExpr::Op;
    auto a = [&](size_t i) { return rank_expr(e.args.at(i)); };
    switch (e.op) {
      case Op::Const: return fmt::format("((__s64){}LL)", e.value);
      case Op::Field:
        switch (e.field) {
          case ir::RankField::ClassPriority: return "((__s64)qos_class_priority(cls))";
          case ir::RankField::ClassWeight: return "((__s64)qos_class_weight(cls))";
          case ir::RankField::PktLen: return "((__s64)p->len)";
          case ir::RankField::FlowBytes: return "(f ? (__s64)f->bytes : 0)";
          case ir::RankField::FlowPackets: return "(f ? (__s64)f->packets : 0)";
          case ir::RankField::NowUs: return "((__s64)(now / 1000))";
        }
        return "0";
      case Op::Add: return fmt::format("((__s64)((__u64){} + (__u64){}))", a(0), a(1));
      case Op::Sub: return fmt::format("((__s64)((__u64){} - (__u64){}))", a(0), a(1));
      case Op::Mul: return fmt::format("((__s64)((__u64){} * (__u64){}))", a(0), a(1));
      case Op::Div: return fmt::format("qos_rank_div({}, {})", a(0), a(1));
      case Op::Min: return fmt::format("qos_min_s64({}, {})", a(0), a(1));
      case Op::Max: return fmt::format("qos_max_s64({}, {})", a(0), a(1));
      case Op::Neg: return fmt::format("((__s64)(0 - (__u64){}))", a(0));
    }
    return "0";
  }

  void emit_class_tables() {
    out.open("static __always_inline __u32 qos_class_priority(__u32 cls)").open("switch (cls)");
    for (const auto& c : policy.classes) out.line(fmt::format("case {}: return {};", c.id, c.priority));
    out.line("default: return 0;").close().close().line("");
    out.open("static __always_inline __u32 qos_class_weight(__u32 cls)").open("switch (cls)");
    for (const auto& c : policy.classes) out.line(fmt::format("case {}: return {};", c.id, c.weight));
    out.line("default: return 1;").close().close().line("");
    // Policers: cost per byte and tolerance as constants.
    out.line("/* 1 = conforms (pass), 0 = drop. GCRA constants per class with a rate. */");
    out.open("static __always_inline int qos_police(__u32 cls, __u32 len)");
    out.line("struct qos_bucket_state *b;").line("__u64 cost, tau, now;");
    out.open("switch (cls)");
    for (const auto& c : policy.classes) {
      if (c.rate_bps == 0) continue;
      long double tau = (long double)c.burst_bytes * 8e9L / (long double)c.rate_bps;
      uint64_t tau64 = tau > (long double)(UINT64_MAX / 2) ? UINT64_MAX / 2 : uint64_t(tau);
      out.line(fmt::format("case {}: /* {}: rate {} bit/s, burst {} bytes */", c.id, c.name, c.rate_bps, c.burst_bytes));
      out.line(fmt::format("\tcost = (__u64)len * 8000000000ULL / {}ULL;", c.rate_bps));
      out.line(fmt::format("\ttau = {}ULL;", tau64));
      out.line("\tbreak;");
    }
    out.line("default:").line("\treturn 1;").close();
    out.line("b = bpf_map_lookup_elem(&qos_buckets, &cls);").line("if (!b)").line("\treturn 1;");
    out.line("now = bpf_ktime_get_ns();  /* only for classes with a rate */");
    out.line("return qos_bucket_conform(b, now, cost, tau);");
    out.close().line("");
  }

  void emit_program(const Target& t) {
    bool pifo = policy.scheduler.kind == ir::SchedKind::Pifo;
    out.line(fmt::format("SEC(\"{}\")", t.section));
    out.open(fmt::format("int {}({} *ctx)", t.name, t.ctx_type));
    out.line("struct qos_pkt pkt, *p = &pkt;").line("struct qos_class_stats *st;").line("struct qos_flow_val *f;");
    out.line("__u64 now;").line("__u32 cls;");
    out.line("(void)f;");
    if (t.sets_priority) {
      out.line("__u32 want = ctx->len < QOS_PULL_LEN ? ctx->len : QOS_PULL_LEN;");
      out.line("if ((long)ctx->data_end - (long)ctx->data < (long)want)");
      out.line("\tbpf_skb_pull_data(ctx, want);");
      out.line("qos_parse((void *)(long)ctx->data, (void *)(long)ctx->data_end, ctx->len, p);");
    } else {
      out.line("void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;");
      out.line("qos_parse(data, data_end, (__u32)(data_end - data), p);");
    }
    out.line("qos_classify(p);");
    // Time: the flow table needs only coarse time (jiffies); a PIFO rank on
    // now_us needs the precise clock; policers read it themselves.
    const bool rank_now = pifo && t.sets_priority && rank_uses_now(policy.scheduler.rank);
    if (rank_now) out.line("now = bpf_ktime_get_ns();");
    else if (opts.flow_entries) out.line("now = qos_coarse_now();  /* coarse, cached per jiffy */");
    else out.line("now = 0;");
    out.open("if (pkt.best != QOS_NO_RULE && pkt.target < 0)");
    out.line("st = qos_stats_slot(QOS_NCLASSES);");
    out.open("if (st)");
    out.line(fmt::format("st->packets[{0}]++; st->bytes[{0}] += pkt.len; st->drop_rule[{0}]++;", t.hook));
    out.close();
    out.line(fmt::format("return {};", t.drop));
    out.close();
    out.line("cls = pkt.best != QOS_NO_RULE ? (__u32)pkt.target : QOS_DEFAULT_CLASS;");
    out.line("st = qos_stats_slot(cls);");
    out.open("if (st)").line(fmt::format("st->packets[{0}]++; st->bytes[{0}] += pkt.len;", t.hook)).close();
    if (opts.flow_entries) out.line(fmt::format("f = qos_flow_update(p, cls, {}, now);", t.hook));
    else out.line("f = 0;  /* no flow table (compiled without one) */");
    if (t.polices) {
      out.open("if (!qos_police(cls, pkt.len))");
      out.line(fmt::format("if (st)").c_str());
      out.line(fmt::format("\tst->drop_policer[{}]++;", t.hook));
      out.line(fmt::format("return {};", t.drop));
      out.close();
    }
    if (t.writes_meta) {
      out.line("/* Hand the class to tests and tc ingress when the loader asks for it; a driver without");
      out.line(" * metadata support is fine. */");
      out.open("if (qos_cfg.xdp_meta && bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct qos_meta)) == 0)");
      out.line("struct qos_meta *m = (void *)(long)ctx->data_meta;");
      out.open("if ((void *)(m + 1) <= (void *)(long)ctx->data)");
      out.line("m->magic = QOS_META_MAGIC;").line("m->class_id = (__u16)cls;").line("m->reserved = 0;");
      out.close().close();
    }
    if (t.sets_priority) {
      if (pifo) {
        out.open("");
        out.line("__u32 zero = 0;");
        out.line("struct qos_pifo_state *ps = bpf_map_lookup_elem(&qos_pifo, &zero);");
        out.line(fmt::format("__s64 rank = {};", rank_expr(policy.scheduler.rank)));
        out.line("__u32 band = qos_sp_pifo(ps, rank, QOS_PIFO_BANDS);");
        out.line("ctx->priority = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + band);");
        out.close();
      } else {
        out.line("ctx->priority = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + cls);");
      }
      out.line("ctx->cb[QOS_CB_CLASS] = (QOS_META_MAGIC << 16) | cls;  /* the class, also when priority is a band */");
    }
    out.line(fmt::format("return {};", t.pass));
    out.close().line("");
  }
};

Manifest make_manifest(const ir::Policy& policy, const CodegenOptions& opts, const std::string& source_name) {
  Manifest m;
  m.policy = policy.name;
  m.source = source_name;
  m.source_sha256 = sha256_hex(opts.source_text);
  m.compiler_version = kVersion;
  m.link_bps = policy.link_bps;
  m.scheduler = ir::to_string(policy.scheduler.kind);
  if (policy.scheduler.kind == ir::SchedKind::Pifo) {
    m.rank = ir::to_string(policy.scheduler.rank);
    m.pifo_bands = policy.scheduler.pifo_bands;
    m.pifo_mapping = "sp-pifo";
  }
  for (const auto& c : policy.classes) {
    ManifestClass mc;
    mc.id = c.id;
    mc.name = c.name;
    mc.priority = c.priority;
    mc.weight = c.weight;
    mc.quantum = c.quantum;
    mc.rate_bps = c.rate_bps;
    mc.burst_bytes = c.burst_bytes;
    mc.is_default = c.is_default;
    mc.htb_minor = 0x10u + c.id;  // QOS_HTB_MINOR_BASE + id
    m.classes.push_back(std::move(mc));
  }
  m.default_class = policy.default_class;
  m.rule_count = uint32_t(policy.rules.size());
  m.strategy = "tree";
  return m;
}

}  // namespace
}  // namespace codegen

std::optional<GeneratedC> generate_c(const ir::Policy& policy, const CodegenOptions& opts, Diagnostics& diags) {
  using namespace codegen;
  using Clock = std::chrono::steady_clock;
  auto stage = [&](const std::string& msg) {
    if (opts.verbose) opts.verbose(msg);
  };
  if (policy.classes.empty() || policy.classes.size() > 64) {
    diags.error({}, fmt::format("policy has {} classes; qosc supports 1 to 64 (QOS_MAX_CLASSES)", policy.classes.size()));
    return std::nullopt;
  }
  if (policy.scheduler.kind == ir::SchedKind::Pifo &&
      (policy.scheduler.pifo_bands == 0 || policy.scheduler.pifo_bands > 16)) {
    diags.error({}, fmt::format("pifo uses {} bands; qosc supports 1 to 16", policy.scheduler.pifo_bands));
    return std::nullopt;
  }
  std::string source_name = opts.source_name.empty() ? policy.source_name : opts.source_name;
  if (source_name.empty()) source_name = "policy.qos";

  auto t0 = Clock::now();
  // Unreachable rules: from the midend, or none when the front end already
  // left them out; only IR built by hand (tests) is searched here.
  const std::vector<uint32_t> dead = opts.dead_rules            ? *opts.dead_rules
                                     : policy.unreachable_removed ? std::vector<uint32_t>{}
                                                                  : ir::unreachable_rules(policy);
  const size_t live = policy.rules.size() - dead.size();
  stage(fmt::format("optimise: {} rules, {} proven dead, {} live ({:.1f} ms)", policy.rules.size(), dead.size(), live,
                    std::chrono::duration<double, std::milli>(Clock::now() - t0).count()));

  // Strategy: the tree while its code stays small enough to compile fast
  // (docs/codegen.md has the measured crossover), maps above.
  Strategy chosen = opts.strategy;
  std::string why;
  const size_t tree_max_rules = opts.tree_max_rules ? opts.tree_max_rules : kTreeMaxRules;
  const size_t tree_max_checks = opts.tree_max_checks ? opts.tree_max_checks : kTreeMaxChecks;
  if (chosen == Strategy::Auto && live > tree_max_rules) {
    chosen = Strategy::Maps;
    why = fmt::format("{} live rules > {}", live, tree_max_rules);
  }
  std::unique_ptr<Emitter> e;
  if (chosen != Strategy::Maps) {
    auto t1 = Clock::now();
    const DecisionPlan plan = plan_decisions(policy, dead);
    auto emit_tree = [&](bool inline_all) {
      auto t = std::make_unique<Emitter>(policy, opts, source_name, plan);
      t->inline_subprogs = inline_all;
      t->emit_class_tables();
      t->emit_classifier();
      return t;
    };
    // Auto: the first emission counts the rule checks and terms; a small
    // tree is emitted again, inlined.
    e = emit_tree(opts.inline_subprograms.value_or(false));
    if (!opts.inline_subprograms && e->checks <= kInlineMaxChecks && e->terms <= kInlineMaxTerms) e = emit_tree(true);
    stage(fmt::format("tree: {} partitions, {} rule checks ({} terms), {} ({:.1f} ms)", e->plan.partitions.size(),
                      e->checks, e->terms,
                      e->inline_subprogs ? std::string("inlined into both programs")
                                         : fmt::format("{} subprograms", e->global_funcs),
                      std::chrono::duration<double, std::milli>(Clock::now() - t1).count()));
    if (chosen == Strategy::Auto) {
      if (e->checks > tree_max_checks) why = fmt::format("the tree needs {} rule checks > {}", e->checks, tree_max_checks);
      else if (e->terms > kTreeMaxTerms)
        why = fmt::format("the tree's conditions have {} terms > {}", e->terms, kTreeMaxTerms);
      else if (e->max_rule_terms > kTreeMaxRuleTerms)
        why = fmt::format("a rule's condition has {} terms > {} (sets are tested one by one in the tree)",
                          e->max_rule_terms, kTreeMaxRuleTerms);
      else if (e->global_funcs > kMaxGlobalFuncs)
        why = fmt::format("the tree needs {} subprograms > {}", e->global_funcs, kMaxGlobalFuncs);
      chosen = why.empty() ? Strategy::Tree : Strategy::Maps;
    } else if (e->global_funcs > kMaxGlobalFuncs) {
      diags.error({}, fmt::format("policy needs {} BPF subprograms with the tree strategy (limit {})", e->global_funcs,
                                  kMaxGlobalFuncs))
          .hints.push_back("use --strategy maps (or auto) for this policy");
      return std::nullopt;
    }
  }
  GeneratedC g;
  if (chosen == Strategy::Maps) {
    auto t1 = Clock::now();
    e = std::make_unique<Emitter>(policy, opts, source_name, DecisionPlan{});
    e->plan.dead_rules = dead;
    e->inline_subprogs = opts.inline_subprograms.value_or(true);
    BitTables t;
    try {
      t = build_bit_tables(policy, dead);
    } catch (const std::length_error& ex) {
      diags.error({}, fmt::format("policy is too large for qosc: {}", ex.what()))
          .hints.push_back("split the policy, or merge rules that share a class into sets");
      return std::nullopt;
    }
    e->emit_class_tables();
    e->emit_classifier_maps(t);
    if (t.nrules) g.tables = serialize_tables(t);
    stage(fmt::format("maps: {} live rules, {} words, {} classes, pool {} words, tables {:.1f} KiB ({:.1f} ms){}",
                      t.nrules, t.words, t.descs.size(), t.pool.size(), double(g.tables.size()) / 1024,
                      std::chrono::duration<double, std::milli>(Clock::now() - t1).count(),
                      why.empty() ? "" : " [auto: " + why + "]"));
  }
  g.strategy = chosen == Strategy::Maps ? "maps" : "tree";
  g.manifest = make_manifest(policy, opts, source_name);
  g.manifest.strategy = g.strategy;
  if (!g.tables.empty()) g.manifest.tables_section = QOS_TABLES_SECTION;
  if (!opts.flow_entries) g.manifest.flows_map = "";

  SourceBuilder head{"qos_gen.c"};
  head.line(fmt::format("/* Generated by qosc {} from {}: policy \"{}\", {} rules ({} dead), strategy {}. Do not edit. */",
                        kVersion, source_name, policy.name, policy.rules.size(), dead.size(), g.strategy));
  head.line(fmt::format("#define QOS_NCLASSES {}", policy.classes.size()));
  head.line(fmt::format("#define QOS_DEFAULT_CLASS {}", policy.default_class));
  if (opts.flow_entries) head.line(fmt::format("#define QOS_FLOW_ENTRIES {}", opts.flow_entries));
  else head.line("#define QOS_NO_FLOWS 1");
  head.line(fmt::format("#define QOS_PIFO_BANDS {}", policy.scheduler.pifo_bands ? policy.scheduler.pifo_bands : 1));
  head.line("#define QOS_PULL_LEN 256");
  head.line("#include <linux/bpf.h>").line("#include <linux/pkt_cls.h>");
  head.line("#include <bpf/bpf_helpers.h>").line("#include <bpf/bpf_endian.h>");
  head.line("#include \"qos_abi.h\"").line("#include \"qos_parse.h\"").line("#include \"qos_maps.h\"");
  head.line("#include \"qos_bucket.h\"").line("#include \"qos_pifo.h\"").line("");
  head.line("/* Volatile load: every rule check re-reads its field, keeping verifier state linear. */");
  head.line("#define QOS_LD(x) (*(volatile __typeof__(x) *)&(x))");
  head.line("static __always_inline __u32 qos_w(const __u8 *a, int i)");
  head.line("{").line("\treturn bpf_ntohl(*(volatile const __u32 *)(a + 4 * i));").line("}");
  head.line("static __always_inline __s64 qos_min_s64(__s64 a, __s64 b) { return a < b ? a : b; }");
  head.line("static __always_inline __s64 qos_max_s64(__s64 a, __s64 b) { return a > b ? a : b; }");
  head.line("").line("char _license[] SEC(\"license\") = \"Dual BSD/GPL\";");
  head.line("/* Set by the loader before load (qos_abi.h); on unless it says otherwise. */");
  head.line("const volatile struct qos_cfg qos_cfg SEC(QOS_CFG_SECTION) = { .xdp_meta = 1 };");
  std::string json = to_json(g.manifest).dump();
  head.line(fmt::format("const char qos_manifest[] __attribute__((section(\"{}\"), used)) = {};", kManifestSection,
                        c_string_literal(json)));
  head.line("");

  e->emit_program(kXdpTarget);
  e->emit_program(kTcTarget);
  // head's lines come first: re-base the body's #line resets by prefixing.
  std::string body = e->out.take();
  // The body's reset directives were numbered as if it started at line 1.
  uint32_t shift = head.current_line() - 1;
  std::string fixed;
  fixed.reserve(body.size());
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string::npos) nl = body.size();
    std::string_view ln(body.data() + pos, nl - pos);
    if (ln.starts_with("#line ") && ln.ends_with("\"qos_gen.c\"")) {
      uint32_t n = uint32_t(std::stoul(std::string(ln.substr(6))));
      fixed += fmt::format("#line {} \"qos_gen.c\"\n", n + shift);
    } else {
      fixed.append(ln);
      fixed.push_back('\n');
    }
    pos = nl + 1;
  }
  g.text = head.take() + fixed;
  return g;
}

}  // namespace qosc
