/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* Who owns a socket: the task in whose syscall an event runs, else what
 * the socket's slot (lib/slot.h) remembers from the owner's syscalls, else
 * what its storage does (an orphan whose slot was taken over), or the
 * owners map by cookie (before 6.4 under kprobes; keepalive sockets without
 * a slot, for the keepalive timer). */
#ifndef __KATRACE_LIB_OWNER_H__
#define __KATRACE_LIB_OWNER_H__

#include "lib/slot.h"

/* sk must be a BTF pointer (tp_btf or fentry argument): a plain load. */
static __always_inline bool owned_by_user(struct sock *sk)
{
	return sk->sk_lock.owned != 0;
}

/* The inode of the socket's file, 0 when no process holds it: plain
 * loads along BTF pointers (sk from tp_btf or fentry). */
static __always_inline __u32 sock_inode_direct(struct sock *sk)
{
	struct socket *sock = sk->sk_socket;
	struct file *file;
	struct inode *inode;

	if (!sock)
		return 0;
	file = sock->file;
	if (!file)
		return 0;
	inode = file->f_inode;
	if (!inode)
		return 0;
	return inode->i_ino;
}

/* The current task (pid) as the owner of the socket with this cookie, in
 * the owners map. Known already: a lookup and a compare. */
static __always_inline void map_owner(__u64 cookie, __u32 pid)
{
	struct owner *known, fresh = {};

	known = bpf_map_lookup_elem(&owners, &cookie);
	if (known && known->pid == pid)
		return;
	fresh.pid = pid;
	bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
	bpf_map_update_elem(&owners, &cookie, &fresh, BPF_ANY);
}

/* A keepalive socket without a slot (another socket holds it): its owner
 * goes to the owners map by cookie, where the keepalive timer finds it
 * (the timer has a plain pointer and cannot reach socket storage). Other
 * slot-less sockets pay one flag test. */
static __always_inline void share_keepalive_owner(struct sock *sk, __u64 cookie, __u32 pid)
{
	if (!cookie || !(sk->__sk_common.skc_flags & (1UL << SOCK_KEEPOPEN)))
		return;
	map_owner(cookie, pid);
}

/* Remember the current task as sk's owner, from its owner's syscalls only
 * (a timer or softirq runs on whatever task the CPU had). Known already:
 * a lookup and two compares. */
static __always_inline struct sock_slot *remember_slot_owner(struct sock *sk)
{
	__u64 cookie = sock_cookie(sk);
	struct sock_slot *s = claim_slot(cookie);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (!s) {
		share_keepalive_owner(sk, cookie, pid);
		return NULL;
	}
	if (s->pid == pid)
		return s;
	s->pid = pid;
	bpf_get_current_comm(s->comm, sizeof(s->comm));
	return s;
}

/* The same into a socket's storage, which outlives its file: the owner of
 * an orphaned socket's events. */
static __always_inline void remember_owner(struct sock_info *info)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (info->owner_pid == pid)
		return;
	info->owner_pid = pid;
	bpf_get_current_comm(info->owner_comm, sizeof(info->owner_comm));
}

/* recvmsg's flags (include/linux/socket.h). */
#define MSG_PEEK 2

/* The owner's read (ret bytes, flags) or write on sk (6.4+ tracepoints):
 * its owner, and for the goodbye guard whether it last read or wrote. A
 * byte stored only when it changes: a slot line written on every call
 * would bounce between the CPUs that read and that run softirq. */
static __always_inline void learn_owner_and_order(struct sock *sk, bool read, int ret, int flags)
{
	struct sock_slot *s;
	__u8 order;

	/* A call that failed (EAGAIN on a non-blocking socket: most reads of
	 * an event loop) moved no data: the next one that does names the same
	 * owner. */
	if (sk->sk_protocol != IPPROTO_TCP || ret < 0)
		return;
	s = remember_slot_owner(sk);
	if (!s || ret <= 0 || (read && (flags & MSG_PEEK)))
		return;
	order = read ? READ_AFTER_WRITE : WRITE_AFTER_READ;
	if (s->read_order != order)
		s->read_order = order;
}

/* Before 6.4, from tcp_rcv_space_adjust (data was read): the owner, and
 * our write_seq then (there is no write hook to order against). */
static __always_inline void learn_owner_reading(struct sock *sk)
{
	struct sock_slot *s;
	struct tcp_sock *tp;
	__u32 write_seq;

	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	s = remember_slot_owner(sk);
	tp = bpf_skc_to_tcp_sock(sk);
	if (!s || !tp)
		return;
	write_seq = tp->write_seq;
	if (s->read_order == READ_AT_WRITE_SEQ && s->write_seq_at_read == write_seq)
		return;
	s->write_seq_at_read = write_seq;
	s->read_order = READ_AT_WRITE_SEQ;
}

/* Before 6.4: the same, from tcp_recvmsg/tcp_sendmsg, by cookie (kprobe
 * programs cannot use socket storage). Works on any kernel pointer. */
static __always_inline void learn_owner_by_cookie(struct sock *sk)
{
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);

	if (cookie)
		map_owner(cookie, bpf_get_current_pid_tgid() >> 32);
}

/* The owner an event names, in one order for every event layout: the
 * task in whose syscall the event runs; else what the socket's slot keeps
 * from its owner's syscalls; else its storage (an orphan whose slot was
 * taken over); else the owners map by cookie, where owners are kept there
 * (before 6.4 under kprobes) or any_kernel asks (the keepalive timer, for
 * what share_keepalive_owner put there). Writes pid and comm and returns
 * the EVF_OWNER flags, 0 for no owner (pid and comm left alone). */
static __always_inline __u16 pick_owner(__u64 cookie, struct sock_info *info, bool owner_ctx, bool any_kernel,
					__u32 *pid, char *comm)
{
	struct sock_slot *slot = slot_of(cookie);
	struct owner *o;
	/* On the stack: older verifiers refuse map keys in ring buffer memory. */
	__u64 key = cookie;

	if (owner_ctx) {
		*pid = bpf_get_current_pid_tgid() >> 32;
		/* The owner's syscall has usually just named it in the slot. */
		if (slot && slot->pid == *pid)
			__builtin_memcpy(comm, slot->comm, KATRACE_COMM_LEN);
		else
			bpf_get_current_comm(comm, KATRACE_COMM_LEN);
		return EVF_OWNER | EVF_OWNER_CONTEXT;
	}
	if (slot && slot->pid) {
		*pid = slot->pid;
		__builtin_memcpy(comm, slot->comm, KATRACE_COMM_LEN);
		/* Given back and taken meanwhile: what was read may be another's. */
		if (slot->cookie == cookie)
			return EVF_OWNER;
	}
	if (info && info->owner_pid) {
		*pid = info->owner_pid;
		__builtin_memcpy(comm, info->owner_comm, KATRACE_COMM_LEN);
		return EVF_OWNER;
	}
	if ((any_kernel || CFG(owners_by_cookie)) && key) {
		o = bpf_map_lookup_elem(&owners, &key);
		if (o) {
			*pid = o->pid;
			__builtin_memcpy(comm, o->comm, KATRACE_COMM_LEN);
			return EVF_OWNER;
		}
	}
	*pid = 0;
	comm[0] = 0;
	return 0;
}

/* e's owner (e->cookie set, no owner yet). */
static __always_inline void fill_owner(struct event *e, struct sock_info *info, bool owner_ctx, bool any_kernel)
{
	e->flags |= pick_owner(e->cookie, info, owner_ctx, any_kernel, &e->pid, e->comm);
}

#endif /* __KATRACE_LIB_OWNER_H__ */
