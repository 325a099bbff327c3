// The program skeleton every strategy shares: the head of the translation
// unit (defines, includes, the manifest section), the class tables and
// policers, and the XDP and TC programs around qos_classify.
#include <algorithm>
#include <bit>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "emitter.hpp"
#include "qos_abi.h"
#include "qosc/sha256.hpp"
#include "qosc/version.hpp"

namespace qosc::codegen {

std::string EmitContext::subprog(const std::string& name) {
  if (inline_subprogs) return fmt::format("static __always_inline int {}(struct qos_pkt *p)", name);
  ++global_funcs;
  return fmt::format("__noinline int {}(struct qos_pkt *p)", name);
}

namespace {

bool rank_uses_now(const ir::RankExpr& e) {
  if (e.op == ir::RankExpr::Op::Field && e.field == ir::RankField::NowUs) return true;
  for (const auto& a : e.args)
    if (rank_uses_now(a)) return true;
  return false;
}

bool rank_uses_flow(const ir::RankExpr& e) {
  if (e.op == ir::RankExpr::Op::Field && (e.field == ir::RankField::FlowBytes || e.field == ir::RankField::FlowPackets))
    return true;
  for (const auto& a : e.args)
    if (rank_uses_flow(a)) return true;
  return false;
}

// 1 in how many packets update the flow table: a rank that reads the flow's
// counters needs every packet counted.
uint32_t flow_sample(const ir::Policy& policy, const CodegenOptions& opts) {
  if (!opts.flow_entries) return 1;
  if (policy.scheduler.kind == ir::SchedKind::Pifo && rank_uses_flow(policy.scheduler.rank)) return 1;
  return std::max<uint32_t>(opts.flow_sample, 1);
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

// `hosts` (qos_hosts.h): opens the block that chooses the queue of a packet
// of no listed host, as without hosts; a host's packet gets its host's leaf
// instead (and skips `isolate`: the host's queues stand in for the class's
// sub-queues). Returns whether it opened a block (the caller closes it).
bool open_host_choice(SourceBuilder& out, const ir::Policy& policy) {
  if (!policy.hosts) return false;
  out.line("/* A listed host's packet goes into its host's subtree (priority, cb[QOS_CB_HOST], queue). */");
  out.open("if (!qos_host_choose(ctx, p, cls))");
  return true;
}

// The head's lines for `hosts`: the defines that turn on qos_hosts.h.
void host_defines(SourceBuilder& head, const ir::Policy& policy) {
  if (!policy.hosts) return;
  head.line("#define QOS_HOSTS 1  /* per-host plans: the qos_hosts map (qos_hosts.h) */");
  if (policy.hosts->dst) head.line("#define QOS_HOSTS_DADDR 1");
  if (policy.hosts->nat) head.line("#define QOS_HOSTS_NAT 1  /* conntrack's kfuncs (hosts ... nat) */");
}

}  // namespace

std::vector<std::optional<ManifestIsolation>> isolation_layout(const ir::Policy& policy) {
  std::vector<std::optional<ManifestIsolation>> out(policy.classes.size());
  uint32_t slot_base = 0, index_base = 0, host_major = QOS_HOST_QDISC_MAJOR_BASE;
  for (const auto& c : policy.classes) {
    if (!c.isolate.on()) continue;
    ManifestIsolation i;
    i.mode = ir::to_string(c.isolate.mode);
    i.nat = c.isolate.nat;
    i.slots = c.isolate.slots;
    i.per_host = c.isolate.per_host;
    i.slot_base = slot_base;
    i.index_base = index_base;
    // Four index entries per slot keep probe chains short.
    i.index_size = std::bit_ceil(4 * i.pool());
    // A flow under 1/256 of the class's ceiling (at least 128 kbit/s) is
    // sparse: well below the fair share of a hundred bulk flows (a bulk flow
    // that dips under it on a loss would jump the queue), above any game or
    // voice stream.
    uint64_t ceil = c.rate_bps && c.rate_bps < policy.link_bps ? c.rate_bps : policy.link_bps;
    i.sparse_bps = std::max<uint64_t>(ceil / 256, kMinSparseBps);
    if (i.per_host > 1) {
      i.host_major = host_major;
      host_major += i.slots;
    }
    slot_base += i.pool();
    index_base += i.index_size;
    out[c.id] = i;
  }
  return out;
}

void emit_class_tables(EmitContext& cx) {
  SourceBuilder& out = cx.out;
  const ir::Policy& policy = cx.policy;
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

void emit_program(EmitContext& cx, const Target& t) {
  SourceBuilder& out = cx.out;
  const ir::Policy& policy = cx.policy;
  const CodegenOptions& opts = cx.opts;
  bool pifo = policy.scheduler.kind == ir::SchedKind::Pifo;
  const auto layout = isolation_layout(policy);
  const bool isolating = std::any_of(layout.begin(), layout.end(), [](const auto& i) { return i.has_value(); });
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
    // One HTB per TX queue (qosrun's mq tree for hosts): what is not a listed
    // host's goes to queue 0, the only one with the policy's own leaves; a
    // host's packet gets its own queue in qos_host_choose. Off (0) the
    // verifier drops the line.
    out.line("if (qos_cfg.unlisted_queue)");
    out.line("\tctx->queue_mapping = qos_cfg.unlisted_queue;  /* TX queue 0 under qosrun's mq tree */");
  } else {
    out.line("void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;");
    out.line("qos_parse(data, data_end, (__u32)(data_end - data), p);");
  }
  if (policy.adaptive()) {
    // qosrun's probes of the adaptive rate (qos_probe.h) pass before any
    // classification: not counted in a class, never policed; on egress HTB
    // sends them from its direct queue (1:0, the qdisc itself), unshaped and
    // ahead of the classes, so that they measure only the queue beyond it.
    if (t.sets_priority) {
      out.open("if (qos_is_probe((void *)(long)ctx->data, (void *)(long)ctx->data_end, p))");
      out.line("ctx->priority = QOS_HTB_MAJOR << 16;  /* 1:0, HTB's direct queue: unshaped */");
    } else {
      out.open("if (qos_is_probe(data, data_end, p))");
    }
    out.line(fmt::format("return {};", t.pass));
    out.close();
  }
  out.line("qos_classify(p);");
  // Time: the flow table needs only coarse time (jiffies); a PIFO rank on
  // now_us needs the precise clock; policers read it themselves.
  // A sampled flow table reads the clock only for the packets it samples.
  const bool rank_now = pifo && t.sets_priority && rank_uses_now(policy.scheduler.rank);
  const uint32_t sample = flow_sample(policy, opts);
  const bool now_read = rank_now || (opts.flow_entries && sample == 1) || (t.sets_priority && isolating);
  if (rank_now) out.line("now = bpf_ktime_get_ns();");
  else if (now_read) out.line("now = qos_coarse_now();  /* coarse, cached per jiffy */");
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
  if (opts.flow_entries) {
    out.open("");
    out.line("struct qos_flow_weight fw;");
    // now_read holds for an exact table (sample 1): the clock is then read for every packet anyway.
    out.line(fmt::format("f = qos_flow_sampled(pkt.len, &fw) ? qos_flow_update(p, cls, {}, {}, &fw) : 0;  /* {} */",
                         t.hook, now_read ? "now" : "qos_coarse_now()",
                         sample == 1 ? "every packet" : fmt::format("one sample per {} bytes", sample * QOS_FLOW_SAMPLE_UNIT)));
    out.close();
  } else {
    out.line("f = 0;  /* no flow table (compiled without one) */");
  }
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
    const bool hosts = open_host_choice(out, policy);
    if (pifo) {
      out.open("");
      out.line("__u32 zero = 0;");
      out.line("struct qos_pifo_state *ps = bpf_map_lookup_elem(&qos_pifo, &zero);");
      out.line(fmt::format("__s64 rank = {};", rank_expr(policy.scheduler.rank)));
      out.line("__u32 band = qos_sp_pifo(ps, rank, QOS_PIFO_BANDS);");
      out.line("ctx->priority = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + band);");
      out.close();
    } else if (isolating) {
      // Isolated classes pick a sub-queue of their nested HTB (qos_iso.h).
      out.open("");
      out.line("__u32 minor = QOS_HTB_MINOR_BASE + cls;");
      out.line("ctx->cb[QOS_CB_SUBQ] = 0;");
      out.open("switch (cls)");
      for (const auto& c : policy.classes) {
        const auto& i = layout[c.id];
        if (!i) continue;
        long double tau = 2.0L * 1514 * 8e9L / (long double)i->sparse_bps;
        out.line(fmt::format("case {}: /* {}: isolate {}{}, {} slots x {} */", c.id, c.name, i->mode,
                             i->nat ? " nat" : "", i->slots, i->per_host));
        out.line(fmt::format("\tminor = qos_iso_choose(ctx, p, cls, QOS_ISO_{}, {}, {}, {}, {}, {:#x}, {}, {}, {}ULL, {}ULL, now);",
                             i->mode == "flows" ? "FLOWS" : i->mode == "saddr" ? "SADDR" : "DADDR", i->nat ? 1 : 0,
                             i->slot_base,
                             i->slots, i->per_host, i->host_major, i->index_base, i->index_size - 1, i->sparse_bps,
                             (uint64_t)tau));
        out.line("\tbreak;");
      }
      out.close();
      out.line("ctx->priority = (QOS_HTB_MAJOR << 16) | minor;");
      out.close();
    } else {
      out.line("ctx->priority = (QOS_HTB_MAJOR << 16) | (QOS_HTB_MINOR_BASE + cls);");
    }
    if (hosts) out.close();
    out.line("ctx->cb[QOS_CB_CLASS] = (QOS_META_MAGIC << 16) | cls;  /* the class, also when priority is a band */");
    // `set dscp`: a case per class that has it, nothing for the others.
    bool any = false;
    for (const auto& c : policy.classes) {
      if (!c.set_dscp) continue;
      if (!any) out.open("switch (cls)");
      any = true;
      out.line(fmt::format("case {}: qos_set_dscp(ctx, p, {}); break;  /* {}: set dscp */", c.id, *c.set_dscp, c.name));
    }
    if (any) out.close();
  }
  out.line(fmt::format("return {};", t.pass));
  out.close().line("");
}

// qos_steer (hosts without `nat`): the XDP program qosrun attaches where
// hosts' packets come in (attach --steer-from). It parses and looks the host
// up, nothing else: qos_host_steer (qos_hosts.h) picks the CPU.
void emit_steer_program(EmitContext& cx) {
  SourceBuilder& out = cx.out;
  out.line("/* A listed host's packet to the CPU of its TX queue on the shaped interface (qos_hosts.h). */");
  out.line("SEC(\"xdp\")");
  out.open(fmt::format("int {}(struct xdp_md *ctx)", kSteerProgram));
  out.line("void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;");
  out.line("struct qos_pkt pkt;");
  out.line("qos_parse(data, data_end, (__u32)(data_end - data), &pkt);");
  out.line("return qos_host_steer(&pkt);");
  out.close().line("");
}

Manifest make_manifest(const ir::Policy& policy, const CodegenOptions& opts, const std::string& source_name) {
  Manifest m;
  m.policy = policy.name;
  m.source = source_name;
  m.source_sha256 = sha256_hex(opts.source_text);
  m.compiler_version = kVersion;
  m.link_bps = policy.link_bps;
  auto adaptive = [](const std::optional<ir::Adaptive>& a) -> std::optional<ManifestAdaptive> {
    if (!a) return std::nullopt;
    return ManifestAdaptive{a->min_bps, a->max_bps, a->start_bps, a->delay_us};
  };
  m.link_adaptive = adaptive(policy.link_adaptive);
  m.download_bps = policy.download_bps;
  m.download_adaptive = adaptive(policy.download_adaptive);
  m.scheduler = ir::to_string(policy.scheduler.kind);
  if (policy.scheduler.kind == ir::SchedKind::Pifo) {
    m.rank = ir::to_string(policy.scheduler.rank);
    m.pifo_bands = policy.scheduler.pifo_bands;
    m.pifo_mapping = "sp-pifo";
  }
  auto layout = isolation_layout(policy);
  for (const auto& c : policy.classes) {
    ManifestClass mc;
    mc.isolate = layout[c.id];
    mc.id = c.id;
    mc.name = c.name;
    mc.priority = c.priority;
    mc.weight = c.weight;
    mc.quantum = c.quantum;
    mc.rate_bps = c.rate_bps;
    mc.burst_bytes = c.burst_bytes;
    mc.is_default = c.is_default;
    mc.htb_minor = QOS_HTB_MINOR_BASE + c.id;
    mc.set_dscp = c.set_dscp;
    m.classes.push_back(std::move(mc));
  }
  for (const auto& p : policy.plans) m.plans.push_back({p.name, p.rate_bps, p.ceil_bps, p.burst_bytes, p.classes});
  if (policy.hosts) {
    m.hosts = ManifestHosts{policy.hosts->dst ? "daddr" : "saddr", policy.hosts->nat};
    if (!policy.hosts->nat) m.hosts->steer_prog = kSteerProgram;   // emit_steer_program
  }
  m.default_class = policy.default_class;
  m.rule_count = uint32_t(policy.rules.size());
  m.strategy = "tree";
  m.flow_sample = flow_sample(policy, opts);
  return m;
}

SourceBuilder program_head(const ir::Policy& policy, const CodegenOptions& opts, const std::string& source_name,
                           size_t dead_rules, const std::string& strategy, const Manifest& manifest) {
  SourceBuilder head{"qos_gen.c"};
  head.line(fmt::format("/* Generated by qosc {} from {}: policy \"{}\", {} rules ({} dead), strategy {}. Do not edit. */",
                        kVersion, source_name, policy.name, policy.rules.size(), dead_rules, strategy));
  head.line(fmt::format("#define QOS_NCLASSES {}", policy.classes.size()));
  head.line(fmt::format("#define QOS_DEFAULT_CLASS {}", policy.default_class));
  if (opts.flow_entries) head.line(fmt::format("#define QOS_FLOW_ENTRIES {}", opts.flow_entries));
  else head.line("#define QOS_NO_FLOWS 1");
  if (manifest.flow_sample > 1) head.line(fmt::format("#define QOS_FLOW_SAMPLE {}", manifest.flow_sample));
  head.line(fmt::format("#define QOS_PIFO_BANDS {}", policy.scheduler.pifo_bands ? policy.scheduler.pifo_bands : 1));
  uint32_t iso_slots = 0, iso_index = 0;
  bool iso_nat = false;
  for (const auto& i : isolation_layout(policy))
    if (i) iso_slots = i->slot_base + i->pool(), iso_index = i->index_base + i->index_size, iso_nat |= i->nat;
  if (iso_nat) head.line("#define QOS_ISO_NAT 1  /* conntrack's kfuncs (isolate ... nat) */");
  if (iso_slots) {
    head.line(fmt::format("#define QOS_ISO_SLOTS {}", iso_slots));
    head.line(fmt::format("#define QOS_ISO_INDEX {}", iso_index));
  }
  head.line("#define QOS_PULL_LEN 256");
  // `set dscp`: only policies that use it get the parser's l3 offset and qos_dscp.h.
  const bool set_dscp = std::any_of(policy.classes.begin(), policy.classes.end(), [](const ir::Class& c) { return c.set_dscp.has_value(); });
  if (set_dscp) head.line("#define QOS_SET_DSCP 1");
  // An adaptive link: only such policies get the parser's L4 offset and qos_probe.h.
  if (policy.adaptive()) head.line("#define QOS_PROBES 1");
  host_defines(head, policy);
  head.line("#include <linux/bpf.h>").line("#include <linux/pkt_cls.h>");
  head.line("#include <bpf/bpf_helpers.h>").line("#include <bpf/bpf_endian.h>");
  head.line("#include \"qos_abi.h\"").line("#include \"qos_parse.h\"").line("#include \"qos_maps.h\"");
  head.line("#include \"qos_bucket.h\"").line("#include \"qos_pifo.h\"").line("#include \"qos_match.h\"");
  head.line("#include \"qos_iso.h\"");
  if (set_dscp) head.line("#include \"qos_dscp.h\"");
  if (policy.adaptive()) head.line("#include \"qos_probe.h\"");
  if (policy.hosts) head.line("#include \"qos_hosts.h\"");
  head.line("").line("char _license[] SEC(\"license\") = \"Dual BSD/GPL\";");
  head.line("/* Set by the loader before load (qos_abi.h); on unless it says otherwise. */");
  head.line("const volatile struct qos_cfg qos_cfg SEC(QOS_CFG_SECTION) = { .xdp_meta = 1 };");
  std::string json = to_json(manifest).dump();
  head.line(fmt::format("const char qos_manifest[] __attribute__((section(\"{}\"), used)) = {};", kManifestSection,
                        c_string_literal(json)));
  head.line("");
  return head;
}

std::string join_head_and_body(SourceBuilder& head, std::string body) {
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
  return head.take() + fixed;
}

}  // namespace qosc::codegen
