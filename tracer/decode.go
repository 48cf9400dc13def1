package tracer

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// eventSize and stateEventSize are the sizes of struct event and struct
// state_event (bpf/katrace.h): a sample's size says which one it is.
const (
	eventSize      = int(unsafe.Sizeof(katraceEvent{}))
	stateEventSize = int(unsafe.Sizeof(katraceStateEvent{}))
)

var errShortEvent = errors.New("event shorter than struct event")

// decodeEvent reads one struct event at the fixed offsets of the type
// bpf2go generated from bpf/katrace.h, without reflection or allocation.
func decodeEvent(b []byte, e *katraceEvent) error {
	if len(b) == stateEventSize {
		decodeStateEvent(b, e)
		return nil
	}
	if len(b) < eventSize {
		return errShortEvent
	}
	ne := binary.NativeEndian
	e.TsNs = ne.Uint64(b[unsafe.Offsetof(e.TsNs):])
	e.Cookie = ne.Uint64(b[unsafe.Offsetof(e.Cookie):])
	e.BytesSent = ne.Uint64(b[unsafe.Offsetof(e.BytesSent):])
	e.BytesReceived = ne.Uint64(b[unsafe.Offsetof(e.BytesReceived):])
	e.StartNs = ne.Uint64(b[unsafe.Offsetof(e.StartNs):])
	e.FinNs = ne.Uint64(b[unsafe.Offsetof(e.FinNs):])
	e.Pid = ne.Uint32(b[unsafe.Offsetof(e.Pid):])
	e.Netns = ne.Uint32(b[unsafe.Offsetof(e.Netns):])
	e.KeepaliveIdleMs = ne.Uint32(b[unsafe.Offsetof(e.KeepaliveIdleMs):])
	e.KeepaliveIntvlMs = ne.Uint32(b[unsafe.Offsetof(e.KeepaliveIntvlMs):])
	e.SinceSendMs = ne.Uint32(b[unsafe.Offsetof(e.SinceSendMs):])
	e.SinceRecvMs = ne.Uint32(b[unsafe.Offsetof(e.SinceRecvMs):])
	e.SinceAckMs = ne.Uint32(b[unsafe.Offsetof(e.SinceAckMs):])
	e.FinIdleMs = ne.Uint32(b[unsafe.Offsetof(e.FinIdleMs):])
	e.Reason = ne.Uint32(b[unsafe.Offsetof(e.Reason):])
	e.SkErr = int32(ne.Uint32(b[unsafe.Offsetof(e.SkErr):]))
	e.Unacked = ne.Uint32(b[unsafe.Offsetof(e.Unacked):])
	e.ProbeRttMs = ne.Uint32(b[unsafe.Offsetof(e.ProbeRttMs):])
	e.WrittenAfterFin = ne.Uint32(b[unsafe.Offsetof(e.WrittenAfterFin):])
	e.SockIno = ne.Uint32(b[unsafe.Offsetof(e.SockIno):])
	copy(e.Saddr[:], b[unsafe.Offsetof(e.Saddr):])
	copy(e.Daddr[:], b[unsafe.Offsetof(e.Daddr):])
	e.Sport = ne.Uint16(b[unsafe.Offsetof(e.Sport):])
	e.Dport = ne.Uint16(b[unsafe.Offsetof(e.Dport):])
	e.Flags = ne.Uint16(b[unsafe.Offsetof(e.Flags):])
	e.Kind = b[unsafe.Offsetof(e.Kind)]
	e.Family = b[unsafe.Offsetof(e.Family)]
	e.State = b[unsafe.Offsetof(e.State)]
	e.OldState = b[unsafe.Offsetof(e.OldState)]
	e.ProbesBefore = b[unsafe.Offsetof(e.ProbesBefore)]
	e.ProbesAfter = b[unsafe.Offsetof(e.ProbesAfter)]
	e.KeepaliveProbes = b[unsafe.Offsetof(e.KeepaliveProbes)]
	e.FinSide = b[unsafe.Offsetof(e.FinSide)]
	e.AckedProbes = b[unsafe.Offsetof(e.AckedProbes)]
	e.StateBeforeTimer = b[unsafe.Offsetof(e.StateBeforeTimer)]
	for i := range e.Comm {
		e.Comm[i] = int8(b[unsafe.Offsetof(e.Comm)+uintptr(i)])
	}
	e.Unread = ne.Uint32(b[unsafe.Offsetof(e.Unread):])
	e.Role = b[unsafe.Offsetof(e.Role)]
	e.Proto = b[unsafe.Offsetof(e.Proto)]
	e.InFilteredCgroup = b[unsafe.Offsetof(e.InFilteredCgroup)]
	e.Pad = b[unsafe.Offsetof(e.Pad)]
	e.Requests = ne.Uint32(b[unsafe.Offsetof(e.Requests):])
	e.Pad2 = ne.Uint32(b[unsafe.Offsetof(e.Pad2):])
	e.CgroupId = ne.Uint64(b[unsafe.Offsetof(e.CgroupId):])
	e.FirstTxNs = ne.Uint64(b[unsafe.Offsetof(e.FirstTxNs):])
	e.UserTimeoutMs = ne.Uint32(b[unsafe.Offsetof(e.UserTimeoutMs):])
	e.GoodbyeBytes = ne.Uint32(b[unsafe.Offsetof(e.GoodbyeBytes):])
	e.Retransmits = b[unsafe.Offsetof(e.Retransmits)]
	copy(e.Pad3[:], b[unsafe.Offsetof(e.Pad3):])
	return nil
}

// decodeStateEvent reads a struct state_event into e: a state change
// (EV_STATE) whose other fields are zero.
func decodeStateEvent(b []byte, e *katraceEvent) {
	var s katraceStateEvent
	ne := binary.NativeEndian
	*e = katraceEvent{Kind: evState}
	e.TsNs = ne.Uint64(b[unsafe.Offsetof(s.TsNs):])
	e.Cookie = ne.Uint64(b[unsafe.Offsetof(s.Cookie):])
	e.CgroupId = ne.Uint64(b[unsafe.Offsetof(s.CgroupId):])
	e.Pid = ne.Uint32(b[unsafe.Offsetof(s.Pid):])
	e.Netns = ne.Uint32(b[unsafe.Offsetof(s.Netns):])
	e.SockIno = ne.Uint32(b[unsafe.Offsetof(s.SockIno):])
	e.Requests = ne.Uint32(b[unsafe.Offsetof(s.Requests):])
	copy(e.Saddr[:], b[unsafe.Offsetof(s.Saddr):])
	copy(e.Daddr[:], b[unsafe.Offsetof(s.Daddr):])
	e.Sport = ne.Uint16(b[unsafe.Offsetof(s.Sport):])
	e.Dport = ne.Uint16(b[unsafe.Offsetof(s.Dport):])
	e.Flags = ne.Uint16(b[unsafe.Offsetof(s.Flags):])
	e.Family = b[unsafe.Offsetof(s.Family)]
	e.State = b[unsafe.Offsetof(s.State)]
	e.OldState = b[unsafe.Offsetof(s.OldState)]
	e.Role = b[unsafe.Offsetof(s.Role)]
	e.Proto = b[unsafe.Offsetof(s.Proto)]
	e.InFilteredCgroup = b[unsafe.Offsetof(s.InFilteredCgroup)]
	for i := range e.Comm {
		e.Comm[i] = int8(b[unsafe.Offsetof(s.Comm)+uintptr(i)])
	}
}
