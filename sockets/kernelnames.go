package sockets

// Go names for the row flags, socket kinds and timers of bpf/sockets.h,
// from the constants bpf2go generates: a value changed or removed in C
// changes or breaks the Go build. Each is typed as the struct socket_row
// field it is compared with.
const (
	rowKeepOpen  = uint32(socketsSocketRowFlagsROWF_KEEPOPEN)
	rowOwnIdle   = uint32(socketsSocketRowFlagsROWF_OWN_IDLE)
	rowOwnIntvl  = uint32(socketsSocketRowFlagsROWF_OWN_INTVL)
	rowOwnProbes = uint32(socketsSocketRowFlagsROWF_OWN_PROBES)
	rowIdleKnown = uint32(socketsSocketRowFlagsROWF_IDLE_KNOWN)
	rowOrphan    = uint32(socketsSocketRowFlagsROWF_ORPHAN)
	rowV4Mapped  = uint32(socketsSocketRowFlagsROWF_V4MAPPED)

	kindFull     = uint8(socketsSocketKindSOCKET_FULL)
	kindRequest  = uint8(socketsSocketKindSOCKET_REQUEST)
	kindTimewait = uint8(socketsSocketKindSOCKET_TIMEWAIT)
)

// TCP states as the kernel numbers them (include/net/tcp_states.h), which
// sock_diag reports as they are.
const (
	stateTimeWait = 6
	stateListen   = 10
)

// timerNames name enum socket_timer.
var timerNames = [...]string{
	socketsSocketTimerTIMER_NONE:              TimerNone,
	socketsSocketTimerTIMER_RETRANSMIT:        TimerRetransmit,
	socketsSocketTimerTIMER_ZERO_WINDOW_PROBE: TimerZeroWindowProbe,
	socketsSocketTimerTIMER_KEEPALIVE:         TimerKeepalive,
	socketsSocketTimerTIMER_TIME_WAIT:         TimerTimeWait,
	socketsSocketTimerTIMER_FIN_WAIT2:         TimerFinWait2,
	socketsSocketTimerTIMER_SYNACK:            TimerSynAck,
}
