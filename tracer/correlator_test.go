package tracer

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/record"
)

// memSink keeps copies of the records written.
type memSink struct{ recs []record.Record }

func (m *memSink) Write(r *record.Record) error { m.recs = append(m.recs, *r); return nil }
func (m *memSink) Flush() error                 { return nil }

func (m *memSink) types() []string {
	var out []string
	for _, r := range m.recs {
		out = append(out, r.Type.String())
	}
	return out
}

func (m *memSink) last(t record.Type) *record.Record {
	for i := len(m.recs) - 1; i >= 0; i-- {
		if m.recs[i].Type == t {
			return &m.recs[i]
		}
	}
	return nil
}

const ms = uint64(time.Millisecond)

// sock is a recorded socket: events are built from it as the kernel
// fills them.
type sock struct {
	cookie uint64
	start  uint64
	pid    uint32
	comm   string
}

func (s sock) ev(kind uint8, at uint64, state uint8) katraceEvent {
	e := katraceEvent{
		TsNs: s.start + at*ms, Cookie: s.cookie, Kind: kind, State: state, Family: 4,
		Sport: 40750, Dport: 18081, Netns: 4026531840, SockIno: 0,
		StartNs: s.start, KeepaliveIdleMs: 1000, KeepaliveIntvlMs: 1000, KeepaliveProbes: 3,
	}
	e.Flags |= flagStartKnown | flagEstablished
	copy(e.Saddr[:], []byte{10, 213, 0, 1})
	copy(e.Daddr[:], []byte{10, 213, 0, 2})
	return e
}

// owned marks an event as run in the owner's syscall.
func (s sock) owned(e katraceEvent) katraceEvent {
	e.Flags |= flagOwner | flagOwnerContext
	e.Pid = s.pid
	for i := range e.Comm {
		e.Comm[i] = 0
	}
	for i, c := range []byte(s.comm) {
		e.Comm[i] = int8(c)
	}
	return e
}

