// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * katrace's kernel programs. One set of handlers; thin entry points per
 * attach strategy (fentry/fexit, kprobe/kretprobe, tracepoint). The loader
 * deletes the entry points of the strategies it does not use before loading.
 *
 * The hot path is the TCP state change: it runs for every connection on the
 * host. It keeps what it needs in per-socket storage and sends an event only
 * when something explains a connection's end (an idle FIN, a reset, an
 * error, the close of a socket already reported), unless --states or --all
 * asked for more.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "katrace.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

extern int CONFIG_HZ __kconfig;

/* Set by the loader before load; the verifier prunes what they disable. */
volatile const __u64 keepalive_timer_fn = 0;
volatile const __u32 idle_threshold_ms = 1000;
volatile const bool emit_states = false;
volatile const bool emit_all_closes = false;
volatile const bool filter_by_owner = false;
volatile const __u32 filter_pid = 0;
volatile const char filter_comm[KATRACE_COMM_LEN] = {};
volatile const __u32 filter_netns = 0;
volatile const bool filter_keepalive_only = false;
volatile const __u32 filter_port_count = 0;
volatile const __u16 filter_ports[KATRACE_MAX_PORTS] = {};
volatile const __u32 filter_cidr_count = 0;
volatile const struct cidr filter_cidrs[KATRACE_MAX_CIDRS] = {};
/* --container and --cgroup, resolved to cgroups by userspace. */
volatile const __u32 filter_cgroup_count = 0;
volatile const struct cgroup_filter filter_cgroups[KATRACE_MAX_CGROUPS] = {};
/* Owners come from tcp_recvmsg/tcp_sendmsg hooks into the owners map
 * (kernels before 6.4, which lack the sock_*_length tracepoints). */
volatile const bool owners_by_cookie = false;
/* Wake the reader each time this much more is waiting (ring size / 8). */
volatile const __u64 wakeup_bytes = 512 << 10;

/* Force the event type into BTF so bpf2go -type can generate it. */
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* the loader sets --ring-size */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* Events the ring buffer had no room for, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sock_infos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct timer_run);
} timer_runs SEC(".maps");

/* Keepalive probes sent and not yet seen answered, by socket cookie. Only
 * keepalive timer runs touch it, and they are rare. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct probe_out);
} probes_out SEC(".maps");

/* Socket inodes owned by the processes --pid/--comm select: lets events
 * that run outside the owner (timers, softirq) pass the owner filter.
 * Filled here from the owner's own syscalls and by userspace from /proc. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} owned_inodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

static __always_inline __u32 jiffies_to_ms(__u64 j)
{
	return j * 1000 / CONFIG_HZ;
}

/* Milliseconds from a 32-bit jiffies stamp to now. */
static __always_inline __u32 ms_since(__u64 now_jiffies, __u32 stamp)
{
	__s32 delta = (__u32)now_jiffies - stamp;

	return delta > 0 ? jiffies_to_ms(delta) : 0;
}

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&lost_events, &zero);

	if (lost)
		*lost += 1;
}

static __always_inline struct event *reserve_event(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct event *e;
	__u32 depth;

	if (!s)
		return NULL;
	depth = s->depth;
	if (depth >= KATRACE_SCRATCH_DEPTH) {
		count_lost();
		return NULL;
	}
	s->depth = depth + 1;
	e = &s->ev[depth & (KATRACE_SCRATCH_DEPTH - 1)];
	__builtin_memset(e, 0, sizeof(*e));
	return e;
}

static __always_inline void release_event(void)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (s && s->depth > 0)
		s->depth--;
}

static __always_inline void discard_event(struct event *e)
{
	release_event();
}

static __always_inline void submit_event(struct event *e)
{
	/* Wake the reader only when the backlog crosses another wakeup_bytes
	 * (it also polls every 100 ms): a wakeup per event costs an
	 * inter-processor interrupt per event. */
	__u64 rec = sizeof(*e) + 8;
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + rec;
	__u64 flags = avail / wakeup_bytes != (avail - rec) / wakeup_bytes ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_output(&events, e, sizeof(*e), flags))
		count_lost();
	release_event();
}

static __always_inline __u32 sock_inode(struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);
	struct socket_alloc *alloc;

	if (!sock)
		return 0;
	alloc = container_of(sock, struct socket_alloc, socket);
	return BPF_CORE_READ(alloc, vfs_inode.i_ino);
}

