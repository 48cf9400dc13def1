/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The record `katrace sockets` reads: one struct socket_row per TCP socket,
 * written by the iter/tcp program in sockets.bpf.c with bpf_seq_write.
 * bpf2go -type socket_row generates the Go struct; sockets/decode.go reads
 * it at fixed offsets. Add members only at the end and keep the struct free
 * of implicit padding (its size is a multiple of 8).
 */
#ifndef __KATRACE_SOCKETS_H__
#define __KATRACE_SOCKETS_H__

/* What kind of kernel socket the row is: for request and timewait sockets
 * only the sock_common fields (addresses, ports, state, netns, cookie) and
 * the timer are valid. */
enum socket_kind {
	SOCKET_FULL = 1,
	SOCKET_REQUEST = 2,
	SOCKET_TIMEWAIT = 3,
};

/* The armed timer, the way ss -o names it. */
enum socket_timer {
	TIMER_NONE = 0,
	TIMER_RETRANSMIT = 1,
	TIMER_ZERO_WINDOW_PROBE = 2,
	TIMER_KEEPALIVE = 3,
	TIMER_TIME_WAIT = 4,
	/* sk_timer armed on an orphaned FIN_WAIT2 socket without SO_KEEPALIVE:
	 * tcp_keepalive_timer runs the tcp_fin_timeout linger. */
	TIMER_FIN_WAIT2 = 5,
	/* A request socket's SYN-ACK retransmit timer. */
	TIMER_SYNACK = 6,
};

enum socket_row_flags {
	/* SO_KEEPALIVE is on. */
	ROWF_KEEPOPEN = 1 << 0,
	/* The socket sets its own TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT. */
	ROWF_OWN_IDLE = 1 << 1,
	ROWF_OWN_INTVL = 1 << 2,
	ROWF_OWN_PROBES = 1 << 3,
	/* idle_ms is known (a full socket that is not listening). */
	ROWF_IDLE_KNOWN = 1 << 4,
	/* The socket is orphaned (closed by its process, SOCK_DEAD). */
	ROWF_ORPHAN = 1 << 5,
	/* A dual-stack IPv6 socket talking IPv4 (::ffff:a.b.c.d): family and
	 * addresses are its IPv4 ones. */
	ROWF_V4_MAPPED = 1 << 6,
};

struct socket_row {
	/* Socket cookie, as ss -e and sock_diag report it. */
	__u64 cookie;
	/* The socket's inode (0 when no process holds it: request, timewait
	 * and orphaned sockets). */
	__u64 ino;
	/* Network namespace inode. */
	__u32 netns;
	/* uid of the socket (the iterator's). */
	__u32 uid;
	/* Effective keepalive settings: the socket's own, else its netns
	 * sysctls (ROWF_OWN_* say which). */
	__u32 keepalive_idle_ms;
	__u32 keepalive_intvl_ms;
	/* Milliseconds until the armed timer fires (0 when overdue or none). */
	__u32 timer_in_ms;
	/* Milliseconds since the last data either way. */
	__u32 idle_ms;
	/* TCP_USER_TIMEOUT in ms, 0 when not set. */
	__u32 user_timeout_ms;
	__u32 flags;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	/* 4 or 6 */
	__u8 family;
	/* TCP state (TCP_ESTABLISHED...). */
	__u8 state;
	/* enum socket_kind */
	__u8 kind;
	/* enum socket_timer */
	__u8 timer;
	__u8 keepalive_probes;
	/* Unanswered keepalive (or zero window) probes: icsk_probes_out. */
	__u8 probes_out;
	/* Retransmits of the current segment: icsk_retransmits. */
	__u8 retransmits;
	__u8 pad[5];
};

#endif /* __KATRACE_SOCKETS_H__ */
