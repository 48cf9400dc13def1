/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* An event's socket fields: identity, addresses, counters, and what the
 * socket's storage remembers. */
#ifndef __KATRACE_LIB_SOCK_H__
#define __KATRACE_LIB_SOCK_H__

#include "lib/globals.h"
#include "lib/kernel_socket.h"
#include "lib/owner.h"

/* sk (a tracepoint's or fentry's argument) as a plain BTF pointer to the
 * same socket, NULL unless it is a full TCP socket. Since 6.5 the verifier
 * looks up, in kernel BTF by name (a linear search), every pointer loaded
 * through a trusted pointer, on every path it walks; through a plain one
 * it does not. The paths that fill an event read many pointers (the
 * netns, cgroup and file behind a socket) and are walked many times: the
 * state change program verifies in a fraction of the time. The helper
 * call is paid per full event sent, not per state change. */
static __always_inline struct sock *plain_tcp_sock(struct sock *sk)
{
	return (struct sock *)bpf_skc_to_tcp_sock(sk);
}

/* The socket's netns inode, read from net once and then kept in its slot:
 * the inode shares a line of struct net with the netns refcount, which
 * every new socket writes, so under churn a read is a miss on a line
 * another CPU holds. */
static __always_inline __u32 slot_netns(__u64 cookie, struct net *net, bool direct)
{
	struct sock_slot *s = slot_of(cookie);
	__u32 inum;

	if (s && s->netns)
		return s->netns;
	inum = RD(direct, net, ns.inum);
	if (s)
		s->netns = inum;
	return inum;
}

/* Whether cg is one of the filter's cgroups or below one: its ancestor at
 * the filter's level is that cgroup. */
static __always_inline bool cgroup_wanted(struct cgroup *cg)
{
	int level = BPF_CORE_READ(cg, level);

	for (__u32 i = 0; i < KATRACE_MAX_CGROUPS; i++) {
		struct cgroup *anc = NULL;
		__u32 want;

		if (i >= CFG(filter_cgroup_count))
			break;
		want = cfg.filter_cgroups[i].level;
		if (want > (__u32)level)
			continue;
		if (bpf_core_field_exists(cg->ancestors))
			bpf_core_read(&anc, sizeof(anc), &cg->ancestors[want & 0xff]);
		else if (want == (__u32)level)
			anc = cg;
		if (anc && BPF_CORE_READ(anc, kn, id) == cfg.filter_cgroups[i].id)
			return true;
	}
	return false;
}

/* The socket's cgroup id, read from the socket itself (never the current
 * task: timers and softirq run on anybody's), and whether the cgroup
 * filter keeps it. */
