package tracer

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/record"
)

// history builds the event a socket's CLOSE carries, from the facts the
// kernel gathered over its life.
type history func(*katraceEvent)

func closing(facts ...history) *katraceEvent {
	e := &katraceEvent{Kind: evClose, State: tcpClose, OldState: tcpEstablished, Family: 4}
	for _, f := range facts {
		f(e)
	}
	return e
}

func flags(f uint16) history           { return func(e *katraceEvent) { e.Flags |= f } }
func sockErr(errno unix.Errno) history { return func(e *katraceEvent) { e.SkErr = int32(errno) } }
func timerRanIn(state uint8) history {
	return func(e *katraceEvent) { e.Flags |= flagInKeepaliveTimer; e.StateBeforeTimer = state }
}
func wroteAfterFin(bytes uint32) history { return func(e *katraceEvent) { e.WrittenAfterFin = bytes } }
func unacked(bytes uint32) history       { return func(e *katraceEvent) { e.Unacked = bytes } }

func fin(side uint8, idleMs uint32) history {
	return func(e *katraceEvent) { e.FinSide, e.FinIdleMs = side, idleMs }
}

// silentThenWrote: nothing received for recvMs, our last write sendMs ago.
func silentThenWrote(recvMs, sendMs uint32) history {
	return func(e *katraceEvent) { e.SinceRecvMs, e.SinceSendMs = recvMs, sendMs }
}

