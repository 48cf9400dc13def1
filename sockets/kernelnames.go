package sockets

// Go names for the row flags and socket kinds of bpf/sockets.h: the
// constants bpf2go generates, so that a value changed or removed in C
// changes or breaks the Go build. They keep their generated types:
// rowSocket converts a row's fields before comparing.
const (
	rowKeepOpen  = socketsSocketRowFlagsROWF_KEEPOPEN
	rowOwnIdle   = socketsSocketRowFlagsROWF_OWN_IDLE
	rowOwnIntvl  = socketsSocketRowFlagsROWF_OWN_INTVL
	rowOwnProbes = socketsSocketRowFlagsROWF_OWN_PROBES
	rowIdleKnown = socketsSocketRowFlagsROWF_IDLE_KNOWN
	rowOrphan    = socketsSocketRowFlagsROWF_ORPHAN
	rowV4Mapped  = socketsSocketRowFlagsROWF_V4MAPPED

	kindFull     = socketsSocketKindSOCKET_FULL
	kindRequest  = socketsSocketKindSOCKET_REQUEST
	kindTimewait = socketsSocketKindSOCKET_TIMEWAIT
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