/* A field of p: a plain load where p is a BTF pointer (tp_btf and fentry
 * arguments: about a nanosecond), a probe read otherwise (the keepalive
 * timer's container_of). direct is a constant in every caller. */
#define RD(direct, p, field) ((direct) ? (p)->field : BPF_CORE_READ(p, field))

/* Whether cg is one of the filter's cgroups or below one: its ancestor at
 * the filter's level is that cgroup. */
static __always_inline bool cgroup_wanted(struct cgroup *cg)
{
	int level = BPF_CORE_READ(cg, level);

	for (__u32 i = 0; i < KATRACE_MAX_CGROUPS; i++) {
		struct cgroup *anc = NULL;
		__u32 want;

		if (i >= filter_cgroup_count)
			break;
		want = filter_cgroups[i].level;
		if (want > (__u32)level)
			continue;
		if (bpf_core_field_exists(cg->ancestors))
			bpf_core_read(&anc, sizeof(anc), &cg->ancestors[want & 0xff]);
		else if (want == (__u32)level)
			anc = cg;
		if (anc && BPF_CORE_READ(anc, kn, id) == filter_cgroups[i].id)
			return true;
	}
	return false;
}

/* The socket's cgroup, and whether the cgroup filter keeps it. A timewait
 * socket has none (it is not a struct sock): left 0. */
static __always_inline void fill_cgroup(struct event *e, struct sock *sk)
{
	struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);

	if (!cg)
		return;
	e->cgroup_id = BPF_CORE_READ(cg, kn, id);
	if (filter_cgroup_count && cgroup_wanted(cg))
		e->flags |= EVF_CGROUP_WANTED;
}

/* The socket's identity, addresses and counters. */
static __always_inline void fill_socket(struct event *e, struct sock *sk, bool full, bool direct)
{
	__u16 family = RD(direct, sk, __sk_common.skc_family);
	unsigned long flags = RD(direct, sk, __sk_common.skc_flags);
	struct net *net = RD(direct, sk, __sk_common.skc_net.net);

	e->sport = RD(direct, sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(RD(direct, sk, __sk_common.skc_dport));
	if (family == AF_INET6) {
		e->family = 6;
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		e->family = 4;
		*(__u32 *)e->saddr = RD(direct, sk, __sk_common.skc_rcv_saddr);
		*(__u32 *)e->daddr = RD(direct, sk, __sk_common.skc_daddr);
	}
	e->netns = RD(direct, net, ns.inum);
	if (flags & (1UL << SOCK_KEEPOPEN))
		e->flags |= EVF_KEEPOPEN;
	if (!full)
		return;
	fill_cgroup(e, sk);

	struct tcp_sock *tp = direct ? bpf_skc_to_tcp_sock(sk) : (struct tcp_sock *)sk;

	if (!tp)
		return;

	__u64 now_jiffies = bpf_jiffies64();
	__u32 ka_time = RD(direct, tp, keepalive_time);
	__u32 ka_intvl = RD(direct, tp, keepalive_intvl);
	__u8 ka_probes = RD(direct, tp, keepalive_probes);
	__u8 shutdown = RD(direct, sk, sk_shutdown);

	if (!ka_time)
		ka_time = RD(direct, net, ipv4.sysctl_tcp_keepalive_time);
	if (!ka_intvl)
		ka_intvl = RD(direct, net, ipv4.sysctl_tcp_keepalive_intvl);
	if (!ka_probes)
		ka_probes = RD(direct, net, ipv4.sysctl_tcp_keepalive_probes);
	e->keepalive_idle_ms = jiffies_to_ms(ka_time);
	e->keepalive_intvl_ms = jiffies_to_ms(ka_intvl);
	e->keepalive_probes = ka_probes;

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
	e->sock_ino = sock_inode(sk);
	if (flags & (1UL << SOCK_DEAD))
		e->flags |= EVF_ORPHAN;
	if (flags & (1UL << SOCK_DONE))
		e->flags |= EVF_PEER_FIN;
	if (shutdown & 1) /* RCV_SHUTDOWN */
		e->flags |= EVF_RCV_SHUTDOWN;
	if (shutdown & 2) /* SEND_SHUTDOWN */
		e->flags |= EVF_SEND_SHUTDOWN;
}

/* What the socket's storage remembers: owner, start, first FIN. */
static __always_inline void fill_info(struct event *e, struct sock_info *info)
{
	if (!info)
		return;
	if (info->owner_pid) {
		e->flags |= EVF_OWNER;
		e->pid = info->owner_pid;
		__builtin_memcpy(e->comm, info->owner_comm, sizeof(e->comm));
	}
	if (info->start_ns) {
		e->flags |= EVF_START_KNOWN;
		e->start_ns = info->start_ns;
	}
	if (info->established)
		e->flags |= EVF_ESTABLISHED;
	e->role = info->role;
	e->proto = info->proto;
	e->requests = info->requests;
	if (!e->sport)
		e->sport = info->sport;
	e->fin_side = info->fin_side;
	e->fin_ns = info->fin_ns;
	e->fin_idle_ms = info->fin_idle_ms;
	if (info->reset_sent)
		e->flags |= EVF_RESET_SENT_BEFORE;
	if (info->reset_received)
		e->flags |= EVF_RESET_RECEIVED_BEFORE;
}

static __always_inline bool addr_in_cidr(const __u8 *addr, __u8 family, __u32 i)
{
	__u8 bits = filter_cidrs[i].prefix_len;

	if (filter_cidrs[i].family != family)
		return false;
	for (int b = 0; b < 16; b++) {
		__u8 mask;

		if (bits == 0)
			return true;
		mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[b] ^ filter_cidrs[i].addr[b]) & mask)
			return false;
		bits = bits >= 8 ? bits - 8 : 0;
	}
	return true;
}

