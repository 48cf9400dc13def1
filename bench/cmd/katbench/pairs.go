package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// bpftrace programs: printing one line per TCP state change (the events
// katrace --all --states prints), and only counting them in the kernel.
const (
	bpftracePrint = `tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
	printf("%lld %d %s %s:%d > %s:%d %d -> %d\n", nsecs, pid, comm,
		ntop(args->saddr), args->sport, ntop(args->daddr), args->dport,
		args->oldstate, args->newstate);
}`
	bpftraceCount = `tracepoint:sock:inet_sock_set_state /args->protocol == 6/ { @states = count(); }`
)

// tracerConfig is one traced configuration of the churn comparison.
type tracerConfig struct {
	name  string
	start func() (*tracerProc, error)
	// katrace: its end record says events and loss.
	katrace bool
}

type pairStats struct {
	ratios           []float64
	untraced, traced []float64
	events, lost     uint64
	conns            uint64
	failed           int
}

func runChurnPairs(t *table, o options) {
	configs := []tracerConfig{
		{name: "katrace trace -o json", katrace: true, start: func() (*tracerProc, error) { return startKatrace(o.katrace) }},
		{name: "katrace trace --all --states -o json", katrace: true, start: func() (*tracerProc, error) {
			return startKatrace(o.katrace, "--all", "--states")
		}},
	}
	bt, btErr := lookBpftrace(o)
	if btErr == nil {
		configs = append(configs,
			tracerConfig{name: "bpftrace printing every state change", start: func() (*tracerProc, error) { return startBpftrace(bt, bpftracePrint) }},
			tracerConfig{name: "bpftrace counting state changes in the kernel", start: func() (*tracerProc, error) { return startBpftrace(bt, bpftraceCount) }},
		)
	}
	// The floor: empty programs at every attach point the default uses,
	// what attaching there costs before katrace does anything.
	floorIdx := len(configs)
	configs = append(configs, tracerConfig{name: "floor: empty programs at the default's attach points", start: startFloor})
	// Protocol labels (off by default): their own cost is this row's
	// distance from the default's.
	protoIdx := len(configs)
	configs = append(configs, tracerConfig{name: "katrace trace --proto -o json", katrace: true, start: func() (*tracerProc, error) {
		return startKatrace(o.katrace, "--proto")
	}})
	stats := make([]pairStats, len(configs))
	// Rounds interleave the configurations; within a pair the order
	// alternates, so drift and the neighbours' load hit both sides alike.
	for round := 0; round < o.pairs; round++ {
		for ci, c := range configs {
			s := &stats[ci]
			var base, traced churnResult
			var err error
			if round%2 == 0 {
				if base, err = runChurn(o); err == nil {
					traced, err = tracedRun(o, c, s)
				}
			} else {
				if traced, err = tracedRun(o, c, s); err == nil {
					base, err = runChurn(o)
				}
			}
			if err != nil {
				logf("%s, pair %d: %v", c.name, round+1, err)
				s.failed++
				continue
			}
			s.untraced = append(s.untraced, base.PerSec)
			s.traced = append(s.traced, traced.PerSec)
			s.ratios = append(s.ratios, traced.PerSec/base.PerSec)
			logf("%s, pair %d: untraced %.0f/s, traced %.0f/s, kept %.3f", c.name, round+1, base.PerSec, traced.PerSec, traced.PerSec/base.PerSec)
		}
	}
	describe := func(s *pairStats) string {
		lo, hi := minMax(s.ratios)
		return fmt.Sprintf("%.3f (range %.3f-%.3f; %.0f → %.0f conn/s median)", median(s.ratios), lo, hi, median(s.untraced), median(s.traced))
	}
	var btCount, floor float64
	if len(configs) > 3 && len(stats[3].ratios) > 0 {
		btCount = median(stats[3].ratios)
	}
	if s := &stats[floorIdx]; len(s.ratios) > 0 {
		floor = median(s.ratios)
	}
	if len(stats[0].ratios) > 0 {
		m := median(stats[0].ratios)
		target := "≥ 0.97 and > bpftrace counting"
		ok := m >= 0.97 && (btErr != nil || m > btCount)
		if btErr != nil {
			target = "≥ 0.97 (bpftrace not installed)"
		}
		t.add("churn kept, default", target, describe(&stats[0]), ptr(ok))
	}
	if s := &stats[floorIdx]; len(s.ratios) > 0 {
		t.add("churn kept, floor (empty programs at the default's attach points)", "(reference)", describe(s), nil)
		if len(stats[0].ratios) > 0 {
			gap := floor - median(stats[0].ratios)
			// Within the noise the default can measure above its floor.
			where := fmt.Sprintf("%.3f below the floor", gap)
			if gap < 0 {
				where = fmt.Sprintf("%.3f above the floor (within the noise)", -gap)
			}
			t.add("churn kept, default vs floor", "within 0.02", where, ptr(gap <= 0.02))
		}
	}
	if s := &stats[1]; len(s.ratios) > 0 {
		t.add("churn kept, --all --states", "≥ 0.85", describe(s), ptr(median(s.ratios) >= 0.85))
	}
	if s := &stats[protoIdx]; len(s.ratios) > 0 && len(stats[0].ratios) > 0 {
		t.add("churn kept, --proto (labels on)", "(labels' cost: the default's kept minus this)",
			fmt.Sprintf("%s; labels cost %.3f", describe(s), median(stats[0].ratios)-median(s.ratios)), nil)
	}
	if len(configs) > 3 {
		for i, name := range []string{"churn kept, bpftrace printing", "churn kept, bpftrace counting"} {
			if s := &stats[2+i]; len(s.ratios) > 0 {
				t.add(name, "(reference)", describe(s), nil)
			}
		}
	} else {
		t.add("churn kept, bpftrace", "(reference)", "bpftrace not installed: "+btErr.Error(), nil)
	}
	for i := 0; i < 2; i++ {
		s := &stats[i]
		if s.conns == 0 {
			continue
		}
		t.add("loss at full churn, "+[]string{"default", "--all --states"}[i], "0",
			fmt.Sprintf("%d lost of %d events (%.1f events/conn, default 4 MiB ring)", s.lost, s.events+s.lost,
				float64(s.events+s.lost)/float64(s.conns)), ptr(s.lost == 0))
	}
}

// tracedRun starts the tracer, churns, and stops the tracer.
func tracedRun(o options, c tracerConfig, s *pairStats) (churnResult, error) {
	p, err := c.start()
	if err != nil {
		return churnResult{}, err
	}
	r, err := runChurn(o)
	if err != nil {
		p.kill()
		return r, err
	}
	// Let the tracer catch up before stopping it, off the clock.
	time.Sleep(100 * time.Millisecond)
	end, _, err := p.stop()
	if err != nil {
		return r, err
	}
	if c.katrace {
		if end.Type != "end" {
			return r, fmt.Errorf("no end record: %s", p.stderr.String())
		}
		s.events += end.Events
		s.lost += end.Lost
		s.conns += r.Total
	}
	return r, nil
}

// lookBpftrace finds bpftrace and makes sure tracefs is mounted, which its
// tracepoint probes need (DESIGN.md: it is not mounted at boot here).
func lookBpftrace(o options) (string, error) {
	bt, err := exec.LookPath(o.bpftrace)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		if err := syscall.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			return "", fmt.Errorf("bpftrace needs tracefs: mounting it on /sys/kernel/tracing: %w", err)
		}
		logf("mounted tracefs on /sys/kernel/tracing for bpftrace")
	}
	return bt, nil
}
