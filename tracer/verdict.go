package tracer

import (
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/record"
)

// The verdict rules: pure functions of what the kernel gathered about a
// connection by the time of one event. They decide, never remember; the
// correlator supplies what it remembered.

// closeCause is the verdict on a connection's end, from the facts the
// kernel gathered by the time the socket reached CLOSE.
func closeCause(e *katraceEvent, idleThreshold time.Duration) string {
	thresholdMs := uint32(idleThreshold / time.Millisecond)
	switch {
	case e.Kind == evTimewaitExpiry && e.OldState == tcpFinWait2:
		return record.CauseFinWait2Timeout
	case e.Kind == evTimewaitExpiry:
		return record.CauseCloseLocal
	case e.Flags&flagInKeepaliveTimer != 0 && e.StateBeforeTimer == tcpFinWait2:
		return record.CauseFinWait2Timeout
	case e.Flags&flagInKeepaliveTimer != 0:
		return record.CauseKeepaliveTimeout
	case e.SkErr == int32(unix.ETIMEDOUT):
		return record.CauseRetransmitTimeout
	case e.Flags&flagResetReceivedBefore != 0:
		switch {
		case isStaleReuse(e):
			return record.CauseStaleReuse
		case isResetAfterIdle(e, thresholdMs):
			return record.CauseResetAfterIdle
		}
		return record.CauseResetReceived
	case e.Flags&flagResetSentBefore != 0:
		return record.CauseResetSent
	case e.SkErr != 0:
		return record.CauseError
	case e.OldState == tcpSynSent && e.Flags&flagOwnerContext != 0:
		return record.CauseConnectAbandoned
	case e.FinSide == finLocal:
		if e.FinIdleMs >= thresholdMs {
			return record.CauseIdleCloseLocal
		}
		return record.CauseCloseLocal
	case e.FinSide == finRemote:
		if e.FinIdleMs >= thresholdMs {
			return record.CauseIdleCloseRemote
		}
		return record.CauseCloseRemote
	}
	return record.CauseCloseLocal
}

// isTimewaitHandoff: an orphan leaving FIN_WAIT2 for CLOSE without the
// peer's FIN, outside the keepalive timer, is handed to a timewait socket
// that lingers for the FIN (tcp_fin_timeout at most 60 s).
func isTimewaitHandoff(e *katraceEvent) bool {
	return e.Kind == evClose && e.OldState == tcpFinWait2 && e.Flags&flagOrphan != 0 &&
		e.Flags&flagPeerFin == 0 && e.Flags&flagInKeepaliveTimer == 0
}

// isOrdinaryClose: the cause explains nothing, and the default view leaves
// such closes out.
func isOrdinaryClose(cause string) bool {
	return cause == record.CauseCloseLocal || cause == record.CauseCloseRemote
}

// isStaleReuse: the peer closed (its FIN arrived), we wrote after that,
// and the peer answered with a RST.
func isStaleReuse(e *katraceEvent) bool {
	return e.FinSide == finRemote && e.WrittenAfterFin > 0
}

// isResetAfterIdle: no FIN either way, our write after a silence of at
// least the idle threshold was never acknowledged, and a RST came instead:
// the peer, or a NAT or load balancer between us, forgot the connection.
func isResetAfterIdle(e *katraceEvent, thresholdMs uint32) bool {
	return e.FinSide == 0 && e.Unacked > 0 && e.SinceRecvMs >= e.SinceSendMs &&
		e.SinceRecvMs-e.SinceSendMs >= thresholdMs
}

// silenceBeforeWriteMs is, for reset_after_idle, how long the connection
// had been silent when our write went out.
func silenceBeforeWriteMs(e *katraceEvent) int64 {
	return int64(e.SinceRecvMs - e.SinceSendMs)
}

// unackedMs is, at a retransmission timeout, how long the oldest
// unacknowledged data had waited: first_tx_mstamp is when it went out with
// nothing in flight, and retransmissions do not move it.
func unackedMs(e *katraceEvent) (int64, bool) {
	if e.FirstTxNs == 0 || e.FirstTxNs > e.TsNs || e.Unacked == 0 && e.Retransmits == 0 {
		return 0, false
	}
	return int64(e.TsNs-e.FirstTxNs) / int64(time.Millisecond), true
}

