// Package filter is the selection of sockets a user asks for with the
// --pid, --comm, --port, --addr, --netns and --keepalive-only flags, the
// same for `katrace trace` (which applies it in the kernel) and `katrace
// sockets` (which applies it to its snapshot).
package filter

import (
	"net/netip"
	"slices"
)

// Set selects sockets. A socket passes when it matches every filter that is
// set; the zero Set passes everything.
type Set struct {
	// PID and Comm select sockets held by a process with that pid and that
	// name (as in /proc/PID/comm); 0 and "" match any.
	PID  uint32
	Comm string
	// Ports select connections with one of these ports at either end.
	Ports []uint16
	// Addrs select connections with an address in one of these prefixes
	// at either end (--addr; an address alone is a full-length prefix).
	Addrs []netip.Prefix
	// NetNS selects sockets in the network namespace with this inode.
	NetNS uint32
	// KeepaliveOnly selects sockets with SO_KEEPALIVE on.
	KeepaliveOnly bool
	// Cgroups select sockets in one of these cgroups or below them
	// (--container, --cgroup).
	Cgroups []Cgroup
}

// Cgroup names a cgroup v2 by id (its directory's inode) and level (depth
// below the root, the root being 0).
type Cgroup struct {
	ID    uint64
	Level uint32
}

// ByOwner says whether the set selects by owning process.
func (f *Set) ByOwner() bool { return f.PID != 0 || f.Comm != "" }

// MatchOwner reports whether the process pid, named comm, passes PID and
// Comm.
func (f *Set) MatchOwner(pid uint32, comm string) bool {
	return (f.PID == 0 || pid == f.PID) && (f.Comm == "" || comm == f.Comm)
}

// MatchNetNS reports whether a socket in namespace ino passes NetNS.
func (f *Set) MatchNetNS(ino uint32) bool { return f.NetNS == 0 || ino == f.NetNS }

// MatchPorts reports whether a connection between ports a and b passes
// Ports.
func (f *Set) MatchPorts(a, b uint16) bool {
	return len(f.Ports) == 0 || slices.Contains(f.Ports, a) || slices.Contains(f.Ports, b)
}

// MatchAddrs reports whether a connection between addresses a and b passes
// Addrs. An IPv4-mapped IPv6 address (a dual-stack socket's) matches as the
// IPv4 address it stands for.
func (f *Set) MatchAddrs(a, b netip.Addr) bool {
	if len(f.Addrs) == 0 {
		return true
	}
	a, b = a.Unmap(), b.Unmap()
	for _, p := range f.Addrs {
		if p.Contains(a) || p.Contains(b) {
			return true
		}
	}
	return false
}
