package sockets

// Flags and enums of bpf/sockets.h.
const (
	rowKeepOpen   = 1 << 0
	rowOwnIdle    = 1 << 1
	rowOwnIntvl   = 1 << 2
	rowOwnProbes  = 1 << 3
	rowIdleKnown  = 1 << 4
	rowOrphan     = 1 << 5
	kindFull      = 1
	kindRequest   = 2
	kindTimewait  = 3
	stateListen   = 10
	stateTimeWait = 6
)

var timerNames = [...]string{
	0: TimerNone,
	1: TimerRetransmit,
	2: TimerZeroWindowProbe,
	3: TimerKeepalive,
	4: TimerTimeWait,
	5: TimerFinWait2,
	6: TimerSynAck,
}
