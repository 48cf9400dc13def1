/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* Who owns a socket: the task in whose syscall an event runs, else what
 * the socket's storage (or, before 6.4 under kprobes, the owners map by
 * cookie) remembers from the owner's reads and writes. */
#ifndef __KATRACE_LIB_OWNER_H__
#define __KATRACE_LIB_OWNER_H__

#include "lib/globals.h"

/* sk must be a BTF pointer (tp_btf or fentry argument): a plain load. */
static __always_inline bool owned_by_user(struct sock *sk)
{
	return sk->sk_lock.owned != 0;
}

/* Remember who uses the socket, from its owner's syscalls only: a timer or
 * softirq runs on whatever task the CPU had. */
static __always_inline void remember_owner(struct sock_info *info)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (info->owner_pid == pid)
		return;
	info->owner_pid = pid;
	bpf_get_current_comm(info->owner_comm, sizeof(info->owner_comm));
	info->owner_shared = 0;
}

/* A keepalive socket's owner, copied by cookie into the owners map once
 * per owner: the keepalive timer only has a plain pointer to the socket
 * and cannot reach its storage. Other sockets pay one flag test. */
static __always_inline void share_keepalive_owner(struct sock *sk, struct sock_info *info)
{
	struct owner o = {};
	__u64 cookie;

	if (info->owner_shared || !info->owner_pid ||
	    !(sk->__sk_common.skc_flags & (1UL << SOCK_KEEPOPEN)))
		return;
	cookie = bpf_get_socket_cookie(sk);
	o.pid = info->owner_pid;
	__builtin_memcpy(o.comm, info->owner_comm, sizeof(o.comm));
	bpf_map_update_elem(&owners, &cookie, &o, BPF_ANY);
	info->owner_shared = 1;
}

/* The owner's own reads and writes name the owner of sockets it accepted
 * (sock_recv_length/sock_send_length, 6.4+). Only a socket whose owner is
 * not known yet pays more than a lookup. */
static __always_inline void learn_owner(struct sock *sk)
{
	struct sock_info *info;

	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	info = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (!info)
		return;
	if (info->owner_pid != bpf_get_current_pid_tgid() >> 32)
		remember_owner(info);
	share_keepalive_owner(sk, info);
}

/* Before 6.4: the same, from tcp_recvmsg/tcp_sendmsg, by cookie (kprobe
 * programs cannot use socket storage). Works on any kernel pointer. */
static __always_inline void learn_owner_by_cookie(struct sock *sk)
{
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct owner *known, fresh = {};

	if (!cookie)
		return;
	known = bpf_map_lookup_elem(&owners, &cookie);
	if (known && known->pid == pid)
		return;
	fresh.pid = pid;
	bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
	bpf_map_update_elem(&owners, &cookie, &fresh, BPF_ANY);
}

/* any_kernel: look even where owners_by_cookie is off (the keepalive
 * timer path, for the owners share_keepalive_owner put there). */
static __always_inline void fill_owner_from_map(struct event *e, bool any_kernel)
{
	/* On the stack: older verifiers refuse map keys in ring buffer memory. */
	__u64 cookie = e->cookie;
	struct owner *o;

	if (!(any_kernel || cfg.owners_by_cookie) || (e->flags & EVF_OWNER) || !cookie)
		return;
	o = bpf_map_lookup_elem(&owners, &cookie);
	if (!o)
		return;
	e->flags |= EVF_OWNER;
	e->pid = o->pid;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
}

static __always_inline void fill_owner_by_cookie(struct event *e)
{
	fill_owner_from_map(e, false);
}

#endif /* __KATRACE_LIB_OWNER_H__ */
