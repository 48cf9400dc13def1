// Package sockets takes a snapshot of the host's TCP sockets with each
// socket's effective keepalive configuration, its armed timer and its
// owners: what `katrace sockets` prints.
//
// The snapshot comes from a BPF iter/tcp iterator (bpf/sockets.bpf.c), which
// reads the keepalive settings straight
// from the kernel's socket: the socket's own TCP_KEEPIDLE, TCP_KEEPINTVL and
// TCP_KEEPCNT, else the sysctls of the socket's own namespace. Where the
// iterator cannot load, Snapshot falls back to NETLINK_SOCK_DIAG, which
// does not carry the keepalive settings; Result.Unknown then names the
// fields that are unknown. Either answers for one network namespace at a
// time: Snapshot enters each namespace of the host in turn.
package sockets

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/filter"
	"github.com/katrace/katrace/procfs"
	"github.com/katrace/katrace/record"
)

// Absent marks an optional numeric field as unknown or not applicable.
const Absent = -1

// Kinds of kernel socket.
const (
	KindFull     = "full"
	KindRequest  = "request"
	KindTimewait = "timewait"
)

// Timers, as in the `timer` field.
const (
	TimerNone            = "none"
	TimerRetransmit      = "retransmit"
	TimerZeroWindowProbe = "zero_window_probe"
	TimerKeepalive       = "keepalive"
	TimerTimeWait        = "time_wait"
	// TimerFinWait2 is the tcp_fin_timeout linger of an orphaned FIN_WAIT2
	// socket: the keepalive timer's function, without SO_KEEPALIVE.
	TimerFinWait2 = "fin_wait2"
	// TimerSynAck is a request socket's SYN-ACK retransmit timer.
	TimerSynAck = "synack"
)

// Keepalive sources.
const (
	SourceSocket = "socket"
	SourceSysctl = "sysctl"
)

// Where a snapshot came from.
const (
	FromIterator = "iterator"
	FromSockDiag = "sock_diag"
)

// Owner is a process holding the socket in its file table.
type Owner = procfs.Owner

// Socket is one TCP socket.
type Socket struct {
	record.SocketID
	// Kind is KindFull, KindRequest or KindTimewait; only the identity
	// fields and the timer are known for the last two.
	Kind  string
	Inode uint64
	UID   uint32
	// Orphan: closed by its process, still in the kernel (SOCK_DEAD).
	Orphan bool
	// Owners are every process that holds the socket, lowest pid first
	// (several after a fork or fd passing); none for request, timewait
	// and orphaned sockets.
	Owners []Owner
	// Workload is the cgroup, container and pod of the first owner (the
	// iterator's rows carry no cgroup: this is the owner's, from
	// /proc/PID/cgroup); empty without an owner or without Options.Workload.
	Workload record.Workload

	Keepalive           bool
	KeepaliveIdleMs     int64 // Absent when unknown
	KeepaliveIntervalMs int64 // Absent when unknown
	KeepaliveProbes     int   // Absent when unknown
	// KeepaliveSource is SourceSocket when the socket sets at least one of
	// its own values, SourceSysctl when it inherits them all, "" when
	// unknown. KeepaliveInherited lists the values a SourceSocket socket
	// still inherits ("idle", "interval", "probes").
	KeepaliveSource    string
	KeepaliveInherited []string

	ProbesOut     int    // Absent when unknown
	Retransmits   int    // Absent when unknown
	Timer         string // TimerNone when none
	TimerInMs     int64  // Absent when no timer
	IdleMs        int64  // Absent when unknown
	UserTimeoutMs int64  // Absent when not set or unknown
}

