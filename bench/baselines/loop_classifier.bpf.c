/* The generic classifier of the dissertation this project grew out of
 * (shared/seed/dissertation.md, "Classification Logic"): parse the IPv4
 * 5-tuple, then a bounded loop over an array map of rules, first match wins.
 * Compiled once per size with -DMAX_RULES=N. As in the original, the loop
 * bound is a compile-time constant, so the verifier walks every iteration:
 * it accepts 512 rules and rejects 1024 on this kernel. The index is copied
 * into a separate key so that the verifier can bound the loop at all. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef MAX_RULES
#define MAX_RULES 64
#endif

struct class_rule {
	__u32 src_ip, src_netmask;     /* network order */
	__u32 dst_ip, dst_netmask;
	__u16 src_port_min, src_port_max;
	__u16 dst_port_min, dst_port_max;
	__u8 protocol;                 /* 0 = any */
	__u8 valid;
	__u16 class_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct class_rule);
	__uint(max_entries, MAX_RULES);
} class_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 256);
} class_packets SEC(".maps");

struct flow_tuple {
	__u32 src_ip, dst_ip;
	__u16 src_port, dst_port;
	__u8 protocol;
};

static __always_inline int ip_matches(__u32 ip, __u32 net, __u32 mask)
{
	return (ip & mask) == (net & mask);
}

SEC("xdp")
int qos_xdp(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return XDP_DROP;
	struct flow_tuple tuple = {
		.src_ip = iph->saddr, .dst_ip = iph->daddr, .protocol = iph->protocol,
	};
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *tcph = (void *)iph + (iph->ihl * 4);
		if ((void *)(tcph + 1) > data_end)
			return XDP_DROP;
		tuple.src_port = bpf_ntohs(tcph->source);
		tuple.dst_port = bpf_ntohs(tcph->dest);
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *udph = (void *)iph + (iph->ihl * 4);
		if ((void *)(udph + 1) > data_end)
			return XDP_DROP;
		tuple.src_port = bpf_ntohs(udph->source);
		tuple.dst_port = bpf_ntohs(udph->dest);
	}

	__u32 class_id = 0;   /* default class */
	for (__u32 i = 0; i < MAX_RULES; i++) {
		__u32 key = i;
		struct class_rule *rule = bpf_map_lookup_elem(&class_rules, &key);
		if (!rule || !rule->valid)
			continue;
		if (rule->protocol != 0 && rule->protocol != tuple.protocol)
			continue;
		if (!ip_matches(tuple.src_ip, rule->src_ip, rule->src_netmask))
			continue;
		if (!ip_matches(tuple.dst_ip, rule->dst_ip, rule->dst_netmask))
			continue;
		if (rule->src_port_min != 0 &&
		    (tuple.src_port < rule->src_port_min || tuple.src_port > rule->src_port_max))
			continue;
		if (rule->dst_port_min != 0 &&
		    (tuple.dst_port < rule->dst_port_min || tuple.dst_port > rule->dst_port_max))
			continue;
		class_id = rule->class_id;
		break;
	}
	__u32 k = class_id & 0xff;
	__u64 *cnt = bpf_map_lookup_elem(&class_packets, &k);
	if (cnt)
		(*cnt)++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
