package metrics

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/katrace/katrace/record"
)

func sockRec(t record.Type, laddr string, lport uint16, raddr string, rport uint16) *record.Record {
	var r record.Record
	r.Reset()
	r.Time = time.Unix(1700000000, 0)
	r.Type = t
	r.Sock = record.Socket{
		SocketID: record.SocketID{Cookie: 42, LAddr: netip.MustParseAddr(laddr), LPort: lport,
			RAddr: netip.MustParseAddr(raddr), RPort: rport, NetNS: 4026531840},
		PID: 1234, Comm: "curl", Requests: record.Absent,
	}
	return &r
}

func write(t *testing.T, s *Sink, recs ...*record.Record) {
	t.Helper()
	for _, r := range recs {
		if err := s.Write(r); err != nil {
			t.Fatal(err)
		}
	}
}

func newSink(t *testing.T, o Options) *Sink {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keepaliveTimeoutStory is what the tracer writes for a connection whose
// peer vanished, then an idle close, a stale reuse and a loss.
func keepaliveTimeoutStory() []*record.Record {
	var out []*record.Record
	start := &record.Record{}
	start.Reset()
	start.Type, start.Mode, start.Kernel, start.Version = record.TypeStart, "tracepoint", "6.18.0", "v1.2.3"
	out = append(out, start)
	// Probe 2's timer run went unseen.
	for _, i := range []int{1, 3} {
		p := sockRec(record.TypeKeepaliveProbe, "10.0.0.1", 40000, "10.0.0.2", 443)
		p.Probe, p.MaxProbes = i, 3
		if i == 3 {
			p.UnseenProbes = 1
		}
		out = append(out, p)
	}
	to := sockRec(record.TypeKeepaliveTimeout, "10.0.0.1", 40000, "10.0.0.2", 443)
	to.Probes, to.MaxProbes, to.Error = 3, 3, "ETIMEDOUT"
	rst := sockRec(record.TypeReset, "10.0.0.1", 40000, "10.0.0.2", 443)
	rst.Direction, rst.Reason, rst.ReasonSource = record.DirectionSent, "TCP_KEEPALIVE_TIMEOUT", record.SourceKernel
	cl := sockRec(record.TypeClose, "10.0.0.1", 40000, "10.0.0.2", 443)
	cl.Cause = record.CauseKeepaliveTimeout
	out = append(out, to, rst, cl)

	idle := sockRec(record.TypeIdleClose, "10.0.0.3", 8080, "10.0.0.9", 51000)
	idle.Side, idle.IdleMs = record.SideLocal, 75_000
	idleCl := sockRec(record.TypeClose, "10.0.0.3", 8080, "10.0.0.9", 51000)
	idleCl.Cause = record.CauseIdleCloseLocal
	ack := sockRec(record.TypeKeepaliveAck, "10.0.0.3", 8080, "10.0.0.9", 51000)
	ack.Probe = 1
	stale := sockRec(record.TypeClose, "10.0.0.1", 40002, "10.0.0.2", 443)
	stale.Cause, stale.ReuseGapMs = record.CauseStaleReuse, 3
	rstRecv := sockRec(record.TypeReset, "10.0.0.1", 40002, "10.0.0.2", 443)
	rstRecv.Direction = record.DirectionReceived // reason not known
	lost := &record.Record{}
	lost.Reset()
	lost.Type, lost.Count, lost.MissedRuns = record.TypeLost, 17, 2
	end := &record.Record{}
	end.Reset()
	end.Type = record.TypeEnd
	return append(out, idle, idleCl, ack, rstRecv, stale, lost, end)
}

func TestCountsWhatTheStreamShows(t *testing.T) {
	s := newSink(t, Options{})
	write(t, s, keepaliveTimeoutStory()...)

	want := `
# HELP katrace_connection_closes_total Connections whose end katrace reported, by the cause of the end (close.cause).
# TYPE katrace_connection_closes_total counter
katrace_connection_closes_total{cause="close_local"} 0
katrace_connection_closes_total{cause="close_remote"} 0
katrace_connection_closes_total{cause="connect_abandoned"} 0
katrace_connection_closes_total{cause="error"} 0
katrace_connection_closes_total{cause="fin_wait2_timeout"} 0
katrace_connection_closes_total{cause="idle_close_local"} 1
katrace_connection_closes_total{cause="idle_close_remote"} 0
katrace_connection_closes_total{cause="keepalive_timeout"} 1
katrace_connection_closes_total{cause="reset_after_idle"} 0
katrace_connection_closes_total{cause="reset_received"} 0
katrace_connection_closes_total{cause="reset_sent"} 0
katrace_connection_closes_total{cause="retransmit_timeout"} 0
katrace_connection_closes_total{cause="stale_reuse"} 1
# HELP katrace_resets_total Resets sent or received, by direction and reason.
# TYPE katrace_resets_total counter
katrace_resets_total{direction="received",reason="unknown"} 1
katrace_resets_total{direction="sent",reason="TCP_KEEPALIVE_TIMEOUT"} 1
# HELP katrace_keepalive_probes_total Keepalive probes sent and not answered yet (keepalive_probe records).
# TYPE katrace_keepalive_probes_total counter
katrace_keepalive_probes_total 2
# HELP katrace_keepalive_acks_total Keepalive probes answered (keepalive_ack records).
# TYPE katrace_keepalive_acks_total counter
katrace_keepalive_acks_total 1
# HELP katrace_keepalive_timeouts_total Connections killed by the keepalive giving up (keepalive_timeout records).
# TYPE katrace_keepalive_timeouts_total counter
katrace_keepalive_timeouts_total 1
# HELP katrace_idle_closes_total FINs after an idle spell of at least --idle-threshold, by the side that closed.
# TYPE katrace_idle_closes_total counter
katrace_idle_closes_total{side="local"} 1
katrace_idle_closes_total{side="remote"} 0
# HELP katrace_stale_reuses_total Connections that wrote after the peer's FIN and drew a reset (close.cause stale_reuse).
# TYPE katrace_stale_reuses_total counter
katrace_stale_reuses_total 1
# HELP katrace_events_lost_total Kernel events dropped because the ring buffer was full (the sum of lost records).
# TYPE katrace_events_lost_total counter
katrace_events_lost_total 17
# HELP katrace_program_runs_missed_total Kernel program runs skipped because the program was already running on that CPU; their events are missing (the sum of lost records' missed_runs).
# TYPE katrace_program_runs_missed_total counter
katrace_program_runs_missed_total 2
# HELP katrace_keepalive_probes_unseen_total Keepalive probes the kernel counted as sent in timer runs katrace did not see (the sum of keepalive_probe and keepalive_timeout records' unseen_probes).
# TYPE katrace_keepalive_probes_unseen_total counter
katrace_keepalive_probes_unseen_total 1
# HELP katrace_build_info Always 1: katrace's version, the attach strategy in use and the kernel release.
# TYPE katrace_build_info gauge
katrace_build_info{kernel="6.18.0",mode="tracepoint",version="v1.2.3"} 1
`
	names := []string{
		"katrace_connection_closes_total", "katrace_resets_total", "katrace_keepalive_probes_total",
		"katrace_keepalive_acks_total", "katrace_keepalive_timeouts_total", "katrace_idle_closes_total",
		"katrace_stale_reuses_total", "katrace_events_lost_total", "katrace_program_runs_missed_total",
		"katrace_keepalive_probes_unseen_total", "katrace_build_info",
	}
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	for typ, n := range map[string]float64{
		"start": 1, "keepalive_probe": 2, "keepalive_timeout": 1, "reset": 2, "close": 3,
		"idle_close": 1, "keepalive_ack": 1, "lost": 1, "end": 1, "state": 0, "summary": 0,
	} {
		if got := testutil.ToFloat64(s.eventsVec.WithLabelValues(typ)); got != n {
			t.Errorf("katrace_events_total{type=%q} = %v, want %v", typ, got, n)
		}
	}
	if got := testutil.ToFloat64(s.lost); got != 17 {
		t.Errorf("lost = %v", got)
	}
}

func TestIdleHistogram(t *testing.T) {
	s := newSink(t, Options{})
	for _, ms := range []int64{800, 1500, 75_000, 5_400_000, record.Absent} {
		r := sockRec(record.TypeIdleClose, "10.0.0.3", 8080, "10.0.0.9", 51000)
		r.Side, r.IdleMs = record.SideRemote, ms
		write(t, s, r)
	}
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "katrace_idle_close_idle_seconds" {
			continue
		}
		if len(mf.GetMetric()) != 2 {
			t.Fatalf("%d series, want side local and remote", len(mf.GetMetric()))
		}
		if local := mf.GetMetric()[0].GetHistogram(); local.GetSampleCount() != 0 {
			t.Errorf("side=local observed %d", local.GetSampleCount())
		}
		h := mf.GetMetric()[1].GetHistogram()
		if side := mf.GetMetric()[1].GetLabel()[0]; side.GetName() != "side" || side.GetValue() != "remote" {
			t.Errorf("label %v", side)
		}
		// The close whose idle time is unknown is counted, not observed.
		if h.GetSampleCount() != 4 || h.GetSampleSum() != 0.8+1.5+75+5400 {
			t.Errorf("count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
		}
		cum := map[float64]uint64{}
		for _, b := range h.GetBucket() {
			cum[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		if cum[1] != 1 || cum[2] != 2 || cum[120] != 3 || cum[3600] != 3 || cum[7200] != 4 {
			t.Errorf("buckets %v", cum)
		}
		return
	}
	t.Fatal("no katrace_idle_close_idle_seconds")
}

// TestNoIdentityInLabels: whatever the records carry, only the contract's
// labels appear; never a pid, port, address, socket or process name.
func TestNoIdentityInLabels(t *testing.T) {
	s := newSink(t, Options{})
	write(t, s, keepaliveTimeoutStory()...)
	allowed := map[string]bool{"cause": true, "direction": true, "reason": true, "side": true, "type": true, "version": true, "mode": true, "kernel": true, "le": true}
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "katrace_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()] || strings.Contains(l.GetValue(), "10.0.0") || strings.Contains(l.GetValue(), "curl") {
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestEndpointLabel(t *testing.T) {
	s := newSink(t, Options{Labels: []string{"endpoint"}})
	// Outgoing to 10.0.0.2:443 (the remote end is the service), and
	// accepted on 10.0.0.3:8080 (the local end is).
	out := sockRec(record.TypeClose, "10.0.0.1", 40000, "10.0.0.2", 443)
	out.Cause = record.CauseResetReceived
	in := sockRec(record.TypeClose, "10.0.0.3", 8080, "10.0.0.9", 51000)
	in.Cause, in.Sock.ServiceLocal = record.CauseResetReceived, true
	in6 := sockRec(record.TypeKeepaliveTimeout, "fd00::1", 40000, "fd00::2", 443)
	// Where the lower port is not the service, the kernel's word wins: a
	// service on 50000 accepting from a client bound to port 80, and a
	// client on port 1022 (as rsh binds) connecting out to 40001.
	highService := sockRec(record.TypeClose, "10.0.0.4", 50000, "10.0.0.8", 80)
	highService.Cause, highService.Sock.ServiceLocal = record.CauseResetReceived, true
	lowClient := sockRec(record.TypeClose, "10.0.0.4", 1022, "10.0.0.7", 40001)
	lowClient.Cause = record.CauseResetReceived
	write(t, s, out, in, in, in6, highService, lowClient)
	want := `
# HELP katrace_connection_closes_total Connections whose end katrace reported, by the cause of the end (close.cause).
# TYPE katrace_connection_closes_total counter
katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.2:443"} 1
katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.3:8080"} 2
katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.4:50000"} 1
katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.7:40001"} 1
# HELP katrace_keepalive_timeouts_total Connections killed by the keepalive giving up (keepalive_timeout records).
# TYPE katrace_keepalive_timeouts_total counter
katrace_keepalive_timeouts_total{endpoint="[fd00::2]:443"} 1
`
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want), "katrace_connection_closes_total", "katrace_keepalive_timeouts_total"); err != nil {
		t.Error(err)
	}
}

// TestSeriesCapAndForget is the mechanism container, pod and namespace
// labels will use: a cap per label with the rest under "other", and the
// series of a value that went away dropped.
func TestSeriesCapAndForget(t *testing.T) {
	s := newSink(t, Options{Labels: []string{"endpoint"}, MaxSeries: 2})
	closeTo := func(raddr string) *record.Record {
		r := sockRec(record.TypeClose, "10.0.0.1", 40000, raddr, 443)
		r.Cause = record.CauseResetReceived
		return r
	}
	write(t, s, closeTo("10.0.0.2"), closeTo("10.0.0.3"), closeTo("10.0.0.4"), closeTo("10.0.0.5"), closeTo("10.0.0.2"))
	want := func(lines ...string) string {
		return "# HELP katrace_connection_closes_total Connections whose end katrace reported, by the cause of the end (close.cause).\n" +
			"# TYPE katrace_connection_closes_total counter\n" + strings.Join(lines, "\n") + "\n"
	}
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want(
		`katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.2:443"} 2`,
		`katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.3:443"} 1`,
		`katrace_connection_closes_total{cause="reset_received",endpoint="other"} 2`,
	)), "katrace_connection_closes_total"); err != nil {
		t.Fatal(err)
	}

	if !s.Forget("endpoint", "10.0.0.2:443") {
		t.Fatal("Forget refused the endpoint label")
	}
	if s.Forget("container", "abc") {
		t.Error("Forget accepted a label not in use")
	}
	// The freed place goes to the next new endpoint; the forgotten one
	// starts again from zero if it comes back.
	write(t, s, closeTo("10.0.0.5"), closeTo("10.0.0.2"))
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want(
		`katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.3:443"} 1`,
		`katrace_connection_closes_total{cause="reset_received",endpoint="10.0.0.5:443"} 1`,
		`katrace_connection_closes_total{cause="reset_received",endpoint="other"} 3`,
	)), "katrace_connection_closes_total"); err != nil {
		t.Fatal(err)
	}
}

