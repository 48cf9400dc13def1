package tracer

import (
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/output"
	"github.com/katrace/katrace/record"
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

// OwnerLookup resolves a socket inode to the process that holds it.
type OwnerLookup func(inode uint32) (pid uint32, comm string, ok bool)

// CorrelatorConfig says what the correlator reports.
type CorrelatorConfig struct {
	IdleThreshold time.Duration
	// AllCloses reports every close, not only the ones that explain a death.
	AllCloses bool
	// States reports every state change.
	States bool
	// MaxSockets caps the sockets remembered at once; the least recently
	// active is forgotten first.
	MaxSockets int
	// WallOffset converts the kernel's monotonic nanoseconds to wall time.
	WallOffset int64
	// Owner resolves owners the kernel could not see; may be nil.
	Owner OwnerLookup
}

// conn is what katrace remembers about one socket between its events.
type conn struct {
	cookie     uint64
	sock       record.Socket
	lastNs     uint64
	probesSent int
	// timeoutReported: the keepalive_timeout record is out (the kernel
	// reports the error and the CLOSE in either order, by version).
	timeoutReported bool
	// resetReason is the reason of the last reset sent, for the close.
	resetReason string

	prev, next *conn // recency list, most recent first
}

// Correlator turns kernel events into records, per socket.
type Correlator struct {
	cfg   CorrelatorConfig
	sink  record.Sink
	conns map[uint64]*conn
	// head and tail of the recency list.
	head, tail *conn
	free       []*conn
	rec        record.Record

	events  uint64
	evicted uint64
	// lastClosed is the cookie of the last socket closed: events the kernel
	// sends after CLOSE (an error report) must not bring it back.
	lastClosed uint64
	// pending holds closes that may be aborts: the kernel moves an aborted
	// socket to CLOSE first and sends the RST right after, so the verdict
	// waits for that reset (or for abortWait to pass without one).
	pending  [8]katraceEvent
	npending int

	summary summary
	// comms caches process names, so that records do not allocate them.
	comms map[[16]int8]string
}

// abortWait is how long a possible abort's close waits for its reset,
// which the kernel sends in the same system call: far more than that call
// takes, even on an emulated CPU.
const abortWait = 100 * time.Millisecond

// NewCorrelator returns a correlator writing to sink.
func NewCorrelator(cfg CorrelatorConfig, sink record.Sink) *Correlator {
	if cfg.MaxSockets <= 0 {
		cfg.MaxSockets = 65536
	}
	return &Correlator{cfg: cfg, sink: sink, conns: make(map[uint64]*conn), comms: make(map[[16]int8]string)}
}

// Tracked is the number of sockets remembered now.
func (c *Correlator) Tracked() int { return len(c.conns) }

// Events is the number of kernel events handled.
func (c *Correlator) Events() uint64 { return c.events }

// Evicted is the number of sockets forgotten because of MaxSockets.
func (c *Correlator) Evicted() uint64 { return c.evicted }

func (c *Correlator) wall(ns uint64) time.Time {
	return time.Unix(0, int64(ns)+c.cfg.WallOffset)
}

// Handle takes one kernel event; records go to the sink.
func (c *Correlator) Handle(e *katraceEvent) error {
	c.events++
	if c.npending > 0 {
		if err := c.settlePending(e); err != nil {
			return err
		}
	}
	switch e.Kind {
	case evState:
		return c.onState(e)
	case evIdleFin:
		return c.onIdleFin(e)
	case evResetSent, evResetReceived:
		return c.onReset(e)
	case evError:
		return c.onError(e)
	case evKeepalive:
		return c.onKeepalive(e)
	case evClose:
		return c.onClose(e)
	}
	return nil
}

// lookup returns the socket's memory, creating it when create is set.
func (c *Correlator) lookup(e *katraceEvent, create bool) *conn {
	if cn := c.conns[e.Cookie]; cn != nil {
		c.touch(cn, e.TsNs)
		return cn
	}
	if !create || e.Cookie == 0 {
		return nil
	}
	if len(c.conns) >= c.cfg.MaxSockets {
		c.evict()
	}
	var cn *conn
	if n := len(c.free); n > 0 {
		cn = c.free[n-1]
		c.free = c.free[:n-1]
		*cn = conn{}
	} else {
		cn = &conn{}
	}
	cn.cookie = e.Cookie
	cn.sock.Requests = record.Absent
	c.conns[e.Cookie] = cn
	c.pushFront(cn)
	cn.lastNs = e.TsNs
	return cn
}

func (c *Correlator) touch(cn *conn, ns uint64) {
	cn.lastNs = ns
	if c.head == cn {
		return
	}
	c.unlink(cn)
	c.pushFront(cn)
}

func (c *Correlator) pushFront(cn *conn) {
	cn.prev, cn.next = nil, c.head
	if c.head != nil {
		c.head.prev = cn
	}
	c.head = cn
	if c.tail == nil {
		c.tail = cn
	}
}

func (c *Correlator) unlink(cn *conn) {
	if cn.prev != nil {
		cn.prev.next = cn.next
	} else {
		c.head = cn.next
	}
	if cn.next != nil {
		cn.next.prev = cn.prev
	} else {
		c.tail = cn.prev
	}
	cn.prev, cn.next = nil, nil
}

func (c *Correlator) forget(cn *conn) {
	c.unlink(cn)
	delete(c.conns, cn.cookie)
	c.free = append(c.free, cn)
}

func (c *Correlator) evict() {
	if c.tail != nil {
		c.forget(c.tail)
		c.evicted++
	}
}

// fillSocket sets the socket fields of the record from the event and what
// is remembered of the socket.
func (c *Correlator) fillSocket(e *katraceEvent, cn *conn) {
	r := &c.rec
	r.Reset()
	r.Time = c.wall(e.TsNs)
	s := &r.Sock
	s.Cookie = e.Cookie
	s.NetNS = e.Netns
	s.State = stateName(e.State)
	s.LPort, s.RPort = e.Sport, e.Dport
	if e.Family == 6 {
		s.IPv6 = true
		s.LAddr = netip.AddrFrom16(e.Saddr)
		s.RAddr = netip.AddrFrom16(e.Daddr)
	} else {
		s.LAddr = netip.AddrFrom4([4]byte(e.Saddr[:4]))
		s.RAddr = netip.AddrFrom4([4]byte(e.Daddr[:4]))
	}
	s.Requests = record.Absent
	if e.Proto != 0 && int(e.Proto) < len(protoNames) {
		s.Proto = protoNames[e.Proto]
		if e.Proto == protoHTTP1 {
			s.Requests = int(e.Requests)
		}
	}

	if cn != nil {
		// Timer events carry no label: keep the one seen before.
		if s.Proto == "" {
			s.Proto, s.Requests = cn.sock.Proto, cn.sock.Requests
		}
		cn.sock.Proto, cn.sock.Requests = s.Proto, s.Requests
		// By CLOSE the kernel may have cleared the local port of an active
		// closer: keep the tuple seen earlier.
		if s.LPort == 0 && cn.sock.LPort != 0 {
			s.LAddr, s.LPort = cn.sock.LAddr, cn.sock.LPort
		}
		cn.sock.LAddr, cn.sock.LPort = s.LAddr, s.LPort
	}

	switch {
	case e.Flags&flagOwner != 0 && e.Pid != 0:
		s.PID = e.Pid
		s.Comm = c.commString(e, cn)
		if cn != nil {
			cn.sock.PID, cn.sock.Comm = s.PID, s.Comm
		}
	case cn != nil && cn.sock.PID != 0:
		s.PID, s.Comm = cn.sock.PID, cn.sock.Comm
	case e.SockIno != 0 && c.cfg.Owner != nil:
		if pid, comm, ok := c.cfg.Owner(e.SockIno); ok {
			s.PID, s.Comm = pid, comm
			if cn != nil {
				cn.sock.PID, cn.sock.Comm = pid, comm
			}
		}
	}
}

// commString returns the event's comm, reusing the remembered string when
// it has not changed so that the hot path does not allocate.
func (c *Correlator) commString(e *katraceEvent, cn *conn) string {
	n := 0
	for n < len(e.Comm) && e.Comm[n] != 0 {
		n++
	}
	if cn != nil && cn.sock.PID == e.Pid && len(cn.sock.Comm) == n {
		same := true
		for i := 0; i < n; i++ {
			if cn.sock.Comm[i] != byte(e.Comm[i]) {
				same = false
				break
			}
		}
		if same {
			return cn.sock.Comm
		}
	}
	if s, ok := c.comms[e.Comm]; ok {
		return s
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(e.Comm[i])
	}
	s := string(b)
	if len(c.comms) < maxComms {
		c.comms[e.Comm] = s
	}
	return s
}

// maxComms bounds the cache of process names (a host has few).
const maxComms = 4096

// idleMs is how long the connection had gone without data either way, or
// Absent before it was established, when the kernel's stamps mean nothing.
func idleMs(e *katraceEvent) int64 {
	established := e.Flags&flagEstablished != 0 ||
		(e.Flags&flagStartKnown == 0 && e.State != tcpSynSent && e.State != tcpSynRecv && e.OldState != tcpSynSent)
	if !established {
		return record.Absent
	}
	idle := int64(min(e.SinceSendMs, e.SinceRecvMs))
	if e.Flags&flagStartKnown != 0 && e.TsNs >= e.StartNs {
		idle = min(idle, int64((e.TsNs-e.StartNs)/uint64(time.Millisecond)))
	}
	return idle
}

func (c *Correlator) onState(e *katraceEvent) error {
	cn := c.lookup(e, e.State != tcpClose)
	if !c.cfg.States {
		return nil
	}
	c.fillSocket(e, cn)
	c.rec.Type = record.TypeState
	c.rec.OldState = stateName(e.OldState)
	c.rec.NewState = stateName(e.State)
	return c.sink.Write(&c.rec)
}

func (c *Correlator) onIdleFin(e *katraceEvent) error {
	cn := c.lookup(e, true)
	c.fillSocket(e, cn)
	r := &c.rec
	r.Type = record.TypeIdleClose
	r.Side = record.SideRemote
	if e.FinSide == finLocal {
		r.Side = record.SideLocal
	}
	r.IdleMs = int64(e.FinIdleMs)
	c.summary.idleClose(e)
	return c.sink.Write(r)
}

func (c *Correlator) onKeepalive(e *katraceEvent) error {
	cn := c.lookup(e, true)
	if e.AckedProbes > 0 {
		c.fillSocket(e, cn)
		r := &c.rec
		r.Type = record.TypeKeepaliveAck
		r.Probe = int(e.AckedProbes)
		r.RTTMs = int64(e.ProbeRttMs)
		if err := c.sink.Write(r); err != nil {
			return err
		}
	}
	if e.ProbesAfter > e.ProbesBefore {
		if cn != nil {
			cn.probesSent++
		}
		c.fillSocket(e, cn)
		r := &c.rec
		r.Type = record.TypeKeepaliveProbe
		r.Probe = int(e.ProbesAfter)
		r.MaxProbes = int(e.KeepaliveProbes)
		r.IntervalMs = int64(e.KeepaliveIntvlMs)
		r.KeepaliveIdleMs = int64(e.KeepaliveIdleMs)
		r.IdleMs = idleMs(e)
		return c.sink.Write(r)
	}
	return nil
}

func (c *Correlator) onError(e *katraceEvent) error {
	if e.Cookie == c.lastClosed {
		return nil
	}
	cn := c.lookup(e, e.State != tcpClose)
	if e.Flags&flagInKeepaliveTimer == 0 || e.SkErr == 0 || e.StateBeforeTimer == tcpFinWait2 {
		// Other errors are told in the close record's cause.
		return nil
	}
	if cn != nil {
		if cn.timeoutReported {
			return nil
		}
		cn.timeoutReported = true
	}
	return c.keepaliveTimeout(e, cn)
}

func (c *Correlator) keepaliveTimeout(e *katraceEvent, cn *conn) error {
	c.fillSocket(e, cn)
	r := &c.rec
	r.Type = record.TypeKeepaliveTimeout
	r.Probes = int(e.ProbesBefore)
	r.MaxProbes = int(e.KeepaliveProbes)
	r.Error = errnoName(e.SkErr)
	if e.SkErr == 0 {
		r.Error = "ETIMEDOUT"
	}
	r.IdleMs = idleMs(e)
	return c.sink.Write(r)
}

func (c *Correlator) onReset(e *katraceEvent) error {
	cn := c.lookup(e, e.Flags&flagTimewait == 0)
	reason, source := "", ""
	if e.Kind == evResetSent {
		reason, source = resetReason(e)
		if cn != nil {
			cn.resetReason = reason
		}
		// The keepalive timeout's own RST is part of that verdict.
		if e.Flags&flagInKeepaliveTimer != 0 && !c.cfg.AllCloses {
			return nil
		}
	}
	c.fillSocket(e, cn)
	r := &c.rec
	r.Type = record.TypeReset
	r.Direction = record.DirectionReceived
	if e.Kind == evResetSent {
		r.Direction = record.DirectionSent
	}
	r.Reason, r.ReasonSource = reason, source
	r.Detail = abortDetail(e)
	if e.Flags&flagTimewait == 0 {
		r.IdleMs = idleMs(e)
	}
	r.AfterKeepalive = e.Kind == evResetReceived && e.ProbesBefore > 0
	return c.sink.Write(r)
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

// settlePending gives their verdict to the pending closes that e settles:
// its own reset, or any other event of the same socket.
func (c *Correlator) settlePending(e *katraceEvent) error {
	for i := 0; i < c.npending; {
		p := &c.pending[i]
		if e.Cookie != p.Cookie {
			i++
			continue
		}
		if e.Kind == evResetSent {
			// Report the reset first, then the close it explains.
			if err := c.onReset(e); err != nil {
				return err
			}
			p.Flags |= flagResetSentBefore
			e.Kind = 0 // handled
		}
		if err := c.finishPending(i); err != nil {
			return err
		}
	}
	return nil
}

func (c *Correlator) finishPending(i int) error {
	ev := c.pending[i]
	c.npending--
	c.pending[i] = c.pending[c.npending]
	return c.finishClose(&ev)
}

// FlushOlder gives their verdict to closes that waited abortWait for a
// reset in vain; now is bpf_ktime_get_ns()'s clock (CLOCK_MONOTONIC).
func (c *Correlator) FlushOlder(now uint64) error {
	for i := 0; i < c.npending; {
		if c.pending[i].TsNs+uint64(abortWait) > now {
			i++
			continue
		}
		if err := c.finishPending(i); err != nil {
			return err
		}
	}
	return nil
}

// Flush gives their verdict to every close still waiting for a reset.
func (c *Correlator) Flush() error {
	for c.npending > 0 {
		if err := c.finishPending(c.npending - 1); err != nil {
			return err
		}
	}
	return nil
}

func (c *Correlator) onClose(e *katraceEvent) error {
	if mayBeAbort(e) {
		if c.npending == len(c.pending) {
			if err := c.finishPending(0); err != nil {
				return err
			}
		}
		c.pending[c.npending] = *e
		c.npending++
		return nil
	}
	return c.finishClose(e)
}

func (c *Correlator) finishClose(e *katraceEvent) error {
	cn := c.lookup(e, false)
	c.lastClosed = e.Cookie
	cause := closeCause(e, c.cfg.IdleThreshold)
	if cause == record.CauseKeepaliveTimeout && (cn == nil || !cn.timeoutReported) {
		if err := c.keepaliveTimeout(e, cn); err != nil {
			return err
		}
	}
	if !c.cfg.AllCloses && (cause == record.CauseCloseLocal || cause == record.CauseCloseRemote) {
		if cn != nil {
			c.forget(cn)
		}
		return nil
	}
	c.fillSocket(e, cn)
	r := &c.rec
	r.Type = record.TypeClose
	r.Cause = cause
	if e.Flags&flagStartKnown != 0 && e.TsNs >= e.StartNs {
		r.DurationMs = int64((e.TsNs - e.StartNs) / uint64(time.Millisecond))
	} else {
		r.DurationMs = record.Absent
	}
	r.IdleMs = idleMs(e)
	if e.FinSide != 0 {
		r.IdleMs = int64(e.FinIdleMs)
	}
	if cn != nil {
		r.ProbesSent = cn.probesSent
	}
	if e.Flags&flagInKeepaliveTimer != 0 && int(e.ProbesBefore) > r.ProbesSent {
		r.ProbesSent = int(e.ProbesBefore)
	}
	switch cause {
	case record.CauseStaleReuse:
		r.ReuseGapMs = reuseGapMs(e)
		r.PeerIdleMs = int64(e.FinIdleMs)
		r.Detail = "wrote " + output.FormatDuration(r.ReuseGapMs) +
			" after the peer closed the idle connection (peer idle timeout ≈ " +
			output.FormatDuration(r.PeerIdleMs) + "); peer reset it"
		c.summary.staleReuse(e)
	case record.CauseResetAfterIdle:
		r.IdleMs = int64(e.SinceRecvMs - e.SinceSendMs)
		r.Detail = "first write after " + output.FormatDuration(r.IdleMs) +
			" idle drew a reset, no FIN seen: the peer or a middlebox (NAT, load balancer) forgot the connection"
	case record.CauseResetReceived:
		if e.ProbesBefore > 0 {
			r.Detail = "the peer answered keepalive probe " + strconv.Itoa(int(e.ProbesBefore)) +
				" with a reset: it lost the connection (rebooted or restarted?)"
		}
	}
	r.BytesSent, r.BytesReceived = e.BytesSent, e.BytesReceived
	// The kernel counts the peer's FIN as a byte received; we count data.
	if e.Flags&flagPeerFin != 0 && r.BytesReceived > 0 {
		r.BytesReceived--
	}
	err := c.sink.Write(r)
	if cn != nil {
		c.forget(cn)
	}
	return err
}

// closeCause is the verdict on a connection's end, from the facts the
// kernel gathered by the time the socket reached CLOSE.
func closeCause(e *katraceEvent, idleThreshold time.Duration) string {
	thresholdMs := uint32(idleThreshold / time.Millisecond)
	switch {
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

// reuseGapMs is the time from the peer's FIN to our last write.
func reuseGapMs(e *katraceEvent) int64 {
	wrote := int64(e.TsNs) - int64(e.SinceSendMs)*int64(time.Millisecond)
	if e.FinNs == 0 || wrote < int64(e.FinNs) {
		return 0
	}
	return (wrote - int64(e.FinNs)) / int64(time.Millisecond)
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

// abortDetail says, in words, which application action aborted the
// connection, when the reset came from its close().
func abortDetail(e *katraceEvent) string {
	if e.Kind != evResetSent || e.Flags&flagOwnerContext == 0 || e.State != tcpClose {
		return ""
	}
	switch {
	case e.Unread > 0:
		return "closed with " + strconv.FormatUint(uint64(e.Unread), 10) + " bytes unread"
	case e.Flags&flagLingerZero != 0:
		return "SO_LINGER 0 close"
	}
	return ""
}

func errnoName(errno int32) string {
	if name := unix.ErrnoName(unix.Errno(errno)); name != "" {
		return name
	}
	return "errno " + strconv.Itoa(int(errno))
}
