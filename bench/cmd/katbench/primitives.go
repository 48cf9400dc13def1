package main

import (
	"fmt"
	"math"

	"github.com/katrace/katrace/bench/primitives"
)

// primitiveRounds: each primitive is measured this many times, alternating
// with the others, and judged on its median.
const primitiveRounds = 5

// runPrimitives is the primitives part: what a ring sample, a clock read,
// a helper or a cold line cost on this machine, each alone on the state
// change tracepoint under the churn, ns per run net of an empty program
// there. katrace's own rows read against them.
func runPrimitives(t *table, o options) {
	churn := o
	churn.dur = o.dur / 2
	load := func() error { _, err := runChurn(churn); return err }
	var prims []primitives.Primitive
	err := withStats(func() {
		var err error
		prims, err = primitives.Measure(load, primitiveRounds)
		if err != nil {
			logf("primitives: %v", err)
		}
	})
	if err != nil {
		logf("primitives: cannot enable kernel.bpf_stats_enabled: %v", err)
		return
	}
	for _, p := range prims {
		t.add("kernel primitive: "+p.What, "-",
			fmt.Sprintf("%.0f ns net (median of %d rounds, %d runs)", math.Round(p.NsPerRun), primitiveRounds, p.Runs), nil)
	}
}