func TestFixedLabelsBounded(t *testing.T) {
	s := newSink(t, Options{})
	for i := 0; i < 300; i++ {
		r := sockRec(record.TypeReset, "10.0.0.1", 40000, "10.0.0.2", 443)
		r.Direction, r.Reason = record.DirectionSent, "REASON_"+strings.Repeat("X", i%200+1)
		write(t, s, r)
	}
	if n := testutil.CollectAndCount(s.resets.counters); n > 129 {
		t.Errorf("%d reset series from 200 reasons, want at most 129", n)
	}
	if got := testutil.ToFloat64(s.resets.counters.WithLabelValues("sent", Other)); got != 200-128 {
		t.Errorf("other = %v, want %d (the 72 reasons beyond the cap)", got, 200-128)
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	for _, labels := range [][]string{nil, {"endpoint"}, {"endpoint", "container", "pod", "namespace"}} {
		s := newSink(t, Options{Labels: labels})
		recs := keepaliveTimeoutStory()[1:] // build_info is set once, at start
		for i, r := range recs {
			if i%2 == 0 {
				r.Sock.Workload = record.Workload{Cgroup: "/kubepods/burstable/pod" + podUID + "/" + ctrA, ContainerID: ctrA, PodUID: podUID}
			}
		}
		write(t, s, recs...)
		if n := testing.AllocsPerRun(100, func() {
			for _, r := range recs {
				s.Write(r)
			}
		}); n != 0 {
			t.Errorf("labels %v: %v allocations per pass, want 0", labels, n)
		}
	}
}

func TestParseLabels(t *testing.T) {
	if got, err := ParseLabels(" endpoint "); err != nil || len(got) != 1 || got[0] != "endpoint" {
		t.Errorf("ParseLabels(endpoint) = %v, %v", got, err)
	}
	if got, err := ParseLabels("endpoint,container,pod,namespace"); err != nil || len(got) != 4 {
		t.Errorf("ParseLabels of all four = %v, %v", got, err)
	}
	if got, err := ParseLabels(""); err != nil || len(got) != 0 {
		t.Errorf("ParseLabels(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"pid", "endpoint,endpoint", "port"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) accepted", bad)
		}
	}
	if _, err := New(Options{MaxSeries: -1}); err == nil {
		t.Error("New accepted a negative cap")
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, labels := range [][]string{nil, {"endpoint"}} {
		b.Run(fmt.Sprintf("labels=%v", labels), func(b *testing.B) {
			s, err := New(Options{Labels: labels})
			if err != nil {
				b.Fatal(err)
			}
			recs := keepaliveTimeoutStory()[1:]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Write(recs[i%len(recs)])
			}
		})
	}
}

