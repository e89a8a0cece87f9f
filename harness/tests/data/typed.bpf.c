// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * types.bpf.c: BTF-defined maps and globals whose types exercise every rule
 * of typed.rs (integers of each width and byte order, enums, nested
 * structs, arrays, bitfields, named and anonymous unions, addresses,
 * per-CPU counters, an untyped map). The tests compile it with clang and
 * read its BTF; the program exists so that the object looks like a real one.
 */
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

enum verdict {
	VERDICT_PASS = 0,
	VERDICT_DROP = 1,
	VERDICT_REDIRECT = 7,
};

/* The key layout the kernel's LPM trie requires. */
struct lpm_key {
	__u32 prefixlen;
	__be32 addr;
};

struct range {
	__u16 lo;
	__u16 hi;
};

struct policy {
	enum verdict verdict;
	__u32 mark;
	__be16 port;
	__u8 proto;
	__u8 flags : 3;
	__u8 level : 5;
	struct range range;
	__u32 ports[4];
	union {
		__u32 ifindex;
		__be32 gateway;
	} via;
	union {
		__u64 cookie;
		struct {
			__u32 cookie_lo;
			__u32 cookie_hi;
		};
	};
	__s16 weight;
	__u8 mac[6];
	char tag[4];
	__sum16 csum;
	__be64 seq;
	__s8 bias : 4;
};

struct tally {
	__u64 packets;
	__u64 bytes;
};

struct stats {
	struct tally by_verdict[3];
	enum verdict last;
	char label[6];
	__s32 delta;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, struct policy);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct in6_addr);
	__type(value, __u32);
} by_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tally);
} tallies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct stats);
} stats SEC(".maps");

/* Sizes only, no types: the caller falls back to hex. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__uint(key_size, 4);
	__uint(value_size, 8);
} untyped SEC(".maps");

volatile const __u32 x = 0;
volatile const __be32 vip = 0;
__u64 y = 0;
char name[8] = "dsrlab";
enum verdict mode = VERDICT_DROP;
struct tally *last_tally = 0;
__u8 gw[4] = {};
__u16 grid[2][3] = {};
float ratio = 0;
double scale = 0;

SEC("xdp")
int prog(struct xdp_md *ctx)
{
	__u32 index = 0;
	struct tally *t = bpf_map_lookup_elem(&tallies, &index);

	if (t) {
		t->packets += x;
		last_tally = t;
	}
	y += 1;
	return mode == VERDICT_DROP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