static __always_inline bool owner_is_filtered(__u32 pid, const char *comm)
{
	if (filter_pid && pid != filter_pid)
		return false;
	if (filter_comm[0]) {
		for (int i = 0; i < KATRACE_COMM_LEN; i++) {
			if (comm[i] != filter_comm[i])
				return false;
			if (!comm[i])
				break;
		}
	}
	return true;
}

static __always_inline bool current_is_filtered_owner(void)
{
	char comm[KATRACE_COMM_LEN] = {};

	if (filter_comm[0])
		bpf_get_current_comm(comm, sizeof(comm));
	return owner_is_filtered(bpf_get_current_pid_tgid() >> 32, comm);
}

/*
 * The in-kernel filters, on the event's already-filled socket fields.
 * owner_ctx says the current task holds the socket (its syscall).
 */
static __always_inline bool event_wanted(struct event *e, bool owner_ctx)
{
	if (filter_netns && e->netns != filter_netns)
		return false;
	if (filter_keepalive_only && !(e->flags & EVF_KEEPOPEN))
		return false;
	if (filter_cgroup_count && !(e->flags & EVF_CGROUP_WANTED))
		return false;
	if (filter_port_count) {
		bool hit = false;

		for (__u32 i = 0; i < KATRACE_MAX_PORTS; i++) {
			if (i >= filter_port_count)
				break;
			if (e->sport == filter_ports[i] || e->dport == filter_ports[i])
				hit = true;
		}
		if (!hit)
			return false;
	}
	if (filter_cidr_count) {
		bool hit = false;

		for (__u32 i = 0; i < KATRACE_MAX_CIDRS; i++) {
			if (i >= filter_cidr_count)
				break;
			if (addr_in_cidr(e->saddr, e->family, i) || addr_in_cidr(e->daddr, e->family, i))
				hit = true;
		}
		if (!hit)
			return false;
	}
	if (filter_by_owner) {
		__u32 ino = e->sock_ino;
		__u8 one = 1;

		/* In the owner's own syscall, the owner is the current task. */
		if (owner_ctx) {
			if (!current_is_filtered_owner())
				return false;
			if (ino)
				bpf_map_update_elem(&owned_inodes, &ino, &one, BPF_ANY);
			return true;
		}
		/* Elsewhere, the owner remembered in the socket's storage... */
		if (e->flags & EVF_OWNER)
			return owner_is_filtered(e->pid, e->comm);
		/* ...or the sockets userspace found in the owner's /proc fds. */
		if (!ino || !bpf_map_lookup_elem(&owned_inodes, &ino))
			return false;
	}
	return true;
}

static __always_inline void fill_owner_by_cookie(struct event *e)
{
	/* On the stack: older verifiers refuse map keys in ring buffer memory. */
	__u64 cookie = e->cookie;
	struct owner *o;

	if (!owners_by_cookie || (e->flags & EVF_OWNER) || !cookie)
		return;
	o = bpf_map_lookup_elem(&owners, &cookie);
	if (!o)
		return;
	e->flags |= EVF_OWNER;
	e->pid = o->pid;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
}

