package output

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

// writeJSON runs records through a fresh JSON printer and returns its output.
func writeJSON(t testing.TB, recs ...*record.Record) string {
	t.Helper()
	var buf bytes.Buffer
	j := NewJSON(&buf)
	for _, r := range recs {
		if err := j.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := j.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return buf.String()
}

// decodeLine checks that line is one valid JSON object and returns it.
func decodeLine(t testing.TB, line string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	if d.More() {
		t.Fatalf("more than one value on the line %q", line)
	}
	return m
}

func TestJSONGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			got := writeJSON(t, c.rec)
			if want := c.json + "\n"; got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			m := decodeLine(t, got)
			if m["type"] != c.rec.Type.String() {
				t.Errorf("type = %v, want %v", m["type"], c.rec.Type)
			}
			ts, err := time.Parse(time.RFC3339Nano, m["time"].(string))
			if err != nil || !ts.Equal(c.rec.Time) {
				t.Errorf("time = %v (%v), want %v", m["time"], err, c.rec.Time)
			}
			if _, ok := m["detail"]; ok {
				t.Error("detail must never be part of the JSON output")
			}
			_, hasSock := m["sock"]
			if hasSock != c.rec.Type.HasSocket() {
				t.Errorf("sock present = %v, want %v", hasSock, c.rec.Type.HasSocket())
			}
		})
	}
}

