/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* katrace's load-time constants and maps. */
#ifndef __KATRACE_LIB_GLOBALS_H__
#define __KATRACE_LIB_GLOBALS_H__

#include "katrace.h"

/* Set by the loader before load (struct config in katrace.h): the filter
 * tables are read from here, the scalar settings through CFG. */
volatile const struct config cfg = {
	.idle_threshold_ms = 1000,
	.wakeup_bytes = 512 << 10,
};

/*
 * One of struct config's scalar settings, as the immediate of the
 * instruction that loads it: the loader writes each value into those
 * instructions before load (tracer/constants.go). Reading cfg is a load
 * from a map page that most runs would touch for nothing else, a TLB and
 * cache miss on the hot path; an immediate costs no memory access, and
 * the verifier prunes the code a setting disables just the same.
 */
#define CFG(name)                                                     \
	({                                                            \
		__u64 __value;                                        \
		asm("%0 = katrace_cfg_" #name " ll" : "=r"(__value)); \
		(__typeof__(((struct config *)0)->name))__value;      \
	})

#define KATRACE_HZ CFG(hz)

/* tcp_keepalive_timer's address, learned from a TCP socket's own timer
 * (lib/keepalive.h) where the loader did not know it (cfg.keepalive_timer_fn):
 * the tracepoint strategy compares each expiring timer's function with
 * it, without /proc/kallsyms (which hides addresses from a process without
 * CAP_SYSLOG). */
__u64 keepalive_timer_fn = 0;

/* The address keepalive timers are told by: the loader's constant, else
 * the one learned; 0 until known. */
static __always_inline __u64 keepalive_timer_address(void)
{
	return CFG(keepalive_timer_fn) ? CFG(keepalive_timer_fn) : keepalive_timer_fn;
}

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

/* Each CPU's state changes not yet sent (struct state_batch). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct state_batch);
} state_batches SEC(".maps");

/* Each CPU's other events not yet sent (struct event_batch). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_batch);
} event_batches SEC(".maps");

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

/* How many probes_out entries may exist (never less: an update counts one,
 * a successful delete takes one off; LRU evictions leave it high). At 0,
 * closes of keepalive sockets skip the hash lookup. */
__u64 probes_outstanding = 0;

static __always_inline void probe_out_added(void)
{
	__sync_fetch_and_add(&probes_outstanding, 1);
}

static __always_inline void probe_out_deleted(__u64 *cookie)
{
	if (!bpf_map_delete_elem(&probes_out, cookie))
		__sync_fetch_and_sub(&probes_outstanding, 1);
}

/* Socket inodes owned by the processes --pid/--comm select: lets events
 * that run outside the owner (timers, softirq) pass the owner filter.
 * Filled here from the owner's own syscalls and by userspace from /proc. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} owned_inodes SEC(".maps");

/* struct sock_slot by cookie: a plain array, so that keeping a socket's
 * start, role, first FIN and owner costs no allocation, lock or hash. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KATRACE_SOCK_SLOTS);
	__type(key, __u32);
	__type(value, struct sock_slot);
} sock_slots SEC(".maps");

/* The process that last read or wrote a socket, by cookie (owners_by_cookie). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

#endif /* __KATRACE_LIB_GLOBALS_H__ */
