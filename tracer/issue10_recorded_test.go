// The recorded kernel sequences of tracer/testdata/issue10 (see
// docs/issue10-findings.md, "Test data format") replayed through the
// correlator: both orders of CLOSE and the error report, the NAT's reset
// to a keepalive probe, the goodbye before an idle close. The words of
// each verdict are checked in output's golden tests.

package tracer

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

type recorded struct {
	Scenario string         `json:"scenario"`
	Events   []katraceEvent `json:"events"`
}

func loadRecorded(t *testing.T, name string) recorded {
	t.Helper()
	b, err := os.ReadFile("testdata/issue10/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var r recorded
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// defaultView keeps what the kernel sends without --states: the recordings
// were made with --all --states.
func defaultView(evs []katraceEvent) []katraceEvent {
	var out []katraceEvent
	for _, e := range evs {
		if e.Kind != evState {
			out = append(out, e)
		}
	}
	return out
}

func near(got, want, slack int64) bool { return got >= want-slack && got <= want+slack }

func TestRecordedRetransmitTimeoutBothKernelOrders(t *testing.T) {
	for _, tc := range []struct {
		file              string
		idleMs, unackedMs int64
		userTimeoutMs     int64
	}{
		{"retransmit_timeout_user_timeout_6.18.json", 3130, 3418, 3000},
		{"retransmit_timeout_user_timeout_6.1.json", 3130, 3418, 3000},
		{"retransmit_timeout_retries2_6.18.json", 3492, 6784, record.Absent},
		{"retransmit_timeout_retries2_6.1.json", 3492, 6784, record.Absent},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rec := loadRecorded(t, tc.file)
			sink := feed(t, defaults, defaultView(rec.Events)...)
			if got := strings.Join(sink.types(), " "); got != "close" {
				t.Fatalf("records %q, want one close (the error report adds nothing)", got)
			}
			c := sink.last(record.TypeClose)
			if c.Cause != record.CauseRetransmitTimeout || c.Error != "ETIMEDOUT" || !c.AfterIdle {
				t.Errorf("close: %+v", c)
			}
			if !near(c.IdleMs, tc.idleMs, 8) || !near(c.UnackedMs, tc.unackedMs, 8) ||
				c.Retransmits != 4 || c.UserTimeoutMs != tc.userTimeoutMs {
				t.Errorf("close idle %d unacked %d retransmits %d user timeout %d, want %d %d 4 %d",
					c.IdleMs, c.UnackedMs, c.Retransmits, c.UserTimeoutMs, tc.idleMs, tc.unackedMs, tc.userTimeoutMs)
			}
			if c.Sock.Comm != "e2e.test" || c.Sock.PID == 0 {
				t.Errorf("close owner %d/%q", c.Sock.PID, c.Sock.Comm)
			}
		})
	}
}

func TestRecordedKeepaliveProbeAnsweredByNAT(t *testing.T) {
	rec := loadRecorded(t, "keepalive_probe_nat_reset.json")
	// The kernel program now names the owner in the keepalive event (owner
	// by cookie): the recording predates that, so give the probe the owner
	// the reset carries, as the fixed kernel program will.
	evs := defaultView(rec.Events)
	var owner katraceEvent
	for _, e := range evs {
		if e.Kind == evResetReceived {
			owner = e
		}
	}
	for i := range evs {
		if evs[i].Kind == evKeepalive {
			evs[i].Flags |= flagOwner
			evs[i].Pid, evs[i].Comm = owner.Pid, owner.Comm
		}
	}
	sink := feed(t, defaults, evs...)
	p := sink.last(record.TypeKeepaliveProbe)
	if p == nil || p.Sock.Comm != "redis-server" {
		t.Fatalf("probe: %+v", p)
	}
	c := sink.last(record.TypeClose)
	if c.Cause != record.CauseResetReceived {
		t.Fatalf("close: %+v", c)
	}
	if c.ResetAtProbe != 1 {
		t.Errorf("close reset at probe %d, want 1", c.ResetAtProbe)
	}
}