const (
	ctrA   = "4c9dc594ddf89160f6d00a686f49bd8ad183796916f9c0ed701df379e2d92dd8"
	ctrB   = "b2a1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1"
	podUID = "0d5b8e1c-3f4a-4b6c-9d2e-7a8b9c0d1e2f"
)

// resetIn is a reset received by a socket of workload w.
func resetIn(w record.Workload) *record.Record {
	r := sockRec(record.TypeReset, "10.0.0.1", 40000, "10.0.0.2", 443)
	r.Direction, r.Sock.Workload = record.DirectionReceived, w
	return r
}

func resetsWant(lines ...string) string {
	return "# HELP katrace_resets_total Resets sent or received, by direction and reason.\n" +
		"# TYPE katrace_resets_total counter\n" + strings.Join(lines, "\n") + "\n"
}

// Container, pod and namespace labels: names from the kubelet when known,
// else the short container id and the pod uid; "" for host processes,
// which takes no place under the cap; the rest beyond it under "other".
func TestWorkloadLabels(t *testing.T) {
	s := newSink(t, Options{Labels: []string{"container", "pod", "namespace"}, MaxSeries: 2})
	named := record.Workload{Cgroup: "/kubepods/pod" + podUID + "/" + ctrA, ContainerID: ctrA, PodUID: podUID,
		Pod: "web-0", Namespace: "shop", Container: "nginx"}
	podman := record.Workload{Cgroup: "/libpod_parent/libpod-" + ctrB, ContainerID: ctrB}
	third := record.Workload{Cgroup: "/docker/" + ctrB[1:] + "0", ContainerID: ctrB[1:] + "0"}
	write(t, s, resetIn(named), resetIn(podman), resetIn(record.Workload{Cgroup: "/user.slice"}), resetIn(third), resetIn(named))
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(resetsWant(
		`katrace_resets_total{container="",direction="received",namespace="",pod="",reason="unknown"} 1`,
		`katrace_resets_total{container="b2a1e2f3a4b5",direction="received",namespace="",pod="",reason="unknown"} 1`,
		`katrace_resets_total{container="nginx",direction="received",namespace="shop",pod="web-0",reason="unknown"} 2`,
		`katrace_resets_total{container="other",direction="received",namespace="",pod="",reason="unknown"} 1`,
	)), "katrace_resets_total"); err != nil {
		t.Error(err)
	}
}

