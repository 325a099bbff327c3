// The maps strategy's classifier: every live rule is a bit in bit vectors
// held in maps that the loader fills from the object's load-time tables
// (bitvector.hpp builds them, docs/codegen.md explains the layout). Per
// packet one lookup per dimension gives a class descriptor; the AND of the
// classes' vectors, scanned word by word, holds the first matching rule.
#include <algorithm>

#include <fmt/format.h>

#include "emitter.hpp"
#include "qos_abi.h"
#include "tables_section.hpp"

namespace qosc::codegen {

void emit_maps_classifier(EmitContext& cx, const BitTables& t) {
  SourceBuilder& out = cx.out;
  const uint32_t S = t.summary_words;
  if (t.nrules == 0) {
    out.line("/* maps strategy: no live rules, every packet goes to the default class. */");
    out.open(cx.subprog("qos_classify")).line("return 0;").close().line("");
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
  // qos_popcount, qos_ctz, qos_bv_word: fixed C over QOS_BV_S, struct
  // qos_desc and qos_t_pool, all defined above.
  out.line("#include \"qos_bv.h\"").line("");

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

    out.open(cx.subprog(fmt::format("qos_bv_v{}", fam)));
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
  out.open(cx.subprog("qos_classify"));
  out.line("if (!p)").line("\treturn 0;");
  out.line("if (QOS_LD(p->family) == 4)").line("\treturn qos_bv_v4(p);");
  out.line("if (QOS_LD(p->family) == 6)").line("\treturn qos_bv_v6(p);");
  out.line("return 0;");
  out.close().line("");
}

}  // namespace qosc::codegen
