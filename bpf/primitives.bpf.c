// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * What the kernel programs' building blocks cost on this machine: one
 * program per primitive on the TCP state change tracepoint, each attached
 * alone under the churn (package primitives measures them with bpf_stats,
 * net of the empty one). They explain katrace's own costs (docs/
 * PERFORMANCE.md): what a ring sample, a clock read or a cold line costs
 * here, whatever katrace does with them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The reader wakes every this many bytes a CPU sent, as katrace's does
 * with its default 4 MiB ring (ring / 32). */
#define WAKEUP_BYTES (128 << 10)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} samples SEC(".maps");

/* A ring of each CPU's own (filled in by package primitives), for what a
 * sample costs when no other CPU writes the ring's lock and positions. */
struct cpu_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 256);
	__type(key, __u32);
	__array(values, struct cpu_ring);
} cpu_rings SEC(".maps");

struct staging {
	__u64 unwoken;
	__u32 count;
	__u32 pad;
	__u8 buf[32 * 32];
	__u32 count112;
	__u32 pad2;
	__u8 buf112[32 * 112];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct staging);
} staging SEC(".maps");

/* A perf buffer of each CPU's own (the reader is package primitives'):
 * the other way to send a sample, with nothing shared between CPUs and
 * no ring buffer spinlock. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_samples SEC(".maps");

/* A ring of records in memory the reader maps (BPF_F_MMAPABLE): each
 * CPU writes its own section of mmap_records and publishes with one atomic
 * add on its head's produced count; the reader advances consumed. No lock,
 * no interrupts disabled, nothing shared between CPUs. The same program
 * never nests on a CPU (the kernel skips a recursive run), so one writer
 * per section. Package primitives sizes mmap_records to the CPUs. */
#define MMAP_SLOTS 4096
struct mmap_head {
	__u64 produced;
	__u64 consumed;
	__u64 lost;
	__u64 pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct mmap_head);
} mmap_heads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 256 * MMAP_SLOTS);
	__type(key, __u32);
	__type(value, struct r112_rec);
} mmap_records SEC(".maps");

/* As katrace's sock_slots: one 64-byte entry per socket, by cookie. */
struct slot {
	__u64 cookie;
	__u64 words[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct slot);
} slots SEC(".maps");

/* One 64-byte entry, the same one every run. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slot);
} one_slot SEC(".maps");

struct r112_rec {
	__u64 w[14];
};

struct r16 {
	__u64 w[2];
};
struct r112 {
	__u64 w[14];
};
struct r224 {
	__u64 w[28];
};

/* A sample into ring (the shared one, or this CPU's own), waking the
 * reader as katrace does. */
