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
	/* Wake the reader only once this CPU has sent another
	 * cfg.wakeup_bytes: a wakeup per event costs an inter-processor
	 * interrupt per event, and asking the ring for its backlog reads the
	 * consumer's position, a cache line the reader keeps writing. */
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (s) {
		s->unwoken += size + 8;
		if (s->unwoken >= CFG(wakeup_bytes)) {
			s->unwoken = 0;
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

/* Sends this CPU's staged state changes as one sample; each one the ring
 * has no room for is lost. */
static __always_inline void send_state_batch(struct state_batch *b)
{
	__u32 zero = 0;
	__u32 n = b->count;

	if (!n)
		return;
	if (n > KATRACE_STATE_BATCH)
		n = KATRACE_STATE_BATCH;
	b->magic = KATRACE_STATE_BATCH_MAGIC;
	if (ring_send(bpf_map_lookup_elem(&scratch, &zero), b,
		      __builtin_offsetof(struct state_batch, recs) + n * sizeof(struct state_event)))
		count_lost_n(n);
	b->count = 0;
}

/* Adds a state change to this CPU's batch, sending the batch once full.
 * busy keeps flush_batches, which userspace runs on this CPU in an
 * interrupt, away from a batch half written. Only the state change
 * program adds to this batch, and the kernel never nests a program's runs
 * on a CPU. */
static __always_inline void stage_state(struct state_event *se)
{
	__u32 zero = 0, n;
	struct state_batch *b = bpf_map_lookup_elem(&state_batches, &zero);

	if (!b) {
		count_lost();
		return;
	}
	b->busy = 1;
	asm volatile("" ::: "memory");
	n = b->count;
	if (n >= KATRACE_STATE_BATCH) {
		send_state_batch(b);
		n = 0;
	}
	__builtin_memcpy(&b->recs[n], se, sizeof(*se));
	b->count = n + 1;
	if (n + 1 == KATRACE_STATE_BATCH)
		send_state_batch(b);
	asm volatile("" ::: "memory");
	b->busy = 0;
}

/* Sends this CPU's staged events as one sample; each one the ring has no
 * room for is lost. */
static __always_inline void send_event_batch(struct event_batch *b)
{
	__u32 zero = 0;
	__u32 n = b->count;

	if (!n)
		return;
	if (n > KATRACE_EVENT_BATCH)
		n = KATRACE_EVENT_BATCH;
	b->magic = KATRACE_EVENT_BATCH_MAGIC;
	if (ring_send(bpf_map_lookup_elem(&scratch, &zero), b,
		      __builtin_offsetof(struct event_batch, recs) + n * sizeof(struct event)))
		count_lost_n(n);
	b->count = 0;
}

/* Adds e to this CPU's batch, sending the batch once full. False when
 * the batch is busy: this program interrupted another adding to it (a
 * reset in a softirq during a state change), and sends e alone. */
static __always_inline bool stage_event(struct event *e)
{
	__u32 zero = 0, n;
	struct event_batch *b = bpf_map_lookup_elem(&event_batches, &zero);

	if (!b || b->busy)
		return false;
	b->busy = 1;
	asm volatile("" ::: "memory");
	n = b->count;
	if (n >= KATRACE_EVENT_BATCH) {
		send_event_batch(b);
		n = 0;
	}
	__builtin_memcpy(&b->recs[n], e, sizeof(*e));
	b->count = n + 1;
	if (n + 1 == KATRACE_EVENT_BATCH)
		send_event_batch(b);
	asm volatile("" ::: "memory");
	b->busy = 0;
	return true;
}

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
