// SPDX-License-Identifier: GPL-2.0
/*
 * drop_watch: where the kernel drops packets, and why. A tp_btf program
 * on kfree_skb that, for skbs of one network namespace (the one whose
 * inode number is in `target`), records the drop reason and the frame's
 * first bytes from its MAC header into a ring buffer.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	possible_net_t nd_net;
	int ifindex;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	unsigned int len;
	unsigned char *head;
	unsigned int tail;
	__u16 mac_header;
} __attribute__((preserve_access_index));

#define SNAP 64

/* The layout is read by harness/src/instruments/drop_watch.rs. */
struct record {
	__u32 reason;
	__u32 ifindex;
	__u32 len;
	__u32 captured;
	__u8 bytes[SNAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

SEC("tp_btf/kfree_skb")
int BPF_PROG(drop_watch, struct sk_buff *skb, void *location, int reason)
{
	__u32 zero = 0;
	__u32 *want = bpf_map_lookup_elem(&target, &zero);
	if (!want || !*want)
		return 0;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (!dev)
		return 0;
	if (BPF_CORE_READ(dev, nd_net.net, ns.inum) != *want)
		return 0;
	struct record *r = bpf_ringbuf_reserve(&drops, sizeof(*r), 0);
	if (!r)
		return 0;
	r->reason = reason;
	r->ifindex = BPF_CORE_READ(dev, ifindex);
	r->len = BPF_CORE_READ(skb, len);
	r->captured = 0;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 mac = BPF_CORE_READ(skb, mac_header);
	/* tail is an offset from head on 64-bit kernels: only the bytes
	 * before it are the frame's (a read past it stays in the buffer,
	 * and is not counted). */
	__u32 tail = BPF_CORE_READ(skb, tail);
	if (mac != 0xffff && tail > mac &&
	    bpf_probe_read_kernel(r->bytes, SNAP, head + mac) == 0)
		r->captured = tail - mac < SNAP ? tail - mac : SNAP;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
