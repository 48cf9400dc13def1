// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * katrace's kernel programs: the entry points, one per attach point and
 * strategy (fentry/fexit, kprobe/kretprobe, tracepoint). The handlers live
 * in lib/, one header per concern:
 *
 *   lib/globals.h        load-time constants and maps
 *   lib/kernel_socket.h  socket reads shared with sockets.bpf.c
 *   lib/ring.h           event reserve, discard, submit, loss count
 *   lib/sock.h           an event's socket fields
 *   lib/filter.h         the in-kernel filters
 *   lib/owner.h          who owns a socket
 *   lib/report.h         fill, filter and submit a socket's event
 *   lib/keepalive.h      tcp_keepalive_timer entry and exit
 *   lib/state.h          TCP state changes (the hot path)
 *   lib/reset.h          resets and socket errors
 *   lib/proto.h          protocol labels from payload bytes
 *   lib/timewait.h       a timewait socket's FIN_WAIT2 linger
 *
 * The loader (tracer/plan.go) deletes the entry points its strategy and
 * the kernel's features do not use before loading.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "katrace.h"
#include "lib/globals.h"
#include "lib/keepalive.h"
#include "lib/owner.h"
#include "lib/proto.h"
#include "lib/reset.h"
#include "lib/state.h"
#include "lib/timewait.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Force the types Go reads into BTF, so that bpf2go -type generates them
 * (tracer/gen.go). */
const struct event *unused_event __attribute__((unused));
const struct state_event *unused_state_event __attribute__((unused));
const struct state_batch *unused_state_batch __attribute__((unused));
const struct event_batch *unused_event_batch __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum event_flags *unused_event_flags __attribute__((unused));
const enum fin_side *unused_fin_side __attribute__((unused));
const enum sock_role *unused_sock_role __attribute__((unused));
const enum proto *unused_proto __attribute__((unused));

/* --- every strategy --- */

/* Gives every TCP socket that exists at start a cookie, so that keepalive
 * timer runs on sockets older than katrace can be told apart, and learns
 * tcp_keepalive_timer's address from the first full one. Run once at
 * start, not attached. */
SEC("iter/tcp")
int prime_cookies(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;

	if (!skc)
		return 0;
	bpf_get_socket_cookie(skc);
	learn_tw_timer_fn(skc);
	tp = bpf_skc_to_tcp_sock(skc);
	if (tp)
		learn_keepalive_timer_fn((struct sock *)tp);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tp_tcp_receive_reset, struct sock *sk)
{
	handle_reset(sk, EV_RESET_RECEIVED, 0, false);
	return 0;
}

/* 6.10 and later pass the kernel's reason (enum sk_rst_reason). */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tp_tcp_send_reset_reason, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	handle_reset((struct sock *)sk, EV_RESET_SENT, reason, true);
	return 0;
}

/* Before 6.10 the tracepoint has no reason; userspace infers one. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tp_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	handle_reset((struct sock *)sk, EV_RESET_SENT, 0, false);
	return 0;
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(tp_inet_sk_error_report, const struct sock *sk)
{
	handle_error_report((struct sock *)sk);
	return 0;
}

/* Owners of accepted sockets, and whether the owner last read or wrote
 * (the goodbye guard), from its reads and writes (6.4+). */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
	learn_owner_and_order(sk, true, ret, flags);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_sock_send_length, struct sock *sk, int ret, int flags)
{
	learn_owner_and_order(sk, false, ret, flags);
	return 0;
}

/* Before 6.4 (no owner tracepoints): tcp_rcv_space_adjust runs in the
 * owner's recvmsg once data was copied, with the socket locked by it.
 * Under every strategy it marks the read (the goodbye guard); under the
 * tracepoint strategy, which hooks no function, it also names the owner. */
SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(tp_tcp_rcv_space_adjust, struct sock *sk)
{
	if (owned_by_user(sk))
		learn_owner_reading(sk);
	return 0;
}

/* --- tracepoint strategy --- */

/* Whether the expiring timer runs fn, a callback address known at load or
 * learnt at start (0 until then: no timer matches). */