// Family is "ipv4" or "ipv6".
func (s *Socket) Family() string {
	if s.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// newSocket is a socket of which nothing but its identity is known yet.
func newSocket(id record.SocketID) Socket {
	return Socket{
		SocketID:            id,
		KeepaliveIdleMs:     Absent,
		KeepaliveIntervalMs: Absent,
		KeepaliveProbes:     Absent,
		ProbesOut:           Absent,
		Retransmits:         Absent,
		Timer:               TimerNone,
		TimerInMs:           Absent,
		IdleMs:              Absent,
		UserTimeoutMs:       Absent,
	}
}

// selects reports whether s passes the options' filters.
func (o *Options) selects(s *Socket) bool {
	f := &o.Filters
	if s.State == "LISTEN" && !o.Listening {
		return false
	}
	if !f.MatchNetNS(s.NetNS) || (f.KeepaliveOnly && !s.Keepalive) ||
		!f.MatchPorts(s.LPort, s.RPort) || !f.MatchAddrs(s.LAddr, s.RAddr) {
		return false
	}
	if !f.ByOwner() {
		return true
	}
	return slices.ContainsFunc(s.Owners, func(o Owner) bool { return f.MatchOwner(o.PID, o.Comm) })
}

// Result is a snapshot.
type Result struct {
	Time    time.Time
	Sockets []Socket
	// Source is FromIterator or FromSockDiag.
	Source string
	// Unknown names the JSON fields that the source cannot give (sock_diag:
	// the keepalive settings, among others); empty for the iterator.
	Unknown []string
	// Fallback is why the iterator could not be used, when Source is
	// FromSockDiag.
	Fallback error
	// Warnings are namespaces that could not be read, and the like.
	Warnings []string
}

// Options shape a snapshot.
type Options struct {
	// Filters select sockets as they do for `katrace trace`.
	Filters filter.Set
	// Listening adds listening sockets, which are left out otherwise.
	Listening bool
	// NoIterator skips the BPF iterator and uses sock_diag (for tests and
	// for hosts where loading BPF is not wanted).
	NoIterator bool
	// ProcRoot is where /proc is ("/proc" when empty).
	ProcRoot string
	// Workload, when set, names the container and pod of a cgroup v2 path
	// (container.Resolver.ByPath); each socket gets its first owner's.
	Workload func(cgroup string) record.Workload
}

// Snapshot lists the TCP sockets that pass opts.Filters, in every network
// namespace (or only Filters.NetNS), sorted by namespace, family, local and
// remote address and port.
func Snapshot(opts Options) (*Result, error) {
	procRoot := opts.ProcRoot
	if procRoot == "" {
		procRoot = "/proc"
	}
	res := &Result{Time: time.Now()}
	scan := procfs.ScanProc(procRoot, nil)
	addNamedNetns(scan.NetNS)
	if own := currentNetns(); own != 0 {
		if _, ok := scan.NetNS[own]; !ok {
			scan.NetNS[own] = "/proc/thread-self/ns/net"
		}
	}
	var nets []netnsRef
	for ino, path := range scan.NetNS {
		if opts.Filters.NetNS == 0 || ino == opts.Filters.NetNS {
			nets = append(nets, netnsRef{ino: ino, path: path})
		}
	}
	slices.SortFunc(nets, func(a, b netnsRef) int { return cmpU(a.ino, b.ino) })
	if opts.Filters.NetNS != 0 && len(nets) == 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("no process is in network namespace %d, holds it open, or names it in /run/netns", opts.Filters.NetNS))
	}

	var read func() ([]Socket, error)
	if !opts.NoIterator {
		x, err := loadIterator()
		if err == nil {
			defer x.Close()
			read = x.read
			res.Source = FromIterator
		} else {
			res.Fallback = err
		}
	}
	if read == nil {
		read = sockDiag
		res.Source = FromSockDiag
		res.Unknown = slices.Clone(sockDiagUnknown)
	}
	var all []Socket
	readOK := 0
	for _, ns := range nets {
		err := inNetns(ns, func() error {
			ss, err := read()
			all = append(all, ss...)
			return err
		})
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("network namespace %d skipped: %v", ns.ino, err))
			continue
		}
		readOK++
	}
	if readOK == 0 && len(nets) > 0 {
		msg := fmt.Sprintf("no network namespace could be read (%s)", strings.Join(res.Warnings, "; "))
		if res.Fallback != nil {
			msg = fmt.Sprintf("the socket iterator cannot load (%v), and sock_diag failed: %s", res.Fallback, msg)
		}
		return nil, errors.New(msg)
	}
	for i := range all {
		s := &all[i]
		if s.Inode != 0 {
			s.Owners = scan.Owners[s.Inode]
		}
		if opts.selects(s) {
			res.Sockets = append(res.Sockets, *s)
		}
	}
	if opts.Workload != nil {
		addWorkloads(res.Sockets, procRoot, opts.Workload)
	}
	Sort(res.Sockets)
	return res, nil
}

// addWorkloads names each owned socket's workload after its first owner's
// cgroup, reading each process's cgroup once.
func addWorkloads(ss []Socket, procRoot string, workload func(string) record.Workload) {
	byPID := map[uint32]record.Workload{}
	for i := range ss {
		s := &ss[i]
		if len(s.Owners) == 0 {
			continue
		}
		pid := s.Owners[0].PID
		w, ok := byPID[pid]
		if !ok {
			// A process that exited since the scan has no cgroup left
			// to read: its socket is listed without one.
			if cg, err := container.ProcCgroup(procRoot, pid); err == nil {
				w = workload(cg)
			}
			byPID[pid] = w
		}
		s.Workload = w
	}
}

// Sort orders sockets by namespace, family, local then remote endpoint.
func Sort(ss []Socket) {
	slices.SortStableFunc(ss, func(a, b Socket) int {
		switch {
		case a.NetNS != b.NetNS:
			return cmpU(a.NetNS, b.NetNS)
		case a.IPv6 != b.IPv6:
			if a.IPv6 {
				return 1
			}
			return -1
		case a.LAddr != b.LAddr:
			return a.LAddr.Compare(b.LAddr)
		case a.LPort != b.LPort:
			return cmpU(a.LPort, b.LPort)
		case a.RAddr != b.RAddr:
			return a.RAddr.Compare(b.RAddr)
		case a.RPort != b.RPort:
			return cmpU(a.RPort, b.RPort)
		}
		return cmpU(a.Cookie, b.Cookie)
	})
}

func cmpU[T uint16 | uint32 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stateNames are the kernel's TCP states, named as in the event contract.
var stateNames = [...]string{
	1:  "ESTABLISHED",
	2:  "SYN_SENT",
	3:  "SYN_RECV",
	4:  "FIN_WAIT1",
	5:  "FIN_WAIT2",
	6:  "TIME_WAIT",
	7:  "CLOSE",
	8:  "CLOSE_WAIT",
	9:  "LAST_ACK",
	10: "LISTEN",
	11: "CLOSING",
	12: "NEW_SYN_RECV",
}

// StateName names a kernel TCP state. A request socket (TCP_NEW_SYN_RECV)
// is reported as SYN_RECV, as ss does.
func StateName(s uint8) string {
	if s == 12 {
		return "SYN_RECV"
	}
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE_%d", s)
}

// inheritedNames lists which settings a socket inherits, in field order.
func inheritedNames(idle, intvl, probes bool) []string {
	var out []string
	if idle {
		out = append(out, "idle")
	}
	if intvl {
		out = append(out, "interval")
	}
	if probes {
		out = append(out, "probes")
	}
	return out
}

// ownersText is "pid/comm", with ",+N" when N more processes hold it.
func ownersText(os []Owner) string {
	if len(os) == 0 {
		return "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%s", os[0].PID, os[0].Comm)
	if len(os) > 1 {
		fmt.Fprintf(&b, ",+%d", len(os)-1)
	}
	return b.String()
}
