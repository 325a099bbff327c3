/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_probe.h: the probes of qosrun's adaptive-rate controller (`link
 * adaptive` / `download adaptive`, docs/language.md). The controller sends
 * ICMP / ICMPv6 echo requests with identifier QOS_PROBE_ICMP_ID (qos_abi.h)
 * to its reflectors and reads the round-trip time; the replies carry the same
 * identifier. A probe must measure the queue beyond the shaper (the modem's),
 * never the shaper's own: the TC program sends it through HTB's direct queue
 * and neither program counts it in a class or polices it.
 *
 * Included only when the policy is adaptive (QOS_PROBES), which also makes
 * qos_parse record the L4 offset. The cost for every other packet is two
 * compares on fields already parsed; no helper call. */
#ifndef QOS_PROBE_H
#define QOS_PROBE_H

#include <linux/types.h>
#include "qos_abi.h"
#include "qos_parse.h"

/* 1 when the packet is an ICMP echo request (8) / reply (0) or ICMPv6 echo
 * request (128) / reply (129) whose identifier (bytes 4-5 of the ICMP header)
 * is QOS_PROBE_ICMP_ID. Only a first fragment has the header (l4off != 0). */
static __always_inline int qos_is_probe(const void *data, const void *data_end, const struct qos_pkt *p)
{
	const __u8 *icmp;
	__u8 type;

	if (p->family == 4 && p->proto == 1) {
		/* echo reply 0, echo request 8 */
	} else if (p->family == 6 && p->proto == 58) {
		/* echo request 128, echo reply 129 */
	} else {
		return 0;
	}
	if (!p->l4off)
		return 0;
	/* Masked so the verifier sees the offset bounded (qos_parse's bound). */
	icmp = (const __u8 *)data + (p->l4off & QOS_OFF_MAX);
	if ((const void *)(icmp + 8) > data_end)
		return 0;
	type = icmp[0];
	if (p->family == 4 ? (type != 8 && type != 0) : (type != 128 && type != 129))
		return 0;
	return qos_be16(icmp + 4) == QOS_PROBE_ICMP_ID;
}

#endif /* QOS_PROBE_H */
