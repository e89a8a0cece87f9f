// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_policy: a TC classifier written the way libbpf users write them —
 * `SEC("tc")` and `SEC("tcx/ingress")`, BTF-defined maps with struct keys
 * and values, an LPM trie, a program array filled with a program of the
 * same object, global variables and the skb context — so that dsrlab's
 * tests and examples prove the harness takes such an object as it is.
 *
 * Policy: the source address of an IPv4 packet is looked up in the LPM trie
 * `rules`. A matching rule drops the packet or passes it with the rule's
 * mark and priority; no match passes it with `default_mark`. A packet that
 * arrives already carrying `bypass_mark` is passed untouched (a mark set by
 * an earlier hook). Passed packets are counted by a tail call into
 * `tc_account`, through the program array `next`.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum action {
	ACTION_PASS = 0,
	ACTION_DROP = 1,
};

/* The key layout the kernel's LPM trie requires: prefix length, then the
 * address in network order. */
struct rule_key {
	__u32 prefixlen;
	__be32 addr;
};

struct rule {
	enum action action;
	__u32 mark;
	__u32 priority;
};

/* Packets and bytes per verdict (index: enum action), per CPU. */
struct tally {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rule_key);
	__type(value, struct rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tally);
} tallies SEC(".maps");

/* Set from the scenario (`globals:`), fixed once loaded. */
volatile const __u32 default_mark = 0;
volatile const __u32 bypass_mark = 0xffffffff;
/* Written by the program, read back in `after:`. */
__u32 last_rule_mark = 0;
__u64 passed_total = 0;

SEC("tc")
int tc_account(struct __sk_buff *skb)
{
	__u32 index = ACTION_PASS;
	struct tally *t = bpf_map_lookup_elem(&tallies, &index);

	if (t) {
		t->packets += 1;
		t->bytes += skb->len;
	}
	__sync_fetch_and_add(&passed_total, 1);
	return TC_ACT_OK;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} next SEC(".maps");

static __always_inline int drop(struct __sk_buff *skb)
{
	__u32 index = ACTION_DROP;
	struct tally *t = bpf_map_lookup_elem(&tallies, &index);

	if (t) {
		t->packets += 1;
		t->bytes += skb->len;
	}
	return TC_ACT_SHOT;
}

static __always_inline int pass(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &next, 0);
	/* `next` is empty: pass uncounted rather than drop. */
	return TC_ACT_OK;
}

static __always_inline int policy(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct rule_key key = { .prefixlen = 32 };
	struct rule *rule;

	if (skb->mark == bypass_mark)
		return TC_ACT_OK;
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(skb);
	key.addr = ip->saddr;
	rule = bpf_map_lookup_elem(&rules, &key);
	if (!rule) {
		skb->mark = default_mark;
		return pass(skb);
	}
	if (rule->action == ACTION_DROP)
		return drop(skb);
	skb->mark = rule->mark;
	skb->priority = rule->priority;
	last_rule_mark = rule->mark;
	return pass(skb);
}

SEC("tc")
int tc_policy(struct __sk_buff *skb)
{
	return policy(skb);
}

/* The same policy for the TCX hook (Linux 6.6+), as libbpf names it. */
SEC("tcx/ingress")
int tcx_policy(struct __sk_buff *skb)
{
	return policy(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
