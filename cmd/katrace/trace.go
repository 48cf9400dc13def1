package main

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/output"
	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/tracer"
)

func traceCommand(onUsageError cli.OnUsageErrorFunc) *cli.Command {
	return &cli.Command{
		Name:  "trace",
		Usage: "trace TCP connections and explain how they end",
		Description: "By default only what explains a connection's end is shown: keepalive probes\n" +
			"and timeouts, idle closes, resets, lost events, and closes whose cause is not\n" +
			"an ordinary close. --all adds every close, --states every state change.\n" +
			"Filters run in the kernel. Ctrl-C stops; the last record says how many\n" +
			"events were seen and lost.",
		OnUsageError: onUsageError,
		Flags:        traceFlags(),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("trace takes no arguments, got %q", c.Args().First())
			}
			cfg, err := traceConfig(c)
			if err != nil {
				return err
			}
			return runTrace(c.Context, c, cfg)
		},
	}
}

// Flag categories make --help read in groups.
const (
	catOutput = "Output"
	catFilter = "Filters (in the kernel; repeat --port and --addr for more)"
	catTuning = "Tuning"
)

func traceFlags() []cli.Flag {
	env := func(name string) []string { return []string{"KATRACE_" + name} }
	flags := []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "`FORMAT`: text (a timeline) or json (NDJSON, one record per line)", EnvVars: env("OUTPUT"), Category: catOutput},
		&cli.StringFlag{Name: "file", Aliases: []string{"w"}, Usage: "write to `PATH` instead of standard output", EnvVars: env("FILE"), Category: catOutput},
		&cli.BoolFlag{Name: "all", Usage: "report every close, including ordinary ones", EnvVars: env("ALL"), Category: catOutput},
		&cli.BoolFlag{Name: "states", Usage: "report every TCP state change", EnvVars: env("STATES"), Category: catOutput},
		&cli.DurationFlag{Name: "duration", Usage: "stop after `DURATION` (e.g. 30s); 0 runs until Ctrl-C", EnvVars: env("DURATION"), Category: catOutput},
		&cli.BoolFlag{Name: "proto", Value: true, Usage: "label connections http/1.x, http/2 or tls and count HTTP/1.x requests, from the first bytes of their packets (a cgroup_skb program; payload is never logged); --proto=false turns it off", EnvVars: env("PROTO"), Category: catOutput},
		&cli.DurationFlag{Name: "idle-threshold", Value: time.Second, Usage: "a FIN after at least `DURATION` without data is an idle close", EnvVars: env("IDLE_THRESHOLD"), Category: catOutput},

		&cli.UintFlag{Name: "pid", Usage: "only sockets of process `PID`", EnvVars: env("PID"), Category: catFilter},
		&cli.StringFlag{Name: "comm", Usage: "only sockets of processes named `NAME` (as in /proc/PID/comm)", EnvVars: env("COMM"), Category: catFilter},
		&cli.StringSliceFlag{Name: "port", Usage: "only connections with `PORT` at either end", EnvVars: env("PORT"), Category: catFilter},
		&cli.StringSliceFlag{Name: "addr", Usage: "only connections with an address in `CIDR` at either end (IPv4 or IPv6)", EnvVars: env("ADDR"), Category: catFilter},
		&cli.UintFlag{Name: "netns", Usage: "only sockets in the network namespace with inode `INODE` (ls -L -i /proc/PID/ns/net)", EnvVars: env("NETNS"), Category: catFilter},
		&cli.BoolFlag{Name: "keepalive-only", Usage: "only sockets with SO_KEEPALIVE on", EnvVars: env("KEEPALIVE_ONLY"), Category: catFilter},

		&cli.StringFlag{Name: "attach", Value: "auto", Usage: "`STRATEGY`: auto, fentry, kprobe or tracepoint", EnvVars: env("ATTACH"), Category: catTuning},
		&cli.StringFlag{Name: "ring-size", Value: "4M", Usage: "ring buffer `SIZE` in bytes, a power of two (K and M suffixes)", EnvVars: env("RING_SIZE"), Category: catTuning},
		&cli.IntFlag{Name: "max-sockets", Value: 65536, Usage: "remember at most `N` sockets at once; the least recently active are forgotten first", EnvVars: env("MAX_SOCKETS"), Category: catTuning},
	}
	return append(flags, workloadFlags()...)
}

type traceSettings struct {
	tracer tracer.Config
	format string
	file   string
	dur    time.Duration
	// workload: host, container and pod naming (container.go).
	workload workloadSettings
}

