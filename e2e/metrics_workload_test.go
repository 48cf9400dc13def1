package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/metrics"
	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/tracer"
)

// bothSinks writes each record to the trace's printers and to the metrics.
type bothSinks struct{ a, b record.Sink }

func (s bothSinks) Write(r *record.Record) error {
	if err := s.a.Write(r); err != nil {
		return err
	}
	return s.b.Write(r)
}

func (s bothSinks) Flush() error {
	if err := s.a.Flush(); err != nil {
		return err
	}
	return s.b.Flush()
}

// resetSeries maps each katrace_resets_total series' container label to
// its value.
func resetSeries(t *testing.T, m *metrics.Sink) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "katrace_resets_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "container" {
					out[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestMetricsContainerLabelGoesWithItsCgroup: --metrics-labels container
// counts a podman-shaped container's reset under its short id (the cgroup
// read from the socket in the kernel), the host's under container="", and
// once the container's process is gone and its cgroup removed, the sweep
// drops its series and keeps the host's.
func TestMetricsContainerLabelGoesWithItsCgroup(t *testing.T) {
	requirePrivileges(t)
	m := cgroup2(t)
	id := randomHex(t, 64)
	parent := makeCgroup(t, m, "/katrace-e2e-metrics")
	dir := filepath.Join(parent, "libpod-"+id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) }) // before makeCgroup's removal of the parent

	sink, err := metrics.New(metrics.Options{Labels: []string{"container"}})
	if err != nil {
		t.Fatal(err)
	}
	r := container.NewResolver(m, nil)
	r.Walk()
	s := startTraceWith(t, tracer.Config{Workload: r.Workload}, func(printers record.Sink) record.Sink {
		return bothSinks{printers, sink}
	})

	p := newPair(t)
	srv := startServer(t, p, p.serverAddr, "18410", "hold")
	cli := startHelperInCgroup(t, p.client, dir, "client", p.serverAddr, "18410")
	lp := atoi(t, cli.expect("connected", startTimeout))
	cli.send("wait")
	srv.send("abortall 1")
	srv.expect("abortall 1", startTimeout)
	cli.expect("error", startTimeout)
	s.waitFor("the container's reset", 1, eventTimeout,
		and(typeIs("reset"), inNetns(p.clientIno), lport(lp), func(r rec) bool { return r.str("container_id") == id }))
	s.waitFor("the host server's reset", 1, eventTimeout, and(typeIs("reset"), inNetns(p.serverIno), rport(lp)))

	short := id[:12]
	got := resetSeries(t, sink)
	if got[short] != 1 || got[""] < 1 {
		t.Fatalf("resets by container %v: want 1 under %s and the server's under \"\"", got, short)
	}

	// The container ends: its process exits, the runtime removes its cgroup.
	cli.send("exit")
	if err := cli.cmd.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for os.Remove(dir) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the container's cgroup %s stays busy", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := sink.ForgetGone(m.Exists); n != 1 {
		t.Errorf("ForgetGone forgot %d values, want the container's", n)
	}
	got = resetSeries(t, sink)
	if _, ok := got[short]; ok || got[""] < 1 {
		t.Errorf("after the container went away: %v; want its series gone, the host's kept", got)
	}
}