func feed(t *testing.T, cfg CorrelatorConfig, evs ...katraceEvent) *memSink {
	t.Helper()
	sink := &memSink{}
	c := NewCorrelator(cfg, sink)
	for i := range evs {
		if err := c.Handle(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SettlePendingCloses(); err != nil {
		t.Fatal(err)
	}
	return sink
}

var defaults = CorrelatorConfig{IdleThreshold: time.Second}

func probe(s sock, at uint64, before, after uint8) katraceEvent {
	e := s.ev(evKeepalive, at, 1)
	e.Flags |= flagInKeepaliveTimer
	e.ProbesBefore, e.ProbesAfter = before, after
	e.SinceSendMs, e.SinceRecvMs = uint32(at), uint32(at)
	return e
}

func inTimer(e katraceEvent, probes uint8, timerState uint8) katraceEvent {
	e.Flags |= flagInKeepaliveTimer
	e.ProbesBefore = probes
	e.StateBeforeTimer = timerState
	return e
}

func TestKeepaliveTimeoutBothKernelOrders(t *testing.T) {
	s := sock{cookie: 7, start: 1e12, pid: 4121, comm: "python3"}
	probes := []katraceEvent{probe(s, 1000, 0, 1), probe(s, 2000, 1, 2), probe(s, 3000, 2, 3)}

	closeEv := inTimer(s.owned(s.ev(evClose, 4000, tcpClose)), 3, tcpEstablished)
	closeEv.Flags &^= flagOwnerContext // the owner comes from the socket's storage
	closeEv.OldState = tcpEstablished
	closeEv.SkErr = int32(unix.ETIMEDOUT)
	closeEv.SinceSendMs, closeEv.SinceRecvMs = 4000, 4000
	errEv := inTimer(s.owned(s.ev(evError, 4000, tcpClose)), 3, tcpEstablished)
	errEv.Flags &^= flagOwnerContext
	errEv.SkErr = int32(unix.ETIMEDOUT)

	for name, tail := range map[string][]katraceEvent{
		"6.18: CLOSE, then the error": {closeEv, errEv},
		"6.1: the error, then CLOSE":  {errEv, closeEv},
	} {
		t.Run(name, func(t *testing.T) {
			sink := feed(t, defaults, append(append([]katraceEvent{}, probes...), tail...)...)
			want := "[keepalive_probe keepalive_probe keepalive_probe keepalive_timeout close]"
			if got := fmt.Sprint(sink.types()); got != want {
				t.Fatalf("records %s, want %s", got, want)
			}
			for i, r := range sink.recs[:3] {
				if r.Probe != i+1 || r.MaxProbes != 3 || r.IntervalMs != 1000 {
					t.Errorf("probe %d: %+v", i+1, r)
				}
			}
			to := sink.last(record.TypeKeepaliveTimeout)
			if to.Probes != 3 || to.Error != "ETIMEDOUT" || to.Sock.PID != 4121 || to.Sock.Comm != "python3" {
				t.Errorf("timeout: %+v", to)
			}
			cl := sink.last(record.TypeClose)
			if cl.Cause != record.CauseKeepaliveTimeout || cl.ProbesSent != 3 || cl.DurationMs != 4000 || cl.IdleMs != 4000 {
				t.Errorf("close: %+v", cl)
			}
			if cl.Sock.PID != 4121 || cl.Sock.Comm != "python3" {
				t.Errorf("close owner %d/%s", cl.Sock.PID, cl.Sock.Comm)
			}
		})
	}
}

// A keepalive timer run the programs never saw (on the test machine, runs
// the kernel makes on top of the VM's init process): the next run's probe
// count says how many probes were sent unseen.
func TestUnseenKeepaliveProbes(t *testing.T) {
	s := sock{cookie: 12, start: 1e12, pid: 4121, comm: "python3"}
	timeout := inTimer(s.owned(s.ev(evClose, 4000, tcpClose)), 3, tcpEstablished)
	timeout.Flags &^= flagOwnerContext
	timeout.OldState = tcpEstablished
	timeout.SkErr = int32(unix.ETIMEDOUT)
	timeout.SinceSendMs, timeout.SinceRecvMs = 4000, 4000

	cases := []struct {
		name                string
		evs                 []katraceEvent
		probes, unseen      string
		timeoutUnseen, sent int
	}{
		{"every run seen", []katraceEvent{probe(s, 1000, 0, 1), probe(s, 2000, 1, 2), probe(s, 3000, 2, 3), timeout},
			"[1 2 3]", "[0 0 0]", 0, 3},
		{"probe 2 unseen", []katraceEvent{probe(s, 1000, 0, 1), probe(s, 3000, 2, 3), timeout},
			"[1 3]", "[0 1]", 0, 3},
		{"probe 3 unseen", []katraceEvent{probe(s, 1000, 0, 1), probe(s, 2000, 1, 2), timeout},
			"[1 2]", "[0 0]", 1, 3},
		// Nothing earlier to compare with: katrace may have started after
		// probe 1 went out.
		{"probe 1 unseen", []katraceEvent{probe(s, 2000, 1, 2), probe(s, 3000, 2, 3), timeout},
			"[2 3]", "[0 0]", 0, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := feed(t, defaults, c.evs...)
			var probes, unseen []int
			for _, r := range sink.recs {
				if r.Type == record.TypeKeepaliveProbe {
					probes = append(probes, r.Probe)
					unseen = append(unseen, r.UnseenProbes)
				}
			}
			if fmt.Sprint(probes) != c.probes || fmt.Sprint(unseen) != c.unseen {
				t.Errorf("probes %v unseen %v, want %s %s", probes, unseen, c.probes, c.unseen)
			}
			if to := sink.last(record.TypeKeepaliveTimeout); to.Probes != 3 || to.UnseenProbes != c.timeoutUnseen {
				t.Errorf("timeout: probes %d unseen %d, want 3 %d", to.Probes, to.UnseenProbes, c.timeoutUnseen)
			}
			if cl := sink.last(record.TypeClose); cl.ProbesSent != c.sent {
				t.Errorf("close: probes_sent %d, want %d", cl.ProbesSent, c.sent)
			}
		})
	}

	// With none of the probes seen, the peer's last ACK (which zeroes the
	// kernel's count) says whether katrace was watching when they went out.
	acked := func(e katraceEvent) katraceEvent { e.SinceAckMs = uint32((e.TsNs - s.start) / ms); return e }
	quiet := acked(timeout)
	for _, c := range []struct {
		name                           string
		watchingSince                  uint64
		evs                            []katraceEvent
		unseen                         string
		timeoutUnseen, timeoutLastSeen int
	}{
		{"probe 1 unseen, watching since before the last ACK", s.start - uint64(time.Second),
			[]katraceEvent{acked(probe(s, 2000, 1, 2)), acked(probe(s, 3000, 2, 3)), quiet}, "[1 0]", 0, 3},
		{"probe 1 unseen, katrace started after the last ACK", s.start + 1500*ms,
			[]katraceEvent{acked(probe(s, 2000, 1, 2)), acked(probe(s, 3000, 2, 3)), quiet}, "[0 0]", 0, 3},
		{"no probe seen, only the timeout", s.start - uint64(time.Second),
			[]katraceEvent{quiet}, "[]", 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaults
			cfg.WatchingSinceNs = c.watchingSince
			sink := feed(t, cfg, c.evs...)
			var unseen []int
			for _, r := range sink.recs {
				if r.Type == record.TypeKeepaliveProbe {
					unseen = append(unseen, r.UnseenProbes)
				}
			}
			if fmt.Sprint(unseen) != c.unseen {
				t.Errorf("unseen %v, want %s", unseen, c.unseen)
			}
			if to := sink.last(record.TypeKeepaliveTimeout); to.UnseenProbes != c.timeoutUnseen {
				t.Errorf("timeout: unseen %d, want %d", to.UnseenProbes, c.timeoutUnseen)
			}
			if cl := sink.last(record.TypeClose); cl.ProbesSent != c.timeoutLastSeen {
				t.Errorf("close: probes_sent %d, want %d", cl.ProbesSent, c.timeoutLastSeen)
			}
		})
	}

	// A socket forgotten to make room may have had its earlier probes seen.
	t.Run("socket forgotten in between", func(t *testing.T) {
		other := sock{cookie: 13, start: 1e12}
		cfg := defaults
		cfg.WatchingSinceNs = s.start - uint64(time.Second)
		cfg.MaxSockets = 1
		sink := feed(t, cfg, acked(probe(s, 1000, 0, 1)), acked(probe(other, 1500, 0, 1)), acked(probe(s, 2000, 1, 2)))
		if p := sink.last(record.TypeKeepaliveProbe); p.Probe != 2 || p.UnseenProbes != 0 {
			t.Errorf("probe %d after the socket was forgotten: unseen %d, want 0", p.Probe, p.UnseenProbes)
		}
	})

	// An answered sequence starts over: a new run of probes after the
	// answer is not a jump past the old one.
	ack := probe(s, 5000, 0, 1)
	ack.AckedProbes = 2
	sink := feed(t, defaults, probe(s, 1000, 0, 1), probe(s, 2000, 1, 2), ack, probe(s, 6000, 1, 2))
	for _, r := range sink.recs {
		if r.UnseenProbes != 0 {
			t.Errorf("%s %d: unseen %d after an answer, want 0", r.Type, r.Probe, r.UnseenProbes)
		}
	}
}