static __always_inline void output(void *ring, void *data, __u64 size)
{
	__u32 zero = 0;
	struct staging *s = bpf_map_lookup_elem(&staging, &zero);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (!s)
		return;
	s->unwoken += size + 8;
	if (s->unwoken >= WAKEUP_BYTES) {
		s->unwoken = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_output(ring, data, size, flags);
}

#define TCP_ONLY                                  \
	if (sk->sk_protocol != IPPROTO_TCP)       \
		return 0

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(empty, struct sock *sk, int old, int new)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_only, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(clock_ns, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return bpf_ktime_get_ns() == 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(jiffies, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return bpf_jiffies64() == 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(current_comm, struct sock *sk, int old, int new)
{
	char comm[16];

	TCP_ONLY;
	bpf_get_current_comm(comm, sizeof(comm));
	return comm[0] == 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(socket_cookie, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return bpf_get_socket_cookie(sk) == 1;
}

/* A slot read by cookie as katrace picks it, every change, in the first
 * entries of a 1 MiB array that the kernel itself never touches: all of
 * it, or the first 1,024 (64 KiB) or 64 (one 4 KiB page). */
static __always_inline int read_slot(struct sock *sk, __u32 mask)
{
	__u64 cookie;
	__u32 idx;
	struct slot *s;

	TCP_ONLY;
	cookie = bpf_get_socket_cookie(sk);
	idx = (__u32)(cookie + (cookie >> 12) * 0x9E5) & mask;
	s = bpf_map_lookup_elem(&slots, &idx);
	return s && s->cookie == 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(slot_read, struct sock *sk, int old, int new)
{
	return read_slot(sk, 16383);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(slot_read_64k, struct sock *sk, int old, int new)
{
	return read_slot(sk, 1023);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(slot_read_4k, struct sock *sk, int old, int new)
{
	return read_slot(sk, 63);
}

/* The same line every run, never written: what reaching a map value
 * costs at best, with no line that a run touches for the first time. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(one_line_read, struct sock *sk, int old, int new)
{
	__u32 zero = 0;
	struct slot *s;

	TCP_ONLY;
	s = bpf_map_lookup_elem(&one_slot, &zero);
	return s && s->cookie == 1;
}

#define SAMPLE(name, type)                                              \
	SEC("tp_btf/inet_sock_set_state")                               \
	int BPF_PROG(name, struct sock *sk, int old, int new)           \
	{                                                               \
		type r = {};                                            \
                                                                        \
		TCP_ONLY;                                               \
		r.w[0] = new;                                           \
		output(&samples, &r, sizeof(r));                        \
		return 0;                                               \
	}

SAMPLE(sample_16, struct r16)
SAMPLE(sample_112, struct r112)
SAMPLE(sample_224, struct r224)

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(own_ring_112, struct sock *sk, int old, int new)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct r112 r = {};
	void *ring;

	TCP_ONLY;
	ring = bpf_map_lookup_elem(&cpu_rings, &cpu);
	if (!ring)
		return 0;
	r.w[0] = new;
	output(ring, &r, sizeof(r));
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(perf_112, struct sock *sk, int old, int new)
{
	struct r112 r = {};

	TCP_ONLY;
	r.w[0] = new;
	bpf_perf_event_output(ctx, &perf_samples, BPF_F_CURRENT_CPU, &r, sizeof(r));
	return 0;
}

static __always_inline int mmap_record(int new, __u32 slots)
{
	__u32 cpu = bpf_get_smp_processor_id(), idx;
	struct mmap_head *h;
	struct r112_rec *rec;
	__u64 produced;

	h = bpf_map_lookup_elem(&mmap_heads, &cpu);
	if (!h)
		return 0;
	produced = h->produced;
	if (produced - *(volatile __u64 *)&h->consumed >= slots) {
		h->lost++;
		return 0;
	}
	idx = cpu * MMAP_SLOTS + (produced & (slots - 1));
	rec = bpf_map_lookup_elem(&mmap_records, &idx);
	if (!rec)
		return 0;
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->w[0] = new;
	__sync_fetch_and_add(&h->produced, 1);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(mmap_112, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return mmap_record(new, MMAP_SLOTS);
}

/* The same in the first 256 slots of the section (28 KiB). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(mmap_112_small, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return mmap_record(new, 256);
}

/* A 32-byte record (three words and a zero) staged in this CPU's
 * buffer, the buffer sent as one sample every 32 records. */
static __always_inline int stage_32(__u64 w0, __u64 w1, __u64 w2)
{
	__u32 zero = 0, i;
	struct staging *s = bpf_map_lookup_elem(&staging, &zero);
	__u64 *rec;

	if (!s)
		return 0;
	i = s->count & 31;
	rec = (__u64 *)&s->buf[i * 32];
	rec[0] = w0;
	rec[1] = w1;
	rec[2] = w2;
	rec[3] = 0;
	s->count = i + 1;
	if (i == 31) {
		output(&samples, s->buf, sizeof(s->buf));
		s->count = 0;
	}
	return 0;
}

/* 32-byte records staged per CPU and sent 32 at a time (one 1 KiB
 * sample): what batching would cost a record. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(staged_32, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return stage_32(new, old, 0);
}

/* The least any state change record can be: when (the clock), which
 * socket (its cookie) and the two states, 32 bytes staged per CPU and sent
 * 32 at a time, with nothing read from the socket and nothing kept. What
 * --states costs at least here, whatever its design. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(least_state_record, struct sock *sk, int old, int new)
{
	TCP_ONLY;
	return stage_32(bpf_ktime_get_ns(), bpf_get_socket_cookie(sk), (__u64)old << 8 | new);
}

/* Whole --states records (112 bytes) staged per CPU, sent 32 at a time
 * (one 3.5 KiB sample). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(staged_112, struct sock *sk, int old, int new)
{
	__u32 zero = 0, i;
	struct staging *s;
	struct r112 *rec;

	TCP_ONLY;
	s = bpf_map_lookup_elem(&staging, &zero);
	if (!s)
		return 0;
	i = s->count112 & 31;
	rec = (struct r112 *)&s->buf112[i * 112];
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->w[0] = new;
	s->count112 = i + 1;
	if (i == 31) {
		output(&samples, s->buf112, sizeof(s->buf112));
		s->count112 = 0;
	}
	return 0;
}
