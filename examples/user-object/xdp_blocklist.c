// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_blocklist: drops IPv4 and IPv6 packets whose source address is in the
 * hash map `blocklist`, passes everything else, and counts both verdicts in
 * the per-CPU array `stats`.
 *
 * It is dsrlab's "bring your own datapath" example: an ordinary libbpf-style
 * object, built with clang by ci/setup, that the harness loads from its ELF
 * file like any user's program (see README.md beside this file).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Indices of `stats`. */
enum stat {
	STAT_PASS = 0,
	STAT_DROP = 1,
	STAT_MAX,
};

/*
 * Blocked source addresses. One map for both families keeps the program and
 * its provisioning simple: an IPv4 address a.b.c.d is stored as the
 * IPv4-mapped IPv6 address ::ffff:a.b.c.d (RFC 4291 2.5.5.2), all 16 bytes
 * in network order. The value is not read: presence blocks.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct in6_addr);
	__type(value, __u8);
} blocklist SEC(".maps");

/* Packets per verdict, per CPU so that CPUs never contend for a counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int count(__u32 stat, int action)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &stat);

	/* Per-CPU slot: a plain increment cannot race. */
	if (n)
		*n += 1;
	return action;
}

SEC("xdp")
int xdp_blocklist(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct in6_addr src = {};

	/* Anything this program cannot read is not its business: pass it and
	 * let the stack judge it. */
	if ((void *)(eth + 1) > data_end)
		return count(STAT_PASS, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return count(STAT_PASS, XDP_PASS);
		src.s6_addr[10] = 0xff;
		src.s6_addr[11] = 0xff;
		__builtin_memcpy(&src.s6_addr[12], &ip->saddr, sizeof(ip->saddr));
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return count(STAT_PASS, XDP_PASS);
		src = ip6->saddr;
	} else {
		return count(STAT_PASS, XDP_PASS);
	}

	if (bpf_map_lookup_elem(&blocklist, &src))
		return count(STAT_DROP, XDP_DROP);
	return count(STAT_PASS, XDP_PASS);
}

/* The license string the kernel reads; matches the SPDX line above. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