// Sockets that time out in the same timer tick: on 6.10+ each socket's
// CLOSE comes before its error, with other sockets' events in between.
func TestKeepaliveTimeoutsInOneTick(t *testing.T) {
	var evs []katraceEvent
	var errs []katraceEvent
	for cookie := uint64(20); cookie < 23; cookie++ {
		s := sock{cookie: cookie, start: 1e12, pid: 4121, comm: "python3"}
		evs = append(evs, probe(s, 1000, 0, 1), probe(s, 2000, 1, 2), probe(s, 3000, 2, 3))
		closeEv := inTimer(s.ev(evClose, 4000, tcpClose), 3, tcpEstablished)
		closeEv.OldState = tcpEstablished
		closeEv.SkErr = int32(unix.ETIMEDOUT)
		errEv := inTimer(s.ev(evError, 4000, tcpClose), 3, tcpEstablished)
		errEv.SkErr = int32(unix.ETIMEDOUT)
		evs = append(evs, closeEv)
		errs = append(errs, errEv)
	}
	sink := feed(t, defaults, append(evs, errs...)...)
	timeouts := map[uint64]int{}
	for _, r := range sink.recs {
		if r.Type == record.TypeKeepaliveTimeout {
			timeouts[r.Sock.Cookie]++
		}
	}
	if fmt.Sprint(timeouts) != "map[20:1 21:1 22:1]" {
		t.Fatalf("keepalive_timeout records per socket %v, want one each", timeouts)
	}
}