static __always_inline struct timer_run *current_timer_run(__u64 sk)
{
	__u32 zero = 0;
	struct timer_run *run = bpf_map_lookup_elem(&timer_runs, &zero);

	if (run && run->timer && run->sk == sk)
		return run;
	return NULL;
}

/* Fill, filter and submit an event about a full TCP socket. */
static __always_inline void submit_sock_event(struct event *e, struct sock *sk,
					      struct sock_info *info, bool owner_ctx)
{
	struct timer_run *run = current_timer_run((__u64)sk);

	fill_socket(e, sk, true, true);
	fill_info(e, info);
	if (info && info->fin_side == FIN_REMOTE)
		e->written_after_fin = BPF_CORE_READ((struct tcp_sock *)sk, write_seq) - info->write_seq_at_fin;
	if (owner_ctx) {
		e->flags |= EVF_OWNER | EVF_OWNER_CONTEXT;
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	fill_owner_by_cookie(e);
	if (run) {
		e->flags |= EVF_IN_KEEPALIVE_TIMER;
		e->timer_state = run->state_before;
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
}

static __always_inline void handle_state_change(struct sock *sk, int old, int new)
{
	struct sock_info *info;
	bool owner_ctx;
	/* Read the clock only when something needs it: most changes don't. */
	__u64 now = 0;
#define NOW() (now ? now : (now = bpf_ktime_get_ns()))

	if (old == new || old == TCP_LISTEN || new == TCP_LISTEN)
		return;
	owner_ctx = owned_by_user(sk);

	info = bpf_sk_storage_get(&sock_infos, sk, 0,
				  new == TCP_CLOSE ? 0 : BPF_SK_STORAGE_GET_F_CREATE);
	if (info) {
		__u16 sport = sk->__sk_common.skc_num;

		if (owner_ctx)
			remember_owner(info);
		if (sport)
			info->sport = sport;
		if (!info->start_ns &&
		    (new == TCP_SYN_SENT || new == TCP_SYN_RECV || new == TCP_ESTABLISHED))
			info->start_ns = NOW();
		if (new == TCP_SYN_SENT)
			info->role = ROLE_ACTIVE;
		if (new == TCP_ESTABLISHED) {
			if (old == TCP_SYN_RECV && !info->role)
				info->role = ROLE_PASSIVE;
			info->established = 1;
			/* The keepalive timer can only read the cookie, not make
			 * one: make it while we hold a proper socket pointer. */
			bpf_get_socket_cookie(sk);
		}
	}

	struct tcp_sock *tp = NULL;

	if (info && !info->fin_side && (new == TCP_FIN_WAIT1 || new == TCP_CLOSE_WAIT))
		tp = bpf_skc_to_tcp_sock(sk);
	if (tp) {
		__u64 now_jiffies = bpf_jiffies64();
		__u32 idle;

		idle = min_u32(ms_since(now_jiffies, tp->lsndtime),
			       ms_since(now_jiffies, tp->inet_conn.icsk_ack.lrcvtime));
		info->fin_side = new == TCP_FIN_WAIT1 ? FIN_LOCAL : FIN_REMOTE;
		info->fin_ns = NOW();
		info->fin_idle_ms = idle;
		info->write_seq_at_fin = tp->write_seq;
		if (idle >= idle_threshold_ms && old == TCP_ESTABLISHED) {
			struct event *e = reserve_event();

			if (e) {
				e->ts_ns = NOW();
				e->kind = EV_IDLE_FIN;
				e->cookie = bpf_get_socket_cookie(sk);
				e->state = new;
				e->old_state = old;
				submit_sock_event(e, sk, info, owner_ctx);
			}
		}
	}

	if (emit_states) {
		struct event *e = reserve_event();

		if (e) {
			e->ts_ns = NOW();
			e->kind = EV_STATE;
			e->cookie = bpf_get_socket_cookie(sk);
			e->state = new;
			e->old_state = old;
			submit_sock_event(e, sk, info, owner_ctx);
		}
	}

	if (new == TCP_CLOSE) {
		struct timer_run *run = current_timer_run((__u64)sk);
		/* A close in the owner's syscall from a state that needs a reset is
		 * an abort (SO_LINGER 0, unread data): the kernel sends the RST
		 * right after, and userspace waits for it to give the verdict. */
		bool abort = owner_ctx && ((1 << old) & ((1 << TCP_ESTABLISHED) | (1 << TCP_CLOSE_WAIT) |
							 (1 << TCP_FIN_WAIT1) | (1 << TCP_SYN_RECV)));
		bool wanted = emit_all_closes || (info && info->reported) || run || abort;

		if (run)
			run->closed = 1;
		if (!wanted && (sk->__sk_common.skc_flags & (1UL << SOCK_KEEPOPEN))) {
			__u64 cookie = bpf_get_socket_cookie(sk);

			if (bpf_map_lookup_elem(&probes_out, &cookie)) {
				bpf_map_delete_elem(&probes_out, &cookie);
				wanted = true;
			}
		}
		if (wanted) {
			struct event *e = reserve_event();

			if (e) {
				e->ts_ns = NOW();
				e->kind = EV_CLOSE;
				e->cookie = bpf_get_socket_cookie(sk);
				e->state = new;
				e->old_state = old;
				submit_sock_event(e, sk, info, owner_ctx);
			}
		}
	}
#undef NOW
}

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
	e = reserve_event();
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->cookie = bpf_get_socket_cookie(sk);
	e->state = state;
	e->reason = reason;
	if (kernel_reason)
		e->flags |= EVF_KERNEL_REASON;
	if (!full) {
		e->flags |= EVF_TIMEWAIT;
		fill_socket(e, sk, false, true);
		if (!event_wanted(e, false)) {
			discard_event(e);
			return;
		}
		submit_event(e);
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
	e = reserve_event();
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = EV_ERROR;
	e->cookie = bpf_get_socket_cookie(sk);
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	submit_sock_event(e, sk, info, owned_by_user(sk));
}

/* --- tcp_keepalive_timer: entry and exit, for every strategy --- */

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
			bpf_map_delete_elem(&probes_out, &cookie);
		}
	}
	if (after <= before && !acked)
		return;
	if (after > before && cookie) {
		struct probe_out sent = {
			.sent_jiffies = bpf_jiffies64(),
			.probes = after,
		};

		bpf_map_update_elem(&probes_out, &cookie, &sent, BPF_ANY);
	}

	e = reserve_event();
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = EV_KEEPALIVE;
	e->cookie = cookie;
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	fill_socket(e, sk, true, false);
	e->probes_before = before;
	e->probes_after = after;
	e->acked_probes = acked;
	e->probe_rtt_ms = rtt_ms;
	e->flags |= EVF_IN_KEEPALIVE_TIMER;
	fill_owner_by_cookie(e);
	if (!event_wanted(e, false)) {
		discard_event(e);
		return;
	}
	submit_event(e);
}

