/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Events are built in a per-CPU scratch slot, filtered, then copied into the
 * ring buffer, or with --states or --all into this CPU's batch, which goes
 * to the ring whole (struct state_batch, struct event_batch): only a
 * wanted event that finds no room is lost (and counted in lost_events).
 * reserve_event is paired with discard_event or submit_event.
 */
#ifndef __KATRACE_LIB_RING_H__
#define __KATRACE_LIB_RING_H__

#include "lib/globals.h"

static __always_inline void count_lost_n(__u32 n)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&lost_events, &zero);

	if (lost)
		*lost += n;
}

static __always_inline void count_lost(void)
{
	count_lost_n(1);
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

/* Copies size bytes at data into the ring; s is this CPU's scratch.
 * Nonzero when the ring had no room. */
static __always_inline long ring_send(struct scratch *s, void *data, __u64 size)
{
	/* Look at the ring only once this CPU has sent another
	 * cfg.wakeup_bytes: asking the ring for its backlog reads the
	 * consumer's position, a cache line the reader keeps writing. Wake
	 * the reader only when it is behind (cfg.wakeup_backlog): it polls
	 * every 100 ms, and a wakeup costs microseconds inside the program
	 * (an inter-processor interrupt to queue it, another to wake the
	 * reader; VM exits on a guest). */
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (s) {
		s->unwoken += size + 8;
		if (s->unwoken >= CFG(wakeup_bytes)) {
			s->unwoken = 0;
			if (!CFG(wakeup_backlog) ||
			    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= CFG(wakeup_backlog))
				flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	return bpf_ringbuf_output(&events, data, size, flags);
}

/* ring_send, counting a sample that finds no room as lost. */
static __always_inline void ring_output(struct scratch *s, void *data, __u64 size)
{
	if (ring_send(s, data, size))
		count_lost();
}

/*
 * send_<name>_batch sends this CPU's batch of records as one sample,
 * counting each one the ring has no room for as lost. stage_<name> adds
 * a record to the batch and sends the batch once full. busy keeps two
 * things away from a batch half written: flush_batches, which userspace
 * runs on this CPU in an interrupt, and a program that interrupts this
 * one (a reset in a softirq during a state change). stage_<name> is then
 * false, and the caller sends the record alone.
 */
#define DEFINE_BATCH(name, batch_type, rec_type, batch_map, max, magic_value)              \
	static __always_inline void send_##name##_batch(struct batch_type *b)              \
	{                                                                                  \
		__u32 zero = 0;                                                            \
		__u32 n = b->count;                                                        \
                                                                                           \
		if (!n)                                                                    \
			return;                                                            \
		if (n > max)                                                               \
			n = max;                                                           \
		b->magic = magic_value;                                                    \
		if (ring_send(bpf_map_lookup_elem(&scratch, &zero), b,                     \
			      __builtin_offsetof(struct batch_type, recs) + n * sizeof(rec_type))) \
			count_lost_n(n);                                                   \
		b->count = 0;                                                              \
	}                                                                                  \
                                                                                           \
	static __always_inline bool stage_##name(rec_type *rec)                            \
	{                                                                                  \
		__u32 zero = 0, n;                                                         \
		struct batch_type *b = bpf_map_lookup_elem(&batch_map, &zero);             \
                                                                                           \
		if (!b || b->busy)                                                         \
			return false;                                                      \
		b->busy = 1;                                                               \
		asm volatile("" ::: "memory");                                             \
		n = b->count;                                                              \
		if (n >= max) {                                                            \
			send_##name##_batch(b);                                            \
			n = 0;                                                             \
		}                                                                          \
		__builtin_memcpy(&b->recs[n], rec, sizeof(*rec));                          \
		b->count = n + 1;                                                          \
		if (n + 1 == max)                                                          \
			send_##name##_batch(b);                                            \
		asm volatile("" ::: "memory");                                             \
		b->busy = 0;                                                               \
		return true;                                                               \
	}

DEFINE_BATCH(state, state_batch, struct state_event, state_batches, KATRACE_STATE_BATCH, KATRACE_STATE_BATCH_MAGIC)
DEFINE_BATCH(event, event_batch, struct event, event_batches, KATRACE_EVENT_BATCH, KATRACE_EVENT_BATCH_MAGIC)

static __always_inline void submit_event(struct event *e)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (!CFG(stage_events) || !stage_event(e))
		ring_output(s, e, sizeof(*e));
	if (s && s->depth > 0)
		s->depth--;
}

#endif /* __KATRACE_LIB_RING_H__ */