static __always_inline void read_cgroup(struct sock *sk, bool direct, __u64 *id, __u8 *in_filtered)
{
	struct cgroup *cg;

	if (!bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return;

	cg = RD(direct, sk, sk_cgrp_data.cgroup);
	if (!cg)
		return;
	if (direct) {
		struct kernfs_node *kn = cg->kn;

		if (kn)
			*id = kn->id;
	} else {
		*id = BPF_CORE_READ(cg, kn, id);
	}
	if (CFG(filter_cgroup_count) && cgroup_wanted(cg))
		*in_filtered = 1;
}

static __always_inline void fill_cgroup(struct event *e, struct sock *sk, bool direct)
{
	read_cgroup(sk, direct, &e->cgroup_id, &e->in_filtered_cgroup);
}

/* Use the fill_*_socket wrappers below: with_counters and direct are
 * constants in each, so the verifier sees one straight path. */
static __always_inline void fill_socket_fields(struct event *e, struct sock *sk, bool with_counters,
					       bool direct, struct sock_info *info)
{
	struct sock_common *skc = &sk->__sk_common;
	struct net *net = RD(direct, sk, __sk_common.skc_net.net);
	bool v4_mapped;

	e->sport = RD(direct, sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(RD(direct, sk, __sk_common.skc_dport));
	e->family = read_addresses(skc, direct, e->saddr, e->daddr, &v4_mapped);
	if (v4_mapped)
		e->flags |= EVF_V4_MAPPED;
	/* A timewait socket has given its slot back. */
	e->netns = with_counters ? slot_netns(e->cookie, net, direct) : RD(direct, net, ns.inum);
	if (!with_counters)
		return;

	unsigned long flags = RD(direct, sk, __sk_common.skc_flags);
	/* A full socket's sk is a tcp_sock already: plain_tcp_sock's (direct)
	 * or the keepalive timer's. */
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	if (flags & (1UL << SOCK_KEEPOPEN))
		e->flags |= EVF_KEEPOPEN;
	/* At CLOSE the kernel has given the local port back (inet_num is 0)
	 * unless it was bound; the port stays in inet_sport. */
	if (!e->sport)
		e->sport = bpf_ntohs(RD(direct, tp, inet_conn.icsk_inet.inet_sport));

	__u64 now_jiffies = bpf_jiffies64();
	__u8 shutdown = RD(direct, sk, sk_shutdown);
	struct keepalive_settings ka;

	read_keepalive_settings(tp, net, direct, &ka);
	e->keepalive_idle_ms = ka.idle_ms;
	e->keepalive_intvl_ms = ka.intvl_ms;
	e->keepalive_probes = ka.probes;

	e->since_send_ms = ms_since(now_jiffies, RD(direct, tp, lsndtime));
	e->since_recv_ms = ms_since(now_jiffies, RD(direct, tp, inet_conn.icsk_ack.lrcvtime));
	e->since_ack_ms = ms_since(now_jiffies, RD(direct, tp, rcv_tstamp));
	e->bytes_sent = RD(direct, tp, bytes_sent);
	e->bytes_received = RD(direct, tp, bytes_received);
	e->unacked = RD(direct, tp, write_seq) - RD(direct, tp, snd_una);
	e->unread = RD(direct, tp, rcv_nxt) - RD(direct, tp, copied_seq);
	if ((flags & (1UL << SOCK_LINGER)) && !RD(direct, sk, sk_lingertime))
		e->flags |= EVF_LINGER_ZERO;
	e->probes_before = e->probes_after = RD(direct, tp, inet_conn.icsk_probes_out);
	e->sk_err = RD(direct, sk, sk_err);
	/* What a retransmission timeout needs: when the stalled write went
	 * out, how often it was resent, the user timeout that ended it. */
	e->first_tx_ns = RD(direct, tp, first_tx_mstamp) * 1000;
	e->retransmits = RD(direct, tp, inet_conn.icsk_retransmits);
	e->user_timeout_ms = RD(direct, tp, inet_conn.icsk_user_timeout);
	e->sock_ino = direct ? sock_inode_direct(sk) : socket_inode(sk);
	fill_from_slot(e, RD(direct, tp, write_seq), now_jiffies);
	fill_cgroup(e, sk, direct);
	if (flags & (1UL << SOCK_DEAD))
		e->flags |= EVF_ORPHAN;
	if (flags & (1UL << SOCK_DONE))
		e->flags |= EVF_PEER_FIN;
	if (shutdown & 1) /* RCV_SHUTDOWN */
		e->flags |= EVF_RCV_SHUTDOWN;
	if (shutdown & 2) /* SEND_SHUTDOWN */
		e->flags |= EVF_SEND_SHUTDOWN;
}

/* A timewait socket (a BTF pointer): only its sock_common is valid, and
 * skc_flags there is a pointer, not the socket's flags. */
static __always_inline void fill_timewait_socket(struct event *e, struct sock *sk)
{
	fill_socket_fields(e, sk, false, true, NULL);
}

/* A full TCP socket as plain_tcp_sock gives it; info its storage, if
 * any. */
static __always_inline void fill_full_socket(struct event *e, struct sock *sk, struct sock_info *info)
{
	fill_socket_fields(e, sk, true, true, info);
}

/* A full TCP socket from a plain kernel address (the keepalive timer's
 * container_of): every field by probe read. */
static __always_inline void fill_full_socket_by_probe_read(struct event *e, struct sock *sk)
{
	fill_socket_fields(e, sk, true, false, NULL);
}

/* What the socket's storage remembers: an owner (an orphan's, whose slot
 * may be gone), the first FIN when it was idle and its goodbye, resets,
 * the label. The storage cannot be taken over: its FIN facts win over the
 * slot's. */
static __always_inline void fill_info(struct event *e, struct sock_info *info)
{
	if (!info)
		return;
	e->proto = info->proto;
	e->requests = info->requests;
	if (info->fin_side) {
		e->fin_side = info->fin_side;
		e->fin_ns = info->fin_ns;
		e->fin_idle_ms = info->fin_idle_ms;
		e->goodbye_bytes = info->goodbye_bytes;
	}
	if (info->reset_sent)
		e->flags |= EVF_RESET_SENT_BEFORE;
	if (info->reset_received)
		e->flags |= EVF_RESET_RECEIVED_BEFORE;
}

/* A socket whose slot was taken over (and whose FIN was not idle, or it
 * would have storage) has its FIN facts read back from the socket: which
 * side closed first from the state, and for a peer's FIN, what the peer
 * never acknowledged (a peer that has closed answers data with a RST, not
 * an ACK) and when its last ACK came; the idle time is the peer's silence
 * before its FIN, kept below the threshold. */
static __always_inline void fill_fin_facts(struct event *e)
{
	__u8 st = e->state == TCP_CLOSE ? e->old_state : e->state;
	__u32 idle;

	if (e->fin_side)
		return;
	switch (st) {
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSING:
	case TCP_TIME_WAIT:
		e->fin_side = FIN_LOCAL;
		return;
	case TCP_CLOSE_WAIT:
	case TCP_LAST_ACK:
		break;
	default:
		return;
	}
	e->fin_side = FIN_REMOTE;
	e->written_after_fin = e->unacked;
	e->fin_ns = e->ts_ns - (__u64)e->since_ack_ms * 1000000;
	idle = e->since_recv_ms > e->since_ack_ms ? e->since_recv_ms - e->since_ack_ms : 0;
	if (CFG(idle_threshold_ms) && idle >= CFG(idle_threshold_ms))
		idle = CFG(idle_threshold_ms) - 1;
	e->fin_idle_ms = idle;
}

#endif /* __KATRACE_LIB_SOCK_H__ */
