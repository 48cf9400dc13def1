// Command soak runs katrace for a long time under loopback connection churn
// and samples its memory, open files, records and losses over time (make
// soak). It prints a table and, with -doc, writes it into a section of
// docs/PERFORMANCE.md, replacing that section's earlier run.
//
// katrace's NDJSON goes to a pipe that soak reads and counts, so an hour of
// --all records (gigabytes) never touches the disk; a reader that keeps up
// is what an always-on agent's log shipper is expected to be.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/katrace/katrace/bench/churn"
)

func main() {
	katrace := flag.String("katrace", "bin/katrace", "the katrace binary")
	dur := flag.Duration("duration", time.Hour, "how long to churn")
	interval := flag.Duration("interval", 0, "time between samples (default: duration/12, at least 10s)")
	clients := flag.Int("clients", 2, "churn client goroutines")
	traceArgs := flag.String("trace-args", "--all", "extra katrace trace flags, space-separated (--all: every close is a record)")
	doc := flag.String("doc", "", "markdown file whose \"## Soak\" section gets this run (created or replaced)")
	flag.Parse()
	if *interval == 0 {
		*interval = max(*dur/12, 10*time.Second)
	}
	if *dur < *interval {
		fmt.Fprintf(os.Stderr, "soak: -duration %v is shorter than -interval %v\n", *dur, *interval)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := soakRun{katrace: *katrace, dur: *dur, interval: *interval, clients: *clients, traceArgs: strings.Fields(*traceArgs)}
	report, err := run.do(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Print(report)
	if *doc != "" {
		if err := replaceSection(*doc, "## Soak", report); err != nil {
			fmt.Fprintln(os.Stderr, "soak: updating", *doc+":", err)
			os.Exit(1)
		}
		fmt.Println("written to", *doc)
	}
}

type soakRun struct {
	katrace   string
	dur       time.Duration
	interval  time.Duration
	clients   int
	traceArgs []string
}

// sample is katrace's state at one point of the run.
type sample struct {
	elapsed  time.Duration
	connsSec float64 // churn rate over the interval before
	rssKB    int64
	fds      int
	records  uint64
	lost     uint64
}

// stream counts what katrace writes.
type stream struct {
	records atomic.Uint64
	lost    atomic.Uint64 // sum of the lost records' counts
	end     atomic.Pointer[endRecord]
}

type endRecord struct {
	Events uint64 `json:"events"`
	Lost   uint64 `json:"lost"`
}

var (
	typeLost = []byte(`"type":"lost"`)
	typeEnd  = []byte(`"type":"end"`)
)

// read counts records until katrace closes the pipe; only the rare lost and
// end records are decoded.
func (s *stream) read(r io.Reader, started chan<- struct{}) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		s.records.Add(1)
		if first {
			close(started)
			first = false
		}
		switch {
		case bytes.Contains(line, typeLost):
			var l struct {
				Count uint64 `json:"count"`
			}
			if err := json.Unmarshal(line, &l); err != nil {
				return fmt.Errorf("decoding a lost record: %w", err)
			}
			s.lost.Add(l.Count)
		case bytes.Contains(line, typeEnd):
			var e endRecord
			if err := json.Unmarshal(line, &e); err != nil {
				return fmt.Errorf("decoding the end record: %w", err)
			}
			s.end.Store(&e)
		}
	}
	return sc.Err()
}