// The goodbye is recognised in the kernel's FIN handler; the recording
// is replayed as the fixed program sends it (EV_IDLE_FIN added, derived).
func TestRecordedGoodbyeThenClose(t *testing.T) {
	rec := loadRecorded(t, "goodbye_then_close_fixed_kernel.json")
	sink := feed(t, CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true}, defaultView(rec.Events)...)
	var local, remote *record.Record
	for i := range sink.recs {
		r := &sink.recs[i]
		if r.Type == record.TypeIdleClose && r.Side == record.SideLocal {
			local = r
		}
		if r.Type == record.TypeIdleClose && r.Side == record.SideRemote {
			remote = r
		}
	}
	if local == nil || remote == nil {
		t.Fatalf("want an idle close on both sides, got %v", sink.types())
	}
	for _, r := range []*record.Record{local, remote} {
		if !near(r.IdleMs, 3000, 12) || r.GoodbyeBytes != 116 {
			t.Errorf("%s idle close: idle %d goodbye %d, want ~3000 and 116", r.Side, r.IdleMs, r.GoodbyeBytes)
		}
	}
	for _, r := range sink.recs {
		if r.Type != record.TypeClose {
			continue
		}
		switch r.Sock.LPort {
		case 7003:
			if r.Cause != record.CauseIdleCloseLocal {
				t.Errorf("server close: %+v", r)
			}
		default:
			if r.Cause != record.CauseStaleReuse || !near(r.PeerIdleMs, 3000, 12) {
				t.Errorf("client close: %+v", r)
			}
		}
	}
}

// A FIN_WAIT2 linger handed to a timewait socket: the hand-off close is
// reported as it is (with --all), the expiry without the peer's FIN is
// the fin_wait2_timeout, with the owner remembered from the hand-off.
func TestTimewaitFinWait2Expiry(t *testing.T) {
	s := sock{cookie: 42, start: 1_000_000_000, pid: 7, comm: "client"}
	handoff := s.owned(s.ev(evClose, 10, tcpClose))
	handoff.Flags &^= flagOwnerContext // the ACK of our FIN, in softirq
	handoff.OldState, handoff.Flags = tcpFinWait2, handoff.Flags|flagOrphan
	expiry := katraceEvent{TsNs: s.start + 2010*ms, Cookie: 42, Kind: evTimewaitExpiry,
		State: tcpClose, OldState: tcpFinWait2, Flags: flagTimewait, Family: 4, Sport: 40750, Dport: 18081}
	afterFin := expiry
	afterFin.OldState = 6 // TIME_WAIT: the peer's FIN came

	for _, tc := range []struct {
		name  string
		cfg   CorrelatorConfig
		evs   []katraceEvent
		want  string
		owner bool
	}{
		{"all", CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true, TimewaitExpiry: true},
			[]katraceEvent{handoff, expiry}, "close_local fin_wait2_timeout", true},
		{"default", CorrelatorConfig{IdleThreshold: time.Second, TimewaitExpiry: true},
			[]katraceEvent{handoff, expiry}, "fin_wait2_timeout", true},
		{"expiry only", CorrelatorConfig{IdleThreshold: time.Second, TimewaitExpiry: true},
			[]katraceEvent{expiry}, "fin_wait2_timeout", false},
		{"time_wait's end adds nothing", CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true, TimewaitExpiry: true},
			[]katraceEvent{handoff, afterFin}, "close_local", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := feed(t, tc.cfg, tc.evs...)
			var causes []string
			for _, r := range sink.recs {
				if r.Type == record.TypeClose {
					causes = append(causes, r.Cause)
				}
			}
			if got := strings.Join(causes, " "); got != tc.want {
				t.Fatalf("closes %q, want %q", got, tc.want)
			}
			if c := sink.last(record.TypeClose); c != nil && c.Cause == record.CauseFinWait2Timeout {
				if tc.owner != (c.Sock.PID == 7 && c.Sock.Comm == "client") {
					t.Errorf("timeout owner %d/%q, want owner known: %v", c.Sock.PID, c.Sock.Comm, tc.owner)
				}
				if c.Sock.LPort != 40750 || c.Sock.Cookie != 42 {
					t.Errorf("timeout socket %+v", c.Sock)
				}
			}
		})
	}
}
