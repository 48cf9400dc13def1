package output

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/katrace/katrace/record"
)

// Text writes the human timeline: one aligned line per event, the verdict
// (close) line last for each connection. It is not safe for concurrent use.
//
// Output is buffered; for a live timeline the caller should Flush whenever
// the event source goes quiet (for instance after draining the ring buffer).
type Text struct {
	w   *bufio.Writer
	buf []byte
	loc *time.Location

	headerDone  bool // column header written
	summaryDone bool // summary table header written
	// containerCol: a connection named a container or pod, so from then on
	// every line has the CONTAINER column (and the header is written again
	// with it). Hosts without containers never see it.
	containerCol bool
}

var _ record.Sink = (*Text)(nil)

// TextOption configures a Text printer.
type TextOption func(*Text)

// WithLocation sets the time zone of the TIME column (time.Local by
// default); tests use it to get stable output.
func WithLocation(loc *time.Location) TextOption {
	return func(t *Text) {
		if loc != nil {
			t.loc = loc
		}
	}
}

// WithContainerColumn shows the CONTAINER column from the first line, for
// hosts known to run containers; without it the column appears (with the
// header again) at the first connection that names a container or pod.
func WithContainerColumn(on bool) TextOption {
	return func(t *Text) { t.containerCol = on }
}

