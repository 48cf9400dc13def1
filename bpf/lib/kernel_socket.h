/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * What both programs (katrace.bpf.c, sockets.bpf.c) read from a kernel TCP
 * socket the same way: addresses, effective keepalive settings, the socket's
 * inode, and jiffies turned into milliseconds.
 */
#ifndef __KATRACE_LIB_KERNEL_SOCKET_H__
#define __KATRACE_LIB_KERNEL_SOCKET_H__

/* KATRACE_HZ: each program's load-time constant holding the kernel's HZ
 * (set from Go: no kernel config file needed). */
#ifndef KATRACE_HZ
#error "define KATRACE_HZ before including lib/kernel_socket.h"
#endif

/* A field of p: a plain load where p is a BTF pointer (tp_btf and fentry
 * arguments, bpf_skc_to_tcp_sock: about a nanosecond), a probe read
 * otherwise (the keepalive timer's container_of, the socket iterator).
 * direct is a constant in every caller. */
#define RD(direct, p, field) ((direct) ? (p)->field : BPF_CORE_READ(p, field))

static __always_inline __u32 jiffies_to_ms(__u64 j)
{
	return j * 1000 / KATRACE_HZ;
}

/* Milliseconds from a 32-bit jiffies stamp to now. */
static __always_inline __u32 ms_since(__u64 now_jiffies, __u32 stamp)
{
	__s32 delta = (__u32)now_jiffies - stamp;

	return delta > 0 ? jiffies_to_ms(delta) : 0;
}

/* Milliseconds from now until a 64-bit jiffies expiry (0 when past). */
static __always_inline __u32 ms_until(__u64 now_jiffies, unsigned long expires)
{
	__s64 delta = (__s64)(expires - now_jiffies);

	return delta > 0 ? jiffies_to_ms(delta) : 0;
}

/* ::ffff:a.b.c.d */
static __always_inline bool is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline bool is_unspecified(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* The socket's addresses: IPv4 in the first 4 bytes. Returns 4 or 6. A
 * dual-stack IPv6 socket talking IPv4 (::ffff:a.b.c.d, the other end
 * mapped too or unspecified) is reported as IPv4, as the peer's socket
 * is, with *v4_mapped set: IPv4 filters match it and both ends agree. */
static __always_inline __u8 read_addresses(struct sock_common *skc, bool direct, __u8 saddr[16],
					   __u8 daddr[16], bool *v4_mapped)
{
	__u32 *s = (__u32 *)saddr, *d = (__u32 *)daddr;

	*v4_mapped = false;
	if (RD(direct, skc, skc_family) != AF_INET6) {
		s[0] = RD(direct, skc, skc_rcv_saddr);
		d[0] = RD(direct, skc, skc_daddr);
		return 4;
	}
	bpf_core_read(saddr, 16, &skc->skc_v6_rcv_saddr);
	bpf_core_read(daddr, 16, &skc->skc_v6_daddr);
	if ((is_v4_mapped(s) || is_unspecified(s)) && (is_v4_mapped(d) || is_unspecified(d)) &&
	    !(is_unspecified(s) && is_unspecified(d))) {
		s[0] = s[3];
		d[0] = d[3];
		s[1] = s[2] = s[3] = 0;
		d[1] = d[2] = d[3] = 0;
		*v4_mapped = true;
		return 4;
	}
	return 6;
}

struct keepalive_settings {
	__u32 idle_ms;
	__u32 intvl_ms;
	__u8 probes;
	/* Which of them the socket sets itself (TCP_KEEPIDLE, TCP_KEEPINTVL,
	 * TCP_KEEPCNT) rather than inherit from its netns. */
	bool own_idle;
	bool own_intvl;
	bool own_probes;
};

/* The keepalive settings in effect: the socket's own, else (0 on the
 * socket) its network namespace's sysctls. */
static __always_inline void read_keepalive_settings(struct tcp_sock *tp, struct net *net, bool direct,
						    struct keepalive_settings *ks)
{
	__u32 idle = RD(direct, tp, keepalive_time);
	__u32 intvl = RD(direct, tp, keepalive_intvl);
	__u8 probes = RD(direct, tp, keepalive_probes);

	ks->own_idle = idle;
	ks->own_intvl = intvl;
	ks->own_probes = probes;
	if (!idle)
		idle = RD(direct, net, ipv4.sysctl_tcp_keepalive_time);
	if (!intvl)
		intvl = RD(direct, net, ipv4.sysctl_tcp_keepalive_intvl);
	if (!probes)
		probes = RD(direct, net, ipv4.sysctl_tcp_keepalive_probes);
	ks->idle_ms = jiffies_to_ms(idle);
	ks->intvl_ms = jiffies_to_ms(intvl);
	ks->probes = probes;
}

/* The inode of the socket's file, 0 when no process holds it. */
static __always_inline __u64 socket_inode(struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);
	struct socket_alloc *alloc;

	if (!sock)
		return 0;
	alloc = container_of(sock, struct socket_alloc, socket);
	return BPF_CORE_READ(alloc, vfs_inode.i_ino);
}

#endif /* __KATRACE_LIB_KERNEL_SOCKET_H__ */
