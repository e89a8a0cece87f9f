/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dsrlab_chain.h: what a C XDP program needs to be a slot program of
 * dsrlab's XDP chainer under the tail-call backend (the "rootlet";
 * semantics in datapath/abi/src/chain.rs, the same as dsrlab_ebpf::chain in
 * Rust). The same object also serves the EXT backend, which needs nothing
 * of a slot program (any XDP program will do):
 *
 *   #include "dsrlab_chain.h"
 *
 *   SEC("xdp")
 *   int my_firewall(struct xdp_md *ctx)
 *   {
 *           if (blocked(ctx))
 *                   return dsrlab_chain_finish(ctx, XDP_DROP);
 *           return dsrlab_chain_finish(ctx, XDP_PASS);
 *   }
 *
 * - The program is plain XDP ("xdp", not "xdp.frags": like the root).
 * - The chain's maps below are declared exactly so and pinned by name:
 *   loaded with the chain's pin directory, the program shares the root's.
 * - CHAIN_SLOT is set by the loader to the program's slot.
 * - Every return goes through dsrlab_chain_finish(): it counts the verdict
 *   for the slot and, when the verdict continues (XDP_PASS unless the
 *   slot's continue set says otherwise), jumps to the next populated slot;
 *   a chain run off its end passes the packet.
 */
#ifndef DSRLAB_CHAIN_H
#define DSRLAB_CHAIN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define DSRLAB_CHAIN_SLOTS 20
#define DSRLAB_CHAIN_VERDICTS 5

struct dsrlab_chain_slot_stats {
	__u64 packets;
	__u64 verdicts[DSRLAB_CHAIN_VERDICTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, DSRLAB_CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} CHAIN_PROGS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DSRLAB_CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} CHAIN_CONTINUE SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DSRLAB_CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, struct dsrlab_chain_slot_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} CHAIN_STATS SEC(".maps");

/* This program's slot, set by the loader. */
volatile const __u32 CHAIN_SLOT = 0;

/* 1 under the tail-call backend; 0 under the EXT backend, where the root
 * counts the verdict and goes on (the loader sets it). */
volatile const __u32 CHAIN_BY_TAIL_CALL = 1;

static __always_inline int dsrlab_chain_finish(struct xdp_md *ctx, int verdict)
{
	if (!CHAIN_BY_TAIL_CALL)
		return verdict;
	__u32 slot = CHAIN_SLOT;
	struct dsrlab_chain_slot_stats *stats = bpf_map_lookup_elem(&CHAIN_STATS, &slot);
	if (stats) {
		__u32 v = (__u32)verdict < DSRLAB_CHAIN_VERDICTS ? (__u32)verdict : XDP_ABORTED;
		stats->packets++;
		stats->verdicts[v]++;
	}
	__u32 *set = bpf_map_lookup_elem(&CHAIN_CONTINUE, &slot);
	__u32 continues = set && *set ? *set : 1U << XDP_PASS;
	if ((__u32)verdict >= 32 || !(continues & (1U << verdict)))
		return verdict;
	/* A constant trip count: the verifier cannot bound a loop that starts
	 * at a value only the loader knows. */
	for (__u32 i = 1; i < DSRLAB_CHAIN_SLOTS; i++) {
		if (slot + i >= DSRLAB_CHAIN_SLOTS)
			break;
		bpf_tail_call(ctx, &CHAIN_PROGS, slot + i);
	}
	return XDP_PASS;
}

#endif
