package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/kernel"
	"github.com/katrace/katrace/logfile"
	"github.com/katrace/katrace/metrics"
	"github.com/katrace/katrace/output"
	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/tracer"
)

// What katrace needs to run as an always-on agent: a Prometheus endpoint
// and an output file that rotates and reopens.

const catMetrics = "Metrics"

// formatNone turns the record stream off (-o none): a metrics-only daemon.
const formatNone = "none"

func agentFlags() []cli.Flag {
	env := func(name string) []string { return []string{"KATRACE_" + name} }
	return []cli.Flag{
		&cli.StringFlag{Name: "file-max-size", Usage: "rotate the --file when it would grow past `SIZE` (K, M and G suffixes), between two records; FILE.1 is the newest earlier file", EnvVars: env("FILE_MAX_SIZE"), Category: catOutput},
		&cli.IntFlag{Name: "file-max-backups", Value: 5, Usage: "keep `N` rotated files (FILE.1 to FILE.N)", EnvVars: env("FILE_MAX_BACKUPS"), Category: catOutput},

		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://`ADDR`/metrics (e.g. 127.0.0.1:9431); they count the records the stream shows", EnvVars: env("METRICS_ADDR"), Category: catMetrics},
		&cli.StringFlag{Name: "metrics-labels", Usage: "add opt-in `LABELS` (comma-separated) to the per-connection metrics: " + strings.Join(metrics.OptionalLabels(), ", ") + " (endpoint: the service's address:port; the others: the socket's container, pod, namespace)", EnvVars: env("METRICS_LABELS"), Category: catMetrics},
		&cli.IntFlag{Name: "metrics-max-series", Value: metrics.DefaultMaxSeries, Usage: "at most `N` values of each opt-in label; the rest are counted under \"other\"", EnvVars: env("METRICS_MAX_SERIES"), Category: catMetrics},
	}
}

type agentSettings struct {
	file          logfile.Options
	metricsAddr   string
	metricsLabels []string
	maxSeries     int
}

// agentConfig reads the agent flags; format and file are --output and
// --file, already read.
func agentConfig(c *cli.Context, format, file string) (agentSettings, error) {
	var a agentSettings
	a.metricsAddr = c.String("metrics-addr")
	if a.metricsAddr != "" {
		if _, port, err := net.SplitHostPort(a.metricsAddr); err != nil || port == "" {
			return a, usagef("--metrics-addr %q: want HOST:PORT, e.g. 127.0.0.1:9431 or :9431", a.metricsAddr)
		}
	}
	if format == formatNone {
		if a.metricsAddr == "" {
			return a, usagef("--output none writes no records: give --metrics-addr too, or pick text or json")
		}
		if file != "" {
			return a, usagef("--output none writes no records: --file has nothing to write")
		}
	}
	labels, err := metrics.ParseLabels(c.String("metrics-labels"))
	if err != nil {
		return a, usagef("--metrics-labels: %v", err)
	}
	if len(labels) > 0 && a.metricsAddr == "" {
		return a, usagef("--metrics-labels needs --metrics-addr")
	}
	a.metricsLabels = labels
	a.maxSeries = c.Int("metrics-max-series")
	if a.maxSeries < 1 {
		return a, usagef("--metrics-max-series %d: must be at least 1", a.maxSeries)
	}
	if s := c.String("file-max-size"); s != "" {
		n, err := parseFileSize(s)
		if err != nil {
			return a, usagef("--file-max-size: %v", err)
		}
		a.file.MaxSize = n
	}
	if a.file.MaxSize > 0 {
		if file == "" {
			return a, usagef("--file-max-size rotates the --file: give --file too")
		}
		a.file.MaxBackups = c.Int("file-max-backups")
		if a.file.MaxBackups < 1 {
			return a, usagef("--file-max-backups %d: keep at least 1", a.file.MaxBackups)
		}
	}
	return a, nil
}

// parseFileSize reads a byte count with an optional K, M or G suffix.
func parseFileSize(s string) (int64, error) {
	n, ok := parseByteSize(s)
	if !ok {
		return 0, fmt.Errorf("%q: want a size such as 100M, 512K or 1G (0: never rotate)", s)
	}
	return int64(n), nil
}

