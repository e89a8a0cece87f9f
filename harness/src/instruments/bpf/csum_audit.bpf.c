// SPDX-License-Identifier: GPL-2.0
/*
 * csum_audit: the checksum auditor. A netfilter program at PRE_ROUTING
 * (IPv4 and IPv6) that records every skb's checksum state (ip_summed,
 * csum_level) as the programs before it left it, and, for every
 * CHECKSUM_COMPLETE skb, sums the packet from the network header to its
 * end and compares the sum with skb->csum, which must cover exactly those
 * bytes: a program that changed bytes without updating skb->csum leaves it
 * stale, and the stack would trust it (hardware sums are not recomputed).
 * One record per skb goes into a ring buffer; packets are never changed or
 * dropped.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct sk_buff {
	unsigned int len;
	__u8 ip_summed : 2;
	__u8 csum_complete_sw : 1;
	__u8 csum_level : 2;
	__u32 csum;
} __attribute__((preserve_access_index));

struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
} __attribute__((preserve_access_index));

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;

#define CHECKSUM_COMPLETE 2
#define NF_ACCEPT 1
#define CHUNK 64
/* Longest packet audited in full; longer ones are recorded as such. */
#define MAX_CHUNKS 160

/* The layout is read by harness/src/instruments/csum_audit.rs. */
struct record {
	__u32 len;
	__u32 skb_csum;
	__u32 sum;
	__u8 complete_sw;
	__u8 audited;
	__u8 ip_summed;
	__u8 csum_level;
	__u8 bytes[CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} audits SEC(".maps");

static __always_inline __u32 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return s;
}

static __always_inline __u64 add_words(const __u16 *w, int n)
{
	__u64 s = 0;
	for (int i = 0; i < n; i++)
		s += w[i];
	return s;
}

SEC("netfilter")
int csum_audit(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	struct record *r = bpf_ringbuf_reserve(&audits, sizeof(*r), 0);
	if (!r)
		return NF_ACCEPT;
	r->ip_summed = BPF_CORE_READ_BITFIELD(skb, ip_summed);
	r->csum_level = BPF_CORE_READ_BITFIELD(skb, csum_level);
	__u32 len = skb->len;
	r->len = len;
	r->skb_csum = skb->csum;
	r->complete_sw = BPF_CORE_READ_BITFIELD(skb, csum_complete_sw);
	r->audited = 0;
	r->sum = 0;
	__builtin_memset(r->bytes, 0, CHUNK);

	struct bpf_dynptr ptr;
	if (r->ip_summed != CHECKSUM_COMPLETE || bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &ptr) ||
	    len > CHUNK * MAX_CHUNKS) {
		bpf_ringbuf_submit(r, 0);
		return NF_ACCEPT;
	}
	__u16 buf[CHUNK / 2];
	__u64 sum = 0;
	__u32 off = 0;
	for (int i = 0; i < MAX_CHUNKS; i++) {
		if (off + CHUNK > len)
			break;
		if (bpf_dynptr_read(buf, CHUNK, &ptr, off, 0))
			goto out;
		if (i == 0)
			__builtin_memcpy(r->bytes, buf, CHUNK);
		sum += add_words(buf, CHUNK / 2);
		off += CHUNK;
	}
	__u32 tail = (len - off) & (CHUNK - 1);
	if (tail) {
		__builtin_memset(buf, 0, CHUNK);
		if (bpf_dynptr_read(buf, tail, &ptr, off, 0))
			goto out;
		if (off == 0)
			__builtin_memcpy(r->bytes, buf, CHUNK);
		sum += add_words(buf, CHUNK / 2);
	}
	r->sum = fold(sum);
	r->audited = 1;
out:
	bpf_ringbuf_submit(r, 0);
	return NF_ACCEPT;
}

char LICENSE[] SEC("license") = "GPL";
