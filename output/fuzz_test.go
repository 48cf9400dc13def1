package output

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

// FuzzJSONEscape feeds arbitrary bytes as the process name (and as the
// tracer-supplied strings) and checks that every record stays one valid
// JSON line and the name survives the round trip, invalid UTF-8 replaced
// rune by rune as encoding/json does.
func FuzzJSONEscape(f *testing.F) {
	for _, s := range []string{
		"python3", "", `"`, `\`, "\n", "\x00\x1f\x7f", "\xff\xfe", "\xe2\x82", "\u2028\u2029",
		"日本語", "\ufffd", `"},"pid":1,"x":{"`, "\x1b[31mred",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		j := NewJSON(&buf)
		var recs []*record.Record
		for _, typ := range []record.Type{record.TypeReset, record.TypeStart, record.TypeSummary} {
			r := sockRecord(typ, t0)
			r.Sock.Comm, r.Sock.State, r.Sock.Proto = s, s, s
			r.Reason, r.ReasonSource, r.Direction = s, s, s
			r.Mode, r.Kernel, r.Version, r.Endpoint = s, s, s, s
			recs = append(recs, r)
		}
		for _, r := range recs {
			if err := j.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Flush(); err != nil {
			t.Fatal(err)
		}

		out := buf.String()
		if !strings.HasSuffix(out, "\n") {
			t.Fatalf("output does not end in a newline: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(recs) {
			t.Fatalf("%d records gave %d lines: %q", len(recs), len(lines), out)
		}
		want := string([]rune(s))
		for i, line := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("invalid JSON %q: %v", line, err)
			}
			key := "comm"
			switch recs[i].Type {
			case record.TypeStart:
				key = "kernel"
			case record.TypeSummary:
				key = "endpoint"
			}
			if m[key] != want {
				t.Fatalf("%s: %s = %q, want %q", recs[i].Type, key, m[key], want)
			}
		}
	})
}

// FuzzTextOneLine checks that whatever a process calls itself, each event
// is still exactly one line of the timeline.
func FuzzTextOneLine(f *testing.F) {
	f.Add("python3")
	f.Add("a\nb\r\x1b[2J\u2028\x85\xff")
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		p := NewText(&buf, WithLocation(time.UTC))
		r := sockRecord(record.TypeClose, t0)
		r.Sock.Comm, r.Cause = s, s
		if err := p.Write(r); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		out := strings.TrimPrefix(buf.String(), textHeader)
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
			t.Fatalf("not one line: %q", out)
		}
		if strings.ContainsAny(out[:len(out)-1], "\r\x1b\u0085\u2028\u2029") {
			t.Fatalf("control character got through: %q", out)
		}
	})
}
