package tracer

import (
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

// The cgroup id in the kernel's events becomes the records' workload
// fields; a timewait event (no cgroup) keeps what was seen before, and the
// summary names the container serving an endpoint (issue 12).
func TestCorrelatorWorkload(t *testing.T) {
	server := record.Workload{Cgroup: "/libpod_parent/libpod-aa", ContainerID: "aa"}
	cfg := defaults
	cfg.Workload = func(id uint64) *record.Workload {
		if id == 42 {
			return &server
		}
		return nil
	}
	s := sock{cookie: 9, start: 1e12, pid: 10, comm: "nginx"}
	fin := s.ev(evIdleFin, 2000, 4)
	fin.Role, fin.FinSide, fin.FinIdleMs, fin.Sport, fin.Dport = rolePassive, finLocal, 2000, 80, 41000
	fin.CgroupId = 42
	tw := s.ev(evResetReceived, 2100, 6)
	tw.Flags |= flagTimewait
	tw.Sport, tw.Dport = 80, 41000
	other := sock{cookie: 10, start: 1e12}.ev(evResetReceived, 100, 1)
	other.CgroupId = 7 // a cgroup the resolver does not know

	sink := &memSink{}
	c := NewCorrelator(cfg, sink)
	for _, e := range []katraceEvent{fin, tw, other} {
		if err := c.Handle(&e); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SettlePendingCloses(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteSummary(time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	var sawIdle, sawTW, sawOther, sawSummary bool
	for _, r := range sink.recs {
		switch {
		case r.Type == record.TypeIdleClose:
			sawIdle = true
			if r.Sock.Workload != server {
				t.Errorf("idle close: workload %+v", r.Sock.Workload)
			}
		case r.Type == record.TypeReset && r.Sock.Cookie == 9:
			sawTW = true
			if r.Sock.Workload != server {
				t.Errorf("timewait reset lost the socket's workload: %+v", r.Sock.Workload)
			}
		case r.Type == record.TypeReset && r.Sock.Cookie == 10:
			sawOther = true
			if r.Sock.Workload.Known() || r.Sock.Workload.Cgroup != "" {
				t.Errorf("unknown cgroup named a workload: %+v", r.Sock.Workload)
			}
		case r.Type == record.TypeSummary:
			sawSummary = true
			if r.EndpointWorkload != server {
				t.Errorf("summary of %s: endpoint workload %+v", r.Endpoint, r.EndpointWorkload)
			}
		}
	}
	if !sawIdle || !sawTW || !sawOther || !sawSummary {
		t.Fatalf("records missing (idle %v, timewait %v, other %v, summary %v): %v", sawIdle, sawTW, sawOther, sawSummary, sink.types())
	}
}
