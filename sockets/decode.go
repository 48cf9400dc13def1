package sockets

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"unsafe"

	"github.com/katrace/katrace/record"
)

// rowSize is the size of struct socket_row (bpf/sockets.h).
const rowSize = int(unsafe.Sizeof(socketsSocketRow{}))

var errShortRow = errors.New("socket row shorter than struct socket_row")

// decodeRow reads one struct socket_row at the fixed offsets of the type
// bpf2go generated from bpf/sockets.h, without reflection.
func decodeRow(b []byte, r *socketsSocketRow) error {
	if len(b) < rowSize {
		return errShortRow
	}
	ne := binary.NativeEndian
	r.Cookie = ne.Uint64(b[unsafe.Offsetof(r.Cookie):])
	r.Ino = ne.Uint64(b[unsafe.Offsetof(r.Ino):])
	r.Netns = ne.Uint32(b[unsafe.Offsetof(r.Netns):])
	r.Uid = ne.Uint32(b[unsafe.Offsetof(r.Uid):])
	r.KeepaliveIdleMs = ne.Uint32(b[unsafe.Offsetof(r.KeepaliveIdleMs):])
	r.KeepaliveIntvlMs = ne.Uint32(b[unsafe.Offsetof(r.KeepaliveIntvlMs):])
	r.TimerInMs = ne.Uint32(b[unsafe.Offsetof(r.TimerInMs):])
	r.IdleMs = ne.Uint32(b[unsafe.Offsetof(r.IdleMs):])
	r.UserTimeoutMs = ne.Uint32(b[unsafe.Offsetof(r.UserTimeoutMs):])
	r.Flags = ne.Uint32(b[unsafe.Offsetof(r.Flags):])
	copy(r.Saddr[:], b[unsafe.Offsetof(r.Saddr):])
	copy(r.Daddr[:], b[unsafe.Offsetof(r.Daddr):])
	r.Sport = ne.Uint16(b[unsafe.Offsetof(r.Sport):])
	r.Dport = ne.Uint16(b[unsafe.Offsetof(r.Dport):])
	r.Family = b[unsafe.Offsetof(r.Family)]
	r.State = b[unsafe.Offsetof(r.State)]
	r.Kind = b[unsafe.Offsetof(r.Kind)]
	r.Timer = b[unsafe.Offsetof(r.Timer)]
	r.KeepaliveProbes = b[unsafe.Offsetof(r.KeepaliveProbes)]
	r.ProbesOut = b[unsafe.Offsetof(r.ProbesOut)]
	r.Retransmits = b[unsafe.Offsetof(r.Retransmits)]
	return nil
}

// decodeRows turns the iterator's output into sockets.
func decodeRows(b []byte) ([]Socket, error) {
	if len(b)%rowSize != 0 {
		return nil, errors.New("socket iterator output is not a whole number of rows")
	}
	out := make([]Socket, 0, len(b)/rowSize)
	var r socketsSocketRow
	for off := 0; off < len(b); off += rowSize {
		if err := decodeRow(b[off:], &r); err != nil {
			return nil, err
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
	s := newSocket(record.SocketID{
		Cookie:   r.Cookie,
		IPv6:     v6,
		V4Mapped: r.Flags&rowV4Mapped != 0,
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
	switch r.Kind {
	case kindRequest:
		s.Kind = KindRequest
		return s
	case kindTimewait:
		s.Kind = KindTimewait
		return s
	}
	s.Kind = KindFull
	s.Orphan = r.Flags&rowOrphan != 0
	s.Keepalive = r.Flags&rowKeepOpen != 0
	s.KeepaliveIdleMs = int64(r.KeepaliveIdleMs)
	s.KeepaliveIntervalMs = int64(r.KeepaliveIntvlMs)
	s.KeepaliveProbes = int(r.KeepaliveProbes)
	own := r.Flags & (rowOwnIdle | rowOwnIntvl | rowOwnProbes)
	if own == 0 {
		s.KeepaliveSource = SourceSysctl
	} else {
		s.KeepaliveSource = SourceSocket
		s.KeepaliveInherited = inheritedNames(own&rowOwnIdle == 0, own&rowOwnIntvl == 0, own&rowOwnProbes == 0)
	}
	s.ProbesOut = int(r.ProbesOut)
	s.Retransmits = int(r.Retransmits)
	if r.Flags&rowIdleKnown != 0 {
		s.IdleMs = int64(r.IdleMs)
	}
	if r.UserTimeoutMs != 0 {
		s.UserTimeoutMs = int64(r.UserTimeoutMs)
	}
	return s
}
