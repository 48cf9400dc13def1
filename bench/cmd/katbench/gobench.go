package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// goBench is one benchmark's metrics by unit (ns/op, allocs/op, B/socket...).
type goBench map[string]float64

// runGoBenchCmd runs go test benchmarks in pkg and parses their metrics.
func runGoBenchCmd(pkg, pattern string) (map[string]goBench, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", pattern, "-benchmem", "-benchtime", "1s", "-count", "1", pkg)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test %s: %v\n%s", pkg, err, out)
	}
	res := map[string]goBench{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		m := goBench{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		res[strings.TrimPrefix(name, "Benchmark")] = m
	}
	return res, nil
}

func runGoBench(t *table) {
	tr, err := runGoBenchCmd("./tracer", "Pipeline|CorrelatorMemory")
	if err != nil {
		t.add("userspace pipeline", "≥ 1M events/s", err.Error(), ptr(false))
		return
	}
	if m, ok := tr["PipelineDecode"]; ok {
		t.add("decode (go test -bench PipelineDecode)", "no allocation per event",
			fmt.Sprintf("%.1f ns/event, %.0f allocs/event", m["ns/op"], m["allocs/op"]), ptr(m["allocs/op"] == 0))
	}
	if m, ok := tr["PipelineCorrelate"]; ok {
		t.add("decode → correlate (--all --states)", "-",
			fmt.Sprintf("%.0f ns/event, %.0f allocs/event", m["ns/op"], m["allocs/op"]), nil)
	}
	for _, c := range []struct{ name, what string }{
		{"PipelineAllStatesJSON", "decode → correlate → NDJSON, --all --states"},
		{"PipelineAllJSON", "decode → correlate → NDJSON, --all (closes)"},
	} {
		m, ok := tr[c.name]
		if !ok {
			continue
		}
		eps := 1e9 / m["ns/op"]
		t.add(c.what, "≥ 1M events/s, one core",
			fmt.Sprintf("%.2fM events/s (%.0f ns/event, %.0f allocs/event)", eps/1e6, m["ns/op"], m["allocs/op"]), ptr(eps >= 1e6))
	}
	if m, ok := tr["CorrelatorMemory"]; ok {
		t.add("correlator Go heap per tracked socket (benchmark)", "≤ 300 B/socket",
			fmt.Sprintf("%.0f B/socket", m["B/socket"]), ptr(m["B/socket"] <= 300))
	}
	if out, err := runGoBenchCmd("./output", "JSONWrite"); err == nil {
		if m, ok := out["JSONWrite"]; ok {
			t.add("NDJSON encode alone (close record)", "-",
				fmt.Sprintf("%.0f ns/record, %.0f allocs/record", m["ns/op"], m["allocs/op"]), nil)
		}
	}
}