func TestTimerEventsNeverUseTheInterruptedTask(t *testing.T) {
	s := sock{cookie: 8, start: 1e12, pid: 4121, comm: "python3"}
	// A process-context event names the owner; timer events carry none
	// (the kernel leaves pid/comm zero in them) and must get the owner
	// remembered for the socket.
	syn := s.owned(s.ev(evState, 0, tcpSynSent))
	syn.OldState = tcpClose
	sink := feed(t, CorrelatorConfig{IdleThreshold: time.Second, States: true}, syn, probe(s, 1000, 0, 1))
	p := sink.last(record.TypeKeepaliveProbe)
	if p.Sock.PID != 4121 || p.Sock.Comm != "python3" {
		t.Fatalf("probe attributed to %d/%q", p.Sock.PID, p.Sock.Comm)
	}
	// With no owner known at all, the owner lookup is asked (by inode).
	s2 := sock{cookie: 9, start: 1e12}
	ev := probe(s2, 1000, 0, 1)
	ev.SockIno = 555
	sink = feed(t, CorrelatorConfig{IdleThreshold: time.Second, Owner: func(ino uint32) (uint32, string, bool) {
		return 77, "nginx", ino == 555
	}}, ev)
	if p := sink.last(record.TypeKeepaliveProbe); p.Sock.PID != 77 || p.Sock.Comm != "nginx" {
		t.Fatalf("probe attributed to %d/%q, want the inode's owner", p.Sock.PID, p.Sock.Comm)
	}
}

func TestKeepaliveAnswered(t *testing.T) {
	s := sock{cookie: 10, start: 1e12}
	ack := probe(s, 2000, 0, 1)
	ack.AckedProbes = 1
	ack.ProbeRttMs = 4
	sink := feed(t, defaults, probe(s, 1000, 0, 1), ack)
	want := "[keepalive_probe keepalive_ack keepalive_probe]"
	if got := fmt.Sprint(sink.types()); got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
	if a := sink.recs[1]; a.Probe != 1 || a.RTTMs != 4 {
		t.Errorf("ack: %+v", a)
	}
}

func closeAt(s sock, at uint64, old uint8, fin uint8, finIdle uint32) katraceEvent {
	e := s.ev(evClose, at, tcpClose)
	e.OldState = old
	e.FinSide = fin
	e.FinIdleMs = finIdle
	return e
}

func TestCloseCauses(t *testing.T) {
	s := sock{cookie: 11, start: 1e12, pid: 1, comm: "app"}
	withErr := func(e katraceEvent, errno unix.Errno) katraceEvent { e.SkErr = int32(errno); return e }
	withFlags := func(e katraceEvent, f uint16) katraceEvent { e.Flags |= f; return e }
	cases := []struct {
		name string
		evs  []katraceEvent
		want string
		from string // the state left for CLOSE
	}{
		{"retransmit timeout", []katraceEvent{withErr(closeAt(s, 900, tcpEstablished, 0, 0), unix.ETIMEDOUT)}, record.CauseRetransmitTimeout, "ESTABLISHED"},
		{"reset received", []katraceEvent{withFlags(withErr(closeAt(s, 900, tcpEstablished, 0, 0), unix.ECONNRESET), flagResetReceivedBefore)}, record.CauseResetReceived, "ESTABLISHED"},
		{"connect timed out", []katraceEvent{withErr(closeAt(s, 900, tcpSynSent, 0, 0), unix.ETIMEDOUT)}, record.CauseRetransmitTimeout, "SYN_SENT"},
		{"connect abandoned", []katraceEvent{withFlags(closeAt(s, 900, tcpSynSent, 0, 0), flagOwnerContext)}, record.CauseConnectAbandoned, "SYN_SENT"},
		{"error", []katraceEvent{withErr(closeAt(s, 900, tcpSynSent, 0, 0), unix.EHOSTUNREACH)}, record.CauseError, "SYN_SENT"},
		{"idle close local", []katraceEvent{closeAt(s, 900, tcpFinWait2, finLocal, 1500)}, record.CauseIdleCloseLocal, "FIN_WAIT2"},
		{"idle close remote", []katraceEvent{closeAt(s, 900, 9 /* LAST_ACK */, finRemote, 75000)}, record.CauseIdleCloseRemote, "LAST_ACK"},
		{"close local", []katraceEvent{closeAt(s, 900, tcpFinWait2, finLocal, 5)}, record.CauseCloseLocal, "FIN_WAIT2"},
		{"close remote", []katraceEvent{closeAt(s, 900, 9, finRemote, 5)}, record.CauseCloseRemote, "LAST_ACK"},
		{"fin_wait2 timeout", []katraceEvent{inTimer(closeAt(s, 900, tcpFinWait2, finLocal, 5), 0, tcpFinWait2)}, record.CauseFinWait2Timeout, "FIN_WAIT2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := feed(t, CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true}, tc.evs...)
			cl := sink.last(record.TypeClose)
			if cl == nil {
				t.Fatalf("no close: %v", sink.types())
			}
			if cl.Cause != tc.want {
				t.Fatalf("cause %q, want %q", cl.Cause, tc.want)
			}
			if cl.OldState != tc.from {
				t.Errorf("closed from %q, want %q", cl.OldState, tc.from)
			}
		})
	}
}

