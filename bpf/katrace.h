/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The one event layout shared by the kernel programs and Go (bpf2go -type
 * event generates the Go struct; tracer/decode.go reads it at fixed offsets).
 * Add members only at the end and keep the struct free of implicit padding.
 */
#ifndef __KATRACE_H__
#define __KATRACE_H__

#define KATRACE_COMM_LEN 16
#define KATRACE_MAX_PORTS 8
#define KATRACE_MAX_CIDRS 8
#define KATRACE_MAX_CGROUPS 8

enum event_kind {
	/* A TCP state change; sent only with --states. */
	EV_STATE = 1,
	/* The first FIN of a connection, either way, after at least
	 * --idle-threshold without data. */
	EV_IDLE_FIN = 2,
	/* The socket reached CLOSE; sent for every socket with --all, else only
	 * for sockets that had an event sent before. */
	EV_CLOSE = 3,
	EV_RESET_SENT = 4,
	EV_RESET_RECEIVED = 5,
	/* The kernel reported a socket error (sk_err). */
	EV_ERROR = 6,
	/* A run of tcp_keepalive_timer that changed something: a probe sent, an
	 * earlier probe answered, or the socket closed. */
	EV_KEEPALIVE = 7,
	/* A timewait socket's timer expired in substate FIN_WAIT2: the peer
	 * never sent its FIN during the linger (lib/timewait.h). */
	EV_TIMEWAIT_EXPIRY = 8,
};

enum event_flags {
	/* pid and comm are the socket's owner (process context, or remembered
	 * in the socket's storage); otherwise they are zero. */
	EVF_OWNER = 1 << 0,
	/* SO_KEEPALIVE is on. */
	EVF_KEEPOPEN = 1 << 1,
	/* The event happened inside tcp_keepalive_timer for this socket. */
	EVF_IN_KEEPALIVE_TIMER = 1 << 2,
	/* reason is the kernel's own enum sk_rst_reason (6.10+). */
	EVF_KERNEL_REASON = 1 << 3,
	/* The socket was a timewait socket (the full socket is gone). */
	EVF_TIMEWAIT = 1 << 4,
	/* The socket was orphaned (closed by its process, SOCK_DEAD). */
	EVF_ORPHAN = 1 << 5,
	/* The peer's FIN has been received (RCV_SHUTDOWN). */
	EVF_RCV_SHUTDOWN = 1 << 6,
	/* Our FIN has been sent or queued (SEND_SHUTDOWN). */
	EVF_SEND_SHUTDOWN = 1 << 7,
	/* start_ns is known. */
	EVF_START_KNOWN = 1 << 8,
	/* A reset was sent or received on this socket earlier. */
	EVF_RESET_SENT_BEFORE = 1 << 9,
	EVF_RESET_RECEIVED_BEFORE = 1 << 10,
	/* The connection reached ESTABLISHED (else the idle times mean nothing). */
	EVF_ESTABLISHED = 1 << 11,
	/* The event ran in the owner's syscall (the socket was locked by it). */
	EVF_OWNER_CONTEXT = 1 << 12,
	/* SO_LINGER is on with a zero timeout: close() aborts. */
	EVF_LINGER_ZERO = 1 << 13,
	/* The peer's FIN arrived (SOCK_DONE; a local close() sets
	 * RCV_SHUTDOWN without one). */
	EVF_PEER_FIN = 1 << 14,
	/* A dual-stack IPv6 socket talking IPv4 (::ffff:a.b.c.d): family and
	 * addresses are its IPv4 ones. */
	EVF_V4_MAPPED = 1 << 15,
};

/* goodbye_bytes of a goodbye whose size is not known. */
#define GOODBYE_SIZE_UNKNOWN 0xffffffff

enum fin_side {
	FIN_NONE = 0,
	FIN_LOCAL = 1,
	FIN_REMOTE = 2,
};

