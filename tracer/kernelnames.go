package tracer

// Go names for the kernel's event kinds, flags, FIN sides, roles and
// protocol labels (bpf/katrace.h), from the constants bpf2go generates:
// a value changed or removed in C changes or breaks the Go build. Each is
// typed as the struct event field it is compared with.
const (
	evState          = uint8(katraceEventKindEV_STATE)
	evIdleFin        = uint8(katraceEventKindEV_IDLE_FIN)
	evClose          = uint8(katraceEventKindEV_CLOSE)
	evResetSent      = uint8(katraceEventKindEV_RESET_SENT)
	evResetReceived  = uint8(katraceEventKindEV_RESET_RECEIVED)
	evError          = uint8(katraceEventKindEV_ERROR)
	evKeepalive      = uint8(katraceEventKindEV_KEEPALIVE)
	evTimewaitExpiry = uint8(katraceEventKindEV_TIMEWAIT_EXPIRY)

	flagOwner               = uint16(katraceEventFlagsEVF_OWNER)
	flagKeepOpen            = uint16(katraceEventFlagsEVF_KEEPOPEN)
	flagInKeepaliveTimer    = uint16(katraceEventFlagsEVF_IN_KEEPALIVE_TIMER)
	flagKernelReason        = uint16(katraceEventFlagsEVF_KERNEL_REASON)
	flagTimewait            = uint16(katraceEventFlagsEVF_TIMEWAIT)
	flagOrphan              = uint16(katraceEventFlagsEVF_ORPHAN)
	flagRcvShutdown         = uint16(katraceEventFlagsEVF_RCV_SHUTDOWN)
	flagSendShutdown        = uint16(katraceEventFlagsEVF_SEND_SHUTDOWN)
	flagStartKnown          = uint16(katraceEventFlagsEVF_START_KNOWN)
	flagResetSentBefore     = uint16(katraceEventFlagsEVF_RESET_SENT_BEFORE)
	flagResetReceivedBefore = uint16(katraceEventFlagsEVF_RESET_RECEIVED_BEFORE)
	flagEstablished         = uint16(katraceEventFlagsEVF_ESTABLISHED)
	flagOwnerContext        = uint16(katraceEventFlagsEVF_OWNER_CONTEXT)
	flagLingerZero          = uint16(katraceEventFlagsEVF_LINGER_ZERO)
	flagPeerFin             = uint16(katraceEventFlagsEVF_PEER_FIN)
	flagV4Mapped            = uint16(katraceEventFlagsEVF_V4MAPPED)

	finLocal  = uint8(katraceFinSideFIN_LOCAL)
	finRemote = uint8(katraceFinSideFIN_REMOTE)

	rolePassive = uint8(katraceSockRoleROLE_PASSIVE)
	roleActive  = uint8(katraceSockRoleROLE_ACTIVE)

	protoHTTP1 = uint8(katraceProtoPROTO_HTTP1)

	// goodbyeSizeUnknown is GOODBYE_SIZE_UNKNOWN (a #define, not generated).
	goodbyeSizeUnknown = 0xffffffff
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
