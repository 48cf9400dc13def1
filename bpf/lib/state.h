/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * TCP state changes: the hot path, run for every connection on the host.
 * It keeps what it needs in the socket's storage and sends an event only
 * when something explains a connection's end (an idle FIN, the close of a
 * socket already reported, a close inside a keepalive timer run or an
 * abort), unless --states or --all asked for more.
 */
#ifndef __KATRACE_LIB_STATE_H__
#define __KATRACE_LIB_STATE_H__

#include "lib/report.h"

static __always_inline void report_transition(struct sock *sk, __u8 kind, int old, int new, __u64 ts_ns,
					      struct sock_info *info, bool owner_ctx)
{
	struct event *e = reserve_event();

	if (!e)
		return;
	e->ts_ns = ts_ns;
	e->kind = kind;
	e->cookie = sock_cookie(sk);
	e->state = new;
	e->old_state = old;
	submit_sock_event(e, sk, info, owner_ctx);
}

/* A state change with --states, as a struct state_event built on the
 * stack: the socket's identity, owner and labels, none of its counters. */
static __always_inline void report_state_change(struct sock *sk, int old, int new, struct sock_info *info,
						bool owner_ctx)
{
	struct sock_common *skc = &sk->__sk_common;
	struct state_event se = {};
	struct sock_slot *slot;
	struct scratch *s;
	bool v4_mapped;
	__u32 zero = 0;

	se.ts_ns = bpf_ktime_get_ns();
	se.cookie = sock_cookie(sk);
	se.state = new;
	se.old_state = old;
	se.sport = skc->skc_num;
	se.dport = bpf_ntohs(skc->skc_dport);
	if (!se.sport) {
		/* At CLOSE the port is left only in inet_sport (lib/sock.h). */
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

		if (tp)
			se.sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	}
	se.family = read_addresses(skc, true, se.saddr, se.daddr, &v4_mapped);
	if (v4_mapped)
		se.flags |= EVF_V4_MAPPED;
	if (skc->skc_flags & (1UL << SOCK_KEEPOPEN))
		se.flags |= EVF_KEEPOPEN;
	read_cgroup(sk, true, &se.cgroup_id, &se.in_filtered_cgroup);
	se.netns = slot_netns(se.cookie, skc->skc_net.net, true);
	slot = slot_of(se.cookie);
	if (slot)
		se.role = slot->role;
	se.flags |= pick_owner(se.cookie, info, owner_ctx, false, &se.pid, se.comm);
	if (info) {
		se.proto = info->proto;
		se.requests = info->requests;
	}
	/* What finds an owner otherwise: the owner filter and /proc. */
	if (!(se.flags & EVF_OWNER) || CFG(filter_by_owner))
		se.sock_ino = sock_inode_direct(sk);
	if (!state_event_wanted(&se, owner_ctx))
		return;
	if (CFG(stage_events) && stage_state(&se))
		return;
	s = bpf_map_lookup_elem(&scratch, &zero);
	ring_output(s, &se, sizeof(se));
}

/* A new socket storage for a socket something is reported about, with
 * the owner its slot remembers: the storage cannot be taken over, and
 * outlives the file (an orphan's close still names its owner). */
static __always_inline struct sock_info *create_info(struct sock *sk, __u64 cookie)
{
	struct sock_info *info = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	struct sock_slot *slot;

	if (!info || info->owner_pid)
		return info;
	slot = slot_of(cookie);
	if (slot && slot->pid) {
		info->owner_pid = slot->pid;
		__builtin_memcpy(info->owner_comm, slot->comm, sizeof(info->owner_comm));
	}
	return info;
}

/* A goodbye shorter than this before the FIN, after a silence, is part of
 * an idle close (PostgreSQL's idle_session_timeout writes 116 bytes). */
#define GOODBYE_WINDOW_MS 1000
#define GOODBYE_MAX_BYTES 1024

/* The idle time of a first FIN that follows a goodbye: a small write that
 * ended a silence of at least the idle threshold, just before the FIN (the
 * way PostgreSQL, MySQL, SMTP and FTP servers close idle sessions). Returns
 * the silence before the goodbye, or min(since_send, since_recv) when the
 * FIN followed no goodbye; sets *goodbye_bytes to the goodbye's size
 * (GOODBYE_SIZE_UNKNOWN when gone). */
