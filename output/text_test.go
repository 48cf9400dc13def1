package output

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/katrace/katrace/record"
)

func writeText(t testing.TB, loc *time.Location, recs ...*record.Record) string {
	t.Helper()
	var buf bytes.Buffer
	p := NewText(&buf, WithLocation(loc))
	for _, r := range recs {
		if err := p.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return buf.String()
}

func TestTextGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			got := writeText(t, time.UTC, c.rec)
			want := textHeader + c.text + "\n"
			if c.rec.Type == record.TypeStart {
				want = c.text + "\n" + textHeader
			}
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestTextTimeline is the example an operator sees: banner, header once,
// events, the summary table with its header once, the end.
func TestTextTimeline(t *testing.T) {
	start := startRecord()

	probe := func(n int, ms int64) *record.Record {
		r := sockRecord(record.TypeKeepaliveProbe, at(ms))
		r.Probe, r.MaxProbes, r.IntervalMs, r.KeepaliveIdleMs, r.IdleMs = n, 3, 1000, 1000, 1000+ms
		return r
	}
	timeout := sockRecord(record.TypeKeepaliveTimeout, at(3072))
	timeout.Probes, timeout.MaxProbes, timeout.Error = 3, 3, "ETIMEDOUT"
	closed := sockRecord(record.TypeClose, at(3072))
	closed.Cause, closed.DurationMs, closed.IdleMs, closed.ProbesSent = record.CauseKeepaliveTimeout, 5312, 4290, 3

	sum1 := newRecord(record.TypeSummary, at(9000))
	sum1.Endpoint, sum1.IdleClosesRemote, sum1.IdleMsP50, sum1.IdleMsP90 = "10.213.0.2:18081", 12, 1000, 1010
	sum2 := newRecord(record.TypeSummary, at(9000))
	sum2.Endpoint, sum2.IdleClosesLocal, sum2.IdleClosesRemote = "[2001:db8:ffff:ffff::1234]:8443", 1234, 5
	sum2.IdleMsP50, sum2.IdleMsP90, sum2.StaleReuses = 30_000, 45_000, 1
	end := newRecord(record.TypeEnd, at(9000))
	end.Events = 6

	got := writeText(t, time.UTC, start, probe(1, 0), probe(2, 1024), probe(3, 2048), timeout, closed, sum1, sum2, end)
	want := `katrace tracing with the tracepoint strategy (kernel 6.18.0, katrace v0.3.1); Ctrl-C to stop
TIME          PID     COMM             LOCAL → REMOTE                                 EVENT
03:41:02.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 1/3 unanswered (idle 1.0s)
03:41:03.142  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 2/3 unanswered
03:41:04.166  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 3/3 unanswered
03:41:05.190  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive timeout: peer silent after 3 probes → ETIMEDOUT
03:41:05.190  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: keepalive_timeout after 5.3s (idle 4.3s, 3 probes)

IDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90
                        10.213.0.2:18081             0      12   1.0s     1.0s
                        [2001:db8:ffff:ffff::1234]:8443   1234       5   30.0s    45.0s  ⚠ 1 stale reuse: clients keep idle connections longer than this endpoint's idle timeout (≈30.0s): shorten the client pool's idle timeout below it
03:41:11.118  stopped: 6 events, 0 lost
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// column returns the display column at which sub starts in line.
func column(t *testing.T, line, sub string) int {
	t.Helper()
	i := strings.Index(line, sub)
	if i < 0 {
		t.Fatalf("%q not in %q", sub, line)
	}
	return utf8.RuneCountInString(line[:i])
}

// TestTextColumnsAlign ties the header to the layout constants, for the
// narrowest and the widest IPv4 pairs.
func TestTextColumnsAlign(t *testing.T) {
	for _, addrs := range [][2]string{{"1.1.1.1", "2.2.2.2"}, {"255.255.255.255", "255.255.255.254"}} {
		r := sockRecord(record.TypeState, t0)
		r.Sock.LAddr, r.Sock.RAddr = netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1])
		r.Sock.LPort, r.Sock.RPort, r.Sock.PID, r.Sock.Comm = 1, 65535, 4194304, "0123456789abcde"
		r.OldState, r.NewState = "A", "B"
		lines := strings.Split(writeText(t, time.UTC, r), "\n")
		h, l := lines[0], lines[1]
		for _, c := range [][2]string{{"PID", "4194304"}, {"COMM", "0123456789abcde"}, {"LOCAL", addrs[0]}, {"EVENT", "state A"}} {
			if hc, lc := column(t, h, c[0]), column(t, l, c[1]); hc != lc {
				t.Errorf("%s: header column %d, line column %d\n%s\n%s", c[0], hc, lc, h, l)
			}
		}
	}

	sum := newRecord(record.TypeSummary, t0)
	sum.Endpoint, sum.IdleClosesLocal, sum.IdleClosesRemote = "255.255.255.255:65535", 10000, 100000
	sum.IdleMsP50, sum.IdleMsP90 = 59_000, 3_600_000
	lines := strings.Split(writeText(t, time.UTC, sum), "\n")
	h, l := lines[2], lines[3]
	for _, c := range [][2]string{{"ENDPOINT", "255."}, {"LOCAL", "10000"}, {"REMOTE", "100000"}, {"P50", "59.0s"}, {"P90", "1h00m"}} {
		if hc, lc := column(t, h, c[0]), column(t, l, c[1]); hc != lc {
			t.Errorf("summary %s: header column %d, line column %d\n%s\n%s", c[0], hc, lc, h, l)
		}
	}
}

func TestTextWideAddressesAreNotCut(t *testing.T) {
	r := sockRecord(record.TypeState, t0)
	r.Sock.IPv6 = true
	r.Sock.LAddr = netip.MustParseAddr("2001:db8:1111:2222:3333:4444:5555:6666").WithZone("eth0")
	r.Sock.RAddr = netip.MustParseAddr("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff")
	r.OldState, r.NewState = "A", "B"
	line := strings.Split(writeText(t, time.UTC, r), "\n")[1]
	want := "[2001:db8:1111:2222:3333:4444:5555:6666%eth0]:40750 → [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:18081  state A → B"
	if !strings.HasSuffix(line, want) {
		t.Errorf("got  %q\nwant suffix %q", line, want)
	}
}

func TestTextAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr string
		port uint16
		want string
	}{
		{"10.0.0.1", 80, "10.0.0.1:80"},
		{"::ffff:10.0.0.1", 80, "10.0.0.1:80"}, // dual-stack socket, shown as typed
		{"fd00::1", 80, "[fd00::1]:80"},
		{"", 0, "?:0"},
	} {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if got := string(appendHostPort(nil, a, tc.port)); got != tc.want {
			t.Errorf("%q:%d = %q, want %q", tc.addr, tc.port, got, tc.want)
		}
	}
	zoned := netip.MustParseAddr("fe80::1").WithZone("e\x1bvil")
	if got, want := string(appendHostPort(nil, zoned, 1)), "[fe80::1%e?vil]:1"; got != want {
		t.Errorf("zoned = %q, want %q", got, want)
	}
}

func TestTextLocation(t *testing.T) {
	r := newRecord(record.TypeLost, t0)
	r.Count = 2
	got := writeText(t, time.FixedZone("CEST", 2*3600), r)
	if want := textHeader + "05:41:02.118  !! lost 2 events: the ring buffer was full (raise --ring-size)\n"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if p := NewText(io.Discard); p.loc != time.Local {
		t.Errorf("default location = %v, want Local", p.loc)
	}
}

// TestTextHostileComm: a process names itself, so its name must not be able
// to add lines, move the cursor or recolour the terminal.
func TestTextHostileComm(t *testing.T) {
	r := sockRecord(record.TypeState, t0)
	r.Sock.Comm = "a\nb\x1b[2J\u202e\xff\u2028z"
	r.OldState, r.NewState = "A", "B"
	got := writeText(t, time.UTC, r)
	want := textHeader + "03:41:02.118  4121    a?b?[2J???z      10.213.0.1:40750 → 10.213.0.2:18081            state A → B\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestTextResetReasons(t *testing.T) {
	for reason, want := range map[string]string{
		"":                      "reset sent",
		"unknown":               "reset sent",
		"NOT_SPECIFIED":         "reset sent: unspecified",
		"NO_SOCKET":             "reset sent: no such connection (NO_SOCKET)",
		"TCP_ABORT_ON_CLOSE":    "reset sent: closed with unread data (TCP_ABORT_ON_CLOSE)",
		"TCP_ABORT_ON_LINGER":   "reset sent: SO_LINGER 0 abort (TCP_ABORT_ON_LINGER)",
		"TCP_ABORT_ON_DATA":     "reset sent: data arrived after close (TCP_ABORT_ON_DATA)",
		"TCP_KEEPALIVE_TIMEOUT": "reset sent: keepalive timeout (TCP_KEEPALIVE_TIMEOUT)",
		"TCP_TIMEWAIT_SOCKET":   "reset sent: segment to a closed connection (TCP_TIMEWAIT_SOCKET)",
		"TCP_RFC7323_PAWS":      "reset sent: tcp_rfc7323_paws",
	} {
		r := sockRecord(record.TypeReset, t0)
		r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, reason, record.SourceKernel
		if got := string(appendEvent(nil, r)); got != want {
			t.Errorf("reason %q: %q, want %q", reason, got, want)
		}
	}
}

func TestTextHeaderOnlyOnce(t *testing.T) {
	a := sockRecord(record.TypeState, t0)
	got := writeText(t, time.UTC, a, a, startRecord(), a)
	if n := strings.Count(got, textHeader); n != 1 {
		t.Errorf("header printed %d times:\n%s", n, got)
	}
	if !strings.HasPrefix(got, textHeader) {
		t.Errorf("header is not first:\n%s", got)
	}
}

func BenchmarkTextWrite(b *testing.B) {
	r := staleReuseClose()
	p := NewText(io.Discard, WithLocation(time.UTC))
	if err := p.Write(r); err != nil { // gets the header out of the way
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}
