package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/katrace/katrace/record"
)

// rowSize is the size of struct socket_row (bpf/sockets.h).
const rowSize = int(unsafe.Sizeof(socketsSocketRow{}))

// decodeRows turns the iterator's output into sockets. Each row is read
// into the type bpf2go generated from bpf/sockets.h (whose layout has no
// implicit padding); a snapshot reads each socket once, so the reflection
// costs nothing that matters.
func decodeRows(b []byte) ([]Socket, error) {
	if len(b)%rowSize != 0 {
		return nil, errors.New("socket iterator output is not a whole number of rows")
	}
	out := make([]Socket, 0, len(b)/rowSize)
	var r socketsSocketRow
	for off := 0; off < len(b); off += rowSize {
		if _, err := binary.Decode(b[off:off+rowSize], binary.NativeEndian, &r); err != nil {
			return nil, fmt.Errorf("decoding a socket row: %w", err)
		}
		out = append(out, rowSocket(&r))
	}
	return out, nil
}

func rowAddr(b [16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// rowSocket turns a kernel row into a Socket.
func rowSocket(r *socketsSocketRow) Socket {
	v6 := r.Family == 6
	flags := socketsSocketRowFlags(r.Flags)
	s := newSocket(record.SocketID{
		Cookie:   r.Cookie,
		IPv6:     v6,
		V4Mapped: flags&rowV4Mapped != 0,
		LAddr:    rowAddr(r.Saddr, v6),
		RAddr:    rowAddr(r.Daddr, v6),
		LPort:    r.Sport,
		RPort:    r.Dport,
		NetNS:    r.Netns,
		State:    StateName(r.State),
	})
	s.Inode, s.UID = r.Ino, r.Uid
	if int(r.Timer) < len(timerNames) {
		s.Timer = timerNames[r.Timer]
	}
	if s.Timer != TimerNone {
		s.TimerInMs = int64(r.TimerInMs)
	}
	switch socketsSocketKind(r.Kind) {
	case kindRequest:
		s.Kind = KindRequest
		return s
	case kindTimewait:
		s.Kind = KindTimewait
		return s
	}
	s.Kind = KindFull
	s.Orphan = flags&rowOrphan != 0
	s.Keepalive = flags&rowKeepOpen != 0
	s.KeepaliveIdleMs = int64(r.KeepaliveIdleMs)
	s.KeepaliveIntervalMs = int64(r.KeepaliveIntvlMs)
	s.KeepaliveProbes = int(r.KeepaliveProbes)
	own := flags & (rowOwnIdle | rowOwnIntvl | rowOwnProbes)
	if own == 0 {
		s.KeepaliveSource = SourceSysctl
	} else {
		s.KeepaliveSource = SourceSocket
		s.KeepaliveInherited = inheritedNames(own&rowOwnIdle == 0, own&rowOwnIntvl == 0, own&rowOwnProbes == 0)
	}
	s.ProbesOut = int(r.ProbesOut)
	s.Retransmits = int(r.Retransmits)
	if flags&rowIdleKnown != 0 {
		s.IdleMs = int64(r.IdleMs)
	}
	if r.UserTimeoutMs != 0 {
		s.UserTimeoutMs = int64(r.UserTimeoutMs)
	}
	return s
}
