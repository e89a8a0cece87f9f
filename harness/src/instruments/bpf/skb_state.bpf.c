// SPDX-License-Identifier: GPL-2.0
/*
 * skb_state: a TC program that records, for every skb it sees, the state a
 * NIC and the stack gave it — lengths, how much is linear, ip_summed,
 * csum_level, csum_valid, csum_complete_sw, skb->csum — and its first
 * bytes, into a ring buffer; then hands the skb on (TCX_NEXT), unchanged.
 *
 * A TC program's context is the kernel's struct sk_buff; it is read with
 * CO-RE probe reads, so the field offsets and bitfield positions are those
 * of the running kernel. Not bpf_cast_to_kern_ctx: that kfunc is 6.2+, and
 * the emulated NICs prove themselves with this instrument on 6.1 too
 * (probe reads of a pointer need root, which dsrlab's live mode has).
 * The local definition below names only what is read.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct sk_buff {
	unsigned int len;
	unsigned int data_len;
	__u8 ip_summed : 2;
	__u8 csum_valid : 1;
	__u8 csum_complete_sw : 1;
	__u8 csum_level : 2;
	__u32 csum;
	__u32 mark;
	int skb_iif;
} __attribute__((preserve_access_index));

#define SNAP 96

/* One record; the layout is read by harness/src/instruments/skb_state.rs. */
struct record {
	__u32 ifindex;
	__u32 len;
	__u32 linear;
	__u32 csum;
	__u8 ip_summed;
	__u8 csum_level;
	__u8 csum_valid;
	__u8 csum_complete_sw;
	__u32 captured;
	__u8 bytes[SNAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");

/* TCX_NEXT: let the next program (the one under test) have the skb. */
#define TCX_NEXT (-1)

SEC("tcx/ingress")
int skb_state(struct __sk_buff *ctx)
{
	struct sk_buff *skb = (void *)ctx;
	struct record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r)
		return TCX_NEXT;
	r->ifindex = ctx->ifindex;
	r->len = BPF_CORE_READ(skb, len);
	r->linear = r->len - BPF_CORE_READ(skb, data_len);
	r->csum = BPF_CORE_READ(skb, csum);
	r->ip_summed = BPF_CORE_READ_BITFIELD_PROBED(skb, ip_summed);
	r->csum_level = BPF_CORE_READ_BITFIELD_PROBED(skb, csum_level);
	r->csum_valid = BPF_CORE_READ_BITFIELD_PROBED(skb, csum_valid);
	r->csum_complete_sw = BPF_CORE_READ_BITFIELD_PROBED(skb, csum_complete_sw);
	/* The size is counted from one and bounded after a barrier, so that
	 * every verifier sees it within [1, SNAP]: 6.1's learns nothing from
	 * a test against zero, and the compiler would fold a plain bound. An
	 * empty skb wraps to 127 and captures nothing. */
	__u32 n = r->len;
	if (n > SNAP)
		n = SNAP;
	__u32 last = n - 1;
	barrier_var(last);
	last &= 0x7f;
	r->captured = 0;
	if (last < SNAP && bpf_skb_load_bytes(ctx, 0, r->bytes, last + 1) == 0)
		r->captured = last + 1;
	bpf_ringbuf_submit(r, 0);
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
