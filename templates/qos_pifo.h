/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_pifo.h: PIFO approximated by strict-priority bands with SP-PIFO's
 * adaptive bounds (Alcoz et al., "SP-PIFO: Approximating Push-In First-Out
 * Behaviors using Strict-Priority Queues", NSDI'20).
 *
 * Band 0 is served first. Bands are scanned from the lowest priority
 * (nbands - 1) up: the first band whose bound q_b <= rank takes the packet
 * and q_b := rank (push-up). A rank below every bound goes to band 0 and all
 * bounds drop by q_0 - rank (push-down, counted as an inversion event).
 * The state is shared by all CPUs without locking: concurrent updates can
 * lose a bound update, which only makes the approximation slightly coarser
 * (bounds are heuristics; no packet is lost or misclassified by it). */
#ifndef QOS_PIFO_H
#define QOS_PIFO_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "qos_abi.h"

static __always_inline __u32 qos_sp_pifo(struct qos_pifo_state *s, __s64 rank, __u32 nbands)
{
	__s64 cost;

	if (!s || nbands == 0)
		return 0;
#pragma unroll
	for (int i = QOS_PIFO_MAX_BANDS - 1; i >= 0; i--) {
		if ((__u32)i >= nbands)
			continue;
		if (rank >= s->bound[i]) {
			s->bound[i] = rank;
			return (__u32)i;
		}
	}
	cost = s->bound[0] - rank;
#pragma unroll
	for (int i = 0; i < QOS_PIFO_MAX_BANDS; i++) {
		if ((__u32)i < nbands)
			s->bound[i] -= cost;
	}
	s->inversions++;
	return 0;
}

/* Rank arithmetic: wraps on overflow; division by zero gives 0. */
static __always_inline __s64 qos_rank_div(__s64 a, __s64 b)
{
	if (b == 0)
		return 0;
	if (b == -1)
		return (__s64)(0 - (__u64)a);
	return a / b;
}

#endif /* QOS_PIFO_H */
