package tracer

// Kernel event kinds and flags (bpf/katrace.h).
const (
	evState         = 1
	evIdleFin       = 2
	evClose         = 3
	evResetSent     = 4
	evResetReceived = 5
	evError         = 6
	evKeepalive     = 7

	flagOwner               = 1 << 0
	flagKeepOpen            = 1 << 1
	flagInKeepaliveTimer    = 1 << 2
	flagKernelReason        = 1 << 3
	flagTimewait            = 1 << 4
	flagOrphan              = 1 << 5
	flagRcvShutdown         = 1 << 6
	flagSendShutdown        = 1 << 7
	flagStartKnown          = 1 << 8
	flagResetSentBefore     = 1 << 9
	flagResetReceivedBefore = 1 << 10
	flagEstablished         = 1 << 11
	flagOwnerContext        = 1 << 12
	flagLingerZero          = 1 << 13
	flagPeerFin             = 1 << 14

	finLocal  = 1
	finRemote = 2

	rolePassive = 1
	roleActive  = 2

	protoHTTP1 = 1
)

// protoNames are the labels of enum proto; PROTO_OTHER has none.
var protoNames = [...]string{1: "http/1.x", 2: "http/2", 3: "tls", 4: ""}

// TCP states, as the kernel numbers them.
var stateNames = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
	11: "CLOSING", 12: "NEW_SYN_RECV",
}

const (
	tcpEstablished = 1
	tcpSynSent     = 2
	tcpSynRecv     = 3
	tcpFinWait2    = 5
	tcpClose       = 7
	tcpCloseWait   = 8
	tcpFinWait1    = 4
)

func stateName(s uint8) string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "UNKNOWN"
}
