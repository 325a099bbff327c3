/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_hosts.h: per-host plans (`plan`, `hosts saddr|daddr [nat]`;
 * docs/language.md "Hosts and plans", docs/hosts.md).
 *
 * qosrun fills qos_hosts, an LPM trie with one entry per prefix of its host
 * table (qos_abi.h "hosts and plans": IPv4 stored IPv4-mapped, so one trie
 * holds both families), and qos_hosts_exact, a hash of the full-length
 * prefixes (single addresses), which take the trie's walk out of the common
 * case: with 10,000 /32 hosts the walk is ~14 nodes of 16-byte keys. The TC
 * program looks up the packet's host address after the class is chosen, in
 * the hash and on a miss in the trie: a hit puts the packet into its host's
 * subtree (skb->priority, skb->cb[QOS_CB_HOST], skb->queue_mapping), a miss
 * leaves it to the policy's classes as without hosts.
 *
 * A host's packet skips `isolate`: its class's leaf is inside the host, so
 * the host's own queues stand in for the class's sub-queues.
 *
 * One or two map lookups per IP packet, no other helper call (with `nat`, conntrack's
 * kfuncs as for `isolate ... nat`). The generated C defines QOS_HOSTS (and
 * QOS_HOSTS_DADDR, QOS_HOSTS_NAT) when the policy has `hosts`; without it
 * this file defines nothing.
 *
 * Steering (without `nat`): qos_steer, an XDP program qosrun attaches to the
 * interfaces where hosts' packets come in (attach --steer-from), sends each
 * listed host's packet through the cpumap qos_steer_cpus to the CPU numbered
 * as its TX queue, so that the rest of its way to the shaped interface
 * (forwarding, the TC program, its queue's HTB) runs there: each queue's HTB
 * is then taken by one CPU, not by every CPU a host's packets arrive on
 * (docs/hosts.md "Steering"). With `nat` the host is known only after
 * conntrack, which XDP does not have: no steering. */
#ifndef QOS_HOSTS_H
#define QOS_HOSTS_H
#ifdef QOS_HOSTS

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "qos_abi.h"
#include "qos_ct.h"   /* `hosts ... nat`: the host before NAT */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, QOS_HOST_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct qos_host_key);
	__type(value, struct qos_host_val);
} qos_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, QOS_HOST_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct qos_host_addr);
	__type(value, struct qos_host_val);
} qos_hosts_exact SEC(".maps");

#ifdef QOS_HOSTS_DADDR
#define QOS_HOSTS_BY_SADDR 0
#else
#define QOS_HOSTS_BY_SADDR 1
#endif

/* The host of address `a` (16 bytes; IPv4 as 4 bytes when p->family is 4):
 * the exact-match hash, then the trie; NULL for no listed host. */
static __always_inline const struct qos_host_val *qos_host_lookup(const struct qos_pkt *p, const __u8 *a)
{
	struct qos_host_key key;
	const struct qos_host_val *v;

	if (p->family == 4) {
		/* ::ffff:a.b.c.d, prefix lengths 96 + len */
		__builtin_memset(key.addr, 0, 10);
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], a, 4);
	} else {
		__builtin_memcpy(key.addr, a, 16);
	}
	v = bpf_map_lookup_elem(&qos_hosts_exact, key.addr);
	if (v)
		return v;
	key.prefixlen = 128;
	return bpf_map_lookup_elem(&qos_hosts, &key);
}

/* Puts a packet of class `cls` of a listed host into the host's subtree and
 * returns 1; returns 0 for a packet of no listed host (and every non-IP
 * packet), which the caller classifies as without hosts. Either way
 * skb->cb[QOS_CB_HOST] says which: the host's leaf, or 0. */
static __always_inline int qos_host_choose(struct __sk_buff *ctx, const struct qos_pkt *p, __u32 cls)
{
	const struct qos_host_val *v;
	const __u8 *a = QOS_HOSTS_BY_SADDR ? p->saddr : p->daddr;
	__u32 leaf;

	ctx->cb[QOS_CB_HOST] = 0;
	if (!p->family)
		return 0;
#ifdef QOS_HOSTS_NAT
	__u32 orig[4];
	__builtin_memcpy(orig, a, 16);
	qos_ct_orig_host(ctx, p, QOS_HOSTS_BY_SADDR, (__u8 *)orig);
	a = (const __u8 *)orig;
#endif
	v = qos_host_lookup(p, a);
	if (!v)
		return 0;
	leaf = cls < 64 && ((v->class_mask >> cls) & 1) ? cls : v->default_leaf;
	ctx->priority = v->outer_classid;
	ctx->cb[QOS_CB_HOST] = ((__u32)v->group_major << 16) | (v->minor_base + leaf);
	if (v->queue != QOS_HOST_ANY_QUEUE)
		ctx->queue_mapping = v->queue;
	return 1;
}

#ifndef QOS_HOSTS_NAT
/* CPU c's entry, when qosrun steers: a queue of 2048 frames towards it
 * (qosrun sets max_entries to the possible CPUs before loading). */
struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} qos_steer_cpus SEC(".maps");

/* qos_steer's verdict: a listed host's packet to the CPU of its TX queue
 * (qos_host_val.queue is the queue + 1); everything else, and a queue whose
 * CPU has no entry (more queues than CPUs), stays on this CPU. */
static __always_inline int qos_host_steer(const struct qos_pkt *p)
{
	const struct qos_host_val *v;

	if (!p->family)
		return XDP_PASS;
	v = qos_host_lookup(p, QOS_HOSTS_BY_SADDR ? p->saddr : p->daddr);
	if (!v || v->queue == QOS_HOST_ANY_QUEUE || v->queue == 0)
		return XDP_PASS;
	return bpf_redirect_map(&qos_steer_cpus, v->queue - 1, XDP_PASS);
}
#endif

#endif /* QOS_HOSTS */
#endif /* QOS_HOSTS_H */