// The series of a container go once its cgroup is gone; a pod's once all
// the cgroups it was seen in are; a value seen again starts from zero.
func TestForgetGone(t *testing.T) {
	s := newSink(t, Options{Labels: []string{"container", "pod"}})
	podDir := "/kubepods/burstable/pod" + podUID
	a := record.Workload{Cgroup: podDir + "/" + ctrA, ContainerID: ctrA, PodUID: podUID}
	b := record.Workload{Cgroup: podDir + "/" + ctrB, ContainerID: ctrB, PodUID: podUID}
	write(t, s, resetIn(a), resetIn(b), resetIn(record.Workload{Cgroup: "/"}))
	alive := map[string]bool{a.Cgroup: true, b.Cgroup: true, "/": true}
	exists := func(cg string) bool { return alive[cg] }
	if n := s.ForgetGone(exists); n != 0 {
		t.Errorf("ForgetGone with every cgroup alive forgot %d", n)
	}

	alive[a.Cgroup] = false
	if n := s.ForgetGone(exists); n != 1 {
		t.Errorf("container A gone: %d values forgotten, want 1 (its container; the pod lives on in B)", n)
	}
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(resetsWant(
		`katrace_resets_total{container="",direction="received",pod="",reason="unknown"} 1`,
		`katrace_resets_total{container="b2a1e2f3a4b5",direction="received",pod="`+podUID+`",reason="unknown"} 1`,
	)), "katrace_resets_total"); err != nil {
		t.Error(err)
	}

	alive[b.Cgroup] = false
	if n := s.ForgetGone(exists); n != 2 {
		t.Errorf("container B gone: %d values forgotten, want 2 (B and the pod)", n)
	}
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(resetsWant(
		`katrace_resets_total{container="",direction="received",pod="",reason="unknown"} 1`,
	)), "katrace_resets_total"); err != nil {
		t.Error(err)
	}
	if len(s.limiters[0].admitted) != 0 || len(s.limiters[1].cgroups) != 0 {
		t.Errorf("forgotten values keep their places: %v %v", s.limiters[0].admitted, s.limiters[1].cgroups)
	}

	// A late record of a socket that outlived its cgroup counts again.
	write(t, s, resetIn(b))
	if got := testutil.ToFloat64(s.resets.counters.WithLabelValues("received", "unknown", "b2a1e2f3a4b5", podUID)); got != 1 {
		t.Errorf("container B after it was forgotten: %v, want 1", got)
	}
}
