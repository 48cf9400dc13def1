package tracer

import (
	"time"

	"github.com/katrace/katrace/record"
)

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
	// Workload resolves a socket's cgroup id to its cgroup, container and
	// pod (container.Resolver.Workload); may be nil.
	Workload func(cgroupID uint64) *record.Workload
	// TimewaitExpiry: the kernel reports a timewait socket's FIN_WAIT2
	// timeout, so a socket handed to one is remembered until then.
	TimewaitExpiry bool
	// WatchingSinceNs is when every program was attached (the kernel's
	// monotonic clock); 0 when unknown.
	WatchingSinceNs uint64
}

// Correlator turns kernel events into records, per socket.
type Correlator struct {
	cfg   CorrelatorConfig
	sink  record.Sink
	conns connTable
	rec   record.Record

	events uint64
	// lastEvictionNs is when a socket was last forgotten to make room: what
	// katrace saw of a socket before then may be forgotten.
	lastEvictionNs uint64
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
	// workloads interns the workloads sockets remember, so that each
	// socket keeps a pointer, not a copy of six strings; lastWorkload is
	// the one interned last (most events come from the same cgroups).
	workloads    map[record.Workload]*record.Workload
	lastWorkload *record.Workload
}

// maxWorkloads bounds the workload interning table; when it is full it
// starts over (sockets keep the copies they point to).
const maxWorkloads = 4096

// internWorkload returns a shared, never modified copy of w.
func (c *Correlator) internWorkload(w *record.Workload) *record.Workload {
	if p := c.lastWorkload; p != nil && *p == *w {
		return p
	}
	p, ok := c.workloads[*w]
	if !ok {
		if len(c.workloads) >= maxWorkloads {
			clear(c.workloads)
		}
		p = new(record.Workload)
		*p = *w
		c.workloads[*w] = p
	}
	c.lastWorkload = p
	return p
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
	return &Correlator{
		cfg:       cfg,
		sink:      sink,
		conns:     newConnTable(cfg.MaxSockets),
		comms:     make(map[[16]int8]string),
		workloads: make(map[record.Workload]*record.Workload),
	}
}

// Tracked is the number of sockets remembered now.
func (c *Correlator) Tracked() int { return c.conns.len() }

// Events is the number of kernel events handled.
func (c *Correlator) Events() uint64 { return c.events }

// Evicted is the number of sockets forgotten because of MaxSockets.
func (c *Correlator) Evicted() uint64 { return c.conns.evicted }

// WriteSummary writes the summary of the idle timeouts seen, one record
// per service.
func (c *Correlator) WriteSummary(now time.Time) error {
	return c.summary.write(c.sink, now, &c.rec)
}

func (c *Correlator) wall(ns uint64) time.Time {
	return time.Unix(0, int64(ns)+c.cfg.WallOffset)
}