/* Gives every TCP socket that exists at start a cookie, so that keepalive
 * timer runs on sockets older than katrace can be told apart. */
SEC("iter/tcp")
int prime_cookies(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;

	if (skc)
		bpf_get_socket_cookie(skc);
	return 0;
}

/* --- tracepoint strategy --- */

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(tp_timer_expire_entry, struct timer_list *timer)
{
	if ((__u64)timer->function != keepalive_timer_fn)
		return 0;
	keepalive_timer_enter((__u64)timer);
	return 0;
}

SEC("tp_btf/timer_expire_exit")
int BPF_PROG(tp_timer_expire_exit, struct timer_list *timer)
{
	if ((__u64)timer->function != keepalive_timer_fn)
		return 0;
	keepalive_timer_exit((__u64)timer);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	handle_state_change(sk, oldstate, newstate);
	return 0;
}

/* --- fentry strategy --- */

SEC("fentry/tcp_keepalive_timer")
int BPF_PROG(fentry_tcp_keepalive_timer, struct timer_list *timer)
{
	keepalive_timer_enter((__u64)timer);
	return 0;
}

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

/* --- kprobe strategy: the timer by kprobe; state changes use the
 * inet_sock_set_state tracepoint, because kprobe programs cannot use
 * per-socket storage. --- */

SEC("kprobe/tcp_keepalive_timer")
int BPF_KPROBE(kprobe_tcp_keepalive_timer, struct timer_list *timer)
{
	keepalive_timer_enter((__u64)timer);
	return 0;
}

