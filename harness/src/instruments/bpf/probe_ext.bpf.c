// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The EXT (freplace) probe: replaces probe_target's slot with XDP_DROP.
 * Its attach target is set when it is loaded. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("freplace/slot")
int replacement(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
