// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_vip_guard: an XDP program written the way libbpf users write them —
 * `SEC("xdp.frags")`, BTF-defined maps keyed by structs, an array of maps,
 * a read-only global set at load time and the XDP context — so that
 * dsrlab's tests and examples prove the harness takes such an object as it
 * is.
 *
 * It guards the VIPs of a DSR load balancer: a packet to a VIP, port and
 * protocol listed in `vips` passes and is counted in the counters of its
 * VIP's class (`class_counters`, an array of per-class maps); a packet to
 * an address in `vips` with a port or protocol it does not list is dropped
 * when `drop_unlisted` is set. Everything else passes uncounted. Packets
 * are also counted per receive queue (`queues`), from the context.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum verdict {
	VERDICT_PASS = 0,
	VERDICT_DROP = 1,
};

/* A VIP as the data path sees it: all in network order. */
struct vip {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct vip_policy {
	__u32 class;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct vip);
	__type(value, struct vip_policy);
} vips SEC(".maps");

/*
 * Packets per class, each class in a map of its own: the inner maps'
 * template. (Their value is a plain counter: clang 14 emits a struct that
 * only an inner map's template names as a forward declaration, whose size
 * no loader can tell.)
 */
struct class_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gold SEC(".maps"), bronze SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct class_map);
} class_counters SEC(".maps");

/* Packets per receive queue, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} queues SEC(".maps");

/* Set from the scenario (`globals:`). */
volatile const __u8 drop_unlisted = 0;

static __always_inline void count_queue(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	__u64 *n = bpf_map_lookup_elem(&queues, &queue);

	if (n)
		*n += 1;
}

SEC("xdp.frags")
int xdp_vip_guard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *l4;
	struct vip key = {};
	struct vip_policy *policy;
	__u64 *packets;
	void *inner;
	__u32 zero = 0;

	count_queue(ctx);
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->ihl != 5 || (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP))
		return XDP_PASS;
	/* TCP and UDP both start with the ports. */
	l4 = (void *)(ip + 1);
	if ((void *)(l4 + 1) > data_end)
		return XDP_PASS;
	key.addr = ip->daddr;
	key.port = l4->dest;
	key.proto = ip->protocol;
	policy = bpf_map_lookup_elem(&vips, &key);
	if (!policy) {
		/* Another port or protocol of a listed address? */
		key.port = 0;
		key.proto = 0;
		if (drop_unlisted && bpf_map_lookup_elem(&vips, &key))
			return XDP_DROP;
		return XDP_PASS;
	}
	inner = bpf_map_lookup_elem(&class_counters, &policy->class);
	if (inner) {
		packets = bpf_map_lookup_elem(inner, &zero);
		if (packets)
			__sync_fetch_and_add(packets, 1);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