struct event {
	/* bpf_ktime_get_ns() when the event happened. */
	__u64 ts_ns;
	/* Socket cookie: the identity of the socket. */
	__u64 cookie;
	__u64 bytes_sent;
	__u64 bytes_received;
	/* When the connection began (SYN sent or received, else ESTABLISHED),
	 * if seen (EVF_START_KNOWN). */
	__u64 start_ns;
	/* When the first FIN went either way (fin_side), 0 if none yet. */
	__u64 fin_ns;
	__u32 pid;
	__u32 netns;
	/* Effective keepalive settings (socket's own, else the netns sysctls). */
	__u32 keepalive_idle_ms;
	__u32 keepalive_intvl_ms;
	/* Milliseconds since: last data sent, last data received, last ACK. */
	__u32 since_send_ms;
	__u32 since_recv_ms;
	__u32 since_ack_ms;
	/* Idle time (no data either way) when the first FIN went. */
	__u32 fin_idle_ms;
	/* enum sk_rst_reason when EVF_KERNEL_REASON. */
	__u32 reason;
	/* sk_err at the event (positive errno). */
	__s32 sk_err;
	/* Bytes written but not yet acknowledged. */
	__u32 unacked;
	/* For EV_KEEPALIVE with acked_probes: ms from the probe to its ACK. */
	__u32 probe_rtt_ms;
	/* Bytes written by the application after the peer's FIN arrived. */
	__u32 written_after_fin;
	__u32 sock_ino;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 flags;
	__u8 kind;
	/* 4 or 6 */
	__u8 family;
	/* TCP state at the event: the new state for EV_STATE and EV_CLOSE. */
	__u8 state;
	__u8 old_state;
	__u8 probes_before;
	__u8 probes_after;
	/* Effective keepalive probe count. */
	__u8 keepalive_probes;
	__u8 fin_side;
	/* Unanswered probes that the peer has now answered (EV_KEEPALIVE). */
	__u8 acked_probes;
	/* Inside a keepalive timer run (EVF_IN_KEEPALIVE_TIMER): the TCP
	 * state before the run, which says why the socket reached CLOSE
	 * (FIN_WAIT2 for the orphan linger). */
	__u8 state_before_timer;
	char comm[KATRACE_COMM_LEN];
	/* Bytes received that the application never read (rcv_nxt -
	 * copied_seq): close() with unread data aborts the connection. */
	__u32 unread;
	/* enum sock_role: who opened the connection, when seen. */
	__u8 role;
	/* enum proto: what the first payload bytes looked like. */
	__u8 proto;
	/* The socket's cgroup is one --container/--cgroup named, or below it
	 * (set only when that filter is on). */
	__u8 in_filtered_cgroup;
	__u8 pad;
	/* HTTP/1.x requests seen (proto PROTO_HTTP1). */
	__u32 requests;
	__u32 pad2;
	/* The socket's cgroup v2 id (the cgroup directory's inode, as
	 * bpf_get_current_cgroup_id names it); 0 when unknown (timewait
	 * sockets, kernels before 5.15). */
	__u64 cgroup_id;
	/* When the oldest unacknowledged data was first sent (first_tx_mstamp,
	 * bpf_ktime_get_ns clock); 0 when unknown. */
	__u64 first_tx_ns;
	/* TCP_USER_TIMEOUT (icsk_user_timeout), 0 when not set. */
	__u32 user_timeout_ms;
	/* EV_IDLE_FIN and later: the small write that ended the silence just
	 * before the FIN (a goodbye); 0 when none, GOODBYE_SIZE_UNKNOWN when
	 * its size is gone (acknowledged before our FIN). */
	__u32 goodbye_bytes;
	/* icsk_retransmits: retransmissions of the oldest unacknowledged data. */
	__u8 retransmits;
	__u8 pad3[7];
};

/* A TCP state change (EV_STATE, only with --states): what a state record
 * shows and the filters need, and nothing else. The busiest kind of event
 * costs least this way: built on the stack, no socket counters, half the
 * bytes of struct event. Sent as a sample of its own size, which is how
 * the reader tells it from struct event. Field names are struct event's. */
struct state_event {
	__u64 ts_ns;
	__u64 cookie;
	__u64 cgroup_id;
	__u32 pid;
	__u32 netns;
	__u32 sock_ino;
	/* HTTP/1.x requests seen (proto PROTO_HTTP1). */
	__u32 requests;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 flags;
	__u8 family;
	__u8 state;
	__u8 old_state;
	__u8 role;
	__u8 proto;
	__u8 in_filtered_cgroup;
	char comm[KATRACE_COMM_LEN];
	__u8 pad[4];
};

/* With --states or --all, events are staged per CPU and sent a batch at
 * a time, as one sample: the ring's lock, its interrupts-off section and
 * its cold lines are paid once a batch, not once an event (a 104-byte
 * record costs 77 ns staged, 249 sent alone on the machine in docs/
 * PERFORMANCE.md). State changes and other events have a batch each.
 * Userspace empties partial batches by running flush_batches on each CPU
 * and puts every event back in time order. A sample is the header and
 * count records. */
