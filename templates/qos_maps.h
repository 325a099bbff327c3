/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_maps.h: the maps every generated object has (layouts in qos_abi.h).
 * The generated C defines QOS_NCLASSES and QOS_FLOW_ENTRIES (or
 * QOS_NO_FLOWS: no flow table), and QOS_FLOW_SAMPLE (1: every packet
 * updates the flow table; N > 1: one sample per N x QOS_FLOW_SAMPLE_UNIT
 * bytes, see qos_flow_sampled), before including this file. */
#ifndef QOS_MAPS_H
#define QOS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "qos_abi.h"

#ifndef QOS_NCLASSES
#error "define QOS_NCLASSES before including qos_maps.h"
#endif
#ifndef QOS_FLOW_ENTRIES
#define QOS_FLOW_ENTRIES 16384
#endif
#ifndef QOS_FLOW_SAMPLE
#define QOS_FLOW_SAMPLE 1
#endif
#if QOS_FLOW_SAMPLE & (QOS_FLOW_SAMPLE - 1)
#error "QOS_FLOW_SAMPLE must be a power of two"
#endif
#define QOS_FLOW_SAMPLE_BYTES (QOS_FLOW_SAMPLE * QOS_FLOW_SAMPLE_UNIT)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, QOS_NCLASSES + 1);
	__type(key, __u32);
	__type(value, struct qos_class_stats);
} qos_stats SEC(".maps");

#ifndef QOS_NO_FLOWS
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, QOS_FLOW_ENTRIES);
	__type(key, struct qos_flow_key);
	__type(value, struct qos_flow_val);
} qos_flows SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, QOS_NCLASSES);
	__type(key, __u32);
	__type(value, struct qos_bucket_state);
} qos_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct qos_pifo_state);
} qos_pifo SEC(".maps");

/* Count one packet of `len` bytes into slot `slot` (class id, or
 * QOS_NCLASSES for the drop slot) for `hook`. Per-CPU: no atomics needed. */
static __always_inline struct qos_class_stats *qos_stats_slot(__u32 slot)
{
	return bpf_map_lookup_elem(&qos_stats, &slot);
}

#if !defined(QOS_NO_FLOWS) || defined(QOS_ISO_SLOTS)
/* The flow table's (and isolation's) clock: coarse time (bpf_ktime_get_coarse_ns, jiffy
 * resolution), read once per jiffy per CPU and cached (reading it costs
 * ~18 ns per packet in a VM, bpf_jiffies64 ~1 ns). Within one jiffy the
 * coarse clock does not move anyway; at most the first packets after a tick
 * may see the previous tick's value. */
struct qos_clock {
	__u64 jiffies;
	__u64 ns;
	__u32 rng;	/* the flow table's sampling: xorshift32 state, 0 until seeded */
	__u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct qos_clock);
} qos_clock SEC(".maps");

static __always_inline __u64 qos_coarse_now(void)
{
	__u32 zero = 0;
	struct qos_clock *c = bpf_map_lookup_elem(&qos_clock, &zero);
	__u64 j = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j) {
		c->jiffies = j;
		c->ns = bpf_ktime_get_coarse_ns();
	}
	return c->ns;
}
#endif

#ifndef QOS_NO_FLOWS
/* What one flow-table update adds: packets and bytes (estimates when sampled). */
struct qos_flow_weight {
	__u32 packets;
	__u32 bytes;
};

/* Whether this packet of `len` bytes updates the flow table, and with what
 * weight. QOS_FLOW_SAMPLE 1: every packet, as itself. Else size-dependent
 * (threshold) sampling with z = QOS_FLOW_SAMPLE_BYTES: a packet is drawn with
 * probability min(1, len / z) and then counts max(len, z) bytes and z / len
 * packets (rounded at random), so bytes and packets stay unbiased estimates,
 * the byte counts of large flows (what `stats --flows` ranks by) vary least
 * for a given number of samples, and the cost follows the bytes: a flood of
 * 64-byte packets is sampled 1 in 512 at the default z = 32 KB, full frames
 * 1 in 22, a 64 KB GSO packet always. Measured on the wire (bench/wire,
 * docs/wire-cost.md), one update costs ~100-400 ns (its code and data are
 * cold by the next sample): the number of samples is the cost. The draw is a
 * per-CPU xorshift32 in qos_clock (no helper call: every call costs ~9 ns
 * here); random, not every N-th packet, so that no traffic pattern hides
 * from it. */
static __always_inline __u32 qos_xorshift32(__u32 x)
{
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

static __always_inline int qos_flow_sampled(__u32 len, struct qos_flow_weight *w)
{
#if QOS_FLOW_SAMPLE > 1
	__u32 zero = 0, x;
	struct qos_clock *c = bpf_map_lookup_elem(&qos_clock, &zero);

	if (!c)
		return 0;
	x = c->rng;
	if (!x)
		x = bpf_get_prandom_u32() | 1;
	x = qos_xorshift32(x);
	c->rng = x;
	if ((x & (QOS_FLOW_SAMPLE_BYTES - 1)) >= len)
		return 0;
	if (len >= QOS_FLOW_SAMPLE_BYTES) {
		w->packets = 1;
		w->bytes = len;
		return 1;
	}
	/* z / len packets, rounded up with probability (z mod len) / len. */
	x = qos_xorshift32(x);
	c->rng = x;
	w->packets = QOS_FLOW_SAMPLE_BYTES / len + ((x >> 5) % len < QOS_FLOW_SAMPLE_BYTES % len);
	w->bytes = QOS_FLOW_SAMPLE_BYTES;
	return 1;
#else
	w->packets = 1;
	w->bytes = len;
	return 1;
#endif
}

/* Update the flow table with a packet of weight `w` (qos_flow_sampled);
 * returns the flow's entry (after this packet) or NULL.
 * `now` may be coarse (bpf_ktime_get_coarse_ns: same clock, jiffy resolution). */
static __always_inline struct qos_flow_val *qos_flow_update(const struct qos_pkt *p, __u32 class_id, __u32 hook,
							     __u64 now, const struct qos_flow_weight *w)
{
	struct qos_flow_key k;
	struct qos_flow_val *v;

	if (!p->family)
		return NULL;
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.saddr, p->saddr, 16);
	__builtin_memcpy(k.daddr, p->daddr, 16);
	if (p->l4) {
		k.sport = (__u16)p->sport;
		k.dport = (__u16)p->dport;
	}
	k.proto = p->proto < 0 ? 0xff : (__u8)p->proto;
	k.family = (__u8)p->family;
	v = bpf_map_lookup_elem(&qos_flows, &k);
	if (v) {
		v->last_ns = now;
		__sync_fetch_and_add(&v->packets, w->packets);
		__sync_fetch_and_add(&v->bytes, w->bytes);
		v->class_id = class_id;
		v->hook_mask |= 1u << hook;
		return v;
	}
	{
		struct qos_flow_val nv = {
			.first_ns = now, .last_ns = now, .packets = w->packets, .bytes = w->bytes,
			.class_id = class_id, .hook_mask = 1u << hook,
		};
		bpf_map_update_elem(&qos_flows, &k, &nv, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(&qos_flows, &k);
}
#endif

#endif /* QOS_MAPS_H */
