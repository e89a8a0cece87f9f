// SPDX-License-Identifier: GPL-2.0
/*
 * nic_complete: the "hardware" of the mlx5-like NIC (live/nic/vxlan.rs).
 * On the receiving underlay of a VXLAN tunnel with UDP checksums, it
 * marks the outer packet validated (bpf_csum_level INC), as a NIC that
 * checked the outer checksum does; the stack then hands the inner frame
 * up CHECKSUM_COMPLETE with csum_complete_sw = 0 — a checksum the
 * "hardware" computed, which nobody recomputes. First in the underlay's
 * TCX ingress chain; passes every frame on (TCX_NEXT).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TCX_NEXT (-1)

SEC("tcx/ingress")
int nic_complete(struct __sk_buff *skb)
{
	bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
