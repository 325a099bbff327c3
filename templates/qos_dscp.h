/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_dscp.h: `set dscp N;` of a class (docs/language.md): the TC program
 * rewrites the DS field of the packet's IPv4 / IPv6 header, keeping the two
 * ECN bits. Included only when some class of the policy has `set dscp`
 * (QOS_SET_DSCP); the generated program calls qos_set_dscp() only for those
 * classes, with the value as a constant.
 *
 * Direct packet access, no helper call for the rewrite itself: the TC program
 * pulled QOS_PULL_LEN bytes into the linear area before parsing, so every
 * header qos_parse accepted lies between data and data_end; a direct write
 * makes the verifier add its unclone prologue (a private copy of the header of
 * a cloned skb, what bpf_skb_store_bytes would do per call). The IPv4 header
 * checksum is updated incrementally, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
 * IPv6 has no header checksum; for a received packet (the IFB's egress under
 * --ingress-shape) whose skb->csum covers the header (CHECKSUM_COMPLETE),
 * bpf_csum_update() keeps it right (a no-op for other skbs). The reference
 * (qosc::rewrite_dscp, compiler/src/front/packet.cpp) computes the same bytes. */
#ifndef QOS_DSCP_H
#define QOS_DSCP_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "qos_parse.h"

/* The IP header starts at most 14 + 2 * 4 bytes in (two VLAN tags). */
#define QOS_L3_MASK 0x1f

static __always_inline void qos_set_dscp(struct __sk_buff *ctx, const struct qos_pkt *p, __u32 dscp)
{
	__u8 *ip = (__u8 *)(long)ctx->data + (p->l3 & QOS_L3_MASK);
	void *data_end = (void *)(long)ctx->data_end;

	if (p->family == 4) {
		__u32 old, new, sum;

		if ((void *)(ip + 20) > data_end)
			return;
		old = ip[1];
		new = (dscp << 2) | (old & 3);
		if (old == new)
			return;
		ip[1] = (__u8)new;
		/* The 16-bit word holding the TOS is (version/IHL << 8) | TOS. */
		sum = (~qos_be16(ip + 10) & 0xffff) + (~((__u32)ip[0] << 8 | old) & 0xffff) + ((__u32)ip[0] << 8 | new);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = ~sum & 0xffff;
		ip[10] = (__u8)(sum >> 8);
		ip[11] = (__u8)sum;
		return;
	}
	if (p->family == 6) {
		__u32 tc, ntc, oldw, neww;

		if ((void *)(ip + 40) > data_end)
			return;
		/* version (4 bits) | traffic class (8) | flow label (20) */
		tc = ((__u32)(ip[0] & 0x0f) << 4) | (ip[1] >> 4);
		ntc = (dscp << 2) | (tc & 3);
		if (tc == ntc)
			return;
		oldw = (__u32)ip[0] << 8 | ip[1];
		ip[0] = (__u8)((ip[0] & 0xf0) | (ntc >> 4));
		ip[1] = (__u8)((ip[1] & 0x0f) | ((ntc & 0x0f) << 4));
		neww = (__u32)ip[0] << 8 | ip[1];
		if (ctx->ingress_ifindex)
			bpf_csum_update(ctx, bpf_htonl((~oldw & 0xffff) + neww) );
	}
}

#endif /* QOS_DSCP_H */
