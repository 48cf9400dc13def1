/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * What katrace keeps about every socket (struct sock_slot), in an array
 * entry chosen by the socket's cookie: no allocation, no lock, no RCU free,
 * where BPF socket storage costs an allocation and an RCU free per socket
 * (about 1.5 µs a socket here). Sockets that something is reported about
 * get socket storage too, which nothing can take from them.
 */
#ifndef __KATRACE_LIB_SLOT_H__
#define __KATRACE_LIB_SLOT_H__

#include "lib/globals.h"

/* sk's cookie (a BTF pointer): a plain load once made; else made now. */
static __always_inline __u64 sock_cookie(struct sock *sk)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;

	return cookie ? cookie : bpf_get_socket_cookie(sk);
}

/* The slot the cookie maps to, whoever holds it; NULL for no cookie. */
static __always_inline struct sock_slot *slot_at(__u64 cookie)
{
	__u32 idx;

	if (!cookie)
		return NULL;
	/* Cookies come in per-CPU batches of 4096: consecutive ones take
	 * consecutive slots (the line after the last one a CPU claimed, which
	 * the CPU's prefetcher has on its way), and each batch starts at its
	 * own offset (two CPUs' batches must not claim the same slots in step). */
	idx = (__u32)(cookie + (cookie >> 12) * 0x9E5) & (KATRACE_SOCK_SLOTS - 1);
	return bpf_map_lookup_elem(&sock_slots, &idx);
}

/* The socket's slot if it still holds it, else NULL. */
static __always_inline struct sock_slot *slot_of(__u64 cookie)
{
	struct sock_slot *s = slot_at(cookie);

	return s && s->cookie == cookie ? s : NULL;
}

/* The socket's slot: its own, or a free one it takes. A slot held by
 * another socket stays that socket's (sockets give theirs back at CLOSE):
 * a long-lived connection keeps its facts however many short ones come
 * and go, and a socket that finds its slot taken goes without. */
static __always_inline struct sock_slot *claim_slot(__u64 cookie)
{
	struct sock_slot *s = slot_at(cookie);

	if (!s || s->cookie == cookie)
		return s;
	/* Plain stores, the cookie last: two sockets taking one free slot at
	 * once leave it to one of them, and readers check the cookie. */
	if (s->cookie)
		return NULL;
	__builtin_memset(s, 0, sizeof(*s));
	s->cookie = cookie;
	return s;
}

/* At CLOSE: the slot is free for the next socket. Whether the socket
 * held one. */
static __always_inline bool release_slot(__u64 cookie)
{
	struct sock_slot *s = slot_of(cookie);

	if (!s)
		return false;
	s->cookie = 0;
	return true;
}

/* e->ts_ns less the ticks since then_jiffies. */
static __always_inline __u64 ns_at_jiffies(struct event *e, __u64 now_jiffies, __u64 then_jiffies)
{
	__u64 ago = (now_jiffies - then_jiffies) * (1000000000ULL / KATRACE_HZ);

	return ago < e->ts_ns ? e->ts_ns - ago : 0;
}

/* Whether e's state (the one it left, at CLOSE) is one only an
 * established connection reaches: the connecting side's slot is not told
 * when its handshake completes. */
static __always_inline bool past_handshake(struct event *e)
{
	__u8 st = e->state == TCP_CLOSE ? e->old_state : e->state;

	return (1 << st) & ((1 << TCP_ESTABLISHED) | (1 << TCP_FIN_WAIT1) | (1 << TCP_FIN_WAIT2) |
			    (1 << TCP_TIME_WAIT) | (1 << TCP_CLOSE_WAIT) | (1 << TCP_LAST_ACK) | (1 << TCP_CLOSING));
}

/* Fill what e's socket's slot holds and e does not have yet (e->ts_ns
 * set). write_seq is the socket's now, for the bytes written after the
 * peer's FIN. A slot given back and taken while it was read is left out. */
static __always_inline void fill_from_slot(struct event *e, __u32 write_seq, __u64 now_jiffies)
{
	__u64 cookie = e->cookie;
	struct sock_slot *s = slot_of(cookie);

	if (!s)
		return;
	if (s->start_jiffies) {
		e->flags |= EVF_START_KNOWN;
		e->start_ns = ns_at_jiffies(e, now_jiffies, s->start_jiffies);
	}
	if (s->established || past_handshake(e))
		e->flags |= EVF_ESTABLISHED;
	if (!e->role)
		e->role = s->role;
	if (s->fin_side) {
		e->fin_side = s->fin_side;
		e->fin_ns = ns_at_jiffies(e, now_jiffies, s->fin_jiffies);
		e->fin_idle_ms = s->fin_idle_ms;
		if (s->fin_side == FIN_REMOTE)
			e->written_after_fin = write_seq - s->write_seq_at_fin;
	}
	if (s->cookie == cookie)
		return;
	/* Given back and taken meanwhile: what was read may be another's. */
	e->flags &= ~(EVF_START_KNOWN | EVF_ESTABLISHED);
	e->start_ns = 0;
	e->role = 0;
	e->fin_side = 0;
	e->fin_ns = 0;
	e->fin_idle_ms = 0;
	e->written_after_fin = 0;
}

#endif /* __KATRACE_LIB_SLOT_H__ */
