package output

import (
	"net/netip"
	"time"

	"github.com/katrace/katrace/record"
)

// t0 is 03:41:02.118 UTC, the start of the timeline in DESIGN's example.
var t0 = time.Date(2025, 3, 14, 3, 41, 2, 118_000_000, time.UTC)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// newRecord returns a record of type typ as the tracer hands it over: reset,
// then filled.
func newRecord(typ record.Type, tm time.Time) *record.Record {
	r := new(record.Record)
	r.Reset()
	r.Type = typ
	r.Time = tm
	return r
}

// sockRecord is newRecord with the socket of the example timeline.
func sockRecord(typ record.Type, tm time.Time) *record.Record {
	r := newRecord(typ, tm)
	r.Sock = record.Socket{
		SocketID: record.SocketID{
			Cookie: 8193,
			LAddr:  netip.MustParseAddr("10.213.0.1"),
			LPort:  40750,
			RAddr:  netip.MustParseAddr("10.213.0.2"),
			RPort:  18081,
			NetNS:  4026531840,
			State:  "ESTABLISHED",
		},
		PID:      4121,
		Comm:     "python3",
		Requests: record.Absent,
	}
	return r
}

// golden is one record per type (and the interesting variants), in timeline
// order, shared by the JSON and text tests.
type goldenCase struct {
	name string
	rec  *record.Record
	json string // the whole line, without its newline
	// text is what the record adds on a fresh printer, without the final
	// newline: the banner for start (the column header follows it), else
	// what follows the column header.
	text string
}

func startRecord() *record.Record {
	r := newRecord(record.TypeStart, at(-5000))
	r.Mode, r.Kernel, r.Version = "tracepoint", "6.18.0", "v0.3.1"
	return r
}

