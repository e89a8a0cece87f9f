// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_port_filter: a user's firewall as a slot program of dsrlab's XDP
 * chainer (tail-call backend), written in C with dsrlab_chain.h: it drops
 * IPv4 UDP and TCP packets to the destination port in its `blocked_port`
 * global and lets everything else go on down the chain.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "dsrlab_chain.h"

/* Host order; 0 blocks nothing. */
volatile const __u16 blocked_port = 0;

SEC("xdp")
int xdp_port_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return dsrlab_chain_finish(ctx, XDP_PASS);
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return dsrlab_chain_finish(ctx, XDP_PASS);
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
		return dsrlab_chain_finish(ctx, XDP_PASS);
	/* The destination port is at the same offset in UDP and TCP. */
	__u16 *ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return dsrlab_chain_finish(ctx, XDP_PASS);
	if (blocked_port && ports[1] == bpf_htons(blocked_port))
		return dsrlab_chain_finish(ctx, XDP_DROP);
	return dsrlab_chain_finish(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
