/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* katrace's load-time constants and maps. */
#ifndef __KATRACE_LIB_GLOBALS_H__
#define __KATRACE_LIB_GLOBALS_H__

#include "katrace.h"

/* Set by the loader before load (struct config in katrace.h). */
volatile const struct config cfg = {
	.idle_threshold_ms = 1000,
	.wakeup_bytes = 512 << 10,
};
#define KATRACE_HZ cfg.hz

/* tcp_keepalive_timer's address, learned from a TCP socket's own timer
 * (lib/keepalive.h): the tracepoint strategy compares each expiring
 * timer's function with it, without /proc/kallsyms (which hides addresses
 * from a process without CAP_SYSLOG). */
__u64 keepalive_timer_fn = 0;

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