// TestJSONStream checks the whole stream is NDJSON: one object per line, as
// many lines as records.
func TestJSONStream(t *testing.T) {
	cs := goldenCases()
	recs := make([]*record.Record, len(cs))
	for i, c := range cs {
		recs[i] = c.rec
	}
	out := writeJSON(t, recs...)
	if !strings.HasSuffix(out, "\n") {
		t.Fatal("output does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(recs) {
		t.Fatalf("%d lines for %d records", len(lines), len(recs))
	}
	for _, l := range lines {
		decodeLine(t, l)
	}
}

func TestJSONTimeIsUTC(t *testing.T) {
	r := newRecord(record.TypeLost, time.Date(2025, 3, 14, 5, 41, 2, 123456789, time.FixedZone("CEST", 2*3600)))
	r.Count = 1
	got := writeJSON(t, r)
	want := `{"time":"2025-03-14T03:41:02.123456789Z","type":"lost","count":1}` + "\n"
	if got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestJSONOmitsOptional(t *testing.T) {
	keys := func(r *record.Record) map[string]any { return decodeLine(t, writeJSON(t, r)) }
	check := func(t *testing.T, m map[string]any, absent, present []string) {
		t.Helper()
		for _, k := range absent {
			if v, ok := m[k]; ok {
				t.Errorf("%s = %v, want it left out", k, v)
			}
		}
		for _, k := range present {
			if _, ok := m[k]; !ok {
				t.Errorf("%s is missing", k)
			}
		}
	}

	t.Run("close/unknown", func(t *testing.T) {
		r := sockRecord(record.TypeClose, t0)
		r.Sock.PID, r.Sock.Comm = 0, ""
		r.Cause = record.CauseCloseLocal
		r.ResetAtProbe, r.Abort, r.UnreadBytes = 3, record.AbortUnreadData, 9 // words the text only
		check(t, keys(r),
			[]string{"pid", "comm", "proto", "requests", "idle_ms", "reuse_gap_ms", "peer_idle_ms", "detail"},
			[]string{"sock", "family", "laddr", "lport", "raddr", "rport", "netns", "state",
				"cause", "duration_ms", "probes_sent", "bytes_sent", "bytes_received"})
	})
	t.Run("close/known", func(t *testing.T) {
		r := sockRecord(record.TypeClose, t0)
		r.Sock.Proto, r.Sock.Requests = "tls", 0 // zero requests is known, not absent
		r.Cause, r.IdleMs, r.ReuseGapMs, r.PeerIdleMs = record.CauseStaleReuse, 0, 0, 0
		check(t, keys(r), []string{"detail"},
			[]string{"pid", "comm", "proto", "requests", "idle_ms", "reuse_gap_ms", "peer_idle_ms"})
	})
	t.Run("reset", func(t *testing.T) {
		r := sockRecord(record.TypeReset, t0)
		r.Direction = record.DirectionReceived
		check(t, keys(r), []string{"reason", "reason_source", "idle_ms", "after_keepalive"}, []string{"direction"})
	})
	t.Run("keepalive", func(t *testing.T) {
		r := sockRecord(record.TypeKeepaliveAck, t0)
		check(t, keys(r), []string{"rtt_ms"}, []string{"probe"})
		r = sockRecord(record.TypeKeepaliveProbe, t0)
		check(t, keys(r), []string{"idle_ms"}, []string{"probe", "max_probes", "interval_ms", "keepalive_idle_ms", "keepalive_interval_ms"})
	})
	t.Run("v4_mapped", func(t *testing.T) {
		r := sockRecord(record.TypeReset, t0)
		check(t, keys(r), []string{"v4_mapped"}, nil)
		r.Sock.V4Mapped = true
		m := keys(r)
		if m["v4_mapped"] != true || m["family"] != "ipv4" {
			t.Errorf("dual-stack socket: v4_mapped %v, family %v; want true, ipv4", m["v4_mapped"], m["family"])
		}
	})
	t.Run("summary", func(t *testing.T) {
		r := newRecord(record.TypeSummary, t0)
		check(t, keys(r), []string{"stale_reuses", "sock", "pid"},
			[]string{"endpoint", "idle_closes_local", "idle_closes_remote", "idle_ms_p50", "idle_ms_p90"})
	})
}

func TestJSONEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`plain`, `"plain"`},
		{``, `""`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"tab\there\nnl\rcr", `"tab\there\nnl\rcr"`},
		{"\x00\x01\x1b[31m\x1f", `"\u0000\u0001\u001b[31m\u001f"`},
		{"del\x7f", "\"del\x7f\""}, // DEL is legal in a JSON string
		{"héllo wörld ✓", `"héllo wörld ✓"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"\xe2\x82", `"\ufffd\ufffd"`},           // truncated sequence: one per byte
		{"\xc0\xaf", `"\ufffd\ufffd"`},           // overlong encoding of '/'
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // surrogate
		{"\ufffd", "\"\ufffd\""},                 // a real U+FFFD passes through
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"</script>&", `"</script>&"`},
	} {
		got := string(appendJSONString(nil, tc.in))
		if got != tc.want {
			t.Errorf("escape %q = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("escape %q: invalid JSON %s: %v", tc.in, got, err)
		} else if want := string([]rune(tc.in)); back != want {
			t.Errorf("escape %q: decodes to %q, want %q", tc.in, back, want)
		}
	}
}

// TestJSONCommRoundTrip puts hostile names where a process controls them
// and checks the line stays one valid object.
func TestJSONCommRoundTrip(t *testing.T) {
	for _, comm := range []string{
		"\"},\"pid\":1,\"x\":{\"", "\n{\"type\":\"end\"}", "\\", "\x00", "ok\xfe", "日本語",
	} {
		r := sockRecord(record.TypeClose, t0)
		r.Sock.Comm = comm
		out := writeJSON(t, r)
		if strings.Count(out, "\n") != 1 {
			t.Errorf("comm %q: output is not one line: %q", comm, out)
		}
		m := decodeLine(t, out)
		if got, want := m["comm"], string([]rune(comm)); got != want {
			t.Errorf("comm %q: decodes to %q, want %q", comm, got, want)
		}
		if m["pid"] != json.Number("4121") {
			t.Errorf("comm %q: pid = %v", comm, m["pid"])
		}
	}
}

func TestJSONAddrZone(t *testing.T) {
	r := sockRecord(record.TypeState, t0)
	r.Sock.IPv6 = true
	r.Sock.LAddr = netip.MustParseAddr("fe80::1").WithZone(`we"ird\`)
	r.Sock.RAddr = netip.MustParseAddr("::ffff:10.0.0.1")
	m := decodeLine(t, writeJSON(t, r))
	if got, want := m["laddr"], `fe80::1%we"ird\`; got != want {
		t.Errorf("laddr = %q, want %q", got, want)
	}
	if got, want := m["raddr"], "::ffff:10.0.0.1"; got != want {
		t.Errorf("raddr = %q, want %q", got, want)
	}
	if m["family"] != "ipv6" {
		t.Errorf("family = %v", m["family"])
	}
}

// staleReuseClose is the heaviest record on the hot path: every optional
// field set, a comm that needs escaping.
func staleReuseClose() *record.Record {
	r := sockRecord(record.TypeClose, t0)
	r.Sock.Comm = "gunicorn: \"w\"\t"
	r.Sock.Proto, r.Sock.Requests = "http/1.x", 41
	r.Cause, r.DurationMs, r.IdleMs, r.ProbesSent = record.CauseStaleReuse, 123456, 1312, 2
	r.BytesSent, r.BytesReceived, r.ReuseGapMs, r.PeerIdleMs = 1<<40, 1<<33, 312, 1000
	return r
}

func TestJSONZeroAllocs(t *testing.T) {
	recs := []*record.Record{staleReuseClose()}
	v6 := staleReuseClose()
	v6.Sock.IPv6 = true
	v6.Sock.LAddr = netip.MustParseAddr("2001:db8::1")
	v6.Sock.RAddr = netip.MustParseAddr("2001:db8::2")
	recs = append(recs, v6)
	for _, c := range goldenCases() {
		recs = append(recs, c.rec)
	}

	j := NewJSON(io.Discard)
	for _, r := range recs {
		allocs := testing.AllocsPerRun(1000, func() {
			if err := j.Write(r); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per record, want 0", r.Type, allocs)
		}
	}
}

func BenchmarkJSONWrite(b *testing.B) {
	r := staleReuseClose()
	j := NewJSON(io.Discard)
	b.ReportAllocs()
	b.SetBytes(int64(len(appendJSON(nil, r))))
	for b.Loop() {
		if err := j.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}