func (r soakRun) do(ctx context.Context) (string, error) {
	args := append([]string{"trace", "-o", "json"}, r.traceArgs...)
	cmd := exec.Command(r.katrace, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting katrace: %w", err)
	}
	pid := cmd.Process.Pid
	var s stream
	started := make(chan struct{})
	readErr := make(chan error, 1)
	go func() { readErr <- s.read(out, started) }()
	stopKatrace := func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		err := <-readErr
		if werr := cmd.Wait(); werr != nil {
			return fmt.Errorf("katrace: %v: %s", werr, strings.TrimSpace(stderr.String()))
		}
		return err
	}
	select {
	case <-started:
	case err := <-readErr:
		_ = cmd.Wait()
		return "", fmt.Errorf("katrace stopped before its start record (%v): %s", err, strings.TrimSpace(stderr.String()))
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", errors.New("no start record from katrace within 30s")
	}

	load := loadAvg()
	began := time.Now()
	samples := []sample{r.sample(pid, &s, 0, 0)}
	var conns, churnErrs uint64
	for time.Since(began) < r.dur {
		chunk := min(r.interval, r.dur-time.Since(began))
		res, err := churn.Run(ctx, churn.Config{Clients: r.clients, Duration: chunk})
		if err != nil {
			_ = stopKatrace()
			return "", fmt.Errorf("churn: %w", err)
		}
		conns += res.Total
		churnErrs += res.Errors
		samples = append(samples, r.sample(pid, &s, time.Since(began), res.PerSec))
	}
	if err := stopKatrace(); err != nil {
		return "", err
	}
	end := s.end.Load()
	if end == nil {
		return "", errors.New("katrace stopped without its end record")
	}
	return r.report(samples, end, &s, conns, churnErrs, load), nil
}

func (r soakRun) sample(pid int, s *stream, elapsed time.Duration, rate float64) sample {
	rss, _ := vmRSSKB(pid)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return sample{elapsed: elapsed, connsSec: rate, rssKB: rss, fds: len(fds), records: s.records.Load(), lost: s.lost.Load()}
}

func (r soakRun) report(samples []sample, end *endRecord, s *stream, conns, churnErrs uint64, load string) string {
	var b strings.Builder
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "## Soak (`make soak`)\n\n")
	fmt.Fprintf(&b, "%s: `katrace trace -o json %s` for %v under loopback churn (%d clients, bench/churn), its NDJSON read from a pipe; kernel %s, %d CPUs, load average at the start %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.Join(r.traceArgs, " "), r.dur, r.clients, strings.TrimSpace(string(kernel)), runtime.NumCPU(), load)
	fmt.Fprintf(&b, "| elapsed | churn conns/s | RSS MiB | open fds | records | lost |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, x := range samples {
		rate := "-"
		if x.connsSec > 0 {
			rate = strconv.FormatFloat(x.connsSec, 'f', 0, 64)
		}
		fmt.Fprintf(&b, "| %v | %s | %.1f | %d | %d | %d |\n", x.elapsed.Round(time.Second), rate, float64(x.rssKB)/1024, x.fds, x.records, x.lost)
	}
	// Growth is measured from the first sample under load: the start-up
	// sample is before any churn, so Go's heap has not grown to its working size.
	first, last := samples[1], samples[len(samples)-1]
	minRSS, maxRSS := first.rssKB, first.rssKB
	minFD, maxFD := first.fds, first.fds
	for _, x := range samples[1:] {
		minRSS, maxRSS = min(minRSS, x.rssKB), max(maxRSS, x.rssKB)
		minFD, maxFD = min(minFD, x.fds), max(maxFD, x.fds)
	}
	fmt.Fprintf(&b, "\n%d connections (%d churn errors). Under load, RSS %.1f–%.1f MiB (first %.1f, last %.1f: %+.1f MiB), open fds %d–%d; %d records read, %d events lost by lost records; katrace's end record: %d kernel events handled, %d lost.\n",
		conns, churnErrs, float64(minRSS)/1024, float64(maxRSS)/1024, float64(first.rssKB)/1024, float64(last.rssKB)/1024,
		float64(last.rssKB-first.rssKB)/1024, minFD, maxFD, s.records.Load(), s.lost.Load(), end.Events, end.Lost)
	return b.String()
}

// replaceSection puts text in place of the section of path that starts with
// a line beginning with heading and ends before the next "## " line, or at
// the end of the file when there is no such section.
func replaceSection(path, heading, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	lines := strings.SplitAfter(string(old), "\n")
	start, stop := -1, len(lines)
	for i, l := range lines {
		if start < 0 && strings.HasPrefix(l, heading) {
			start = i
		} else if start >= 0 && strings.HasPrefix(l, "## ") {
			stop = i
			break
		}
	}
	var out string
	if start < 0 {
		out = strings.TrimRight(string(old), "\n")
		if out != "" {
			out += "\n\n"
		}
		out += text
	} else {
		out = strings.Join(lines[:start], "") + text
		if stop < len(lines) {
			out += "\n" + strings.Join(lines[stop:], "")
		}
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

func vmRSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