#define KATRACE_STATE_BATCH 32
#define KATRACE_STATE_BATCH_MAGIC 0x6b617362
struct state_batch {
	__u32 count;
	/* KATRACE_STATE_BATCH_MAGIC in a sample. */
	__u32 magic;
	struct state_event recs[KATRACE_STATE_BATCH];
	/* A state change is adding a record on this CPU: a flush that
	 * interrupts it leaves the batch alone. */
	__u32 busy;
	__u32 pad;
};

#define KATRACE_EVENT_BATCH 16
#define KATRACE_EVENT_BATCH_MAGIC 0x6b616562
struct event_batch {
	__u32 count;
	/* KATRACE_EVENT_BATCH_MAGIC in a sample. */
	__u32 magic;
	struct event recs[KATRACE_EVENT_BATCH];
	/* A program is adding a record on this CPU: a flush, or a program
	 * that interrupts it (a softirq), leaves the batch alone. */
	__u32 busy;
	__u32 pad;
};

enum proto {
	PROTO_UNKNOWN = 0,
	PROTO_HTTP1 = 1,
	PROTO_HTTP2 = 2,
	PROTO_TLS = 3,
	/* Payload seen, none of the above: not looked at again. */
	PROTO_OTHER = 4,
};

enum sock_role {
	ROLE_UNKNOWN = 0,
	/* accepted: the local end is the service */
	ROLE_PASSIVE = 1,
	/* connected: the remote end is the service */
	ROLE_ACTIVE = 2,
};

/* An address filter: IPv4 in the first 4 bytes of addr. */
struct cidr {
	__u8 addr[16];
	__u8 prefix_len;
	__u8 family;
	__u8 pad[2];
};

/* A cgroup filter: keep sockets whose cgroup is this one (id, level
 * levels below the root) or below it. */
struct cgroup_filter {
	__u64 id;
	__u32 level;
	__u32 pad;
};

/*
 * What the loader sets before load (tracer/config.go), in one read-only
 * global: the verifier prunes the code that a setting disables.
 */
struct config {
	/* Each CPU looks at the ring once it has sent this much since it last
	 * did (ring size / 32, less with more than 8 CPUs), and wakes the
	 * reader when at least wakeup_backlog bytes are waiting there (the
	 * reader also polls every 100 ms). */
	__u64 wakeup_bytes;
	/* The kernel's tick rate, for jiffies: from Go, which reads the kernel
	 * config or measures it (a __kconfig extern fails without a config
	 * file, as on Debian and in most containers). */
	__u32 hz;
	/* A first FIN after this long without data is an EV_IDLE_FIN. */
	__u32 idle_threshold_ms;
	/* --pid, --netns: 0 for any. */
	__u32 filter_pid;
	__u32 filter_netns;
	/* How many of filter_ports and filter_cidrs are set. */
	__u32 filter_port_count;
	__u32 filter_cidr_count;
	__u16 filter_ports[KATRACE_MAX_PORTS];
	struct cidr filter_cidrs[KATRACE_MAX_CIDRS];
	/* --container and --cgroup, resolved to cgroups by userspace. */
	struct cgroup_filter filter_cgroups[KATRACE_MAX_CGROUPS];
	__u32 filter_cgroup_count;
	/* --comm, NUL-terminated: "" for any. */
	char filter_comm[KATRACE_COMM_LEN];
	/* Send EV_STATE (--states), every EV_CLOSE (--all). */
	bool emit_states;
	bool emit_all_closes;
	/* --pid or --comm is set. */
	bool filter_by_owner;
	/* --keepalive-only. */
	bool filter_keepalive_only;
	/* Owners come from tcp_recvmsg/tcp_sendmsg hooks into the owners map
	 * (kernels before 6.4, which lack the sock_*_length tracepoints). */
	bool owners_by_cookie;
	/* Events go through struct state_batch and struct event_batch
	 * (--states or --all, and the kernel runs a program on a chosen CPU
	 * for userspace). */
	bool stage_events;
	__u8 pad[6];
	/* tcp_keepalive_timer's and tw_timer_handler's addresses when the
	 * loader knew them before load, 0 when the programs learn them (lib/
	 * keepalive.h, lib/timewait.h): a constant costs the timer programs,
	 * which run for every timer on the host, no memory read. */
	__u64 keepalive_timer_fn;
	__u64 tw_timer_fn;
	/* A quarter of a ring of 1 MiB or more; 0 (wake at every look) for a
	 * smaller one, where waiting for a backlog loses events. */
	__u64 wakeup_backlog;
};