func traceConfig(c *cli.Context) (traceSettings, error) {
	var s traceSettings
	s.format = c.String("output")
	if s.format != "text" && s.format != "json" {
		return s, usagef("--output %q: want text or json", s.format)
	}
	s.file = c.String("file")
	s.dur = c.Duration("duration")
	if s.dur < 0 {
		return s, usagef("--duration %v: must not be negative", s.dur)
	}
	idle := c.Duration("idle-threshold")
	if idle <= 0 {
		return s, usagef("--idle-threshold %v: must be positive", idle)
	}
	attach, err := tracer.ParseStrategy(c.String("attach"))
	if err != nil {
		return s, usagef("--attach: %v", err)
	}
	ring, err := parseRingSize(c.String("ring-size"))
	if err != nil {
		return s, usagef("--ring-size: %v", err)
	}
	maxSockets := c.Int("max-sockets")
	if maxSockets < 1 {
		return s, usagef("--max-sockets %d: must be at least 1", maxSockets)
	}
	filters, err := parseFilters(c)
	if err != nil {
		return s, err
	}
	if s.workload, err = parseWorkload(c, &filters); err != nil {
		return s, err
	}
	s.tracer = tracer.Config{
		Attach:        attach,
		Filters:       filters,
		RingSize:      ring,
		IdleThreshold: idle,
		All:           c.Bool("all"),
		States:        c.Bool("states"),
		MaxSockets:    maxSockets,
		Version:       version,
		Protocols:     c.Bool("proto"),
	}
	return s, nil
}

func parseFilters(c *cli.Context) (tracer.Filters, error) {
	var f tracer.Filters
	pid := c.Uint("pid")
	if pid > 1<<22 {
		return f, usagef("--pid %d: not a process id", pid)
	}
	f.PID = uint32(pid)
	f.Comm = c.String("comm")
	if len(f.Comm) > 15 {
		return f, usagef("--comm %q: the kernel keeps at most 15 characters of a process name", f.Comm)
	}
	netns := c.Uint("netns")
	if netns > 1<<32-1 {
		return f, usagef("--netns %d: not an inode number", netns)
	}
	f.NetNS = uint32(netns)
	f.KeepaliveOnly = c.Bool("keepalive-only")
	for _, p := range splitList(c.StringSlice("port")) {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return f, usagef("--port %q: want a port number from 1 to 65535", p)
		}
		f.Ports = append(f.Ports, uint16(n))
	}
	if len(f.Ports) > tracer.MaxPorts {
		return f, usagef("--port: at most %d ports", tracer.MaxPorts)
	}
	for _, a := range splitList(c.StringSlice("addr")) {
		p, err := parsePrefix(a)
		if err != nil {
			return f, usagef("--addr %q: want an address or CIDR such as 10.0.0.0/8 or fd00::/8", a)
		}
		f.Prefixes = append(f.Prefixes, p)
	}
	if len(f.Prefixes) > tracer.MaxPrefixes {
		return f, usagef("--addr: at most %d prefixes", tracer.MaxPrefixes)
	}
	return f, nil
}

// splitList lets a repeatable flag also take a comma-separated list (as its
// environment variable does).
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseRingSize reads a byte count with an optional K or M suffix; the
// kernel wants a power of two of at least a page.
func parseRingSize(s string) (uint32, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "B")
	t = strings.TrimSuffix(t, "I")
	mult := uint64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q: want a size such as 4M, 512K or 1048576", s)
	}
	size := n * mult
	pageSize := uint64(os.Getpagesize())
	switch {
	case size > 1<<30:
		return 0, fmt.Errorf("%q: at most 1G", s)
	case bits.OnesCount64(size) != 1:
		return 0, fmt.Errorf("%q: must be a power of two (e.g. 2M, 4M, 8M)", s)
	case size < pageSize:
		return 0, fmt.Errorf("%q: at least one page (%d bytes)", s, pageSize)
	}
	return uint32(size), nil
}

func runTrace(ctx context.Context, c *cli.Context, s traceSettings) (err error) {
	var w io.Writer = c.App.Writer
	if s.file != "" {
		f, err := os.Create(s.file)
		if err != nil {
			return fmt.Errorf("opening the output file: %w", err)
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("closing the output file: %w", cerr)
			}
		}()
		w = f
	}
	var sink record.Sink
	if s.format == "json" {
		sink = output.NewJSON(w)
	} else {
		sink = output.NewText(w, s.workload.textOptions(len(s.tracer.Filters.Cgroups) > 0)...)
	}
	sink, s.tracer.Workload, err = startWorkload(ctx, s.workload, sink, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if s.dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.dur)
		defer cancel()
	}
	return tracer.Run(ctx, s.tracer, sink)
}