static __always_inline __u32 goodbye_idle(struct tcp_sock *tp, struct sock_slot *slot, bool local,
					  __u32 since_send, __u32 since_recv, __u32 *goodbye_bytes)
{
	__u32 recent = local ? since_send : since_recv;
	__u32 quiet = local ? since_recv : since_send;
	__u32 bytes = 0;

	if (recent >= GOODBYE_WINDOW_MS || quiet < recent || quiet - recent < CFG(idle_threshold_ms))
		return min_u32(since_send, since_recv);
	if (local) {
		/* A server that answers a slow request and closes looks the same
		 * from the FIN: require that the last request before the silence
		 * was answered at once (the kernel counts replies sent within
		 * the delayed-ACK time, and resets the count when a delayed ACK
		 * had to go out alone, as it does while a request waits). */
		if (!bpf_core_field_exists(tp->inet_conn.icsk_ack.pingpong) ||
		    !tp->inet_conn.icsk_ack.pingpong)
			return min_u32(since_send, since_recv);
		/* Still in flight on a real network; acknowledged already on a
		 * LAN, where its size is gone from tcp_sock. */
		bytes = tp->write_seq - tp->snd_una;
		if (!bytes)
			bytes = GOODBYE_SIZE_UNKNOWN;
	} else {
		/* An idle pooled client has not read the goodbye; one waiting for
		 * an answer reads it at once. Unread counts the FIN too. */
		bytes = tp->rcv_nxt - tp->copied_seq;
		if (bytes <= 1)
			return min_u32(since_send, since_recv);
		/* A client still waiting for a slow answer may not have read it
		 * yet either when the FIN follows at once: require that the
		 * owner read data after its last write (its last request was
		 * answered before the silence). Unknown (no read seen since
		 * katrace started, or no slot): no goodbye. */
		if (!slot || !(slot->read_order == READ_AFTER_WRITE ||
			       (slot->read_order == READ_AT_WRITE_SEQ && slot->write_seq_at_read == tp->write_seq)))
			return min_u32(since_send, since_recv);
		bytes--;
	}
	if (bytes > GOODBYE_MAX_BYTES && bytes != GOODBYE_SIZE_UNKNOWN)
		return min_u32(since_send, since_recv);
	*goodbye_bytes = bytes;
	return quiet - recent;
}

/* sk is a BTF pointer.
 *
 * The hot path: an ordinary connection costs a few loads and stores per
 * change here, and no allocation. Start, role, first FIN and owner go to
 * the socket's slot (lib/slot.h); the idle time at the first FIN (and
 * before a goodbye) is read from tcp_sock's own stamps; only three kinds of
 * change are looked at further (the first FIN, CLOSE, and with --states
 * every one). A socket gets storage only once an event about it is sent
 * (an idle FIN here, a reset, an error) or labelled (--proto). */