// goldenCases covers every record type and the variants that change what is
// printed. Text lines assume the printer runs in UTC.
func goldenCases() []goldenCase {
	var cs []goldenCase
	add := func(name string, r *record.Record, json, text string) {
		cs = append(cs, goldenCase{name, r, json, text})
	}

	add("start", startRecord(),
		`{"time":"2025-03-14T03:40:57.118000000Z","type":"start","mode":"tracepoint","kernel":"6.18.0","version":"v0.3.1"}`,
		`katrace tracing with the tracepoint strategy (kernel 6.18.0, katrace v0.3.1); Ctrl-C to stop`)

	r := sockRecord(record.TypeState, at(-2000))
	r.OldState, r.NewState = "SYN_SENT", "ESTABLISHED"
	add("state", r,
		`{"time":"2025-03-14T03:41:00.118000000Z","type":"state","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","old_state":"SYN_SENT","new_state":"ESTABLISHED"}`,
		`03:41:00.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            state SYN_SENT → ESTABLISHED`)

	r = sockRecord(record.TypeKeepaliveProbe, at(0))
	r.Probe, r.MaxProbes, r.IntervalMs, r.KeepaliveIdleMs, r.IdleMs = 1, 3, 1000, 1000, 1024
	add("keepalive_probe/first", r,
		`{"time":"2025-03-14T03:41:02.118000000Z","type":"keepalive_probe","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probe":1,"max_probes":3,"interval_ms":1000,"keepalive_interval_ms":1000,"keepalive_idle_ms":1000,"idle_ms":1024}`,
		`03:41:02.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 1/3 unanswered (idle 1.0s)`)

	r = sockRecord(record.TypeKeepaliveProbe, at(1024))
	r.Probe, r.MaxProbes, r.IntervalMs, r.KeepaliveIdleMs = 2, 3, 1000, 1000
	add("keepalive_probe/idle_unknown", r,
		`{"time":"2025-03-14T03:41:03.142000000Z","type":"keepalive_probe","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probe":2,"max_probes":3,"interval_ms":1000,"keepalive_interval_ms":1000,"keepalive_idle_ms":1000}`,
		`03:41:03.142  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 2/3 unanswered`)

	r = sockRecord(record.TypeKeepaliveProbe, at(2048))
	r.Probe, r.MaxProbes, r.IntervalMs, r.KeepaliveIdleMs, r.UnseenProbes = 3, 3, 1000, 1000, 1
	add("keepalive_probe/one_unseen", r,
		`{"time":"2025-03-14T03:41:04.166000000Z","type":"keepalive_probe","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probe":3,"max_probes":3,"interval_ms":1000,"keepalive_interval_ms":1000,"keepalive_idle_ms":1000,"unseen_probes":1}`,
		`03:41:04.166  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 3/3 unanswered (probe 2 not seen)`)

	r = sockRecord(record.TypeKeepaliveProbe, at(3072))
	r.Probe, r.MaxProbes, r.IntervalMs, r.KeepaliveIdleMs, r.UnseenProbes = 4, 9, 1000, 1000, 2
	add("keepalive_probe/two_unseen", r,
		`{"time":"2025-03-14T03:41:05.190000000Z","type":"keepalive_probe","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probe":4,"max_probes":9,"interval_ms":1000,"keepalive_interval_ms":1000,"keepalive_idle_ms":1000,"unseen_probes":2}`,
		`03:41:05.190  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 4/9 unanswered (probes 2-3 not seen)`)

	r = sockRecord(record.TypeKeepaliveAck, at(1036))
	r.Probe, r.RTTMs = 1, 12
	add("keepalive_ack", r,
		`{"time":"2025-03-14T03:41:03.154000000Z","type":"keepalive_ack","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probe":1,"rtt_ms":12}`,
		`03:41:03.154  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 1 answered (rtt 12ms)`)

	r = sockRecord(record.TypeKeepaliveAck, at(1036))
	r.Probe = 2
	add("keepalive_ack/rtt_unknown", r,
		`{"time":"2025-03-14T03:41:03.154000000Z","type":"keepalive_ack","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probe":2}`,
		`03:41:03.154  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive probe 2 answered`)

	r = sockRecord(record.TypeKeepaliveTimeout, at(3072))
	r.Probes, r.MaxProbes, r.Error = 3, 3, "ETIMEDOUT"
	add("keepalive_timeout", r,
		`{"time":"2025-03-14T03:41:05.190000000Z","type":"keepalive_timeout","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probes":3,"max_probes":3,"error":"ETIMEDOUT"}`,
		`03:41:05.190  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive timeout: peer silent after 3 probes → ETIMEDOUT`)

	r = sockRecord(record.TypeKeepaliveTimeout, at(3072))
	r.Probes, r.MaxProbes, r.Error, r.UnseenProbes = 3, 3, "ETIMEDOUT", 1
	add("keepalive_timeout/last_probe_unseen", r,
		`{"time":"2025-03-14T03:41:05.190000000Z","type":"keepalive_timeout","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","probes":3,"max_probes":3,"error":"ETIMEDOUT","unseen_probes":1}`,
		`03:41:05.190  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            keepalive timeout: peer silent after 3 probes → ETIMEDOUT (probe 3 not seen)`)

	r = sockRecord(record.TypeClose, at(3072))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs, r.IdleMs, r.ProbesSent = record.CauseKeepaliveTimeout, 5312, 4290, 3
	r.BytesSent, r.BytesReceived = 312, 1024
	add("close/keepalive_timeout", r,
		`{"time":"2025-03-14T03:41:05.190000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"keepalive_timeout","duration_ms":5312,"idle_ms":4290,"probes_sent":3,"bytes_sent":312,"bytes_received":1024}`,
		`03:41:05.190  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: keepalive_timeout after 5.3s (idle 4.3s, 3 probes)`)

	r = sockRecord(record.TypeIdleClose, at(4000))
	r.Sock.Proto, r.Sock.Requests = "http/1.x", 7
	r.Side, r.IdleMs = record.SideLocal, 90_000
	add("idle_close/local", r,
		`{"time":"2025-03-14T03:41:06.118000000Z","type":"idle_close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","proto":"http/1.x","requests":7,"side":"local","idle_ms":90000}`,
		`03:41:06.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            idle close by us after 1m30s idle (after request 7)`)

	r = sockRecord(record.TypeIdleClose, at(4000))
	r.Sock.Requests = 0
	r.Side, r.IdleMs = record.SideRemote, 1000
	add("idle_close/remote", r,
		`{"time":"2025-03-14T03:41:06.118000000Z","type":"idle_close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","requests":0,"side":"remote","idle_ms":1000}`,
		`03:41:06.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            idle close by peer after 1.0s idle`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, "TCP_ABORT_ON_LINGER", record.SourceKernel
	add("reset/sent_kernel", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","direction":"sent","reason":"TCP_ABORT_ON_LINGER","reason_source":"kernel"}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset sent: SO_LINGER 0 abort (TCP_ABORT_ON_LINGER)`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Sock.State = "CLOSE"
	r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, "TCP_ABORT_ON_CLOSE", record.SourceKernel
	r.Abort, r.UnreadBytes, r.IdleMs = record.AbortUnreadData, 77, 0
	add("reset/sent_close_unread", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","direction":"sent","reason":"TCP_ABORT_ON_CLOSE","reason_source":"kernel","idle_ms":0}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset sent: closed with 77 bytes unread (TCP_ABORT_ON_CLOSE), idle 0ms`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Sock.State = "CLOSE"
	r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, "TCP_STATE", record.SourceInferred
	r.Abort = record.AbortLingerZero
	add("reset/sent_linger_zero", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","direction":"sent","reason":"TCP_STATE","reason_source":"inferred"}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset sent: SO_LINGER 0 close (TCP_STATE, inferred)`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, "TCP_ABORT_ON_DATA", record.SourceInferred
	r.IdleMs = 312
	add("reset/sent_inferred", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","direction":"sent","reason":"TCP_ABORT_ON_DATA","reason_source":"inferred","idle_ms":312}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset sent: data arrived after close (TCP_ABORT_ON_DATA) (reason inferred), idle 312ms`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, "TCP_INVALID_ACK_SEQUENCE", record.SourceKernel
	add("reset/sent_other_reason", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","direction":"sent","reason":"TCP_INVALID_ACK_SEQUENCE","reason_source":"kernel"}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset sent: tcp_invalid_ack_sequence`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Direction, r.IdleMs = record.DirectionReceived, 61_000
	add("reset/received", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","direction":"received","idle_ms":61000}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset received, idle 1m01s`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Sock.State = "SYN_SENT"
	r.Direction = record.DirectionReceived
	add("reset/received_connecting", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"SYN_SENT","pid":4121,"comm":"python3","direction":"received"}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset received while connecting: connection refused (nothing listens on that port, or a firewall rejects the connection)`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Direction, r.IdleMs, r.AfterKeepalive = record.DirectionReceived, 7_200_000, true
	add("reset/after_keepalive", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","direction":"received","idle_ms":7200000,"after_keepalive":true}`,
		`03:41:07.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset received in answer to a keepalive probe: the peer lost the connection (restarted?) or a NAT, load balancer or firewall forgot the idle flow, idle 2h00m`)

	r = sockRecord(record.TypeReset, at(5000))
	r.Sock.IPv6 = true
	r.Sock.LAddr = netip.MustParseAddr("fd00:1234:5678::1")
	r.Sock.RAddr = netip.MustParseAddr("fd00:1234:5678::abcd")
	r.Sock.PID, r.Sock.Comm = 0, ""
	r.Direction, r.Reason, r.ReasonSource = record.DirectionSent, "NO_SOCKET", record.SourceKernel
	add("reset/ipv6_no_owner", r,
		`{"time":"2025-03-14T03:41:07.118000000Z","type":"reset","sock":8193,"family":"ipv6","laddr":"fd00:1234:5678::1","lport":40750,"raddr":"fd00:1234:5678::abcd","rport":18081,"netns":4026531840,"state":"ESTABLISHED","direction":"sent","reason":"NO_SOCKET","reason_source":"kernel"}`,
		`03:41:07.118  -                        [fd00:1234:5678::1]:40750 → [fd00:1234:5678::abcd]:18081  reset sent: no such connection (NO_SOCKET)`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Sock.Proto, r.Sock.Requests = "http/1.x", 3
	r.Cause, r.DurationMs, r.IdleMs = record.CauseStaleReuse, 2600, 1312
	r.ReuseGapMs, r.PeerIdleMs = 312, 1000
	r.BytesSent, r.BytesReceived = 900, 4000
	add("close/stale_reuse", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","proto":"http/1.x","requests":3,"cause":"stale_reuse","duration_ms":2600,"idle_ms":1312,"probes_sent":0,"bytes_sent":900,"bytes_received":4000,"reuse_gap_ms":312,"peer_idle_ms":1000}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: stale_reuse: wrote 312ms after the peer closed the idle connection (peer idle timeout ≈ 1.0s); peer reset it`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs, r.IdleMs = record.CauseResetAfterIdle, 301_000, 300_000
	add("close/reset_after_idle", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"reset_after_idle","duration_ms":301000,"idle_ms":300000,"probes_sent":0,"bytes_sent":0,"bytes_received":0}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: reset_after_idle: first write after 5m00s idle drew a reset, no FIN seen: the peer or a middlebox (NAT, load balancer) forgot the connection`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs, r.IdleMs, r.ProbesSent, r.ResetAtProbe = record.CauseResetReceived, 9000, 8000, 2, 2
	add("close/reset_at_keepalive_probe", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"reset_received","duration_ms":9000,"idle_ms":8000,"probes_sent":2,"bytes_sent":0,"bytes_received":0}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: reset_received: the peer answered keepalive probe 2 with a reset: it lost the connection (restarted?) or a NAT, load balancer or firewall forgot the idle flow`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.OldState, r.DurationMs, r.Error = record.CauseResetReceived, "SYN_SENT", 4, "ECONNREFUSED"
	add("close/connection_refused", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"reset_received","old_state":"SYN_SENT","duration_ms":4,"probes_sent":0,"bytes_sent":0,"bytes_received":0,"error":"ECONNREFUSED"}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: reset_received: connection refused: our SYN drew a reset after 4ms → ECONNREFUSED`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.OldState, r.DurationMs, r.Error = record.CauseError, "SYN_SENT", 1024, "EHOSTUNREACH"
	add("close/connect_failed", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"error","old_state":"SYN_SENT","duration_ms":1024,"probes_sent":0,"bytes_sent":0,"bytes_received":0,"error":"EHOSTUNREACH"}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: error: connect failed after 1.0s → EHOSTUNREACH`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.OldState, r.DurationMs, r.Retransmits = record.CauseConnectAbandoned, "SYN_SENT", 1000, 1
	add("close/connect_abandoned", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"connect_abandoned","old_state":"SYN_SENT","duration_ms":1000,"probes_sent":0,"bytes_sent":0,"bytes_received":0,"retransmits":1}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: connect_abandoned: the application closed the socket 1.0s after its SYN, before the handshake completed (1 SYN retransmission): its own connect timeout, or a failure the kernel only marked (an ICMP error while it held the socket)`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.OldState, r.DurationMs, r.Error = record.CauseRetransmitTimeout, "SYN_SENT", 7120, "ETIMEDOUT"
	r.Retransmits = 5
	add("close/connect_timeout", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"retransmit_timeout","old_state":"SYN_SENT","duration_ms":7120,"probes_sent":0,"bytes_sent":0,"bytes_received":0,"error":"ETIMEDOUT","retransmits":5}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: retransmit_timeout: connect timed out: our SYN was never answered; gave up after 7.1s and 5 retransmissions → ETIMEDOUT: the peer is unreachable, or a firewall drops the connection`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs, r.IdleMs, r.Error = record.CauseRetransmitTimeout, 7000, 3130, "ETIMEDOUT"
	r.UnackedMs, r.Retransmits, r.UserTimeoutMs, r.AfterIdle = 3418, 4, 3000, true
	r.BytesSent, r.BytesReceived = 9, 5
	add("close/retransmit_timeout_after_idle", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"retransmit_timeout","duration_ms":7000,"idle_ms":3130,"probes_sent":0,"bytes_sent":9,"bytes_received":5,"error":"ETIMEDOUT","unacked_ms":3418,"retransmits":4,"user_timeout_ms":3000,"after_idle":true}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: retransmit_timeout: write after 3.1s idle never acknowledged; gave up after 3.4s and 4 retransmissions (TCP_USER_TIMEOUT 3.0s) → ETIMEDOUT: the peer or a NAT, load balancer or firewall forgot the idle connection and drops its packets`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs, r.IdleMs, r.Error = record.CauseRetransmitTimeout, 20_000, 12, "ETIMEDOUT"
	r.UnackedMs, r.Retransmits = 15_400, 15
	add("close/retransmit_timeout", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"retransmit_timeout","duration_ms":20000,"idle_ms":12,"probes_sent":0,"bytes_sent":0,"bytes_received":0,"error":"ETIMEDOUT","unacked_ms":15400,"retransmits":15}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: retransmit_timeout: data never acknowledged; gave up after 15.4s and 15 retransmissions → ETIMEDOUT: the peer is unreachable or the path drops its packets`)

	r = sockRecord(record.TypeIdleClose, at(6000))
	r.Side, r.IdleMs, r.Goodbye, r.GoodbyeBytes = record.SideRemote, 3000, true, 116
	add("idle_close/goodbye", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"idle_close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","side":"remote","idle_ms":3000,"goodbye":true,"goodbye_bytes":116}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            idle close by peer after 3.0s idle (goodbye first: 116 bytes)`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs, r.IdleMs, r.Goodbye = record.CauseIdleCloseLocal, 1551, 1500, true
	r.BytesSent, r.BytesReceived = 597, 86
	add("close/idle_close_after_goodbye", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"idle_close_local","duration_ms":1551,"idle_ms":1500,"probes_sent":0,"bytes_sent":597,"bytes_received":86,"goodbye":true}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: idle_close_local after 1.6s (idle 1.5s, goodbye first)`)

	r = sockRecord(record.TypeClose, at(6000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs = record.CauseFinWait2Timeout, record.Absent
	add("close/fin_wait2_timeout", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"fin_wait2_timeout","probes_sent":0,"bytes_sent":0,"bytes_received":0}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: fin_wait2_timeout: we closed, the peer never sent its FIN (its application kept the connection open, or the FIN was lost)`)

	r = sockRecord(record.TypeIdleClose, at(6000))
	r.Side, r.IdleMs, r.Goodbye = record.SideLocal, 1500, true
	add("idle_close/goodbye_size_unknown", r,
		`{"time":"2025-03-14T03:41:08.118000000Z","type":"idle_close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3","side":"local","idle_ms":1500,"goodbye":true}`,
		`03:41:08.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            idle close by us after 1.5s idle (goodbye first)`)

	r = sockRecord(record.TypeClose, at(7000))
	r.Sock.State = "CLOSE"
	r.Cause, r.DurationMs = record.CauseCloseRemote, 7_380_000
	add("close/plain", r,
		`{"time":"2025-03-14T03:41:09.118000000Z","type":"close","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"CLOSE","pid":4121,"comm":"python3","cause":"close_remote","duration_ms":7380000,"probes_sent":0,"bytes_sent":0,"bytes_received":0}`,
		`03:41:09.118  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            closed: close_remote after 2h03m`)

	r = newRecord(record.TypeLost, at(8000))
	r.Count = 1
	add("lost", r,
		`{"time":"2025-03-14T03:41:10.118000000Z","type":"lost","count":1}`,
		`03:41:10.118  !! lost 1 event: the ring buffer was full (raise --ring-size)`)

	r = newRecord(record.TypeLost, at(8000))
	r.MissedRuns = 2
	add("lost/missed_runs", r,
		`{"time":"2025-03-14T03:41:10.118000000Z","type":"lost","count":0,"missed_runs":2}`,
		`03:41:10.118  !! the kernel skipped 2 program runs (already running on that CPU): their events are missing`)

	r = newRecord(record.TypeLost, at(8000))
	r.Count, r.MissedRuns = 3, 1
	add("lost/both", r,
		`{"time":"2025-03-14T03:41:10.118000000Z","type":"lost","count":3,"missed_runs":1}`,
		"03:41:10.118  !! lost 3 events: the ring buffer was full (raise --ring-size)\n"+
			"03:41:10.118  !! the kernel skipped 1 program run (already running on that CPU): their events are missing")

	r = newRecord(record.TypeSummary, at(9000))
	r.Endpoint, r.IdleClosesRemote, r.IdleMsP50, r.IdleMsP90, r.StaleReuses = "10.213.0.2:18081", 12, 1000, 1010, 3
	add("summary/stale_reuses", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"summary","endpoint":"10.213.0.2:18081","idle_closes_local":0,"idle_closes_remote":12,"idle_ms_p50":1000,"idle_ms_p90":1010,"stale_reuses":3}`,
		"\nIDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90\n                        10.213.0.2:18081             0      12   1.0s     1.0s  ⚠ 3 stale reuses: clients keep idle connections longer than this endpoint's idle timeout (≈1.0s): shorten the client pool's idle timeout below it")

	r = newRecord(record.TypeSummary, at(9000))
	r.Endpoint, r.IdleClosesLocal, r.IdleMsP50, r.IdleMsP90 = "10.213.0.3:80", 120, 75_000, 90_000
	add("summary/local", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"summary","endpoint":"10.213.0.3:80","idle_closes_local":120,"idle_closes_remote":0,"idle_ms_p50":75000,"idle_ms_p90":90000}`,
		"\nIDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90\n                        10.213.0.3:80              120       0   1m15s    1m30s")

	r = newRecord(record.TypeSummary, at(9000))
	r.Endpoint, r.ForgottenFlows, r.ForgottenIdleMsMin, r.ForgottenKeepaliveOff = "10.213.0.2:18081", 2, 350_000, 2
	add("summary/forgotten_keepalive_off", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"summary","endpoint":"10.213.0.2:18081","idle_closes_local":0,"idle_closes_remote":0,"idle_ms_p50":0,"idle_ms_p90":0,"forgotten_flows":2,"forgotten_idle_ms_min":350000,"forgotten_keepalive_off":2}`,
		"\nIDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90\n                        10.213.0.2:18081             0       0   -        -  ⚠ 2 flows forgotten after ≥ 5m50s idle (NAT, load balancer or firewall idle timeout?): keepalive off → turn SO_KEEPALIVE on with TCP_KEEPIDLE below 5m50s")

	r = newRecord(record.TypeSummary, at(9000))
	r.Endpoint, r.ForgottenFlows, r.ForgottenIdleMsMin, r.ForgottenKeepaliveIdleMs = "10.213.0.2:6379", 1, 3000, 7_200_000
	add("summary/forgotten_keepalive_too_long", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"summary","endpoint":"10.213.0.2:6379","idle_closes_local":0,"idle_closes_remote":0,"idle_ms_p50":0,"idle_ms_p90":0,"forgotten_flows":1,"forgotten_idle_ms_min":3000,"forgotten_keepalive_off":0,"forgotten_keepalive_idle_ms":7200000}`,
		"\nIDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90\n                        10.213.0.2:6379              0       0   -        -  ⚠ 1 flow forgotten after ≥ 3.0s idle (NAT, load balancer or firewall idle timeout?): keepalive idle 2h00m did not keep them → lower TCP_KEEPIDLE (or net.ipv4.tcp_keepalive_time) below 3.0s")

	r = newRecord(record.TypeSummary, at(9000))
	r.Endpoint = "[fd00::2]:443"
	add("summary/none_seen", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"summary","endpoint":"[fd00::2]:443","idle_closes_local":0,"idle_closes_remote":0,"idle_ms_p50":0,"idle_ms_p90":0}`,
		"\nIDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90\n                        [fd00::2]:443                0       0   -        -")

	r = newRecord(record.TypeEnd, at(9000))
	r.Events, r.Lost = 24, 1
	add("end", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"end","events":24,"lost":1}`,
		`03:41:11.118  stopped: 24 events, 1 lost`)

	r = newRecord(record.TypeEnd, at(9000))
	r.Events, r.Lost, r.MissedRuns = 24, 0, 5
	add("end/missed_runs", r,
		`{"time":"2025-03-14T03:41:11.118000000Z","type":"end","events":24,"lost":0,"missed_runs":5}`,
		`03:41:11.118  stopped: 24 events, 0 lost, 5 program runs skipped`)
	return cs
}
