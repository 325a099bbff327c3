/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_bv.h: the maps strategy's bit-vector helpers (docs/codegen.md).
 * The generated code includes it after it has defined QOS_BV_S,
 * struct qos_desc and the array map qos_t_pool (__u64 words), whose sizes
 * depend on the policy. */
#ifndef QOS_BV_H
#define QOS_BV_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Software popcount / count-trailing-zeros: BPF has no such instructions. */
static __always_inline __u64 qos_popcount(__u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/* "& 63" keeps the verifier's range of the result exact (0..63), so that
 * word indices stay provably inside a descriptor's QOS_BV_S words. */
static __always_inline __u32 qos_ctz(__u64 x)
{
	return (__u32)qos_popcount((x & (0 - x)) - 1) & 63;
}

/* Word w of a class's vector: base word (when the dimension has a base) XOR its delta word. */
static __always_inline __u64 qos_bv_word(const struct qos_desc *d, __u32 w, __u32 base_off)
{
	__u32 s = w >> 6, b = w & 63, key;
	__u64 ds, bit, x = 0, *v;
	/* clang may know s < QOS_BV_S where the verifier does not: keep the check. */
	barrier_var(s);
	if (s >= QOS_BV_S)
		return 0;
	ds = d->dsum[s];
	bit = (ds >> b) & 1;
	key = (__u32)((d->off + d->dbase[s] + qos_popcount(ds & ((1ULL << b) - 1))) & (0 - bit));
	v = bpf_map_lookup_elem(&qos_t_pool, &key);
	if (v)
		x = *v;
	if (base_off) {
		key = base_off + w;
		v = bpf_map_lookup_elem(&qos_t_pool, &key);
		if (v)
			x ^= *v;
	}
	return x;
}

#endif /* QOS_BV_H */