// silenceBeforeStalledWriteMs is how long the connection had been silent
// when the write that was never acknowledged went out: the last ACK came
// before that write (rcv_tstamp), since_ack covers both spans.
func silenceBeforeStalledWriteMs(e *katraceEvent, unacked int64) (int64, bool) {
	idle := int64(e.SinceAckMs) - unacked
	if idle < 0 {
		return 0, false
	}
	return idle, true
}

// reuseGapMs is the time from the peer's FIN to our last write.
func reuseGapMs(e *katraceEvent) int64 {
	wrote := int64(e.TsNs) - int64(e.SinceSendMs)*int64(time.Millisecond)
	if e.FinNs == 0 || wrote < int64(e.FinNs) {
		return 0
	}
	return (wrote - int64(e.FinNs)) / int64(time.Millisecond)
}

// mayBeAbort says whether a close is one the kernel follows with a RST.
func mayBeAbort(e *katraceEvent) bool {
	if e.Flags&flagOwnerContext == 0 || e.Flags&flagResetSentBefore != 0 {
		return false
	}
	switch e.OldState {
	case tcpEstablished, tcpSynRecv, tcpFinWait1, tcpCloseWait:
		return true
	}
	return false
}

// resetNames are enum sk_rst_reason's names (include/net/rstreason.h).
var resetNames = [...]string{
	"NOT_SPECIFIED", "NO_SOCKET", "TCP_INVALID_ACK_SEQUENCE", "TCP_RFC7323_PAWS",
	"TCP_TOO_OLD_ACK", "TCP_ACK_UNSENT_DATA", "TCP_FLAGS", "TCP_OLD_ACK",
	"TCP_ABORT_ON_DATA", "TCP_TIMEWAIT_SOCKET", "INVALID_SYN", "TCP_ABORT_ON_CLOSE",
	"TCP_ABORT_ON_LINGER", "TCP_ABORT_ON_MEMORY", "TCP_STATE", "TCP_KEEPALIVE_TIMEOUT",
	"TCP_DISCONNECT_WITH_DATA",
}

// resetReason names why a reset was sent: the kernel's reason where it
// gives one, else what the context implies, marked as inferred.
func resetReason(e *katraceEvent) (reason, source string) {
	if e.Flags&flagKernelReason != 0 {
		if int(e.Reason) < len(resetNames) {
			return resetNames[e.Reason], record.SourceKernel
		}
		return "REASON_" + strconv.Itoa(int(e.Reason)), record.SourceKernel
	}
	switch {
	case e.Flags&flagInKeepaliveTimer != 0 && e.StateBeforeTimer == tcpFinWait2:
		return "TCP_STATE", record.SourceInferred
	case e.Flags&flagInKeepaliveTimer != 0:
		return "TCP_KEEPALIVE_TIMEOUT", record.SourceInferred
	case e.Flags&flagTimewait != 0:
		return "TCP_TIMEWAIT_SOCKET", record.SourceInferred
	// An abort in the owner's close(), named as 6.10+ kernels name it.
	case e.Flags&flagOwnerContext != 0 && e.State == tcpClose && e.Unread > 0:
		return "TCP_ABORT_ON_CLOSE", record.SourceInferred
	case e.Flags&flagOwnerContext != 0 && e.State == tcpClose && e.Flags&flagLingerZero != 0:
		return "TCP_STATE", record.SourceInferred
	}
	return "", ""
}

// abortBy says which application action aborted the connection, when the
// reset came from its close().
func abortBy(e *katraceEvent) record.Abort {
	if e.Kind != evResetSent || e.Flags&flagOwnerContext == 0 || e.State != tcpClose {
		return record.AbortNone
	}
	switch {
	case e.Unread > 0:
		return record.AbortUnreadData
	case e.Flags&flagLingerZero != 0:
		return record.AbortLingerZero
	}
	return record.AbortNone
}

func errnoName(errno int32) string {
	if name := unix.ErrnoName(unix.Errno(errno)); name != "" {
		return name
	}
	return "errno " + strconv.Itoa(int(errno))
}
