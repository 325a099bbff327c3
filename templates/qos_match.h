/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_match.h: what the generated classifier and rank code build on.
 * Included by every generated program after qos_parse.h (struct qos_pkt). */
#ifndef QOS_MATCH_H
#define QOS_MATCH_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

/* Volatile load: every rule check re-reads its field, keeping verifier state linear. */
#define QOS_LD(x) (*(volatile __typeof__(x) *)&(x))

/* Word i (0..3) of an address in host order, for prefix tests. */
static __always_inline __u32 qos_w(const __u8 *a, int i)
{
	return bpf_ntohl(*(volatile const __u32 *)(a + 4 * i));
}

/* min() and max() of a scheduler's rank expression. */
static __always_inline __s64 qos_min_s64(__s64 a, __s64 b) { return a < b ? a : b; }
static __always_inline __s64 qos_max_s64(__s64 a, __s64 b) { return a > b ? a : b; }

#endif /* QOS_MATCH_H */
