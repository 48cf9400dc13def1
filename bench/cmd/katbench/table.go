package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
)

// row is one line of the results table.
type row struct {
	what, target, got, verdict string
}

type table struct{ rows []row }

// add records a row; verdict is "met", "MISSED" or "-" (information only).
func (t *table) add(what, target, got string, met *bool) {
	v := "-"
	if met != nil {
		v = "met"
		if !*met {
			v = "MISSED"
		}
	}
	t.rows = append(t.rows, row{what, target, got, v})
	logf("%s: %s (target %s) %s", what, got, target, v)
}

func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| measure\t| target\t| measured\t| verdict\t|")
	fmt.Fprintln(tw, "| ---\t| ---\t| ---\t| ---\t|")
	for _, r := range t.rows {
		fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", r.what, r.target, r.got, r.verdict)
	}
	tw.Flush()
}

func ptr(b bool) *bool { return &b }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func minMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// describeMachine: CPU, cores, memory, kernel, load.
func describeMachine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%s, %d CPUs, %s RAM, kernel %s, load %s", model, runtime.NumCPU(), mem,
		strings.TrimSpace(string(kernel)), strings.Join(strings.Fields(string(load))[:3], " "))
}
