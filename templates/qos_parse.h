/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_parse.h: packet parsing for the generated XDP/TC programs, exactly per
 * the rules in compiler/include/qosc/packet.hpp (the reference parser is
 * compiler/src/front/packet.cpp; the differential test compares the two):
 * - Ethernet II, up to two VLAN tags (0x8100/0x88a8); a third tag, unknown
 *   EtherType or short frame -> non-IP.
 * - IPv4: IHL >= 5 and the whole header inside the packet, else non-IP;
 *   non-first fragment: protocol known, no L4.
 * - IPv6: 40-byte header inside, else non-IP; ext headers 0/43/44/60 walked,
 *   at most QOS_MAX_IPV6_EXT; longer or cut chain -> proto unknown (-1);
 *   fragment header with offset != 0 -> proto = its next header, no L4.
 * - L4 ports only for a full TCP (20 bytes) / UDP (8 bytes) header.
 * Nothing is ever read past data_end. */
#ifndef QOS_PARSE_H
#define QOS_PARSE_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define QOS_MAX_VLAN_TAGS 2
#define QOS_MAX_IPV6_EXT 6
/* Offsets are masked below this bound so the verifier sees them bounded;
 * a walk of 6 maximal extension headers ends at 22 + 40 + 6 * 2048 < 0x3fff. */
#define QOS_OFF_MAX 0x3fff

/* Parsed fields plus the classifier's running state. Passed by pointer to
 * the global (BTF) subprograms; the classifier re-reads fields from here at
 * every check so verifier state stays linear in the number of rules. */
struct qos_pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 len;       /* whole frame length */
	__s32 proto;     /* final L4 protocol, -1 unknown */
	__u32 sport;     /* host order, valid when l4 */
	__u32 dport;
	__u32 family;    /* 0 non-IP, 4, 6 */
	__u32 dscp;
	__u32 l4;
	/* classifier state */
	__s32 best;      /* index of the first matching rule so far, QOS_NO_RULE if none */
	__s32 target;    /* its target: class id or -1 (drop) */
	__u32 leaf;
#ifdef QOS_SET_DSCP
	__u32 l3;        /* offset of the IPv4/IPv6 header in the frame (set dscp rewrites it) */
#endif
#ifdef QOS_PROBES
	__u32 l4off;     /* offset of the L4 header (0: none, e.g. a later fragment); qos_probe.h reads ICMP there */
#endif
};

#define QOS_NO_RULE 0x7fffffff

static __always_inline __u16 qos_be16(const __u8 *p)
{
	return (__u16)((__u16)p[0] << 8 | p[1]);
}

/* Ports at l4 for the protocol in p->proto, when the full header is present. */
static __always_inline void qos_parse_l4(const __u8 *l4, const void *data_end, struct qos_pkt *p)
{
	if (p->proto == 6) {
		if ((const void *)(l4 + 20) > data_end)
			return;
	} else if (p->proto == 17) {
		if ((const void *)(l4 + 8) > data_end)
			return;
	} else {
		return;
	}
	p->l4 = 1;
	p->sport = qos_be16(l4);
	p->dport = qos_be16(l4 + 2);
}

static __always_inline void qos_parse(const void *data, const void *data_end, __u32 len, struct qos_pkt *p)
{
	const __u8 *d = data;
	__u32 off = 12;
	__u16 type;

	__builtin_memset(p, 0, sizeof(*p));
	p->proto = -1;
	p->len = len;
	p->best = QOS_NO_RULE;
	p->target = -1;
	if ((const void *)(d + 14) > data_end)
		return;
	type = qos_be16(d + 12);
#pragma unroll
	for (int t = 0; t < QOS_MAX_VLAN_TAGS; t++) {
		if (type != 0x8100 && type != 0x88a8)
			break;
		if ((const void *)(d + off + 6) > data_end)
			return;
		off += 4;
		type = qos_be16(d + off);
	}
	if (type == 0x8100 || type == 0x88a8)
		return; /* a third tag: non-IP */
	off += 2;
#ifdef QOS_SET_DSCP
	p->l3 = off;
#endif

	if (type == 0x0800) {
		const __u8 *ip = d + off;
		__u32 ihl;

		if ((const void *)(ip + 20) > data_end)
			return;
		ihl = (__u32)(ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return;
		if ((const void *)(ip + ihl) > data_end)
			return;
		p->family = 4;
		p->dscp = ip[1] >> 2;
		p->proto = ip[9];
		__builtin_memcpy(p->saddr, ip + 12, 4);
		__builtin_memcpy(p->daddr, ip + 16, 4);
		if (qos_be16(ip + 6) & 0x1fff)
			return; /* non-first fragment: no L4 */
#ifdef QOS_PROBES
		p->l4off = off + ihl;
#endif
		qos_parse_l4(ip + ihl, data_end, p);
		return;
	}
	if (type == 0x86dd) {
		const __u8 *ip6 = d + off;
		__u32 pos, nh;

		if ((const void *)(ip6 + 40) > data_end)
			return;
		p->family = 6;
		p->dscp = (((ip6[0] & 0x0f) << 4) | (ip6[1] >> 4)) >> 2;
		__builtin_memcpy(p->saddr, ip6 + 8, 16);
		__builtin_memcpy(p->daddr, ip6 + 24, 16);
		nh = ip6[6];
		pos = off + 40;
#pragma unroll
		for (int i = 0; i < QOS_MAX_IPV6_EXT; i++) {
			const __u8 *h;

			if (nh != 0 && nh != 43 && nh != 44 && nh != 60)
				break;
			pos &= QOS_OFF_MAX;
			h = d + pos;
			if (nh == 44) {
				if ((const void *)(h + 8) > data_end)
					return; /* cut: proto unknown */
				nh = h[0];
				pos += 8;
				if (qos_be16(h + 2) >> 3) {
					p->proto = nh; /* non-first fragment */
					return;
				}
			} else {
				__u32 hlen;

				if ((const void *)(h + 2) > data_end)
					return;
				hlen = ((__u32)h[1] + 1) * 8;
				if ((const void *)(h + hlen) > data_end)
					return; /* cut: proto unknown */
				nh = h[0];
				pos += hlen;
			}
		}
		if (nh == 0 || nh == 43 || nh == 44 || nh == 60)
			return; /* chain longer than QOS_MAX_IPV6_EXT: proto unknown */
		p->proto = nh;
		pos &= QOS_OFF_MAX;
#ifdef QOS_PROBES
		p->l4off = pos;
#endif
		qos_parse_l4(d + pos, data_end, p);
		return;
	}
}

#endif /* QOS_PARSE_H */
