/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * tcp_keepalive_timer, entered and left under every strategy: the entry
 * remembers the socket, its probe count and state in timer_runs (one per
 * CPU: timer callbacks do not nest on a CPU); the state, reset and error
 * handlers that run inside mark their events with it; the exit reports a
 * probe sent, an earlier probe answered, or nothing.
 */
#ifndef __KATRACE_LIB_KEEPALIVE_H__
#define __KATRACE_LIB_KEEPALIVE_H__

#include "lib/ring.h"
#include "lib/sock.h"
#include "lib/filter.h"
#include "lib/owner.h"

/* The timer run on this CPU, if it is sk's. */
static __always_inline struct timer_run *current_timer_run(__u64 sk)
{
	__u32 zero = 0;
	struct timer_run *run = bpf_map_lookup_elem(&timer_runs, &zero);

	if (run && run->timer && run->sk == sk)
		return run;
	return NULL;
}

/* Every full TCP socket's keepalive timer (sk_timer, or on some stable
 * kernels icsk_keepalive_timer) is set up with tcp_keepalive_timer, so any
 * one tells its address. sk may be any kernel pointer. */
static __always_inline void learn_keepalive_timer_fn(struct sock *sk)
{
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	__u64 fn;

	if (keepalive_timer_address())
		return;
	if (bpf_core_field_exists(icsk->icsk_keepalive_timer))
		fn = (__u64)BPF_CORE_READ(icsk, icsk_keepalive_timer.function);
	else
		fn = (__u64)BPF_CORE_READ(sk, sk_timer.function);
	keepalive_timer_fn = fn;
}

static __always_inline void keepalive_timer_enter(__u64 timer)
{
	/* Most kernels run tcp_keepalive_timer on sk->sk_timer; some (Debian's
	 * 6.1.1xx backports) on a dedicated icsk_keepalive_timer. */
	__u64 offset = bpf_core_field_exists(struct inet_connection_sock, icsk_keepalive_timer) ?
			       bpf_core_field_offset(struct inet_connection_sock, icsk_keepalive_timer) :
			       bpf_core_field_offset(struct sock, sk_timer);
	struct sock *sk = (struct sock *)(timer - offset);
	__u32 zero = 0;
	struct timer_run *run = bpf_map_lookup_elem(&timer_runs, &zero);

	if (!run)
		return;
	run->timer = timer;
	run->sk = (__u64)sk;
	run->closed = 0;
	run->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	run->probes_before = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_probes_out);
	run->state_before = BPF_CORE_READ(sk, __sk_common.skc_state);
}

/* timer is 0 where the exit does not know it (kretprobe). */
static __always_inline void keepalive_timer_exit(__u64 timer)
{
	__u32 zero = 0;
	struct timer_run *run = bpf_map_lookup_elem(&timer_runs, &zero);
	struct probe_out *pending = NULL;
	struct sock *sk;
	struct event *e;
	__u8 before, after, acked = 0;
	__u32 rtt_ms = 0;
	__u64 cookie;

	if (!run || !run->timer || (timer && run->timer != timer))
		return;
	run->timer = 0;
	/* A socket the timer closed was reported by the state, reset and error
	 * handlers, and may be freed by now. */
	if (run->closed)
		return;
	sk = (struct sock *)run->sk;
	cookie = run->cookie;
	before = run->probes_before;
	after = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_probes_out);

	if (before == 0 && cookie) {
		pending = bpf_map_lookup_elem(&probes_out, &cookie);
		if (pending) {
			__u32 ack = BPF_CORE_READ((struct tcp_sock *)sk, rcv_tstamp);
			__s32 delta = ack - (__u32)pending->sent_jiffies;

			acked = pending->probes;
			rtt_ms = delta > 0 ? jiffies_to_ms(delta) : 0;
			probe_out_deleted(&cookie);
		}
	}
	if (after <= before && !acked)
		return;
	if (after > before && cookie) {
		struct probe_out sent = {
			.sent_jiffies = bpf_jiffies64(),
			.probes = after,
		};

		if (!bpf_map_update_elem(&probes_out, &cookie, &sent, BPF_ANY))
			probe_out_added();
	}

	e = reserve_event();
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = EV_KEEPALIVE;
	e->cookie = cookie;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	fill_full_socket_by_probe_read(e, sk);
	e->probes_before = before;
	e->probes_after = after;
	e->acked_probes = acked;
	e->probe_rtt_ms = rtt_ms;
	e->flags |= EVF_IN_KEEPALIVE_TIMER;
	fill_owner(e, NULL, false, true);
	submit_if_wanted(e);
}

#endif /* __KATRACE_LIB_KEEPALIVE_H__ */
