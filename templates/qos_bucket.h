/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_bucket.h: per-class policer, safe when several CPUs police one class.
 *
 * A virtual-time (GCRA / EDT-style) token bucket: state is one u64, the
 * theoretical arrival time `tat` (ns). A packet of L bytes costs
 * cost = L * 8e9 / rate ns of virtual time; the bucket depth `burst` bytes is
 * a tolerance tau = burst * 8e9 / rate ns. A packet conforms when
 * max(tat, now) + cost - now <= tau; then tat advances by cost with a
 * compare-and-swap (__sync_val_compare_and_swap, needs -mcpu=v3+).
 *
 * Concurrency and error bound: the CAS loop is bounded to QOS_BUCKET_TRIES
 * attempts. When every attempt loses a race, the packet is passed and its
 * cost is charged with an atomic add (tat += cost) instead, so the time it
 * used is never lost; the only overshoot is that such a packet skips the
 * conformance test: at most one packet per (QOS_BUCKET_TRIES consecutive
 * lost races), i.e. passed bytes <= rate * T + burst + (ncpus - 1) * MTU in
 * the worst case and exactly rate * T + burst (to one packet) otherwise.
 * Division by the rate happens with compile-time constants. */
#ifndef QOS_BUCKET_H
#define QOS_BUCKET_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define QOS_BUCKET_TRIES 4

/* Returns 1 when the packet conforms (pass), 0 when it must be dropped. */
static __always_inline int qos_bucket_conform(struct qos_bucket_state *b, __u64 now, __u64 cost_ns, __u64 tau_ns)
{
#pragma unroll
	for (int i = 0; i < QOS_BUCKET_TRIES; i++) {
		__u64 old = b->tat_ns;
		__u64 start = old > now ? old : now;
		__u64 next = start + cost_ns;

		if (next - now > tau_ns)
			return 0;
		if (__sync_val_compare_and_swap(&b->tat_ns, old, next) == old)
			return 1;
	}
	__sync_fetch_and_add(&b->tat_ns, cost_ns);
	return 1;
}

#endif /* QOS_BUCKET_H */
