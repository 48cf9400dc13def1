/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* The in-kernel filters (--pid, --comm, --netns, --keepalive-only, --port,
 * --addr), on an event whose socket fields are filled. */
#ifndef __KATRACE_LIB_FILTER_H__
#define __KATRACE_LIB_FILTER_H__

#include "lib/globals.h"
#include "lib/ring.h"

/* Whether match holds for entry i of a filter list, for one of its first
 * count entries (max: the list's size, which bounds the loop for the
 * verifier). */
#define any_filter_entry(i, max, count, match)          \
	({                                              \
		bool hit = false;                       \
		for (__u32 i = 0; i < (max); i++) {     \
			if (i >= (count))               \
				break;                  \
			if (match)                      \
				hit = true;             \
		}                                       \
		hit;                                    \
	})

static __always_inline bool addr_in_cidr(const __u8 *addr, __u8 family, __u32 i)
{
	__u8 bits = cfg.filter_cidrs[i].prefix_len;

	if (cfg.filter_cidrs[i].family != family)
		return false;
	for (int b = 0; b < 16; b++) {
		__u8 mask;

		if (bits == 0)
			return true;
		mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[b] ^ cfg.filter_cidrs[i].addr[b]) & mask)
			return false;
		bits = bits >= 8 ? bits - 8 : 0;
	}
	return true;
}

static __always_inline bool owner_is_filtered(__u32 pid, const char *comm)
{
	if (CFG(filter_pid) && pid != CFG(filter_pid))
		return false;
	if (cfg.filter_comm[0]) {
		for (int i = 0; i < KATRACE_COMM_LEN; i++) {
			if (comm[i] != cfg.filter_comm[i])
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

	if (cfg.filter_comm[0])
		bpf_get_current_comm(comm, sizeof(comm));
	return owner_is_filtered(bpf_get_current_pid_tgid() >> 32, comm);
}

/* Whether the filters want an event about a socket (struct event or struct
 * state_event, whose socket fields have the same names); owner_ctx says the
 * current task holds the socket (its syscall). */
#define DEFINE_WANTED(name, event_type)                                                              \
	static __always_inline bool name(event_type *e, bool owner_ctx)                              \
	{                                                                                            \
		if (CFG(filter_netns) && e->netns != CFG(filter_netns))                                \
			return false;                                                                \
		if (CFG(filter_keepalive_only) && !(e->flags & EVF_KEEPOPEN))                         \
			return false;                                                                \
		if (CFG(filter_cgroup_count) && !e->in_filtered_cgroup)                               \
			return false;                                                                \
		if (CFG(filter_port_count) &&                                                         \
		    !any_filter_entry(i, KATRACE_MAX_PORTS, CFG(filter_port_count),                   \
				      e->sport == cfg.filter_ports[i] || e->dport == cfg.filter_ports[i])) \
			return false;                                                                \
		if (CFG(filter_cidr_count) &&                                                         \
		    !any_filter_entry(i, KATRACE_MAX_CIDRS, CFG(filter_cidr_count),                   \
				      addr_in_cidr(e->saddr, e->family, i) ||                        \
					      addr_in_cidr(e->daddr, e->family, i)))                 \
			return false;                                                                \
		if (CFG(filter_by_owner)) {                                                           \
			__u32 ino = e->sock_ino;                                                     \
			__u8 one = 1;                                                                \
                                                                                                     \
			/* In the owner's own syscall, the owner is the current task. */             \
			if (owner_ctx) {                                                             \
				if (!current_is_filtered_owner())                                    \
					return false;                                                \
				if (ino)                                                             \
					bpf_map_update_elem(&owned_inodes, &ino, &one, BPF_ANY);     \
				return true;                                                         \
			}                                                                            \
			/* Elsewhere, the owner remembered in the socket's storage... */             \
			if (e->flags & EVF_OWNER)                                                    \
				return owner_is_filtered(e->pid, e->comm);                           \
			/* ...or the sockets userspace found in the owner's /proc fds. */            \
			if (!ino || !bpf_map_lookup_elem(&owned_inodes, &ino))                       \
				return false;                                                        \
		}                                                                                    \
		return true;                                                                         \
	}

DEFINE_WANTED(event_wanted, struct event)
DEFINE_WANTED(state_event_wanted, struct state_event)

/* Submit e if the filters want it (not in its owner's syscall), else give
 * its scratch slot back. */
static __always_inline void submit_if_wanted(struct event *e)
{
	if (event_wanted(e, false))
		submit_event(e);
	else
		discard_event(e);
}

#endif /* __KATRACE_LIB_FILTER_H__ */
