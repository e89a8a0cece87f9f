// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * naive_tc_decap: an IPv4-in-IPv4 decapsulation at TC written the obvious
 * way — headers read with direct packet access, the outer header removed
 * with bpf_skb_adjust_room (which keeps a CHECKSUM_COMPLETE skb->csum
 * right). It is correct on a NIC that pulls headers into the linear part,
 * and silently lets tunnel packets through undecapsulated on one that
 * does not: `data + headers > data_end` is read as "not a tunnel", where
 * bpf_skb_pull_data or bpf_skb_load_bytes were needed. The talk's
 * "hardware matters": scenarios/hardware-matters-*.yaml run it behind
 * both emulated NICs. Built by ci/setup, like examples/user-object.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* "classifier": the TC section name dsrlab loads today (libbpf also reads "tc"). */
SEC("classifier")
int naive_tc_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = (void *)(eth + 1);
	struct iphdr *inner = (void *)(outer + 1);

	/* The bug: not linear is taken for "not a tunnel". */
	if ((void *)(inner + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || outer->ihl != 5 ||
	    outer->protocol != IPPROTO_IPIP || inner->version != 4)
		return TC_ACT_OK;
	if (bpf_skb_adjust_room(skb, -(int)sizeof(struct iphdr), BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
