package main

import (
	"fmt"
	"sort"
	"time"
)

// runStartup times katrace from exec to its start record (every program
// attached), a few times, and reports the median and the worst.
func runStartup(t *table, o options) {
	for _, args := range [][]string{nil, {"--attach", "tracepoint"}} {
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			p, err := startKatrace(o.katrace, args...)
			if err != nil {
				logf("start-up: %v", err)
				continue
			}
			ds = append(ds, p.ready)
			p.stop()
		}
		if len(ds) == 0 {
			t.add("start-up", "≤ 300 ms", "katrace did not start", ptr(false))
			continue
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		med, worst := ds[len(ds)/2], ds[len(ds)-1]
		what := "start-up (exec → start record), --attach auto"
		if args != nil {
			what = "start-up, --attach tracepoint"
		}
		t.add(what, "≤ 300 ms", fmt.Sprintf("%v median, %v worst of %d", med.Round(time.Millisecond), worst.Round(time.Millisecond), len(ds)), ptr(med <= 300*time.Millisecond))
	}
}