func TestAbortWaitsForItsReset(t *testing.T) {
	s := sock{cookie: 12, start: 1e12, pid: 99, comm: "client"}
	// SO_LINGER 0: the kernel moves the socket to CLOSE in the owner's
	// close(), then sends the RST.
	cl := s.owned(closeAt(s, 500, tcpEstablished, 0, 0))
	rst := s.owned(s.ev(evResetSent, 500, tcpClose))
	rst.TsNs += 2000 // 2 µs later
	rst.Flags |= flagKernelReason
	rst.Reason = 14 // TCP_STATE
	sink := feed(t, defaults, cl, rst)
	if got := fmt.Sprint(sink.types()); got != "[reset close]" {
		t.Fatalf("records %s, want [reset close]", got)
	}
	if r := sink.recs[0]; r.Reason != "TCP_STATE" || r.ReasonSource != record.SourceKernel || r.Direction != record.DirectionSent {
		t.Errorf("reset: %+v", r)
	}
	if c := sink.recs[1]; c.Cause != record.CauseResetSent || c.Sock.PID != 99 {
		t.Errorf("close: %+v", c)
	}

	// Without a reset (a close with nothing to abort), the close is
	// ordinary and, by default, not shown.
	sink = feed(t, defaults, cl)
	if len(sink.recs) != 0 {
		t.Fatalf("an ordinary close printed %v", sink.types())
	}
}

func TestResetReasonInferredWithoutKernelReason(t *testing.T) {
	s := sock{cookie: 13, start: 1e12}
	rst := inTimer(s.ev(evResetSent, 100, tcpClose), 3, tcpEstablished)
	sink := feed(t, CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true}, rst)
	r := sink.last(record.TypeReset)
	if r == nil || r.Reason != "TCP_KEEPALIVE_TIMEOUT" || r.ReasonSource != record.SourceInferred {
		t.Fatalf("reset: %+v", r)
	}
}

func TestDefaultViewShowsOnlyWhatExplainsAnEnd(t *testing.T) {
	s := sock{cookie: 14, start: 1e12}
	st := s.ev(evState, 10, tcpEstablished)
	st.OldState = tcpSynSent
	evs := []katraceEvent{st, closeAt(s, 900, tcpFinWait2, finLocal, 5)}
	if sink := feed(t, defaults, evs...); len(sink.recs) != 0 {
		t.Fatalf("default view printed %v", sink.types())
	}
	sink := feed(t, CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true, States: true}, evs...)
	// The close event is also the change to CLOSE, written before the close.
	if got := fmt.Sprint(sink.types()); got != "[state state close]" {
		t.Fatalf("--all --states printed %s", got)
	}
	if r := sink.recs[1]; r.OldState != "FIN_WAIT2" || r.NewState != "CLOSE" || r.Sock.Cookie != 14 {
		t.Fatalf("the change to CLOSE: %+v", r)
	}
}

