/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* Fill, filter and submit an event about a full TCP socket. */
#ifndef __KATRACE_LIB_REPORT_H__
#define __KATRACE_LIB_REPORT_H__

#include "lib/ring.h"
#include "lib/sock.h"
#include "lib/filter.h"
#include "lib/owner.h"
#include "lib/keepalive.h"

/* sk is a BTF pointer; info its storage, if any. */
static __always_inline void submit_sock_event(struct event *e, struct sock *sk,
					      struct sock_info *info, bool owner_ctx)
{
	struct timer_run *run = current_timer_run((__u64)sk);

	sk = plain_tcp_sock(sk);
	if (!sk) {
		discard_event(e);
		return;
	}
	fill_full_socket(e, sk, info);
	fill_info(e, info);
	if (info && info->fin_side == FIN_REMOTE) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

		if (tp)
			e->written_after_fin = tp->write_seq - info->write_seq_at_fin;
	}
	fill_fin_facts(e);
	fill_owner(e, info, owner_ctx, false);
	if (run) {
		e->flags |= EVF_IN_KEEPALIVE_TIMER;
		e->state_before_timer = run->state_before;
		e->probes_before = run->probes_before;
	}
	if (!event_wanted(e, owner_ctx)) {
		discard_event(e);
		return;
	}
	if (info)
		info->reported = 1;
	submit_event(e);
}

#endif /* __KATRACE_LIB_REPORT_H__ */