func trace(ctx context.Context, c *cli.Context, s traceSettings) (err error) {
	stderr := c.App.ErrWriter
	if stderr == nil {
		stderr = os.Stderr
	}
	// Without what tracing needs, the tracer says so itself, in one line.
	if s.tracer.Protocols && kernel.CanLoadBPF() && !kernel.CanAttachCgroupPrograms() {
		fmt.Fprintln(stderr, "katrace: protocol labels are off: attaching their cgroup_skb programs needs CAP_NET_ADMIN")
		s.tracer.Protocols = false
	}
	var sinks []record.Sink
	if s.format != formatNone {
		var w io.Writer = c.App.Writer
		if s.file != "" {
			f, err := logfile.Open(s.file, s.agent.file)
			if err != nil {
				return fmt.Errorf("opening the output file: %w", err)
			}
			defer func() {
				if cerr := f.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("closing the output file: %w", cerr)
				}
			}()
			defer reopenOnHangup(f, stderr)()
			w = f
		}
		if s.format == "json" {
			sinks = append(sinks, output.NewJSON(w))
		} else {
			sinks = append(sinks, output.NewText(w, s.workload.textOptions(len(s.tracer.Filters.Cgroups) > 0)...))
		}
	}
	if s.agent.metricsAddr != "" {
		m, err := metrics.New(metrics.Options{Labels: s.agent.metricsLabels, MaxSeries: s.agent.maxSeries})
		if err != nil {
			return fmt.Errorf("setting up metrics: %w", err)
		}
		stop, err := serveMetrics(s.agent.metricsAddr, m.Handler(), stderr)
		if err != nil {
			return err
		}
		defer stop()
		sinks = append(sinks, m)
		if s.workload.resolver != nil {
			defer forgetGoneWorkloads(m, s.workload.resolver.Mount())()
		}
	}
	started := func() {}
	if s.dur > 0 {
		var stop context.CancelFunc
		ctx, started, stop = durationFromStart(ctx, s.dur)
		defer stop()
	}
	s.tracer.Attached = func(tracer.Strategy) {
		started()
		// Loading the programs parsed the kernel's BTF: megabytes of
		// garbage that stay resident until later collections let the
		// scavenger return them; katrace's RSS should be what it uses.
		debug.FreeOSMemory()
	}
	var sink record.Sink = teeSink(sinks)
	if len(sinks) == 1 {
		sink = sinks[0]
	}
	// The host goes on every record, before any sink sees it.
	sink, s.tracer.Workload, err = startWorkload(ctx, s.workload, sink, stderr)
	if err != nil {
		return err
	}
	return tracer.Run(ctx, s.tracer, sink)
}

// reopenOnHangup reopens f on SIGHUP, as logrotate's create mode expects,
// until the returned function is called.
func reopenOnHangup(f *logfile.File, stderr io.Writer) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if err := f.Reopen(); err != nil {
					// Records keep going to the file already open.
					fmt.Fprintf(stderr, "katrace: %v (still writing to the file open before)\n", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// forgetGoneWorkloads drops, every metrics.SweepInterval, the series of
// containers, pods and namespaces whose cgroups have all been removed,
// until the returned function is called.
func forgetGoneWorkloads(m *metrics.Sink, mount container.Mount) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(metrics.SweepInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				m.ForgetGone(mount.Exists)
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// serveMetrics listens on addr at once, so that a port in use fails
// before tracing starts, and serves /metrics until stop is called.
func serveMetrics(addr string, h http.Handler, stderr io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "katrace: serving metrics: %v\n", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// teeSink writes every record to each sink in turn: the printer and the
// metrics see the same records.
type teeSink []record.Sink

func (t teeSink) Write(r *record.Record) error {
	for _, s := range t {
		if err := s.Write(r); err != nil {
			return err
		}
	}
	return nil
}

func (t teeSink) Flush() error {
	for _, s := range t {
		if err := s.Flush(); err != nil {
			return err
		}
	}
	return nil
}