func TestLocalPortKeptAcrossClose(t *testing.T) {
	s := sock{cookie: 15, start: 1e12}
	cl := closeAt(s, 900, tcpFinWait2, finLocal, 5000)
	cl.Sport = 0 // cleared by the kernel before an active closer's CLOSE
	sink := feed(t, defaults, probe(s, 100, 0, 1), cl)
	if c := sink.last(record.TypeClose); c.Sock.LPort != 40750 {
		t.Fatalf("close lost the local port: %+v", c.Sock)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	sink := &memSink{}
	c := NewCorrelator(CorrelatorConfig{IdleThreshold: time.Second, MaxSockets: 100}, sink)
	for i := uint64(1); i <= 1000; i++ {
		e := probe(sock{cookie: i, start: 1e12}, i, 0, 1)
		if err := c.Handle(&e); err != nil {
			t.Fatal(err)
		}
	}
	if c.Tracked() != 100 || c.Evicted() != 900 {
		t.Fatalf("tracking %d sockets, evicted %d; want 100 and 900", c.Tracked(), c.Evicted())
	}
	// The most recently active are the ones kept.
	if c.conns.byCookie[1000] == nil || c.conns.byCookie[1] != nil {
		t.Fatal("evicted the wrong sockets")
	}
	// Closed sockets are forgotten.
	cl := closeAt(sock{cookie: 1000, start: 1e12}, 2000, tcpFinWait2, finLocal, 5)
	if err := c.Handle(&cl); err != nil {
		t.Fatal(err)
	}
	if c.conns.byCookie[1000] != nil || c.Tracked() != 99 {
		t.Fatal("a closed socket is still remembered")
	}
}

func BenchmarkCorrelateKeepalive(b *testing.B) {
	c := NewCorrelator(defaults, &discardSink{})
	e := probe(sock{cookie: 1, start: 1e12, pid: 1, comm: "x"}, 1000, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Handle(&e)
	}
}

type discardSink struct{}

func (discardSink) Write(*record.Record) error { return nil }
func (discardSink) Flush() error               { return nil }

// On a slow machine the peer's events land between the abort's CLOSE and
// its RST (the RST is traced after it went out): they must not settle it.
func TestAbortSurvivesOtherSocketsEvents(t *testing.T) {
	s := sock{cookie: 16, start: 1e12, pid: 99, comm: "client"}
	peer := sock{cookie: 17, start: 1e12}
	cl := s.owned(closeAt(s, 500, tcpEstablished, 0, 0))
	peerReset := peer.ev(evResetReceived, 520, tcpEstablished)
	rst := s.owned(s.ev(evResetSent, 530, tcpClose))
	sink := feed(t, defaults, cl, peerReset, rst)
	if c := sink.last(record.TypeClose); c == nil || c.Cause != record.CauseResetSent {
		t.Fatalf("records %v, want the client's close as reset_sent", sink.types())
	}
}

func TestStaleReuseVerdict(t *testing.T) {
	s := sock{cookie: 20, start: 1e12, pid: 5, comm: "client"}
	// The peer's FIN came at 1000 ms after 1000 ms idle; we wrote 312 ms
	// later (the write is 12 ms old when the RST arrives).
	rst := s.ev(evResetReceived, 1324, tcpCloseWait)
	rst.FinSide, rst.FinNs, rst.FinIdleMs = finRemote, s.start+1000*ms, 1000
	rst.WrittenAfterFin = 40
	rst.SinceSendMs, rst.SinceRecvMs = 12, 1324
	cl := rst
	cl.Kind, cl.State, cl.OldState = evClose, tcpClose, tcpCloseWait
	cl.Flags |= flagResetReceivedBefore
	sink := feed(t, defaults, rst, cl)
	c := sink.last(record.TypeClose)
	if c == nil || c.Cause != record.CauseStaleReuse || c.ReuseGapMs != 312 || c.PeerIdleMs != 1000 {
		t.Fatalf("close: %+v", c)
	}
	// Without a write after the FIN it is an ordinary reset.
	cl.WrittenAfterFin = 0
	if c := feed(t, defaults, cl).last(record.TypeClose); c.Cause != record.CauseResetReceived {
		t.Errorf("no write after the FIN: cause %q", c.Cause)
	}
}

func TestResetAfterIdleVerdict(t *testing.T) {
	s := sock{cookie: 21, start: 1e12}
	cl := closeAt(s, 301000, tcpEstablished, 0, 0)
	cl.Flags |= flagResetReceivedBefore
	cl.SkErr = int32(unix.ECONNRESET)
	cl.SinceSendMs, cl.SinceRecvMs = 2, 300002 // 5 minutes without data, then our write
	cl.Unacked = 120                           // never acknowledged
	c := feed(t, defaults, cl).last(record.TypeClose)
	if c == nil || c.Cause != record.CauseResetAfterIdle || c.IdleMs != 300000 {
		t.Fatalf("close: %+v", c)
	}
	// A write that was acknowledged, or a short silence, is not it.
	for _, mod := range []func(*katraceEvent){
		func(e *katraceEvent) { e.Unacked = 0 },
		func(e *katraceEvent) { e.SinceRecvMs = 500 },
		func(e *katraceEvent) { e.FinSide = finRemote },
	} {
		e := cl
		mod(&e)
		if c := feed(t, defaults, e).last(record.TypeClose); c.Cause == record.CauseResetAfterIdle {
			t.Errorf("reset_after_idle for %+v", e)
		}
	}
}

func TestSummaryLearnsServiceTimeouts(t *testing.T) {
	sink := &memSink{}
	c := NewCorrelator(defaults, sink)
	// A server (passive sockets) closing idle connections after 75 s, seen
	// on ten connections; one client-side close of the same service by a
	// client after 30 s.
	for i := 0; i < 10; i++ {
		e := sock{cookie: uint64(100 + i), start: 1e12}.ev(evIdleFin, 75000, 4)
		e.Role, e.FinSide, e.FinIdleMs = rolePassive, finLocal, uint32(75000+i)
		e.Sport, e.Dport = 80, uint16(40000+i)
		if err := c.Handle(&e); err != nil {
			t.Fatal(err)
		}
	}
	e := sock{cookie: 200, start: 1e12}.ev(evIdleFin, 30000, 4)
	e.Role, e.FinSide, e.FinIdleMs, e.Sport, e.Dport = rolePassive, finRemote, 30000, 80, 41000
	if err := c.Handle(&e); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteSummary(time.Now()); err != nil {
		t.Fatal(err)
	}
	sum := sink.last(record.TypeSummary)
	if sum == nil || sum.Endpoint != "10.213.0.1:80" || sum.IdleClosesLocal != 10 || sum.IdleClosesRemote != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	// The percentiles are of the service's own closes: its timeout.
	if sum.IdleMsP50 != 75004 || sum.IdleMsP90 != 75008 {
		t.Errorf("p50 %d p90 %d, want 75004 and 75008", sum.IdleMsP50, sum.IdleMsP90)
	}
}

func TestAbortAndProbeFactsForTheWording(t *testing.T) {
	s := sock{cookie: 22, start: 1e12, pid: 99, comm: "client"}
	cl := s.owned(closeAt(s, 500, tcpEstablished, 0, 0))
	rst := s.owned(s.ev(evResetSent, 500, tcpClose))
	rst.Unread = 77
	if r := feed(t, defaults, cl, rst).last(record.TypeReset); r == nil || r.Abort != record.AbortUnreadData || r.UnreadBytes != 77 {
		t.Fatalf("reset after close() with unread data: %+v", r)
	}
	rst.Unread = 0
	rst.Flags |= flagLingerZero
	if r := feed(t, defaults, cl, rst).last(record.TypeReset); r == nil || r.Abort != record.AbortLingerZero {
		t.Fatalf("reset after an SO_LINGER 0 close(): %+v", r)
	}

	// The peer answers our second keepalive probe with a reset.
	peerReset := closeAt(s, 3000, tcpEstablished, 0, 0)
	peerReset.Flags |= flagResetReceivedBefore
	peerReset.SkErr = int32(unix.ECONNRESET)
	peerReset.ProbesBefore = 2
	if c := feed(t, defaults, peerReset).last(record.TypeClose); c == nil || c.Cause != record.CauseResetReceived || c.ResetAtProbe != 2 {
		t.Fatalf("close: %+v", c)
	}
}
