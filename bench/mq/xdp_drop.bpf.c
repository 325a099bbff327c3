/* The bench's sink (bench/mq): drops every frame in XDP, so receiving costs
 * next to nothing and the router's shaper is what limits the rate. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int sink_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