// NewText returns a text printer writing to w.
func NewText(w io.Writer, opts ...TextOption) *Text {
	t := &Text{w: bufio.NewWriter(w), buf: make([]byte, 0, 512), loc: time.Local}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Flush writes out any buffered lines.
func (t *Text) Flush() error { return t.w.Flush() }

// Column layout. The address column fits the widest IPv4 pair
// ("255.255.255.255:65535 → 255.255.255.255:65535") so that every IPv4 line
// lines up; a wider (IPv6) pair pushes only its own line's EVENT to the right
// rather than being cut, since a truncated address is worse than a ragged
// line.
const (
	timeLayout = "15:04:05.000"
	pidCol     = 8
	commCol    = 16 + 1 // TASK_COMM_LEN-1 bytes of name, then a space
	addrWidth  = 45
	addrGap    = 2

	textHeader = "TIME          PID     COMM             LOCAL → REMOTE                                 EVENT\n"

	// The CONTAINER column fits a 12-hex id or a short pod/container pair;
	// longer names push only their own line's addresses to the right.
	containerCol = 24 + 2

	textHeaderContainer = "TIME          PID     COMM             CONTAINER                 LOCAL → REMOTE                                 EVENT\n"
)

// Summary table layout, matching summaryHeader.
const (
	summaryIndent   = 24 // under "IDLE TIMEOUTS SEEN"
	summaryEndpoint = 25
	summaryLocal    = 5
	summaryRemote   = 6
	summaryP50      = 9

	summaryHeader = "IDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90\n"
)

// Write prints r as one line (start and the first summary add a header).
func (t *Text) Write(r *record.Record) error {
	b := t.buf[:0]
	switch r.Type {
	case record.TypeStart:
		// The banner goes above the column header so the header sits right
		// on top of the first event.
		b = appendStart(b, r)
		b = t.appendHeader(b)
	case record.TypeSummary:
		b = t.appendHeader(b)
		if !t.summaryDone {
			t.summaryDone = true
			b = append(b, '\n')
			b = append(b, summaryHeader...)
		}
		b = appendSummary(b, r)
	case record.TypeLost:
		b = t.appendHeader(b)
		b = t.appendClock(b, r.Time)
		if r.Count > 0 {
			b = append(b, "!! lost "...)
			b = appendCount(b, r.Count, " event", " events")
			b = append(b, ": the ring buffer was full (raise --ring-size)\n"...)
		}
		if r.MissedRuns > 0 {
			if r.Count > 0 {
				b = t.appendClock(b, r.Time)
			}
			b = append(b, "!! the kernel skipped "...)
			b = appendCount(b, r.MissedRuns, " program run", " program runs")
			b = append(b, " (already running on that CPU): their events are missing\n"...)
		}
	case record.TypeEnd:
		b = t.appendHeader(b)
		b = t.appendClock(b, r.Time)
		b = append(b, "stopped: "...)
		b = appendCount(b, r.Events, " event, ", " events, ")
		b = strconv.AppendUint(b, r.Lost, 10)
		b = append(b, " lost"...)
		if r.MissedRuns > 0 {
			b = append(b, ", "...)
			b = appendCount(b, r.MissedRuns, " program run", " program runs")
			b = append(b, " skipped"...)
		}
		b = append(b, '\n')
	default:
		if !t.containerCol && r.Sock.Workload.Known() {
			t.containerCol = true
			t.headerDone = false
		}
		b = t.appendHeader(b)
		b = t.appendSocketColumns(b, r)
		b = appendEvent(b, r)
		b = append(b, '\n')
	}
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

func (t *Text) appendHeader(b []byte) []byte {
	if t.headerDone {
		return b
	}
	t.headerDone = true
	if t.containerCol {
		return append(b, textHeaderContainer...)
	}
	return append(b, textHeader...)
}

func (t *Text) appendClock(b []byte, tm time.Time) []byte {
	b = tm.In(t.loc).AppendFormat(b, timeLayout)
	return append(b, ' ', ' ')
}

func (t *Text) appendSocketColumns(b []byte, r *record.Record) []byte {
	s := &r.Sock
	b = t.appendClock(b, r.Time)

	start := len(b)
	if s.PID == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendUint(b, uint64(s.PID), 10)
	}
	b = pad(b, start, pidCol, 1)

	start = len(b)
	b = appendSafe(b, s.Comm)
	b = pad(b, start, commCol, 1)

	if t.containerCol {
		start = len(b)
		if s.Workload.Known() {
			b = appendWorkloadLabel(b, &s.Workload)
		} else {
			b = append(b, '-')
		}
		b = pad(b, start, containerCol, 2)
	}

	start = len(b)
	b = appendHostPort(b, s.LAddr, s.LPort)
	b = append(b, " → "...)
	b = appendHostPort(b, s.RAddr, s.RPort)
	return pad(b, start, addrWidth+addrGap, addrGap)
}

// pad appends spaces until b[start:] is width columns wide, and at least
// gap spaces in any case so that columns never run together.
func pad(b []byte, start, width, gap int) []byte {
	n := width - utf8.RuneCount(b[start:])
	if n < gap {
		n = gap
	}
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// appendIntRight right-aligns v in width columns.
func appendIntRight(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendInt(tmp[:0], v, 10)
	for n := width - len(d); n > 0; n-- {
		b = append(b, ' ')
	}
	return append(b, d...)
}

// appendHostPort writes 10.0.0.1:80 or [fd00::1]:80. IPv4-mapped IPv6
// addresses of dual-stack sockets are shown as the IPv4 address a person
// would type.
func appendHostPort(b []byte, a netip.Addr, port uint16) []byte {
	switch {
	case !a.IsValid():
		b = append(b, '?')
	case a.Is4In6() || a.Is4():
		b = a.Unmap().AppendTo(b)
	default:
		b = append(b, '[')
		if zone := a.Zone(); zone != "" {
			// An interface name could hold anything but '/', ':' and
			// whitespace: keep terminal escapes out.
			b = a.WithZone("").AppendTo(b)
			b = append(b, '%')
			b = appendSafe(b, zone)
		} else {
			b = a.AppendTo(b)
		}
		b = append(b, ']')
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(port), 10)
}

// WorkloadLabel is the CONTAINER column's text for w (appendWorkloadLabel),
// "-" when w names no container or pod.
func WorkloadLabel(w *record.Workload) string {
	if !w.Known() {
		return "-"
	}
	return string(appendWorkloadLabel(nil, w))
}

// appendWorkloadLabel names a container: pod/container when the kubelet
// named them, else the first 12 hex digits of its id as docker and podman
// show it, else the pod's uid.
func appendWorkloadLabel(b []byte, w *record.Workload) []byte {
	switch {
	case w.Pod != "":
		b = appendSafe(b, w.Pod)
		if w.Container != "" {
			b = append(b, '/')
			b = appendSafe(b, w.Container)
		}
	case w.ContainerID != "":
		b = appendSafe(b, w.ContainerID[:min(12, len(w.ContainerID))])
	default:
		b = append(b, "pod "...)
		b = appendSafe(b, w.PodUID)
	}
	return b
}

// appendSafe appends s with every unprintable rune (control characters,
// terminal escapes, invalid UTF-8, line separators, bidi overrides) shown as
// '?': a process names itself, and must not be able to forge or hide lines.
func appendSafe(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			b = append(b, '?')
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// appendCount writes n and the noun that follows it: "1 event", "2 events".
func appendCount(b []byte, n uint64, one, many string) []byte {
	b = strconv.AppendUint(b, n, 10)
	return appendPlural(b, n, one, many)
}

func appendPlural[N int | uint64](b []byte, n N, one, many string) []byte {
	if n == 1 {
		return append(b, one...)
	}
	return append(b, many...)
}

func appendStart(b []byte, r *record.Record) []byte {
	b = append(b, "katrace tracing with the "...)
	b = appendSafe(b, r.Mode)
	b = append(b, " strategy ("...)
	if r.Kernel != "" {
		b = append(b, "kernel "...)
		b = appendSafe(b, r.Kernel)
		b = append(b, ", "...)
	}
	b = append(b, "katrace "...)
	if r.Version != "" {
		b = appendSafe(b, r.Version)
	} else {
		b = append(b, "(devel)"...)
	}
	return append(b, "); Ctrl-C to stop\n"...)
}

func appendSummary(b []byte, r *record.Record) []byte {
	for range summaryIndent {
		b = append(b, ' ')
	}
	start := len(b)
	b = appendSafe(b, r.Endpoint)
	b = pad(b, start, summaryEndpoint, 2)

	b = appendIntRight(b, int64(r.IdleClosesLocal), summaryLocal)
	b = append(b, "  "...)
	b = appendIntRight(b, int64(r.IdleClosesRemote), summaryRemote)
	b = append(b, "   "...)

	// Percentiles of nothing are not zero.
	seen := r.IdleClosesLocal+r.IdleClosesRemote > 0
	start = len(b)
	if seen {
		b = appendDuration(b, r.IdleMsP50)
	} else {
		b = append(b, '-')
	}
	b = pad(b, start, summaryP50, 1)
	if seen {
		b = appendDuration(b, r.IdleMsP90)
	} else {
		b = append(b, '-')
	}

	if w := &r.EndpointWorkload; w.Known() {
		b = append(b, "  served by "...)
		if w.Pod != "" && w.Namespace != "" {
			b = appendSafe(b, w.Namespace)
			b = append(b, '/')
		}
		b = appendWorkloadLabel(b, w)
	}
	if r.StaleReuses > 0 {
		b = append(b, "  ⚠ "...)
		b = strconv.AppendInt(b, int64(r.StaleReuses), 10)
		b = appendPlural(b, r.StaleReuses, " stale reuse", " stale reuses")
		b = append(b, ": clients keep idle connections longer than this endpoint's idle timeout"...)
		if seen {
			b = appendLabelled(b, " (≈", r.IdleMsP50)
			b = append(b, ')')
		}
		b = append(b, ": shorten the client pool's idle timeout below it"...)
	}
	if r.ForgottenFlows > 0 {
		b = appendForgottenAdvice(b, r)
	}
	return append(b, '\n')
}

// appendForgottenAdvice says how many flows a middlebox forgot after idle
// and which keepalive setting would have kept them alive.
func appendForgottenAdvice(b []byte, r *record.Record) []byte {
	b = append(b, "  ⚠ "...)
	b = strconv.AppendInt(b, int64(r.ForgottenFlows), 10)
	b = appendPlural(b, r.ForgottenFlows, " flow", " flows")
	b = appendLabelled(b, " forgotten after ≥ ", r.ForgottenIdleMsMin)
	b = append(b, " idle (NAT, load balancer or firewall idle timeout?)"...)
	switch {
	case r.ForgottenKeepaliveOff > 0:
		b = appendLabelled(b, ": keepalive off → turn SO_KEEPALIVE on with TCP_KEEPIDLE below ", r.ForgottenIdleMsMin)
	case r.ForgottenKeepaliveIdleMs != record.Absent:
		// The flows were forgotten although keepalive was on: its first
		// probe came too late (or met the forgotten flow itself).
		b = appendLabelled(b, ": keepalive idle ", r.ForgottenKeepaliveIdleMs)
		b = appendLabelled(b, " did not keep them → lower TCP_KEEPIDLE (or net.ipv4.tcp_keepalive_time) below ", r.ForgottenIdleMsMin)
	}
	return b
}

// appendEvent writes the EVENT column of a socket record.
func appendEvent(b []byte, r *record.Record) []byte {
	switch r.Type {
	case record.TypeState:
		b = append(b, "state "...)
		b = appendSafe(b, r.OldState)
		b = append(b, " → "...)
		b = appendSafe(b, r.NewState)

	case record.TypeKeepaliveProbe:
		b = append(b, "keepalive probe "...)
		b = strconv.AppendInt(b, int64(r.Probe), 10)
		if r.MaxProbes > 0 {
			b = append(b, '/')
			b = strconv.AppendInt(b, int64(r.MaxProbes), 10)
		}
		b = append(b, " unanswered"...)
		// Only the first probe follows an idle spell worth naming; later
		// ones are one interval apart.
		if r.Probe == 1 {
			b = appendAside(b, "idle ", r.IdleMs)
		}
		b = appendUnseenProbes(b, r.Probe-r.UnseenProbes, r.Probe-1)

	case record.TypeKeepaliveAck:
		b = append(b, "keepalive probe "...)
		b = strconv.AppendInt(b, int64(r.Probe), 10)
		b = append(b, " answered"...)
		b = appendAside(b, "rtt ", r.RTTMs)

	case record.TypeKeepaliveTimeout:
		b = append(b, "keepalive timeout: peer silent after "...)
		b = strconv.AppendInt(b, int64(r.Probes), 10)
		b = appendPlural(b, r.Probes, " probe", " probes")
		b = appendErrno(b, r.Error)
		b = appendUnseenProbes(b, r.Probes-r.UnseenProbes+1, r.Probes)

	case record.TypeIdleClose:
		if r.Side == record.SideRemote {
			b = append(b, "idle close by peer"...)
		} else {
			b = append(b, "idle close by us"...)
		}
		if r.IdleMs != record.Absent {
			b = appendLabelled(b, " after ", r.IdleMs)
			b = append(b, " idle"...)
		}
		b = appendGoodbye(b, r)
		if r.Sock.Requests > 0 {
			b = append(b, " (after request "...)
			b = strconv.AppendInt(b, int64(r.Sock.Requests), 10)
			b = append(b, ')')
		}

	case record.TypeReset:
		b = appendReset(b, r)

	case record.TypeClose:
		b = appendClose(b, r)

	default:
		b = append(b, "unknown event"...)
	}
	return b
}

// appendLabelled writes label, then ms as a duration.
func appendLabelled(b []byte, label string, ms int64) []byte {
	return appendDuration(append(b, label...), ms)
}

// appendKnown writes label and ms as a duration, or nothing when ms is
// Absent.
func appendKnown(b []byte, label string, ms int64) []byte {
	if ms == record.Absent {
		return b
	}
	return appendLabelled(b, label, ms)
}

// appendUnseenProbes writes " (probe 2 not seen)" or " (probes 1-2 not
// seen)": probes the kernel counts as sent in timer runs katrace did not
// see. Nothing when last < first.
func appendUnseenProbes(b []byte, first, last int) []byte {
	if last < first {
		return b
	}
	if first == last {
		b = append(b, " (probe "...)
	} else {
		b = append(b, " (probes "...)
		b = strconv.AppendInt(b, int64(first), 10)
		b = append(b, '-')
	}
	b = strconv.AppendInt(b, int64(last), 10)
	return append(b, " not seen)"...)
}

// appendAside writes " (label 1.2s)", or nothing when ms is Absent.
func appendAside(b []byte, label string, ms int64) []byte {
	if ms == record.Absent {
		return b
	}
	b = append(b, " ("...)
	b = appendLabelled(b, label, ms)
	return append(b, ')')
}

func appendReset(b []byte, r *record.Record) []byte {
	switch {
	case r.AfterKeepalive:
		b = append(b, "reset received in answer to a keepalive probe: the peer lost the connection (restarted?) or a NAT, load balancer or firewall forgot the idle flow"...)
	case r.Direction == record.DirectionReceived && r.Sock.State == record.StateSynSent:
		// The kernel accepts a reset in SYN_SENT only when it acknowledges
		// our SYN, and fails the connect with ECONNREFUSED.
		b = append(b, "reset received while connecting: connection refused (nothing listens on that port, or a firewall rejects the connection)"...)
	default:
		if r.Direction == record.DirectionSent {
			b = append(b, "reset sent"...)
		} else {
			b = append(b, "reset received"...)
		}
		switch {
		case r.Abort != record.AbortNone:
			// What the application did, then the kernel's word for it.
			b = append(b, ": "...)
			b = appendAbort(b, r)
			if !isUnknownReason(r.Reason) {
				b = append(b, " ("...)
				b = appendSafe(b, r.Reason)
				if r.ReasonSource == record.SourceInferred {
					b = append(b, ", inferred"...)
				}
				b = append(b, ')')
			}
		case !isUnknownReason(r.Reason):
			b = append(b, ": "...)
			b = appendReasonWords(b, r.Reason)
			if r.ReasonSource == record.SourceInferred {
				b = append(b, " (reason inferred)"...)
			}
		}
	}
	return appendKnown(b, ", idle ", r.IdleMs)
}

// appendAbort says which application action aborted the connection.
func appendAbort(b []byte, r *record.Record) []byte {
	switch r.Abort {
	case record.AbortUnreadData:
		b = append(b, "closed with "...)
		b = strconv.AppendUint(b, r.UnreadBytes, 10)
		return append(b, " bytes unread"...)
	case record.AbortLingerZero:
		return append(b, "SO_LINGER 0 close"...)
	}
	return append(b, "aborted"...)
}

func isUnknownReason(reason string) bool {
	return reason == "" || strings.EqualFold(reason, "unknown")
}

// reasonWords explains the kernel's enum sk_rst_reason names an operator is
// likely to meet; the name stays in parentheses so it can be searched for.
var reasonWords = map[string]string{
	"NOT_SPECIFIED":            "unspecified",
	"NO_SOCKET":                "no such connection (NO_SOCKET)",
	"TCP_ABORT_ON_CLOSE":       "closed with unread data (TCP_ABORT_ON_CLOSE)",
	"TCP_ABORT_ON_LINGER":      "SO_LINGER 0 abort (TCP_ABORT_ON_LINGER)",
	"TCP_ABORT_ON_DATA":        "data arrived after close (TCP_ABORT_ON_DATA)",
	"TCP_ABORT_ON_MEMORY":      "out of socket memory (TCP_ABORT_ON_MEMORY)",
	"TCP_KEEPALIVE_TIMEOUT":    "keepalive timeout (TCP_KEEPALIVE_TIMEOUT)",
	"TCP_TIMEWAIT_SOCKET":      "segment to a closed connection (TCP_TIMEWAIT_SOCKET)",
	"TCP_DISCONNECT_WITH_DATA": "disconnected with data unsent (TCP_DISCONNECT_WITH_DATA)",
}

func appendReasonWords(b []byte, reason string) []byte {
	if w, ok := reasonWords[reason]; ok {
		return append(b, w...)
	}
	start := len(b)
	b = appendSafe(b, reason)
	for i := start; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b
}

func appendClose(b []byte, r *record.Record) []byte {
	b = append(b, "closed"...)
	if r.Cause != "" {
		b = append(b, ": "...)
		b = appendSafe(b, r.Cause)
	}
	if story, ok := appendCloseStory(b, r); ok {
		// A sentence says these better than a list of numbers.
		return story
	}
	if r.DurationMs >= 0 {
		b = appendLabelled(b, " after ", r.DurationMs)
	}

	open := false
	sep := func(b []byte) []byte {
		if open {
			return append(b, ", "...)
		}
		open = true
		return append(b, " ("...)
	}
	if r.IdleMs != record.Absent {
		b = sep(b)
		b = appendLabelled(b, "idle ", r.IdleMs)
	}
	if r.Goodbye {
		b = sep(b)
		b = append(b, "goodbye first"...)
		if r.GoodbyeBytes != record.Absent {
			b = append(b, ": "...)
			b = strconv.AppendInt(b, r.GoodbyeBytes, 10)
			b = append(b, " bytes"...)
		}
	}
	if r.ProbesSent > 0 {
		b = sep(b)
		b = strconv.AppendInt(b, int64(r.ProbesSent), 10)
		b = appendPlural(b, r.ProbesSent, " probe", " probes")
	}
	if open {
		b = append(b, ')')
	}
	return b
}

// appendCloseStory tells, for the causes that need a sentence, what
// happened; ok is false for the others.
func appendCloseStory(b []byte, r *record.Record) (_ []byte, ok bool) {
	switch {
	case r.Cause == record.CauseStaleReuse:
		b = appendLabelled(b, ": wrote ", r.ReuseGapMs)
		b = appendLabelled(b, " after the peer closed the idle connection (peer idle timeout ≈ ", r.PeerIdleMs)
		return append(b, "); peer reset it"...), true
	case r.Cause == record.CauseResetAfterIdle:
		b = appendLabelled(b, ": first write after ", r.IdleMs)
		return append(b, " idle drew a reset, no FIN seen: the peer or a middlebox (NAT, load balancer) forgot the connection"...), true
	case r.Cause == record.CauseResetReceived && r.ResetAtProbe > 0:
		b = append(b, ": the peer answered keepalive probe "...)
		b = strconv.AppendInt(b, int64(r.ResetAtProbe), 10)
		return append(b, " with a reset: it lost the connection (restarted?) or a NAT, load balancer or firewall forgot the idle flow"...), true
	case r.Cause == record.CauseResetReceived && r.Error == "ECONNREFUSED":
		b = append(b, ": connection refused: our SYN drew a reset"...)
		b = appendKnown(b, " after ", r.DurationMs)
		return appendErrno(b, r.Error), true
	case r.Cause == record.CauseRetransmitTimeout:
		return appendRetransmitTimeout(b, r), true
	case r.Cause == record.CauseConnectAbandoned:
		b = append(b, ": the application closed the socket"...)
		b = appendKnown(b, " ", r.DurationMs)
		if r.DurationMs >= 0 {
			b = append(b, " after its SYN"...)
		}
		b = append(b, ", before the handshake completed"...)
		if r.Retransmits > 0 {
			b = append(b, " ("...)
			b = strconv.AppendInt(b, int64(r.Retransmits), 10)
			b = appendPlural(b, r.Retransmits, " SYN retransmission", " SYN retransmissions")
			b = append(b, ')')
		}
		return append(b, ": its own connect timeout, or a failure the kernel only marked (an ICMP error while it held the socket)"...), true
	case r.Cause == record.CauseError && r.OldState == record.StateSynSent:
		b = append(b, ": connect failed"...)
		b = appendKnown(b, " after ", r.DurationMs)
		b = appendErrno(b, r.Error)
		return b, true
	case r.Cause == record.CauseFinWait2Timeout:
		b = append(b, ": we closed, the peer never sent its FIN (its application kept the connection open, or the FIN was lost)"...)
		if r.DurationMs >= 0 {
			b = appendLabelled(b, "; after ", r.DurationMs)
		}
		return b, true
	}
	return b, false
}

// appendRetransmitTimeout tells a retransmission timeout: the write (or
// the connect's SYN) that was never acknowledged, after how much silence,
// and how long the kernel tried.
func appendRetransmitTimeout(b []byte, r *record.Record) []byte {
	connecting := r.OldState == record.StateSynSent
	triedFor := r.UnackedMs
	switch {
	case connecting:
		b = append(b, ": connect timed out: our SYN was never answered"...)
		triedFor = r.DurationMs
	case r.AfterIdle && r.IdleMs != record.Absent:
		b = appendLabelled(b, ": write after ", r.IdleMs)
		b = append(b, " idle never acknowledged"...)
	default:
		b = append(b, ": data never acknowledged"...)
	}
	if triedFor >= 0 {
		b = appendLabelled(b, "; gave up after ", triedFor)
		if r.Retransmits > 0 {
			b = append(b, " and "...)
			b = strconv.AppendInt(b, int64(r.Retransmits), 10)
			b = appendPlural(b, r.Retransmits, " retransmission", " retransmissions")
		}
	}
	b = appendAside(b, "TCP_USER_TIMEOUT ", r.UserTimeoutMs)
	b = appendErrno(b, r.Error)
	switch {
	case connecting:
		return append(b, ": the peer is unreachable, or a firewall drops the connection"...)
	case r.AfterIdle:
		return append(b, ": the peer or a NAT, load balancer or firewall forgot the idle connection and drops its packets"...)
	}
	return append(b, ": the peer is unreachable or the path drops its packets"...)
}

// appendErrno writes " → ERRNO", the socket's error, when there is one.
func appendErrno(b []byte, errno string) []byte {
	if errno == "" {
		return b
	}
	return appendSafe(append(b, " → "...), errno)
}

// appendGoodbye says that an idle close's FIN followed a goodbye.
func appendGoodbye(b []byte, r *record.Record) []byte {
	if !r.Goodbye {
		return b
	}
	if r.GoodbyeBytes == record.Absent {
		return append(b, " (goodbye first)"...)
	}
	b = append(b, " (goodbye first: "...)
	b = strconv.AppendInt(b, r.GoodbyeBytes, 10)
	return append(b, " bytes)"...)
}