static __always_inline bool timer_calls(struct timer_list *timer, __u64 fn)
{
	return fn && (__u64)timer->function == fn;
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tp_timer_expire_entry, struct timer_list *timer)
{
	if (timer_calls(timer, tw_timer_address()))
		timewait_timer_expire((__u64)timer);
	else if (timer_calls(timer, keepalive_timer_address()))
		keepalive_timer_enter((__u64)timer);
	return 0;
}

SEC("tp_btf/timer_expire_exit")
int BPF_PROG(tp_timer_expire_exit, struct timer_list *timer)
{
	if (timer_calls(timer, keepalive_timer_address()))
		keepalive_timer_exit((__u64)timer);
	return 0;
}

/* The timewait socket's timer (lib/timewait.h) under fentry and kprobe;
 * tp_timer_expire_entry watches it under the tracepoint strategy. */
SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tp_timewait_timer_expire, struct timer_list *timer)
{
	if (timer_calls(timer, tw_timer_address()))
		timewait_timer_expire((__u64)timer);
	return 0;
}

/* Also the kprobe strategy's: kprobe programs cannot use socket storage.
 * A socket made after start passes here before its keepalive timer can
 * run: the tracepoint strategy learns the timer's address here too. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	learn_keepalive_timer_fn(sk);
	handle_state_change(sk, oldstate, newstate);
	return 0;
}

/* --- fentry and kprobe strategies --- */

/* fentry_<func> and kprobe_<func>: one body at the entry of a kernel
 * function, under each strategy that hooks functions (tracer/plan.go
 * selects one of the two). */
#define ON_FUNCTION_ENTRY(func, param, body)  \
	SEC("fentry/" #func)                  \
	int BPF_PROG(fentry_##func, param)    \
	{                                     \
		body;                         \
		return 0;                     \
	}                                     \
	SEC("kprobe/" #func)                  \
	int BPF_KPROBE(kprobe_##func, param)  \
	{                                     \
		body;                         \
		return 0;                     \
	}

ON_FUNCTION_ENTRY(tcp_keepalive_timer, struct timer_list *timer, keepalive_timer_enter((__u64)timer))

/* Owners before 6.4, by cookie. */
ON_FUNCTION_ENTRY(tcp_recvmsg, struct sock *sk, learn_owner_by_cookie(sk))
ON_FUNCTION_ENTRY(tcp_sendmsg, struct sock *sk, learn_owner_by_cookie(sk))

/* --- fentry strategy --- */

SEC("fexit/tcp_keepalive_timer")
int BPF_PROG(fexit_tcp_keepalive_timer, struct timer_list *timer)
{
	keepalive_timer_exit((__u64)timer);
	return 0;
}

SEC("fentry/tcp_set_state")
int BPF_PROG(fentry_tcp_set_state, struct sock *sk, int state)
{
	handle_state_change(sk, sk->__sk_common.skc_state, state);
	return 0;
}

/* --- kprobe strategy (state changes: tp_inet_sock_set_state) --- */

SEC("kretprobe/tcp_keepalive_timer")
int BPF_KRETPROBE(kretprobe_tcp_keepalive_timer)
{
	keepalive_timer_exit(0);
	return 0;
}

/* --- staged events (--states, --all) --- */

/* Sends this CPU's staged events. Not attached: userspace runs it on each
 * CPU in turn (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU, an interrupt
 * on that CPU), then reads the ring. Returns 1 when it interrupted a
 * program adding to a batch: try again. */
SEC("raw_tp")
int flush_batches(void *ctx)
{
	__u32 zero = 0;
	struct state_batch *sb = bpf_map_lookup_elem(&state_batches, &zero);
	struct event_batch *eb = bpf_map_lookup_elem(&event_batches, &zero);
	int busy = 0;

	if (sb) {
		if (sb->busy)
			busy = 1;
		else
			send_state_batch(sb);
	}
	if (eb) {
		if (eb->busy)
			busy = 1;
		else
			send_event_batch(eb);
	}
	return busy;
}

/* --- protocol labels (--proto), on the cgroup v2 root --- */

SEC("cgroup_skb/ingress")
int cgroup_ingress(struct __sk_buff *skb)
{
	label_packet(skb);
	return 1;
}

SEC("cgroup_skb/egress")
int cgroup_egress(struct __sk_buff *skb)
{
	label_packet(skb);
	return 1;
}