/* Per-socket memory kept in the kernel (BPF socket storage), only for
 * sockets something was reported about or labelled: what must not be
 * lost to another socket taking over the slot (struct sock_slot). */
struct sock_info {
	/* The first FIN, when it was idle (an EV_IDLE_FIN was sent). */
	__u64 fin_ns;
	/* snd_nxt-equivalent (write_seq) when the peer's FIN arrived, to tell
	 * whether we wrote after it. */
	__u32 write_seq_at_fin;
	__u32 fin_idle_ms;
	__u32 owner_pid;
	char owner_comm[KATRACE_COMM_LEN];
	__u8 fin_side;
	/* An event about this socket reached userspace: its close must too. */
	__u8 reported;
	__u8 reset_sent;
	__u8 reset_received;
	__u8 proto;
	__u32 requests;
	/* Size of the goodbye before an idle first FIN, 0 when none (only
	 * an idle FIN has one, and an idle FIN makes this storage). */
	__u32 goodbye_bytes;
};

/* What tcp_keepalive_timer's entry saw, for its exit (one per CPU: timer
 * callbacks do not nest on a CPU). */
struct timer_run {
	__u64 timer;
	__u64 sk;
	__u64 cookie;
	__u8 probes_before;
	__u8 state_before;
	__u8 closed;
	__u8 pad[5];
};

/* The owner's last read against its last write, for the goodbye guard. */
enum read_order {
	READ_ORDER_UNKNOWN = 0,
	/* Read after its last write (6.4+: the read and write tracepoints). */
	READ_AFTER_WRITE = 1,
	/* Wrote after its last read. */
	WRITE_AFTER_READ = 2,
	/* Read when write_seq was write_seq_at_read (before 6.4). */
	READ_AT_WRITE_SEQ = 3,
};

/* What katrace keeps about every socket without allocating: one entry of
 * the sock_slots array, chosen by the socket's cookie (lib/slot.h), held
 * from the socket's first state change (or syscall) to its CLOSE. cookie
 * says whose it is (cookies are never reused); a socket whose entry is
 * held by another is reported without what the entry would hold. */
#define KATRACE_SOCK_SLOTS 16384
struct sock_slot {
	__u64 cookie;
	/* When the connection began (SYN sent or received), in jiffies; 0 if
	 * not seen. */
	__u64 start_jiffies;
	/* The first FIN, either way: when (jiffies), which side, the idle time
	 * then, and our write_seq then (to tell writes after the peer's FIN). */
	__u64 fin_jiffies;
	__u32 fin_idle_ms;
	__u32 write_seq_at_fin;
	/* The process that last used the socket in a system call. */
	__u32 pid;
	/* Whether the owner read data after its last write (enum
	 * read_order): at a FIN, it had read an answer to its last request
	 * before the silence; a client still waiting for a slow answer has
	 * not. Before 6.4 (no write hook) our write_seq at the last read
	 * tells the same. */
	__u32 write_seq_at_read;
	__u8 role;
	__u8 established;
	__u8 fin_side;
	__u8 read_order;
	char comm[KATRACE_COMM_LEN];
	/* The socket's netns inode, once an event needed it: the line it is
	 * on in struct net also holds the netns refcount, which every new
	 * socket writes. */
	__u32 netns;
};

/* The process that last read or wrote a socket, by cookie (kernels
 * without the sock_recv_length tracepoint). */
struct owner {
	__u32 pid;
	char comm[KATRACE_COMM_LEN];
};

/* Where events are built (lib/ring.h). A program can be interrupted by
 * another on the same CPU (softirq), hence a few slots. */
#define KATRACE_SCRATCH_DEPTH 4
struct scratch {
	struct event ev[KATRACE_SCRATCH_DEPTH];
	__u32 depth;
	/* Bytes this CPU has sent since it last woke the reader. */
	__u32 unwoken;
};

/* A keepalive probe still waiting for its answer. */
struct probe_out {
	__u64 sent_jiffies;
	__u8 probes;
	__u8 pad[7];
};

#endif /* __KATRACE_H__ */
