/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_iso.h: fair sub-queues inside a class (`isolate`, docs/isolation.md).
 *
 * The TC program gives every flow (or host) of an isolated class its own
 * slot, and with it its own sub-queue in the class's nested HTB, where equal
 * quanta make the shares equal. Slots are assigned on first sight and freed
 * when idle, so up to the class's slot count two active flows (hosts) never
 * share a queue; past it a newcomer shares a busy slot and the class's
 * `overflows` counter says so.
 *
 * The hot path is one hash of the key and array lookups (inlined by the
 * verifier, no helper call); only a key the index does not know scans its
 * pool, inside bpf_loop so that the verifier checks the scan once.
 *
 * Every slot also meters its flow: a flow under the class's sparse rate
 * (GCRA with a tolerance of two frames) goes to the class's sparse leaf,
 * which HTB sends within its assured rate, before any bulk: what fq_codel
 * and CAKE do for new and sparse flows.
 *
 * The generated C defines QOS_ISO_SLOTS and QOS_ISO_INDEX (entries of the two
 * maps) when a class isolates; without them this file defines nothing. */
#ifndef QOS_ISO_H
#define QOS_ISO_H
#ifdef QOS_ISO_SLOTS

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "qos_abi.h"
#include "qos_ct.h"   /* `isolate ... nat`: the host before NAT */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, QOS_ISO_SLOTS);
	__type(key, __u32);
	__type(value, struct qos_iso_slot);
} qos_iso_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, QOS_ISO_INDEX);
	__type(key, __u32);
	__type(value, struct qos_iso_index);
} qos_iso_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, QOS_NCLASSES);
	__type(key, __u32);
	__type(value, struct qos_iso_counters);
} qos_iso_stats SEC(".maps");

#define QOS_ISO_FLOWS 1
#define QOS_ISO_SADDR 2
#define QOS_ISO_DADDR 3
/* A bulk flow's meter runs at most this far ahead: after this long without
 * a packet every flow counts as sparse again. */
#define QOS_ISO_TAT_CAP_NS 200000000ull

static __always_inline __u64 qos_iso_mix(__u64 h, __u64 w)
{
	h ^= w;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 31);
}

static __always_inline __u64 qos_iso_hash(const struct qos_iso_key *k, __u64 salt)
{
	const __u64 *w = (const __u64 *)k;
	__u64 h = salt;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*k) / 8); i++)
		h = qos_iso_mix(h, w[i]);
	return h | 1;
}

/* The pool scan for a key the index did not know (bpf_loop callback). */
struct qos_iso_scan {
	__u64 h, now;
	__u32 base, n, start, found;   /* found: pool-relative slot, or n */
	__u32 claimed;
	struct qos_iso_key key;
};

/* Pools of at most this many slots (a host's flow sub-queues, `per_host`) are
 * scanned by unrolled code instead of bpf_loop, saving the helper call and an
 * indirect callback call per slot: ~6 ns per packet on the wire
 * (docs/wire-cost.md) for a host with more active flows than sub-queues,
 * where every packet of a flow without a slot of its own scans the pool.
 * Larger pools keep bpf_loop, which the verifier checks once at any size. */
#define QOS_ISO_INLINE_SCAN 8

static __always_inline long qos_iso_scan_step(__u64 i, struct qos_iso_scan *c)
{
	struct qos_iso_slot *s;
	__u32 si = c->start + (__u32)i, gi;
	__u64 o;

	if (si >= c->n)
		si -= c->n;
	gi = c->base + si;
	s = bpf_map_lookup_elem(&qos_iso_slots, &gi);
	if (!s)
		return 1;
	o = s->owner;
	if (o == c->h) {
		c->found = si;
		return 1;
	}
	if (o != 0 && (__s64)(c->now - s->last_ns) <= (__s64)QOS_ISO_IDLE_NS)
		return 0;
	if (__sync_val_compare_and_swap(&s->owner, o, c->h) != o)
		return 0;   /* another CPU took it first */
	s->last_ns = c->now;
	s->tat_ns = 0;
	s->packets = 0;
	__builtin_memcpy(&s->key, &c->key, sizeof(s->key));
	c->found = si;
	c->claimed = 1;
	return 1;
}

static long qos_iso_scan_one(__u64 i, void *arg)
{
	return qos_iso_scan_step(i, arg);
}

/* The slot of the key hashed to `h` in the pool [base, base + n) of
 * qos_iso_slots, indexed in [ibase, ibase + imask]. Returns the pool-relative
 * slot; sets *out (NULL only if a lookup failed). */
static __always_inline __u32 qos_iso_slot_of(const struct qos_iso_key *key, __u64 h, __u32 base, __u32 n,
					      __u32 ibase, __u32 imask, __u64 now,
					      struct qos_iso_counters *cnt, struct qos_iso_slot **out)
{
	struct qos_iso_index *e, *put = 0;
	struct qos_iso_slot *s;
	struct qos_iso_scan scan;
	__u32 idx, gi;