// Handle takes one kernel event; records go to the sink.
func (c *Correlator) Handle(e *katraceEvent) error {
	c.events++
	if c.npending > 0 {
		handled, err := c.settlePending(e)
		if handled || err != nil {
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
		// With --states, the close event is also the change to CLOSE
		// (the kernel sends one sample for both).
		if c.cfg.States {
			if err := c.onState(e); err != nil {
				return err
			}
		}
		return c.onClose(e)
	case evTimewaitExpiry:
		return c.onTimewaitExpiry(e)
	}
	return nil
}

// lookup returns the socket's memory, creating it when create is set.
func (c *Correlator) lookup(e *katraceEvent, create bool) *conn {
	if cn := c.conns.find(e.Cookie); cn != nil {
		return cn
	}
	if !create || e.Cookie == 0 {
		return nil
	}
	evicted := c.conns.evicted
	cn := c.conns.add(e.Cookie)
	if c.conns.evicted != evicted {
		c.lastEvictionNs = e.TsNs
	}
	return cn
}

// begin starts a record of type t about e's socket.
func (c *Correlator) begin(e *katraceEvent, cn *conn, t record.Type) *record.Record {
	c.fillSocket(e, cn)
	c.rec.Type = t
	return &c.rec
}

func (c *Correlator) onState(e *katraceEvent) error {
	cn := c.lookup(e, e.State != tcpClose)
	if !c.cfg.States {
		return nil
	}
	r := c.begin(e, cn, record.TypeState)
	r.OldState = stateName(e.OldState)
	r.NewState = stateName(e.State)
	return c.sink.Write(r)
}

func (c *Correlator) onIdleFin(e *katraceEvent) error {
	cn := c.lookup(e, true)
	r := c.begin(e, cn, record.TypeIdleClose)
	r.Side = record.SideRemote
	if e.FinSide == finLocal {
		r.Side = record.SideLocal
	}
	r.IdleMs = int64(e.FinIdleMs)
	setGoodbye(e, r)
	c.summary.idleClose(e)
	c.summary.serviceWorkload(e, &r.Sock.Workload)
	return c.sink.Write(r)
}

func (c *Correlator) onKeepalive(e *katraceEvent) error {
	cn := c.lookup(e, true)
	sent := e.ProbesAfter > e.ProbesBefore
	unseen := 0
	if sent {
		unseen = c.unseenProbes(cn, e)
	}
	if cn != nil {
		cn.setLastProbe(e.ProbesAfter)
		if sent {
			cn.addProbesSent(1 + uint32(unseen))
		}
	}
	if e.AckedProbes > 0 {
		r := c.begin(e, cn, record.TypeKeepaliveAck)
		r.Probe = int(e.AckedProbes)
		r.RTTMs = int64(e.ProbeRttMs)
		if err := c.sink.Write(r); err != nil {
			return err
		}
	}
	if sent {
		r := c.begin(e, cn, record.TypeKeepaliveProbe)
		r.Probe = int(e.ProbesAfter)
		r.UnseenProbes = unseen
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
	if cn == nil && e.State == tcpClose {
		// The close came first (6.10+: tcp_done_with_error) and told the
		// timeout already; lastClosed misses it when another socket closed
		// in between, as when several time out in one timer tick.
		return nil
	}
	if cn != nil {
		if cn.flags&connTimeoutReported != 0 {
			return nil
		}
		cn.flags |= connTimeoutReported
	}
	return c.keepaliveTimeout(e, cn)
}

// unseenProbes is how many of the keepalive probes the kernel counts as
// sent before e's timer run katrace did not see sent: runs no program ran
// for (on some hosts the kernel runs timers where no BPF program sees
// them: the README's known issue). The kernel's count (ProbesBefore) holds
// the probes sent since the peer's last ACK, which zeroes it: past the
// last probe seen, or, with none seen, all of them when katrace was
// already watching at that ACK and has forgotten no socket since.
// Otherwise 0: katrace may have started after they went out, or seen them
// and forgotten the socket.
func (c *Correlator) unseenProbes(cn *conn, e *katraceEvent) int {
	before := e.ProbesBefore
	if cn != nil && cn.lastProbe() > 0 {
		if before > cn.lastProbe() {
			return int(before - cn.lastProbe())
		}
		return 0
	}
	if before == 0 || c.cfg.WatchingSinceNs == 0 {
		return 0
	}
	// since_ack_ms has jiffy resolution: a margin of a few ticks.
	const margin = 20 * uint64(time.Millisecond)
	sinceAckNs := uint64(e.SinceAckMs) * uint64(time.Millisecond)
	if e.TsNs < sinceAckNs || e.TsNs-sinceAckNs < max(c.cfg.WatchingSinceNs, c.lastEvictionNs)+margin {
		return 0
	}
	return int(before)
}

func (c *Correlator) keepaliveTimeout(e *katraceEvent, cn *conn) error {
	r := c.begin(e, cn, record.TypeKeepaliveTimeout)
	r.UnseenProbes = c.unseenProbes(cn, e)
	if cn != nil {
		cn.addProbesSent(uint32(r.UnseenProbes))
		cn.setLastProbe(e.ProbesBefore)
	}
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
		// The keepalive timeout's own RST is part of that verdict.
		if e.Flags&flagInKeepaliveTimer != 0 && !c.cfg.AllCloses {
			return nil
		}
	}
	r := c.begin(e, cn, record.TypeReset)
	r.Direction = record.DirectionReceived
	if e.Kind == evResetSent {
		r.Direction = record.DirectionSent
	}
	r.Reason, r.ReasonSource = reason, source
	r.Abort = abortBy(e)
	if r.Abort == record.AbortUnreadData {
		r.UnreadBytes = uint64(e.Unread)
	}
	if e.Flags&flagTimewait == 0 {
		r.IdleMs = idleMs(e)
	}
	r.AfterKeepalive = e.Kind == evResetReceived && e.ProbesBefore > 0
	return c.sink.Write(r)
}

// settlePending gives their verdict to the pending closes that e settles:
// its own reset, or any other event of the same socket. handled says e
// itself was handled too (a reset reported ahead of the close it explains).
func (c *Correlator) settlePending(e *katraceEvent) (handled bool, err error) {
	for i := 0; i < c.npending; {
		p := &c.pending[i]
		if e.Cookie != p.Cookie {
			i++
			continue
		}
		if e.Kind == evResetSent && !handled {
			// Report the reset first, then the close it explains.
			if err := c.onReset(e); err != nil {
				return true, err
			}
			p.Flags |= flagResetSentBefore
			handled = true
		}
		if err := c.finishPending(i); err != nil {
			return handled, err
		}
	}
	return handled, nil
}

func (c *Correlator) finishPending(i int) error {
	ev := c.pending[i]
	c.npending--
	c.pending[i] = c.pending[c.npending]
	return c.finishClose(&ev)
}

// SettleExpiredCloses gives their verdict to the closes that waited
// abortWait for a reset in vain; now is bpf_ktime_get_ns()'s clock
// (CLOCK_MONOTONIC).
func (c *Correlator) SettleExpiredCloses(now uint64) error {
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

// SettlePendingCloses gives their verdict to every close still waiting for
// a reset: no more events will come.
func (c *Correlator) SettlePendingCloses() error {
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
	// A socket handed to a timewait socket is remembered (owner, tuple)
	// for the timeout its linger may end in.
	handoff := c.cfg.TimewaitExpiry && isTimewaitHandoff(e)
	cn := c.lookup(e, handoff)
	c.lastClosed = e.Cookie
	cause := closeCause(e, c.cfg.IdleThreshold)
	if cause == record.CauseKeepaliveTimeout && (cn == nil || cn.flags&connTimeoutReported == 0) {
		if err := c.keepaliveTimeout(e, cn); err != nil {
			return err
		}
	}
	if !c.cfg.AllCloses && isOrdinaryClose(cause) {
		if cn == nil {
			return nil
		}
		if handoff {
			// Not written, but its owner and tuple are kept for the timeout.
			c.fillSocket(e, cn)
			return nil
		}
		c.conns.forget(cn)
		return nil
	}
	r := c.begin(e, cn, record.TypeClose)
	r.Cause = cause
	r.OldState = closedFrom(e)
	r.DurationMs = durationMs(e)
	r.IdleMs = idleMs(e)
	if e.FinSide != 0 {
		r.IdleMs = int64(e.FinIdleMs)
	}
	if cn != nil {
		r.ProbesSent = int(cn.probesSent())
	}
	if e.Flags&flagInKeepaliveTimer != 0 && int(e.ProbesBefore) > r.ProbesSent {
		r.ProbesSent = int(e.ProbesBefore)
	}
	switch cause {
	case record.CauseStaleReuse:
		r.ReuseGapMs = reuseGapMs(e)
		r.PeerIdleMs = int64(e.FinIdleMs)
		c.summary.staleReuse(e)
		c.summary.serviceWorkload(e, &r.Sock.Workload)
	case record.CauseResetAfterIdle:
		r.IdleMs = silenceBeforeWriteMs(e)
		c.summary.forgotten(e, r.IdleMs)
	case record.CauseResetReceived:
		r.ResetAtProbe = int(e.ProbesBefore)
		if r.ResetAtProbe > 0 && r.IdleMs != record.Absent {
			// A reset answering a keepalive probe: the flow was forgotten
			// while the connection sat idle.
			c.summary.forgotten(e, r.IdleMs)
		}
	case record.CauseRetransmitTimeout:
		c.retransmitTimeout(e, r)
	case record.CauseConnectAbandoned:
		r.Retransmits = int(e.Retransmits)
	}
	if e.SkErr != 0 {
		r.Error = errnoName(e.SkErr)
	}
	if cause == record.CauseIdleCloseLocal || cause == record.CauseIdleCloseRemote {
		setGoodbye(e, r)
	}
	r.BytesSent, r.BytesReceived = e.BytesSent, e.BytesReceived
	// The kernel counts the peer's FIN as a byte received; we count data.
	if e.Flags&flagPeerFin != 0 && r.BytesReceived > 0 {
		r.BytesReceived--
	}
	err := c.sink.Write(r)
	if cn != nil && !handoff {
		c.conns.forget(cn)
	}
	return err
}

// onTimewaitExpiry: the timewait socket that took over a FIN_WAIT2 linger
// expired without the peer's FIN. The full socket's close was reported at
// the hand-off (with --all); this is the timeout the linger ended in.
func (c *Correlator) onTimewaitExpiry(e *katraceEvent) error {
	cn := c.lookup(e, false)
	cause := closeCause(e, c.cfg.IdleThreshold)
	if isOrdinaryClose(cause) {
		// TIME_WAIT's end: the close was told at the hand-off.
		if cn != nil {
			c.conns.forget(cn)
		}
		return nil
	}
	r := c.begin(e, cn, record.TypeClose)
	r.Cause = cause
	r.OldState = closedFrom(e)
	r.DurationMs = durationMs(e)
	if cn != nil {
		r.ProbesSent = int(cn.probesSent())
		c.conns.forget(cn)
	}
	return c.sink.Write(r)
}

// closedFrom is the state the socket left for CLOSE, "" when the kernel
// did not say.
func closedFrom(e *katraceEvent) string {
	if e.OldState == 0 {
		return ""
	}
	return stateName(e.OldState)
}

// retransmitTimeout fills what a retransmission timeout's close tells: how
// long the stalled write waited, and whether it came after a silence long
// enough for a NAT, load balancer or firewall to forget the flow.
func (c *Correlator) retransmitTimeout(e *katraceEvent, r *record.Record) {
	r.Retransmits = int(e.Retransmits)
	if e.UserTimeoutMs > 0 {
		r.UserTimeoutMs = int64(e.UserTimeoutMs)
	}
	unacked, ok := unackedMs(e)
	if !ok {
		return
	}
	r.UnackedMs = unacked
	if idle, ok := silenceBeforeStalledWriteMs(e, unacked); ok {
		r.IdleMs = idle
		r.AfterIdle = idle >= c.cfg.IdleThreshold.Milliseconds()
		if r.AfterIdle {
			c.summary.forgotten(e, idle)
		}
	}
}

// setGoodbye tells the goodbye the kernel saw before the first FIN.
func setGoodbye(e *katraceEvent, r *record.Record) {
	if e.GoodbyeBytes == 0 {
		return
	}
	r.Goodbye = true
	if e.GoodbyeBytes != goodbyeSizeUnknown {
		r.GoodbyeBytes = int64(e.GoodbyeBytes)
	}
}