SEC("kretprobe/tcp_keepalive_timer")
int BPF_KRETPROBE(kretprobe_tcp_keepalive_timer)
{
	keepalive_timer_exit(0);
	return 0;
}

/* --- protocol labels: the first payload bytes of each packet, until the
 * protocol is known (HTTP/1.x: every packet, to count requests). Payload is
 * looked at, never copied out. --- */

static __always_inline bool is_http_method(const char *h)
{
	/* The first four bytes of the methods of RFC 9110 (and PATCH). */
	return (h[0] == 'G' && h[1] == 'E' && h[2] == 'T' && h[3] == ' ') ||
	       (h[0] == 'P' && h[1] == 'O' && h[2] == 'S' && h[3] == 'T') ||
	       (h[0] == 'P' && h[1] == 'U' && h[2] == 'T' && h[3] == ' ') ||
	       (h[0] == 'H' && h[1] == 'E' && h[2] == 'A' && h[3] == 'D') ||
	       (h[0] == 'D' && h[1] == 'E' && h[2] == 'L' && h[3] == 'E') ||
	       (h[0] == 'P' && h[1] == 'A' && h[2] == 'T' && h[3] == 'C') ||
	       (h[0] == 'O' && h[1] == 'P' && h[2] == 'T' && h[3] == 'I') ||
	       (h[0] == 'C' && h[1] == 'O' && h[2] == 'N' && h[3] == 'N') ||
	       (h[0] == 'T' && h[1] == 'R' && h[2] == 'A' && h[3] == 'C');
}

static __always_inline void label_packet(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct sock_info *info;
	char head[8] = {};
	__u32 off;
	__u8 b;

	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return;
	info = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (!info || info->proto > PROTO_HTTP1)
		return;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &b, 1))
			return;
		off = (b & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		off = 40;
	} else {
		return;
	}
	if (bpf_skb_load_bytes(skb, off + 12, &b, 1))
		return;
	off += (b >> 4) * 4;
	if (off > 120 || skb->len < off + 8) {
		/* No payload, or too little to tell. */
		if (skb->len > off + 0 && skb->len < off + 8 && info->proto == PROTO_UNKNOWN)
			info->proto = PROTO_OTHER;
		return;
	}
	if (bpf_skb_load_bytes(skb, off, head, 8))
		return;
	if (is_http_method(head)) {
		info->proto = PROTO_HTTP1;
		info->requests++;
		return;
	}
	if (info->proto != PROTO_UNKNOWN)
		return;
	if (head[0] == 'H' && head[1] == 'T' && head[2] == 'T' && head[3] == 'P' && head[4] == '/' &&
	    head[5] == '1')
		info->proto = PROTO_HTTP1;
	else if (head[0] == 'P' && head[1] == 'R' && head[2] == 'I' && head[3] == ' ' && head[4] == '*')
		info->proto = PROTO_HTTP2;
	else if (head[0] == 0x16 && head[1] == 0x03 && head[2] <= 0x04)
		info->proto = PROTO_TLS;
	else
		info->proto = PROTO_OTHER;
}

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

/* --- every strategy --- */

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

/* The owner's own reads and writes name the owner of sockets it accepted
 * (6.4+; optional). Only a socket whose owner is not known yet pays more
 * than a lookup. */
static __always_inline void learn_owner(struct sock *sk)
{
	struct sock_info *info;

	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	info = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (info && info->owner_pid != bpf_get_current_pid_tgid() >> 32)
		remember_owner(info);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv_length, struct sock *sk, int ret, int flags)
{
	learn_owner(sk);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_sock_send_length, struct sock *sk, int ret, int flags)
{
	learn_owner(sk);
	return 0;
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

SEC("fentry/tcp_recvmsg")
int BPF_PROG(fentry_tcp_recvmsg, struct sock *sk)
{
	learn_owner_by_cookie(sk);
	return 0;
}

SEC("fentry/tcp_sendmsg")
int BPF_PROG(fentry_tcp_sendmsg, struct sock *sk)
{
	learn_owner_by_cookie(sk);
	return 0;
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kprobe_tcp_recvmsg, struct sock *sk)
{
	learn_owner_by_cookie(sk);
	return 0;
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe_tcp_sendmsg, struct sock *sk)
{
	learn_owner_by_cookie(sk);
	return 0;
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(tp_inet_sk_error_report, const struct sock *sk)
{
	handle_error_report((struct sock *)sk);
	return 0;
}
