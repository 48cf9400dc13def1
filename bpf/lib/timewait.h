/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The FIN_WAIT2 linger of a timewait socket. With tcp_fin_timeout at most
 * 60 s, an orphan reaching FIN_WAIT2 is handed at once to a timewait
 * socket (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)) and the full socket goes
 * to CLOSE; the linger then runs on the timewait socket's tw_timer, which
 * expires silently when the peer never sends its FIN. Its expiry in
 * substate FIN_WAIT2 is that timeout: one event, by the full socket's
 * cookie (inet_twsk_alloc copies it).
 */
#ifndef __KATRACE_LIB_TIMEWAIT_H__
#define __KATRACE_LIB_TIMEWAIT_H__

#include "lib/ring.h"
#include "lib/sock.h"
#include "lib/filter.h"

/* tw_timer_handler's address, learned from a timewait socket by the
 * start-up iterator where the loader did not set cfg.tw_timer_fn; 0 leaves
 * the timewait timer unwatched. */
__u64 tw_timer_fn = 0;

static __always_inline __u64 tw_timer_address(void)
{
	return CFG(tw_timer_fn) ? CFG(tw_timer_fn) : tw_timer_fn;
}

/* A timewait socket's sock_common (any kernel pointer), by probe read. */
static __always_inline void fill_timewait_socket_by_probe_read(struct event *e, struct sock *sk)
{
	fill_socket_fields(e, sk, false, false, NULL);
}

/* skc is a BTF pointer from the socket iterator. */
static __always_inline void learn_tw_timer_fn(struct sock_common *skc)
{
	if (tw_timer_address() || skc->skc_state != TCP_TIME_WAIT)
		return;
	tw_timer_fn = (__u64)BPF_CORE_READ((struct inet_timewait_sock *)skc, tw_timer.function);
}

static __always_inline void timewait_timer_expire(__u64 timer)
{
	struct inet_timewait_sock *tw =
		(struct inet_timewait_sock *)(timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
	struct event *e;
	__u8 substate = BPF_CORE_READ(tw, tw_substate);

	/* TIME_WAIT's end is the ordinary end of a connection whose close was
	 * reported at the hand-off. */
	if (substate != TCP_FIN_WAIT2)
		return;
	e = reserve_event();
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = EV_TIMEWAIT_EXPIRY;
	e->cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	e->state = TCP_CLOSE;
	e->old_state = substate;
	e->flags |= EVF_TIMEWAIT;
	fill_timewait_socket_by_probe_read(e, (struct sock *)tw);
	submit_if_wanted(e);
}

#endif /* __KATRACE_LIB_TIMEWAIT_H__ */