func TestCloseCauseRules(t *testing.T) {
	const threshold = time.Second
	cases := []struct {
		name    string
		history *katraceEvent
		want    string
	}{
		// Each cause, from its defining facts.
		{"keepalive timer killed it", closing(timerRanIn(tcpEstablished), sockErr(unix.ETIMEDOUT)), record.CauseKeepaliveTimeout},
		{"keepalive timer ran out the FIN_WAIT2 linger", closing(timerRanIn(tcpFinWait2), fin(finLocal, 5)), record.CauseFinWait2Timeout},
		{"retransmissions gave up", closing(sockErr(unix.ETIMEDOUT)), record.CauseRetransmitTimeout},
		{"peer reset after we wrote past its FIN", closing(flags(flagResetReceivedBefore), fin(finRemote, 1000), wroteAfterFin(40)), record.CauseStaleReuse},
		{"peer reset our first write after a silence", closing(flags(flagResetReceivedBefore), unacked(120), silentThenWrote(300002, 2)), record.CauseResetAfterIdle},
		{"peer reset", closing(flags(flagResetReceivedBefore), sockErr(unix.ECONNRESET)), record.CauseResetReceived},
		{"we reset", closing(flags(flagResetSentBefore)), record.CauseResetSent},
		{"other socket error", closing(sockErr(unix.EHOSTUNREACH)), record.CauseError},
		{"we closed an idle connection", closing(fin(finLocal, 1500)), record.CauseIdleCloseLocal},
		{"peer closed an idle connection", closing(fin(finRemote, 75000)), record.CauseIdleCloseRemote},
		{"we closed a busy connection", closing(fin(finLocal, 5)), record.CauseCloseLocal},
		{"peer closed a busy connection", closing(fin(finRemote, 5)), record.CauseCloseRemote},

		// Boundaries and precedence.
		{"idle exactly the threshold", closing(fin(finLocal, 1000)), record.CauseIdleCloseLocal},
		{"no FIN and no error", closing(), record.CauseCloseLocal},
		{"the keepalive timer's ETIMEDOUT is not a retransmit timeout", closing(timerRanIn(tcpEstablished), sockErr(unix.ETIMEDOUT), flags(flagResetSentBefore)), record.CauseKeepaliveTimeout},
		{"a retransmit timeout outranks a reset", closing(sockErr(unix.ETIMEDOUT), flags(flagResetReceivedBefore)), record.CauseRetransmitTimeout},
		{"a reset received outranks one sent", closing(flags(flagResetReceivedBefore | flagResetSentBefore)), record.CauseResetReceived},
		{"a reset outranks the FIN before it", closing(flags(flagResetSentBefore), fin(finLocal, 5000)), record.CauseResetSent},
		{"an error outranks the FIN before it", closing(sockErr(unix.EPIPE), fin(finRemote, 5000)), record.CauseError},
		{"FIN seen, nothing written after it", closing(flags(flagResetReceivedBefore), fin(finRemote, 1000)), record.CauseResetReceived},
		{"write after a silence was acknowledged", closing(flags(flagResetReceivedBefore), silentThenWrote(300002, 2)), record.CauseResetReceived},
		{"silence shorter than the threshold", closing(flags(flagResetReceivedBefore), unacked(120), silentThenWrote(500, 2)), record.CauseResetReceived},
		{"we closed first, then wrote", closing(flags(flagResetReceivedBefore), unacked(120), silentThenWrote(300002, 2), fin(finLocal, 0)), record.CauseResetReceived},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := closeCause(tc.history, threshold); got != tc.want {
				t.Fatalf("cause %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReuseGap(t *testing.T) {
	const start = uint64(1e12)
	e := &katraceEvent{TsNs: start + 1324*ms, FinNs: start + 1000*ms, SinceSendMs: 12}
	if got := reuseGapMs(e); got != 312 {
		t.Errorf("gap %d ms, want 312", got)
	}
	e.SinceSendMs = 400 // the last write came before the FIN
	if got := reuseGapMs(e); got != 0 {
		t.Errorf("write before the FIN: gap %d ms, want 0", got)
	}
	e.FinNs = 0
	if got := reuseGapMs(e); got != 0 {
		t.Errorf("no FIN time: gap %d ms, want 0", got)
	}
}

func TestMayBeAbort(t *testing.T) {
	owner := flags(flagOwnerContext)
	for _, tc := range []struct {
		name string
		e    *katraceEvent
		want bool
	}{
		{"close() of an established socket", closing(owner), true},
		{"close() with the peer's FIN in", closing(owner, func(e *katraceEvent) { e.OldState = tcpCloseWait }), true},
		{"close() after our FIN was acknowledged", closing(owner, func(e *katraceEvent) { e.OldState = tcpFinWait2 }), false},
		{"not in the owner's system call", closing(), false},
		{"the reset already went out", closing(owner, flags(flagResetSentBefore)), false},
	} {
		if got := mayBeAbort(tc.e); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestResetReasonRules(t *testing.T) {
	reset := func(facts ...history) *katraceEvent {
		e := closing(facts...)
		e.Kind = evResetSent
		return e
	}
	kernel := func(reason uint32) history {
		return func(e *katraceEvent) { e.Flags |= flagKernelReason; e.Reason = reason }
	}
	for _, tc := range []struct {
		name           string
		e              *katraceEvent
		reason, source string
	}{
		{"named by the kernel", reset(kernel(11)), "TCP_ABORT_ON_CLOSE", record.SourceKernel},
		{"a reason newer than katrace", reset(kernel(99)), "REASON_99", record.SourceKernel},
		{"keepalive timeout", reset(timerRanIn(tcpEstablished)), "TCP_KEEPALIVE_TIMEOUT", record.SourceInferred},
		{"FIN_WAIT2 linger", reset(timerRanIn(tcpFinWait2)), "TCP_STATE", record.SourceInferred},
		{"time-wait socket", reset(flags(flagTimewait)), "TCP_TIMEWAIT_SOCKET", record.SourceInferred},
		{"close() with unread data", reset(flags(flagOwnerContext), func(e *katraceEvent) { e.Unread = 10 }), "TCP_ABORT_ON_CLOSE", record.SourceInferred},
		{"SO_LINGER 0", reset(flags(flagOwnerContext | flagLingerZero)), "TCP_STATE", record.SourceInferred},
		{"nothing to go by", reset(), "", ""},
	} {
		reason, source := resetReason(tc.e)
		if reason != tc.reason || source != tc.source {
			t.Errorf("%s: %q (%q), want %q (%q)", tc.name, reason, source, tc.reason, tc.source)
		}
	}
}
