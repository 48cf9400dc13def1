// Command katbench is katrace's end-to-end benchmark (make bench). It runs
// the Go pipeline benchmarks, the loopback churn in alternating
// [untraced, traced] pairs for katrace's default view, for --all --states
// and for bpftrace printing the same events, the kernel programs' cost per
// event from bpf_stats, katrace's memory with many open connections, its
// start-up time and its loss, and prints one table against the targets of
// issue 6. It needs root; it asserts nothing and exits 0 when every row
// could be measured, whether or not the targets are met.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

type options struct {
	katrace   string
	churn     string
	idleconns string
	pairs     int
	dur       time.Duration
	clients   int
	conns     int
	goBench   bool
	bpftrace  string
	only      string
	guard     bool
}

func main() {
	var o options
	flag.StringVar(&o.katrace, "katrace", "bin/katrace", "the katrace binary (make build)")
	flag.StringVar(&o.churn, "churn", "bin/churn", "the churn load generator (go build ./bench/cmd/churn)")
	flag.StringVar(&o.idleconns, "idleconns", "bin/idleconns", "the idle connection holder (go build ./bench/cmd/idleconns)")
	flag.IntVar(&o.pairs, "pairs", 5, "alternating [untraced, traced] pairs per configuration")
	flag.DurationVar(&o.dur, "duration", 3*time.Second, "measured churn time per run")
	flag.IntVar(&o.clients, "clients", 4, "churn client goroutines")
	flag.IntVar(&o.conns, "conns", 25000, "idle connections for the memory measurement (two sockets each)")
	flag.BoolVar(&o.goBench, "go-bench", true, "run the Go pipeline benchmarks")
	flag.StringVar(&o.bpftrace, "bpftrace", "bpftrace", "bpftrace to compare against (skipped when not found)")
	flag.StringVar(&o.only, "only", "", "run only these parts, comma-separated: go,startup,churn,kernel,loss,memory,primitives")
	floorServe := flag.String("floor-serve", "", "internal: attach empty programs at the default's attach points, write \"Attaching\" to `FILE`, wait for SIGINT")
	flag.BoolVar(&o.guard, "guard", false, "the CI guard: a fixed churn with the default programs, each program's bpf_stats ns/run net of an empty program at its attach point; exit 1 when one costs more than twice its target")
	flag.Parse()
	if *floorServe != "" {
		if err := serveFloor(*floorServe); err != nil {
			fmt.Fprintln(os.Stderr, "katbench:", err)
			os.Exit(1)
		}
		return
	}

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "katbench: needs root (it loads katrace's BPF programs and reads bpf_stats)")
		os.Exit(2)
	}
	for _, p := range []*string{&o.katrace, &o.churn, &o.idleconns} {
		abs, err := filepath.Abs(*p)
		if err == nil {
			*p = abs
		}
		if _, err := os.Stat(*p); err != nil {
			fmt.Fprintf(os.Stderr, "katbench: %v (make bench builds it)\n", err)
			os.Exit(2)
		}
	}
	if o.guard {
		os.Exit(runGuard(o))
	}
	t := &table{}
	started := time.Now()
	logf("machine: %s", describeMachine())
	want := parts(o.only)
	if want["go"] {
		runGoBench(t)
	}
	if want["startup"] {
		runStartup(t, o)
	}
	if want["churn"] {
		runChurnPairs(t, o)
	}
	if want["kernel"] {
		runKernelCost(t, o)
	}
	if want["loss"] {
		runLoss(t, o)
	}
	if want["memory"] {
		runMemory(t, o)
	}
	if want["primitives"] {
		runPrimitives(t, o)
	}
	fmt.Println()
	fmt.Printf("katrace benchmark, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: %s\n", describeMachine())
	fmt.Printf("method: %d alternating [untraced, traced] pairs of %v per configuration, %d churn clients; ratios are medians of per-pair ratios\n\n", o.pairs, o.dur, o.clients)
	t.print(os.Stdout)
	fmt.Printf("\n(whole run: %v)\n", time.Since(started).Round(time.Second))
}

func parts(only string) map[string]bool {
	all := []string{"go", "startup", "churn", "kernel", "loss", "memory", "primitives"}
	m := map[string]bool{}
	if only == "" {
		for _, p := range all {
			m[p] = true
		}
		return m
	}
	for _, p := range splitComma(only) {
		m[p] = true
	}
	return m
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "katbench: "+format+"\n", args...)
}
