// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * katrace sockets: a TCP socket iterator (iter/tcp) that writes one struct
 * socket_row (sockets.h) per socket into the iterator's seq_file. Userspace
 * reads the rows from the iterator's file descriptor.
 *
 * The iterator walks the listening and established hash tables of every
 * network namespace, so it sees full sockets, request sockets
 * (TCP_NEW_SYN_RECV) and timewait sockets (TCP_TIME_WAIT). Only the
 * sock_common part of the last two is valid; in particular skc_flags is a
 * pointer there (skc_listener, skc_tw_dr), not the socket's flags.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "sockets.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The kernel's HZ, set by the loader (sockets/iter.go). */
volatile const __u32 hz = 0;
#define KATRACE_HZ hz
#include "lib/kernel_socket.h"

/* icsk_pending values (include/net/inet_connection_sock.h). */
#define ICSK_TIME_RETRANS 1
#define ICSK_TIME_PROBE0 3
#define ICSK_TIME_LOSS_PROBE 5
#define ICSK_TIME_REO_TIMEOUT 6

/* Force the types Go reads into BTF, so that bpf2go -type generates them
 * (sockets/gen.go). */
const struct socket_row *unused_socket_row __attribute__((unused));
const enum socket_kind *unused_socket_kind __attribute__((unused));
const enum socket_timer *unused_socket_timer __attribute__((unused));
const enum socket_row_flags *unused_socket_row_flags __attribute__((unused));

static __always_inline bool timer_armed(struct timer_list *t)
{
	return BPF_CORE_READ(t, entry.pprev) != NULL;
}

static __always_inline void fill_common(struct socket_row *r, struct sock_common *skc)
{
	r->cookie = bpf_get_socket_cookie(skc);
	r->state = BPF_CORE_READ(skc, skc_state);
	r->sport = BPF_CORE_READ(skc, skc_num);
	r->dport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	r->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	bool v4_mapped;

	r->family = read_addresses(skc, false, r->saddr, r->daddr, &v4_mapped);
	if (v4_mapped)
		r->flags |= ROWF_V4_MAPPED;
}

static __always_inline void fill_full(struct socket_row *r, struct tcp_sock *tp, __u64 now)
{
	struct sock *sk = (struct sock *)tp;
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)tp;
	struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	unsigned long skflags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	struct keepalive_settings ka;
	struct timer_list *ka_timer;
	__u8 pending;
	unsigned long expires;

	r->kind = SOCKET_FULL;
	if (skflags & (1UL << SOCK_KEEPOPEN))
		r->flags |= ROWF_KEEPOPEN;
	if (skflags & (1UL << SOCK_DEAD))
		r->flags |= ROWF_ORPHAN;

	read_keepalive_settings(tp, net, false, &ka);
	if (ka.own_idle)
		r->flags |= ROWF_OWN_IDLE;
	if (ka.own_intvl)
		r->flags |= ROWF_OWN_INTVL;
	if (ka.own_probes)
		r->flags |= ROWF_OWN_PROBES;
	r->keepalive_idle_ms = ka.idle_ms;
	r->keepalive_intvl_ms = ka.intvl_ms;
	r->keepalive_probes = ka.probes;
	r->user_timeout_ms = BPF_CORE_READ(icsk, icsk_user_timeout);
	r->probes_out = BPF_CORE_READ(icsk, icsk_probes_out);
	r->retransmits = BPF_CORE_READ(icsk, icsk_retransmits);

	r->ino = socket_inode(sk);

	if (r->state != TCP_LISTEN) {
		__u32 since_send = ms_since(now, BPF_CORE_READ(tp, lsndtime));
		__u32 since_recv = ms_since(now, BPF_CORE_READ(icsk, icsk_ack.lrcvtime));

		r->idle_ms = since_send < since_recv ? since_send : since_recv;
		r->flags |= ROWF_IDLE_KNOWN;
	}

	/* The keepalive timer (tcp_keepalive_timer, which also runs the
	 * FIN_WAIT2 linger) is sk_timer upstream; some stable kernels (Debian's
	 * 6.1.192) moved it to icsk_keepalive_timer, leaving sk_timer to MPTCP. */
	if (bpf_core_field_exists(icsk->icsk_keepalive_timer))
		ka_timer = &icsk->icsk_keepalive_timer;
	else
		ka_timer = &sk->sk_timer;

	/* The same precedence as inet_diag (and so ss -o). */
	pending = BPF_CORE_READ(icsk, icsk_pending);
	if (bpf_core_field_exists(icsk->icsk_timeout))
		expires = BPF_CORE_READ(icsk, icsk_timeout);
	else
		expires = BPF_CORE_READ(icsk, icsk_retransmit_timer.expires);
	if (pending == ICSK_TIME_RETRANS || pending == ICSK_TIME_LOSS_PROBE ||
	    pending == ICSK_TIME_REO_TIMEOUT) {
		r->timer = TIMER_RETRANSMIT;
		r->timer_in_ms = ms_until(now, expires);
	} else if (pending == ICSK_TIME_PROBE0) {
		r->timer = TIMER_ZERO_WINDOW_PROBE;
		r->timer_in_ms = ms_until(now, expires);
	} else if (timer_armed(ka_timer)) {
		if (r->state == TCP_FIN_WAIT2 && !(r->flags & ROWF_KEEPOPEN))
			r->timer = TIMER_FIN_WAIT2;
		else
			r->timer = TIMER_KEEPALIVE;
		r->timer_in_ms = ms_until(now, BPF_CORE_READ(ka_timer, expires));
	}
}

SEC("iter/tcp")
int dump_sockets(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct socket_row r;
	struct tcp_sock *tp;
	__u64 now;

	if (!skc)
		return 0;
	__builtin_memset(&r, 0, sizeof(r));
	now = bpf_jiffies64();
	fill_common(&r, skc);
	r.uid = ctx->uid;

	if (r.state == TCP_TIME_WAIT) {
		struct inet_timewait_sock *tw = (struct inet_timewait_sock *)skc;

		r.kind = SOCKET_TIMEWAIT;
		/* TIME_WAIT, or FIN_WAIT2 for an orphan whose linger the
		 * timewait socket took over: what ss shows. */
		r.state = BPF_CORE_READ(tw, tw_substate);
		if (timer_armed(&tw->tw_timer)) {
			r.timer = TIMER_TIME_WAIT;
			r.timer_in_ms = ms_until(now, BPF_CORE_READ(tw, tw_timer.expires));
		}
	} else if (r.state == TCP_NEW_SYN_RECV) {
		struct request_sock *req = (struct request_sock *)skc;

		r.kind = SOCKET_REQUEST;
		if (timer_armed(&req->rsk_timer)) {
			r.timer = TIMER_SYNACK;
			r.timer_in_ms = ms_until(now, BPF_CORE_READ(req, rsk_timer.expires));
		}
	} else {
		tp = bpf_skc_to_tcp_sock(skc);
		if (!tp)
			return 0;
		fill_full(&r, tp, now);
	}
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
