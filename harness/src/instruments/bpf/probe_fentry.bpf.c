// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The fentry probe: watches probe_target's dispatcher. Its attach target
 * is set when it is loaded. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("fentry/dispatcher")
int watch(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
