package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// guardTargets are the kernel cost targets (ns per run, net of an empty
// program at the same attach point) of katrace's default programs that
// the CI guard holds: it fails when one costs more than twice its target.
var guardTargets = map[string]float64{
	"tp_inet_sock_set_state": stateTargetDefault,
	// The owner tracepoints run on every read and write of the host.
	"tp_sock_recv_length": 20,
	"tp_sock_send_length": 20,
	// Every timer_list timer of the host passes here.
	"tp_timer_expire_entry": 20,
	"tp_timer_expire_exit":  20,
}

// guardRounds short churns are measured; each program is judged on its
// cheapest round, so that a neighbour's burst on a shared CI machine does
// not fail the build while a slower program still does.
const (
	guardRounds   = 3
	guardDuration = 1500 * time.Millisecond
	guardMinRuns  = 1000
	// The delayed-ACK timer load of the last round.
	guardTimerDuration = 3 * time.Second
)

// runGuard is katbench -guard (make perfguard): the exit code.
func runGuard(o options) int {
	o.dur = guardDuration
	o.clients = 2
	points, err := defaultPoints()
	if err != nil {
		fmt.Fprintln(os.Stderr, "perfguard: the default's attach points:", err)
		return 1
	}
	best := map[string]float64{}
	runs := map[string]uint64{}
	churn := func() error { _, err := runChurn(o); return err }
	// Timers: the churn runs few; delayed-ACK timers (timer_list timers
	// that are not keepalive timers) run many, once each connection's
	// first quick ACKs are behind it (about 0.7 s).
	timers := func() error { return delackTimers(3000, guardTimerDuration) }
	err = withStats(func() {
		for r := 0; r < guardRounds; r++ {
			for _, ph := range []struct {
				load func() error
				// the programs this load judges
				judges func(prog string) bool
			}{
				{churn, func(p string) bool { return !strings.HasPrefix(p, "tp_timer_") }},
				{timers, func(p string) bool { return strings.HasPrefix(p, "tp_timer_") }},
			} {
				res := measurePrograms(o, points, nil, ph.load, "guard")
				for prog := range guardTargets {
					c, f := res[prog], res["floor:"+prog]
					if !ph.judges(prog) || c.runs < guardMinRuns || f.runs == 0 {
						continue
					}
					net := c.perRun() - f.perRun()
					if b, ok := best[prog]; !ok || net < b {
						best[prog] = net
					}
					runs[prog] += c.runs
				}
			}
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "perfguard: cannot enable kernel.bpf_stats_enabled:", err)
		return 1
	}
	var names []string
	for n := range guardTargets {
		names = append(names, n)
	}
	sort.Strings(names)
	failed := false
	fmt.Printf("perfguard: %d rounds of %v churn (%d clients; state change and owner programs) and %v of delayed-ACK timers (timer programs); ns/run net of an empty program at the same attach point, cheapest round\n", guardRounds, guardDuration, o.clients, guardTimerDuration)
	for _, n := range names {
		target := guardTargets[n]
		net, ok := best[n]
		switch {
		case !ok && n == "tp_inet_sock_set_state":
			fmt.Printf("  %-24s not measured (fewer than %d runs)  FAIL\n", n, guardMinRuns)
			failed = true
		case !ok:
			fmt.Printf("  %-24s not measured (fewer than %d runs)  skipped\n", n, guardMinRuns)
		case net > 2*target:
			fmt.Printf("  %-24s %6.0f ns net (%d runs)  target %.0f ns, limit %.0f ns  FAIL\n", n, math.Round(net), runs[n], target, 2*target)
			failed = true
		default:
			fmt.Printf("  %-24s %6.0f ns net (%d runs)  target %.0f ns, limit %.0f ns  ok\n", n, math.Round(net), runs[n], target, 2*target)
		}
	}
	if failed {
		fmt.Println("perfguard: FAILED: a kernel program costs more than twice its target (docs/PERFORMANCE.md)")
		return 1
	}
	fmt.Println("perfguard: ok")
	return 0
}
