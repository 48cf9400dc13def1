// Package output turns records into what the user reads: a human timeline
// (Text) or one JSON object per line (JSON), the NDJSON contract of DESIGN.md.
//
// Both printers are record.Sinks fed from the tracer's hot path, so they
// append into a buffer they reuse and write through a bufio.Writer; the caller
// decides when to Flush.
package output

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/katrace/katrace/record"
)

// JSON writes each record as one JSON object on its own line. It is not safe
// for concurrent use.
//
// The encoder is hand-written rather than encoding/json because it runs once
// per kernel event: it appends into a reused buffer and allocates nothing per
// record once warmed up.
type JSON struct {
	w   *bufio.Writer
	buf []byte
}

var _ record.Sink = (*JSON)(nil)

// NewJSON returns a JSON printer writing to w. Output is buffered: call Flush
// to push it out.
func NewJSON(w io.Writer) *JSON {
	return &JSON{w: bufio.NewWriterSize(w, 64<<10), buf: make([]byte, 0, 1024)}
}

// Write encodes r as one line.
func (j *JSON) Write(r *record.Record) error {
	j.buf = appendJSON(j.buf[:0], r)
	_, err := j.w.Write(j.buf)
	return err
}

// Flush writes out any buffered lines.
func (j *JSON) Flush() error { return j.w.Flush() }

// appendJSON appends r to b as one NDJSON line, newline included.
func appendJSON(b []byte, r *record.Record) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.UTC().AppendFormat(b, rfc3339FixedNano)
	b = append(b, `","type":"`...)
	b = append(b, r.Type.String()...) // a fixed identifier: no escaping needed
	b = append(b, '"')
	if r.Host != "" {
		b = jsonString(b, "host", r.Host)
	}

	if r.Type.HasSocket() {
		b = appendSocketJSON(b, &r.Sock)
	}

	switch r.Type {
	case record.TypeStart:
		b = jsonString(b, "mode", r.Mode)
		b = jsonString(b, "kernel", r.Kernel)
		b = jsonString(b, "version", r.Version)
	case record.TypeState:
		b = jsonString(b, "old_state", r.OldState)
		b = jsonString(b, "new_state", r.NewState)
	case record.TypeKeepaliveProbe:
		b = jsonInt(b, "probe", int64(r.Probe))
		b = jsonInt(b, "max_probes", int64(r.MaxProbes))
		b = jsonKeepaliveInterval(b, r.IntervalMs)
		b = jsonInt(b, "keepalive_idle_ms", r.KeepaliveIdleMs)
		b = jsonOptInt(b, "idle_ms", r.IdleMs)
		if r.UnseenProbes > 0 {
			b = jsonInt(b, "unseen_probes", int64(r.UnseenProbes))
		}
	case record.TypeKeepaliveAck:
		b = jsonInt(b, "probe", int64(r.Probe))
		b = jsonOptInt(b, "rtt_ms", r.RTTMs)
	case record.TypeKeepaliveTimeout:
		b = jsonInt(b, "probes", int64(r.Probes))
		b = jsonInt(b, "max_probes", int64(r.MaxProbes))
		b = jsonString(b, "error", r.Error)
		if r.UnseenProbes > 0 {
			b = jsonInt(b, "unseen_probes", int64(r.UnseenProbes))
		}
	case record.TypeIdleClose:
		b = jsonString(b, "side", r.Side)
		b = jsonOptInt(b, "idle_ms", r.IdleMs)
		b = appendGoodbyeJSON(b, r)
	case record.TypeReset:
		b = jsonString(b, "direction", r.Direction)
		if r.Reason != "" {
			b = jsonString(b, "reason", r.Reason)
		}
		if r.ReasonSource != "" {
			b = jsonString(b, "reason_source", r.ReasonSource)
		}
		b = jsonOptInt(b, "idle_ms", r.IdleMs)
		if r.AfterKeepalive {
			b = append(b, `,"after_keepalive":true`...)
		}
	case record.TypeClose:
		b = jsonString(b, "cause", r.Cause)
		if r.OldState != "" {
			b = jsonString(b, "old_state", r.OldState)
		}
		b = jsonOptInt(b, "duration_ms", r.DurationMs)
		b = jsonOptInt(b, "idle_ms", r.IdleMs)
		b = jsonInt(b, "probes_sent", int64(r.ProbesSent))
		b = jsonUint(b, "bytes_sent", r.BytesSent)
		b = jsonUint(b, "bytes_received", r.BytesReceived)
		b = jsonOptInt(b, "reuse_gap_ms", r.ReuseGapMs)
		b = jsonOptInt(b, "peer_idle_ms", r.PeerIdleMs)
		if r.Error != "" {
			b = jsonString(b, "error", r.Error)
		}
		b = jsonOptInt(b, "unacked_ms", r.UnackedMs)
		if r.Retransmits > 0 {
			b = jsonInt(b, "retransmits", int64(r.Retransmits))
		}
		b = jsonOptInt(b, "user_timeout_ms", r.UserTimeoutMs)
		if r.AfterIdle {
			b = append(b, `,"after_idle":true`...)
		}
		b = appendGoodbyeJSON(b, r)
		// r.ResetAtProbe only words the text; reset_received's records
		// before it carry after_keepalive.
	case record.TypeSummary:
		b = jsonString(b, "endpoint", r.Endpoint)
		b = jsonInt(b, "idle_closes_local", int64(r.IdleClosesLocal))
		b = jsonInt(b, "idle_closes_remote", int64(r.IdleClosesRemote))
		b = jsonOptInt(b, "idle_ms_p50", r.IdleMsP50)
		b = jsonOptInt(b, "idle_ms_p90", r.IdleMsP90)
		if r.StaleReuses > 0 {
			b = jsonInt(b, "stale_reuses", int64(r.StaleReuses))
		}
		if r.ForgottenFlows > 0 {
			b = jsonInt(b, "forgotten_flows", int64(r.ForgottenFlows))
			b = jsonInt(b, "forgotten_idle_ms_min", r.ForgottenIdleMsMin)
			b = jsonInt(b, "forgotten_keepalive_off", int64(r.ForgottenKeepaliveOff))
			b = jsonOptInt(b, "forgotten_keepalive_idle_ms", r.ForgottenKeepaliveIdleMs)
		}
		b = appendWorkloadJSON(b, &r.EndpointWorkload)
	case record.TypeLost:
		b = jsonUint(b, "count", r.Count)
		if r.MissedRuns > 0 {
			b = jsonUint(b, "missed_runs", r.MissedRuns)
		}
	case record.TypeEnd:
		b = jsonUint(b, "events", r.Events)
		b = jsonUint(b, "lost", r.Lost)
		if r.MissedRuns > 0 {
			b = jsonUint(b, "missed_runs", r.MissedRuns)
		}
	}
	return append(b, '}', '\n')
}