static __always_inline void handle_state_change(struct sock *sk, int old, int new)
{
	struct sock_info *info = NULL;
	struct sock_slot *slot = NULL;
	bool owner_ctx;
	bool first_fin = (new == TCP_FIN_WAIT1 || new == TCP_CLOSE_WAIT);
	bool close_event = false;
	__u64 cookie;

	if (old == new || old == TCP_LISTEN || new == TCP_LISTEN)
		return;
	/* The changes between the moments that matter keep nothing and decide
	 * nothing: the handshake's completion on the connecting side (its
	 * start, role and owner were kept at SYN_SENT; a state past the
	 * handshake says it was established), and the steps of a close
	 * between the first FIN and CLOSE. */
	if (!CFG(emit_states) && !first_fin && new != TCP_CLOSE && new != TCP_SYN_SENT &&
	    !(new == TCP_ESTABLISHED && old == TCP_SYN_RECV))
		return;
	owner_ctx = owned_by_user(sk);

	if (new == TCP_SYN_SENT || new == TCP_SYN_RECV || new == TCP_ESTABLISHED) {
		/* Made here for every socket: the keepalive timer can only read
		 * a cookie, not make one. The connecting owner's connect() is
		 * where an active socket's owner is learnt; an accepted one's
		 * from its reads and writes. */
		slot = owner_ctx ? remember_slot_owner(sk) : claim_slot(sock_cookie(sk));
		if (slot) {
			/* The tick is close enough for a duration, and reading
			 * it costs next to nothing. */
			if (!slot->start_jiffies)
				slot->start_jiffies = bpf_jiffies64();
			if (new == TCP_SYN_SENT)
				slot->role = ROLE_ACTIVE;
			if (new == TCP_ESTABLISHED) {
				if (old == TCP_SYN_RECV && !slot->role)
					slot->role = ROLE_PASSIVE;
				slot->established = 1;
			}
		}
	} else if (owner_ctx && first_fin) {
		/* The owner's close() or shutdown(): who holds the socket now.
		 * The first FIN below uses the slot this finds. */
		slot = remember_slot_owner(sk);
	}

	if (!first_fin && new != TCP_CLOSE && !CFG(emit_states))
		return;
	/* Most sockets have no storage: no helper call to learn it. */
	if (!bpf_core_field_exists(sk->sk_bpf_storage) || sk->sk_bpf_storage)
		info = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (info && owner_ctx)
		remember_owner(info);

	if (first_fin && (!info || !info->fin_side)) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

		cookie = sock_cookie(sk);
		if (!slot)
			slot = claim_slot(cookie);
		if (tp && (!slot || !slot->fin_side)) {
			__u64 now_jiffies = bpf_jiffies64();
			__u32 since_send = ms_since(now_jiffies, tp->lsndtime);
			__u32 since_recv = ms_since(now_jiffies, tp->inet_conn.icsk_ack.lrcvtime);
			__u32 idle = min_u32(since_send, since_recv);
			__u32 goodbye_bytes = 0;
			__u8 side = new == TCP_FIN_WAIT1 ? FIN_LOCAL : FIN_REMOTE;
			bool idle_fin;

			if (old == TCP_ESTABLISHED && idle < CFG(idle_threshold_ms))
				idle = goodbye_idle(tp, slot, side == FIN_LOCAL, since_send, since_recv,
						    &goodbye_bytes);
			idle_fin = idle >= CFG(idle_threshold_ms) && old == TCP_ESTABLISHED;

			if (slot) {
				slot->fin_side = side;
				slot->fin_jiffies = now_jiffies;
				slot->fin_idle_ms = idle;
				slot->write_seq_at_fin = tp->write_seq;
			}
			/* An idle FIN is reported, and so will the socket's close
			 * be: its facts go where they cannot be taken over. */
			if (!info && idle_fin)
				info = create_info(sk, cookie);
			if (info) {
				info->fin_side = side;
				info->fin_ns = bpf_ktime_get_ns();
				info->fin_idle_ms = idle;
				info->write_seq_at_fin = tp->write_seq;
				info->goodbye_bytes = goodbye_bytes;
				if (idle_fin)
					report_transition(sk, EV_IDLE_FIN, old, new, info->fin_ns, info, owner_ctx);
			}
		}
	}

	if (new == TCP_CLOSE) {
		/* tcp_keepalive_timer closes a socket only through an error
		 * (tcp_write_err sets sk_err first) or from FIN_WAIT2 (an
		 * orphan's linger): other closes need not look for a run. */
		struct timer_run *run =
			old == TCP_FIN_WAIT2 || sk->sk_err ? current_timer_run((__u64)sk) : NULL;
		/* A close in the owner's syscall from a state that needs a reset is
		 * an abort (SO_LINGER 0, unread data): the kernel sends the RST
		 * right after, and userspace waits for it to give the verdict. */
		bool abort = owner_ctx && ((1 << old) & ((1 << TCP_ESTABLISHED) | (1 << TCP_CLOSE_WAIT) |
							 (1 << TCP_FIN_WAIT1) | (1 << TCP_SYN_RECV)));
		bool wanted = CFG(emit_all_closes) || (info && info->reported) || run || abort;

		if (run)
			run->closed = 1;
		/* sk_err set before CLOSE (6.10+ tcp_done_with_error): a retransmission
		 * timeout or a reset, reported ahead of the late error report; not
		 * for an orphan, whose error no application will see. */
		if (!wanted && sk->sk_err && !(sk->__sk_common.skc_flags & (1UL << SOCK_DEAD)))
			wanted = true;
		/* The owner closing a connect that never completed: it gave up
		 * (its own timeout) or read a failure the kernel only marked. */
		if (!wanted && owner_ctx && old == TCP_SYN_SENT)
			wanted = true;
		/* A keepalive probe still unanswered: its close explains it. The
		 * socket's own flag first: the counter is a map page that a
		 * close of a socket without keepalive need not touch. */
		if (!wanted && (sk->__sk_common.skc_flags & (1UL << SOCK_KEEPOPEN)) && probes_outstanding) {
			cookie = sock_cookie(sk);
			if (bpf_map_lookup_elem(&probes_out, &cookie)) {
				probe_out_deleted(&cookie);
				wanted = true;
			}
		}
		close_event = wanted;
	}

	/* With --states, a close event is the change to CLOSE too (one sample
	 * instead of two: userspace writes both records). One call site: the
	 * verifier walks this code once. */
	if (CFG(emit_states) && !close_event)
		report_state_change(sk, old, new, info, owner_ctx);

	if (new == TCP_CLOSE) {
		if (close_event)
			report_transition(sk, EV_CLOSE, old, new, bpf_ktime_get_ns(), info, owner_ctx);
		cookie = sock_cookie(sk);
		/* A keepalive socket without a slot left its owner in the owners
		 * map (share_keepalive_owner). */
		if (!release_slot(cookie) && (sk->__sk_common.skc_flags & (1UL << SOCK_KEEPOPEN)))
			bpf_map_delete_elem(&owners, &cookie);
	}
}

#endif /* __KATRACE_LIB_STATE_H__ */
