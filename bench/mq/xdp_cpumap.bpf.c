/* The bench's `htb1cpu` configuration (bench/mq): on the router's ingress,
 * each packet goes through an XDP cpumap to one CPU per host group, as qosc's
 * steering does (attach --steer-from, templates/qos_hosts.h), but in front of
 * one HTB, which qosrun does not steer for: what a cpumap alone gives.
 * The bench's hosts: h000-h063 (10.72.0-63.x) are one group (on TX queue 1
 * under mq), h064-h127 (10.72.64-127.x) the other (queue 0); CPU 1 takes the
 * first, CPU 0 the second. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

SEC("xdp")
int to_queue_cpu(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	__u32 third = (bpf_ntohl(ip->daddr) >> 8) & 0xff;
	return bpf_redirect_map(&cpus, third < 64 ? 1 : 0, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
