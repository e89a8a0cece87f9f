// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A dispatcher-style XDP program, the target of the trampoline probes
 * (kernel::features): its global, non-inlined slot is what an EXT program
 * replaces, and the program itself is what an fentry program watches. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__noinline int slot(struct xdp_md *ctx)
{
	return ctx ? XDP_PASS : XDP_ABORTED;
}

SEC("xdp")
int dispatcher(struct xdp_md *ctx)
{
	return slot(ctx);
}

char LICENSE[] SEC("license") = "GPL";
