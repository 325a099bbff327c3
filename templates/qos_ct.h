/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_ct.h: a host's address before NAT, from conntrack (`isolate saddr|daddr
 * nat` in qos_iso.h, `hosts saddr|daddr nat` in qos_hosts.h).
 *
 * The host is the connection's original source in conntrack, i.e. the
 * address before SNAT (on a WAN egress after masquerade) or after DNAT's
 * reverse (downloads shaped on the WAN's IFB, before conntrack ran). The
 * source address is read at qos_cfg.ct_src_off, which the loader takes from
 * the kernel's BTF; the frozen value is a constant to the verifier, which
 * checks the read against struct nf_conn.
 *
 * Defines something only when the generated C defines QOS_ISO_NAT or
 * QOS_HOSTS_NAT, so that a policy without `nat` needs no conntrack kfuncs. */
#ifndef QOS_CT_H
#define QOS_CT_H
#if defined(QOS_ISO_NAT) || defined(QOS_HOSTS_NAT)

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "qos_abi.h"

/* Only passed to and from the kfuncs (libbpf checks that their prototypes
 * match the kernel's: a struct, not a forward declaration). */
struct nf_conn___qos {
	char opaque;
};
extern const volatile struct qos_cfg qos_cfg;   /* defined in the generated C */
struct bpf_ct_opts___qos {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u8 reserved[2];
};
extern struct nf_conn___qos *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple_len,
					       struct bpf_ct_opts___qos *opts, __u32 opts_len) __ksym;
extern void bpf_ct_release(struct nf_conn___qos *ct) __ksym;

/* Writes the pre-NAT host into addr (16 bytes, 4-byte aligned, laid out as
 * struct qos_pkt's addresses: IPv4 in the first 4); returns 0 when conntrack
 * has no entry (addr is left as it is). by_saddr: the host is the packet's
 * source, so the packet is looked up reversed (its reply direction); else
 * its destination, looked up as it is. */
static __always_inline int qos_ct_orig_host(struct __sk_buff *ctx, const struct qos_pkt *p, int by_saddr, __u8 *addr)
{
	struct bpf_sock_tuple t;
	struct bpf_ct_opts___qos o = {.netns_id = -1};
	struct nf_conn___qos *ct;
	const __u8 *src = by_saddr ? p->daddr : p->saddr;
	const __u8 *dst = by_saddr ? p->saddr : p->daddr;
	__u16 sport = (__u16)(by_saddr ? p->dport : p->sport);
	__u16 dport = (__u16)(by_saddr ? p->sport : p->dport);
	__u32 len;

	if (!p->l4 || (p->proto != 6 && p->proto != 17))
		return 0;
	__builtin_memset(&t, 0, sizeof(t));
	o.l4proto = (__u8)p->proto;
	if (p->family == 4) {
		__builtin_memcpy(&t.ipv4.saddr, src, 4);
		__builtin_memcpy(&t.ipv4.daddr, dst, 4);
		t.ipv4.sport = bpf_htons(sport);
		t.ipv4.dport = bpf_htons(dport);
		len = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, src, 16);
		__builtin_memcpy(t.ipv6.daddr, dst, 16);
		t.ipv6.sport = bpf_htons(sport);
		t.ipv6.dport = bpf_htons(dport);
		len = sizeof(t.ipv6);
	}
	ct = bpf_skb_ct_lookup(ctx, &t, len, &o, 12);
	if (!ct)
		return 0;
	const __u32 *src_u3 = (const __u32 *)((const char *)ct + qos_cfg.ct_src_off);
	__u32 *a = (__u32 *)addr;
	a[0] = src_u3[0];
	if (p->family == 6) {
		a[1] = src_u3[1];
		a[2] = src_u3[2];
		a[3] = src_u3[3];
	}
	bpf_ct_release(ct);
	return 1;
}

#endif /* QOS_ISO_NAT || QOS_HOSTS_NAT */
#endif /* QOS_CT_H */