// jsonKeepaliveInterval writes the interval under both its names: the
// first the contract had, and the one `katrace sockets` uses.
func jsonKeepaliveInterval(b []byte, ms int64) []byte {
	b = jsonInt(b, "interval_ms", ms)
	return jsonInt(b, "keepalive_interval_ms", ms)
}

func appendSocketJSON(b []byte, s *record.Socket) []byte {
	b = jsonUint(b, "sock", s.Cookie)
	if s.IPv6 {
		b = append(b, `,"family":"ipv6"`...)
	} else {
		b = append(b, `,"family":"ipv4"`...)
	}
	if s.V4Mapped {
		b = append(b, `,"v4_mapped":true`...)
	}
	b = jsonAddr(b, "laddr", s.LAddr)
	b = jsonUint(b, "lport", uint64(s.LPort))
	b = jsonAddr(b, "raddr", s.RAddr)
	b = jsonUint(b, "rport", uint64(s.RPort))
	b = jsonUint(b, "netns", uint64(s.NetNS))
	b = jsonString(b, "state", s.State)
	if s.PID != 0 {
		b = jsonUint(b, "pid", uint64(s.PID))
		b = jsonString(b, "comm", s.Comm)
	}
	if s.Proto != "" {
		b = jsonString(b, "proto", s.Proto)
	}
	if s.Requests != record.Absent {
		b = jsonInt(b, "requests", int64(s.Requests))
	}
	return appendWorkloadJSON(b, &s.Workload)
}

// appendWorkloadJSON writes the cgroup, container and pod fields that are
// known; a name comes from a container runtime or the kubelet, so it is
// escaped like any string.
func appendWorkloadJSON(b []byte, w *record.Workload) []byte {
	for _, f := range [...]struct{ key, v string }{
		{"cgroup", w.Cgroup},
		{"container_id", w.ContainerID},
		{"pod_uid", w.PodUID},
		{"pod", w.Pod},
		{"namespace", w.Namespace},
		{"container", w.Container},
	} {
		if f.v != "" {
			b = jsonString(b, f.key, f.v)
		}
	}
	return b
}

// The helpers below append `,"key":value`. Every key is a constant
// snake_case identifier, so keys are never escaped.

func jsonKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func jsonString(b []byte, key, v string) []byte {
	return appendJSONString(jsonKey(b, key), v)
}

// jsonAddr writes an address; the zero Addr becomes "".
func jsonAddr(b []byte, key string, a netip.Addr) []byte {
	b = append(jsonKey(b, key), '"')
	if a.Zone() != "" {
		// A zone is an interface name, which may hold a quote or a
		// backslash: take the slow, escaping path for this rare case.
		b = appendJSONString(b[:len(b)-1], a.String())
		return b
	}
	b = a.AppendTo(b) // digits, dots, colons and hex only
	return append(b, '"')
}

func jsonInt(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(jsonKey(b, key), v, 10)
}

// jsonOptInt leaves the field out when v is record.Absent.
func jsonOptInt(b []byte, key string, v int64) []byte {
	if v == record.Absent {
		return b
	}
	return jsonInt(b, key, v)
}

func jsonUint(b []byte, key string, v uint64) []byte {
	return strconv.AppendUint(jsonKey(b, key), v, 10)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s to b as a quoted JSON string. Control
// characters become \u00XX (or their short forms), each invalid UTF-8 byte
// becomes \ufffd as encoding/json does, and U+2028/U+2029 are escaped so a
// line stays one line for JavaScript-based log tools. A process controls its
// own comm, so nothing here may let it break out of the string or the line.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, needing no escape
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// rfc3339FixedNano is RFC 3339 with all nine digits of nanoseconds, so that
// every record's time has the same width and sorts as text.
const rfc3339FixedNano = "2006-01-02T15:04:05.000000000Z07:00"

// appendGoodbyeJSON writes "goodbye":true and, when known, its size.
func appendGoodbyeJSON(b []byte, r *record.Record) []byte {
	if !r.Goodbye {
		return b
	}
	b = append(b, `,"goodbye":true`...)
	return jsonOptInt(b, "goodbye_bytes", r.GoodbyeBytes)
}
