/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Protocol labels (--proto): the first payload bytes of each packet, until
 * the protocol is known (HTTP/1.x: every packet, to count requests).
 * Payload is looked at, never copied out.
 */
#ifndef __KATRACE_LIB_PROTO_H__
#define __KATRACE_LIB_PROTO_H__

#include "lib/globals.h"

static __always_inline bool is_http_method(const char *h)
{
	/* The first four bytes of the methods of RFC 9110 (and PATCH). */
	return (h[0] == 'G' && h[1] == 'E' && h[2] == 'T' && h[3] == ' ') ||
	       (h[0] == 'P' && h[1] == 'O' && h[2] == 'S' && h[3] == 'T') ||
	       (h[0] == 'P' && h[1] == 'U' && h[2] == 'T' && h[3] == ' ') ||
	       (h[0] == 'H' && h[1] == 'E' && h[2] == 'A' && h[3] == 'D') ||
	       (h[0] == 'D' && h[1] == 'E' && h[2] == 'L' && h[3] == 'E') ||
	       (h[0] == 'P' && h[1] == 'A' && h[2] == 'T' && h[3] == 'C') ||
	       (h[0] == 'O' && h[1] == 'P' && h[2] == 'T' && h[3] == 'I') ||
	       (h[0] == 'C' && h[1] == 'O' && h[2] == 'N' && h[3] == 'N') ||
	       (h[0] == 'T' && h[1] == 'R' && h[2] == 'A' && h[3] == 'C');
}

static __always_inline void label_packet(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct sock_info *info;
	char head[8] = {};
	__u32 off;
	__u8 b;

	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return;
	info = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (!info || info->proto > PROTO_HTTP1)
		return;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &b, 1))
			return;
		off = (b & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		off = 40;
	} else {
		return;
	}
	if (bpf_skb_load_bytes(skb, off + 12, &b, 1))
		return;
	off += (b >> 4) * 4;
	if (off > 120 || skb->len < off + 8) {
		/* No payload, or too little to tell. */
		if (skb->len > off + 0 && skb->len < off + 8 && info->proto == PROTO_UNKNOWN)
			info->proto = PROTO_OTHER;
		return;
	}
	if (bpf_skb_load_bytes(skb, off, head, 8))
		return;
	if (is_http_method(head)) {
		info->proto = PROTO_HTTP1;
		info->requests++;
		return;
	}
	if (info->proto != PROTO_UNKNOWN)
		return;
	if (head[0] == 'H' && head[1] == 'T' && head[2] == 'T' && head[3] == 'P' && head[4] == '/' &&
	    head[5] == '1')
		info->proto = PROTO_HTTP1;
	else if (head[0] == 'P' && head[1] == 'R' && head[2] == 'I' && head[3] == ' ' && head[4] == '*')
		info->proto = PROTO_HTTP2;
	else if (head[0] == 0x16 && head[1] == 0x03 && head[2] <= 0x04)
		info->proto = PROTO_TLS;
	else
		info->proto = PROTO_OTHER;
}

#endif /* __KATRACE_LIB_PROTO_H__ */