	*out = 0;
#pragma unroll
	for (int i = 0; i < QOS_ISO_PROBES; i++) {
		idx = ibase + (((__u32)h + i) & imask);
		e = bpf_map_lookup_elem(&qos_iso_index, &idx);
		if (!e)
			return 0;
		if (e->owner == h) {
			if (e->slot < n) {
				gi = base + e->slot;
				s = bpf_map_lookup_elem(&qos_iso_slots, &gi);
				if (s && s->owner == h) {
					if (s->last_ns != now)
						s->last_ns = now;   /* once per tick, not per packet */
					*out = s;
					return e->slot;
				}
			}
			put = e;   /* our entry, but the slot went to someone else */
			break;
		}
		if (!put && e->owner == 0)
			put = e;
	}
	scan.h = h;
	scan.now = now;
	scan.base = base;
	scan.n = n;
	scan.start = (__u32)(h >> 32) % n;
	scan.found = n;
	scan.claimed = 0;
	__builtin_memcpy(&scan.key, key, sizeof(scan.key));
	if (__builtin_constant_p(n) && n <= QOS_ISO_INLINE_SCAN) {
#pragma unroll
		for (int i = 0; i < QOS_ISO_INLINE_SCAN; i++)
			if (i >= (int)n || qos_iso_scan_step(i, &scan))
				break;
	} else {
		bpf_loop(n, qos_iso_scan_one, &scan, 0);
	}
	if (scan.found >= n) {
		/* Every slot is busy: share one, and say so. */
		if (cnt)
			cnt->overflows++;
		gi = base + scan.start;
		*out = bpf_map_lookup_elem(&qos_iso_slots, &gi);
		return scan.start;
	}
	if (scan.claimed && cnt)
		cnt->claims++;
	if (!put) {
		idx = ibase + ((__u32)h & imask);
		put = bpf_map_lookup_elem(&qos_iso_index, &idx);
	}
	if (put) {
		put->slot = scan.found;
		put->owner = h;
	}
	gi = base + scan.found;
	*out = bpf_map_lookup_elem(&qos_iso_slots, &gi);
	return scan.found;
}


/* A flow: the 5-tuple, or the address pair and protocol without ports. */
static __always_inline void qos_iso_flow_key(struct qos_iso_key *key, const struct qos_pkt *p)
{
	key->kind = 1;
	key->proto = p->proto < 0 ? 0xff : (__u8)p->proto;
	if (p->l4) {
		key->sport = (__u16)p->sport;
		key->dport = (__u16)p->dport;
	}
	__builtin_memcpy(key->saddr, p->saddr, 16);
	__builtin_memcpy(key->daddr, p->daddr, 16);
}

/* Chooses the queue of a packet of isolated class `cls`: returns the root
 * HTB minor (the class's leaf, or its sparse leaf) and stores the nested
 * HTB's classid in skb->cb[QOS_CB_SUBQ]. */
static __always_inline __u32 qos_iso_choose(struct __sk_buff *ctx, const struct qos_pkt *p, __u32 cls, int mode, int nat,
					    __u32 base, __u32 slots, __u32 per_host, __u32 host_major, __u32 ibase, __u32 imask,
					    __u64 sparse_rate_bps, __u64 sparse_tau_ns, __u64 now)
{
	struct qos_iso_key key __attribute__((aligned(8)));
	struct qos_iso_counters *cnt;
	struct qos_iso_slot *s = 0, *hs;
	__u32 minor, host, flow;
	__u64 h, cost, start, next;

	if (!p->family)
		return QOS_HTB_SPARSE_BASE + cls;   /* not IP (ARP, LLDP): rare control packets */
	cnt = bpf_map_lookup_elem(&qos_iso_stats, &cls);
	__builtin_memset(&key, 0, sizeof(key));
	key.family = (__u8)p->family;
	if (mode == QOS_ISO_FLOWS) {
		qos_iso_flow_key(&key, p);
		h = qos_iso_hash(&key, 0x51c0 + cls);
		flow = qos_iso_slot_of(&key, h, base, slots, ibase, imask, now, cnt, &s);
		minor = QOS_ISO_MINOR_BASE + flow;
	} else {
		key.kind = 2;
		__builtin_memcpy(key.saddr, mode == QOS_ISO_SADDR ? p->saddr : p->daddr, 16);
#ifdef QOS_ISO_NAT
		if (nat && qos_ct_orig_host(ctx, p, mode == QOS_ISO_SADDR, key.saddr) && cnt)
			cnt->nat_found++;
#endif
		h = qos_iso_hash(&key, 0x51c0 + cls);
		host = qos_iso_slot_of(&key, h, base, slots, ibase, imask, now, cnt, &hs);
		s = hs;
		minor = QOS_ISO_MINOR_BASE + host;
		if (per_host > 1) {
			qos_iso_flow_key(&key, p);
			h = qos_iso_hash(&key, 0x51c0 + cls + ((__u64)(host + 1) << 16));
			flow = qos_iso_slot_of(&key, h, base + slots + host * per_host, per_host, ibase, imask, now, cnt, &s);
			ctx->cb[QOS_CB_SUBQ + 1] = ((host_major + host) << 16) | (QOS_ISO_MINOR_BASE + flow);
		}
	}
	ctx->cb[QOS_CB_SUBQ] = ((QOS_HTB_MINOR_BASE + cls) << 16) | minor;
	if (!s)
		return QOS_HTB_MINOR_BASE + cls;
	s->packets++;
	/* Sparse meter: GCRA at the class's sparse rate, advanced by every
	 * packet, so a bulk flow stays bulk until it has been quiet a while. */
	cost = (__u64)p->len * 8000000000ull / sparse_rate_bps;
	start = (__s64)(s->tat_ns - now) > 0 ? s->tat_ns : now;
	next = start + cost;
	if ((__s64)(next - now) > (__s64)QOS_ISO_TAT_CAP_NS)
		next = now + QOS_ISO_TAT_CAP_NS;
	s->tat_ns = next;
	if (next - now > sparse_tau_ns)
		return QOS_HTB_MINOR_BASE + cls;
	if (cnt)
		cnt->sparse++;
	return QOS_HTB_SPARSE_BASE + cls;
}

#endif /* QOS_ISO_SLOTS */
#endif /* QOS_ISO_H */
