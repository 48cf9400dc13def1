// Package record holds what katrace reports: one Record per line of output.
// It is the contract between the tracer (which fills records) and the
// printers (which write them); it knows nothing about BPF or about formats.
//
// A Record is a flat struct reused for every event so that the hot path does
// not allocate. Optional numeric fields use Absent (-1) for "not known"; the
// printers leave such fields out.
package record

import (
	"net/netip"
	"time"
)

// Type is the kind of a record; String gives the NDJSON "type" value.
type Type uint8

const (
	TypeStart Type = iota + 1
	TypeState
	TypeKeepaliveProbe
	TypeKeepaliveAck
	TypeKeepaliveTimeout
	TypeIdleClose
	TypeReset
	TypeClose
	TypeSummary
	TypeLost
	TypeEnd
)

var typeNames = [...]string{
	TypeStart:            "start",
	TypeState:            "state",
	TypeKeepaliveProbe:   "keepalive_probe",
	TypeKeepaliveAck:     "keepalive_ack",
	TypeKeepaliveTimeout: "keepalive_timeout",
	TypeIdleClose:        "idle_close",
	TypeReset:            "reset",
	TypeClose:            "close",
	TypeSummary:          "summary",
	TypeLost:             "lost",
	TypeEnd:              "end",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "unknown"
}

// HasSocket reports whether records of this type carry the socket fields.
func (t Type) HasSocket() bool {
	switch t {
	case TypeStart, TypeSummary, TypeLost, TypeEnd:
		return false
	}
	return true
}

// Absent marks an optional numeric field as unknown.
const Absent = -1

// Close causes (close.cause).
const (
	CauseKeepaliveTimeout  = "keepalive_timeout"
	CauseRetransmitTimeout = "retransmit_timeout"
	CauseIdleCloseLocal    = "idle_close_local"
	CauseIdleCloseRemote   = "idle_close_remote"
	CauseStaleReuse        = "stale_reuse"
	CauseResetAfterIdle    = "reset_after_idle"
	CauseResetReceived     = "reset_received"
	CauseResetSent         = "reset_sent"
	CauseFinWait2Timeout   = "fin_wait2_timeout"
	// The owner closed a connect that never completed.
	CauseConnectAbandoned = "connect_abandoned"
	CauseCloseLocal       = "close_local"
	CauseCloseRemote      = "close_remote"
	CauseError            = "error"
)

// StateSynSent is a connect's state until the handshake completes
// (socket.state, close.old_state).
const StateSynSent = "SYN_SENT"

// Reset directions, idle-close sides and reason sources.
const (
	DirectionSent     = "sent"
	DirectionReceived = "received"
	SideLocal         = "local"
	SideRemote        = "remote"
	SourceKernel      = "kernel"
	SourceInferred    = "inferred"
)

// Abort is what an application's close() did that aborted the connection.
type Abort uint8

const (
	AbortNone Abort = iota
	// AbortUnreadData: closed with data still unread, which the kernel
	// answers with a reset instead of a FIN.
	AbortUnreadData
	// AbortLingerZero: closed with SO_LINGER set to 0.
	AbortLingerZero
)

// SocketID names a TCP socket wherever katrace reports one (trace's
// records, the sockets snapshot): its cookie, its two ends and its network
// namespace, with the TCP state it was in.
type SocketID struct {
	Cookie uint64
	IPv6   bool
	// V4Mapped marks a dual-stack IPv6 socket talking IPv4
	// (::ffff:a.b.c.d): IPv6 is false and the addresses are the IPv4 ones,
	// as its peer's are.
	V4Mapped bool
	LAddr    netip.Addr
	RAddr    netip.Addr
	LPort    uint16
	RPort    uint16
	NetNS    uint32
	State    string // TCP state name, e.g. "ESTABLISHED"
}

// Socket is the identity and owner of a connection, carried by every socket
// record.
type Socket struct {
	SocketID

	// ServiceLocal says the local end is the service: the socket was
	// accepted (or, when katrace did not see it open, its local port is
	// the lower one). The service end is the remote one otherwise.
	ServiceLocal bool

	// PID is 0 when the owner is not known; Comm is then empty.
	PID  uint32
	Comm string

	// Proto is "" when unknown, else "http/1.x", "http/2" or "tls".
	Proto string
	// Requests is the number of HTTP/1.x requests seen, Absent when unknown.
	Requests int

	// Workload is the socket's cgroup and the container and pod in it.
	Workload Workload
}

// Workload names what a socket belongs to: its cgroup v2 path and the
// container and Kubernetes pod behind it. Empty fields are unknown.
type Workload struct {
	// Cgroup is the path relative to the cgroup2 root, as the "0::" line
	// of /proc/PID/cgroup shows it.
	Cgroup string
	// ContainerID is the runtime's full 64-hex id.
	ContainerID string
	PodUID      string
	// Pod, Namespace and Container are names from the node's kubelet.
	Pod       string
	Namespace string
	Container string
}

// Known reports whether w names a container or a pod.
func (w *Workload) Known() bool { return w.ContainerID != "" || w.PodUID != "" }

