/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* Resets sent and received, and socket errors the kernel reports. */
#ifndef __KATRACE_LIB_RESET_H__
#define __KATRACE_LIB_RESET_H__

#include "lib/report.h"

/* A new event about sk: kind, state, when, and the socket's cookie. */
static __always_inline struct event *reserve_socket_event(struct sock *sk, __u8 kind, __u8 state)
{
	struct event *e = reserve_event();

	if (!e)
		return NULL;
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->cookie = bpf_get_socket_cookie(sk);
	e->state = state;
	return e;
}

/* kernel_reason says reason is the kernel's enum sk_rst_reason (6.10+). */
static __always_inline void handle_reset(struct sock *sk, __u8 kind, __u32 reason, bool kernel_reason)
{
	struct sock_info *info = NULL;
	struct event *e;
	__u8 state;
	bool full;

	if (!sk)
		return;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* A listener answering a stray segment, or a half-open request: not a
	 * connection anybody holds. */
	if (state == TCP_LISTEN || state == TCP_NEW_SYN_RECV)
		return;
	if (kind == EV_RESET_SENT && BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET &&
	    BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET6)
		return;
	full = state != TCP_TIME_WAIT;
	if (full) {
		if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
			return;
		info = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	}
	e = reserve_socket_event(sk, kind, state);
	if (!e)
		return;
	e->reason = reason;
	if (kernel_reason)
		e->flags |= EVF_KERNEL_REASON;
	if (!full) {
		e->flags |= EVF_TIMEWAIT;
		fill_timewait_socket(e, sk);
		submit_if_wanted(e);
		return;
	}
	submit_sock_event(e, sk, info, owned_by_user(sk));
	if (info) {
		if (kind == EV_RESET_SENT)
			info->reset_sent = 1;
		else
			info->reset_received = 1;
	}
}

static __always_inline void handle_error_report(struct sock *sk)
{
	struct sock_info *info;
	struct event *e;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	info = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	e = reserve_socket_event(sk, EV_ERROR, BPF_CORE_READ(sk, __sk_common.skc_state));
	if (!e)
		return;
	submit_sock_event(e, sk, info, owned_by_user(sk));
}

#endif /* __KATRACE_LIB_RESET_H__ */
