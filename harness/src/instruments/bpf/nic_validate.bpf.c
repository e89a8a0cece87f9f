// SPDX-License-Identifier: GPL-2.0
/*
 * nic_validate: the checksum validation of the TAP NIC (live/nic/tap.rs).
 * A frame that arrived on receive queue q > 0 leaves the NIC
 * CHECKSUM_UNNECESSARY with csum_level q - 1, as a NIC that validated
 * q checksums reports it: bpf_csum_level(INC) turns CHECKSUM_NONE into
 * UNNECESSARY (level 0) and raises the level after that. It runs first in
 * the interface's TCX ingress chain, before every observer and the
 * program under test, and passes every frame on (TCX_NEXT).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TCX_NEXT (-1)

SEC("tcx/ingress")
int nic_validate(struct __sk_buff *skb)
{
	/* The driver records rx queue r as queue_mapping r + 1. */
	__u32 queue = skb->queue_mapping;
	if (queue >= 2)
		bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	if (queue >= 3)
		bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