// Record is one line of output. Which fields mean something depends on Type;
// see the event contract in DESIGN.md and README.md.
type Record struct {
	Time time.Time
	Type Type
	// Host is the node the record comes from, on every record (see
	// WithHost).
	Host string
	Sock Socket

	// start
	Mode    string
	Kernel  string
	Version string

	// state
	OldState string
	NewState string

	// keepalive_probe, keepalive_ack, keepalive_timeout
	Probe           int
	MaxProbes       int
	Probes          int
	IntervalMs      int64
	KeepaliveIdleMs int64
	RTTMs           int64 // Absent when unknown
	Error           string
	// UnseenProbes is, for keepalive_probe and keepalive_timeout, how many
	// probes just before this record's one (for a timeout, the last ones)
	// the kernel sent in timer runs katrace did not see, from the kernel's
	// own count of unanswered probes. 0 when none, or when katrace cannot
	// tell (tracer.Correlator.unseenProbes).
	UnseenProbes int

	// idle_close, reset, close, keepalive_probe
	IdleMs int64 // Absent when unknown
	Side   string

	// reset
	Direction    string
	Reason       string
	ReasonSource string
	// AfterKeepalive marks a reset received while keepalive probes were
	// unanswered: the peer answered a probe with a RST.
	AfterKeepalive bool
	// Abort says what the application's close() did that made the kernel
	// send this reset; AbortNone when the reset did not come from it.
	Abort Abort
	// UnreadBytes is, with AbortUnreadData, how much the application left
	// unread.
	UnreadBytes uint64

	// close
	Cause string
	// DurationMs is Absent for a socket katrace did not see begin.
	DurationMs    int64
	ProbesSent    int
	BytesSent     uint64
	BytesReceived uint64
	ReuseGapMs    int64 // Absent unless Cause is stale_reuse
	// PeerIdleMs is, for stale_reuse, how long the connection had sat idle
	// when the peer closed it: the peer's idle timeout. Absent when unknown.
	PeerIdleMs int64
	// ResetAtProbe is, for reset_received, the keepalive probe the peer
	// answered with the reset; 0 when no probe was out.
	ResetAtProbe int
	// For retransmit_timeout: how long the oldest unacknowledged data
	// waited until the kernel gave up (Absent when unknown), how often it
	// was retransmitted, and TCP_USER_TIMEOUT (Absent when not set).
	// Error (above) is the socket's error at the close, on any cause.
	UnackedMs     int64
	Retransmits   int
	UserTimeoutMs int64
	// AfterIdle marks a retransmit_timeout whose unanswered write came
	// after at least the idle threshold of silence (IdleMs is then that
	// silence): the silent-drop twin of reset_after_idle.
	AfterIdle bool
	// Goodbye marks an idle close whose FIN followed a small write that
	// ended the silence (IdleMs is the silence before it); GoodbyeBytes is
	// that write's size, Absent when unknown.
	Goodbye      bool
	GoodbyeBytes int64

	// summary
	Endpoint         string
	IdleClosesLocal  int
	IdleClosesRemote int
	IdleMsP50        int64
	IdleMsP90        int64
	// StaleReuses, on a summary, counts clients seen reusing connections
	// after this endpoint's idle timeout closed them.
	StaleReuses int
	// Forgotten flows, on a summary: connections to this endpoint that a
	// NAT, load balancer or firewall (or the peer) forgot after idle
	// (reset_after_idle, retransmit_timeout after idle, a keepalive probe
	// answered by a reset); the shortest idle forgotten; how many of those
	// sockets had keepalive off; the longest keepalive idle among those
	// that had it on (Absent when none).
	ForgottenFlows           int
	ForgottenIdleMsMin       int64
	ForgottenKeepaliveOff    int
	ForgottenKeepaliveIdleMs int64
	// EndpointWorkload, on a summary, is the container or pod serving the
	// endpoint, when it runs on this host.
	EndpointWorkload Workload

	// lost, end
	Count  uint64
	Events uint64
	Lost   uint64
	// MissedRuns counts the program runs the kernel skipped (a program
	// already running on that CPU): their events are missing.
	MissedRuns uint64
}

// Reset clears r for reuse, keeping no values from the previous event.
func (r *Record) Reset() {
	*r = Record{IdleMs: Absent, RTTMs: Absent, ReuseGapMs: Absent, PeerIdleMs: Absent,
		UnackedMs: Absent, UserTimeoutMs: Absent, GoodbyeBytes: Absent, ForgottenKeepaliveIdleMs: Absent}
	r.Sock.Requests = Absent
}

// Sink receives records. Implementations must not keep r after Write
// returns: the caller reuses it.
type Sink interface {
	Write(r *Record) error
	Flush() error
}

// WithHost returns a Sink that sets Host on every record before passing it
// to sink: the producers reset records between events and need not know.
func WithHost(sink Sink, host string) Sink { return &hostSink{sink: sink, host: host} }

type hostSink struct {
	sink Sink
	host string
}

func (h *hostSink) Write(r *Record) error {
	r.Host = h.host
	return h.sink.Write(r)
}

func (h *hostSink) Flush() error { return h.sink.Flush() }
