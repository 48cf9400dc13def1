package main

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/tracer"
)

func traceFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "file", Aliases: []string{"w"}, Usage: "write to `PATH` instead of standard output", EnvVars: env("FILE"), Category: catOutput},
		&cli.BoolFlag{Name: "all", Usage: "report every close, including ordinary ones", EnvVars: env("ALL"), Category: catOutput},
		&cli.BoolFlag{Name: "states", Usage: "report every TCP state change", EnvVars: env("STATES"), Category: catOutput},
		&cli.DurationFlag{Name: "duration", Usage: "stop after `DURATION` (e.g. 30s); 0 runs until Ctrl-C", EnvVars: env("DURATION"), Category: catOutput},
		&cli.BoolFlag{Name: "proto", Usage: "label connections http/1.x, http/2 or tls and count HTTP/1.x requests, from the first bytes of their packets (a cgroup_skb program on every packet and storage per connection: off by default for its cost, see docs/PERFORMANCE.md; payload is never logged)", EnvVars: env("PROTO"), Category: catOutput},
		&cli.DurationFlag{Name: "idle-threshold", Value: time.Second, Usage: "a FIN after at least `DURATION` without data is an idle close", EnvVars: env("IDLE_THRESHOLD"), Category: catOutput},

		&cli.StringFlag{Name: "attach", Value: "auto", Usage: "`STRATEGY`: auto, fentry, kprobe or tracepoint", EnvVars: env("ATTACH"), Category: catTuning},
		&cli.StringFlag{Name: "ring-size", Value: "4M", Usage: "ring buffer `SIZE` in bytes, a power of two (K and M suffixes)", EnvVars: env("RING_SIZE"), Category: catTuning},
		&cli.IntFlag{Name: "max-sockets", Value: 65536, Usage: "remember at most `N` sockets at once; the least recently active are forgotten first", EnvVars: env("MAX_SOCKETS"), Category: catTuning},
	}
	return append(append(append(flags, filterFlags()...), agentFlags()...), workloadFlags()...)
}

type traceSettings struct {
	tracer tracer.Config
	format string
	file   string
	dur    time.Duration
	agent  agentSettings
	// workload: host, container and pod naming (container.go).
	workload workloadSettings
}

func traceConfig(c *cli.Context, format string) (traceSettings, error) {
	s := traceSettings{format: format, file: c.String("file"), dur: c.Duration("duration")}
	agent, err := agentConfig(c, s.format, s.file)
	if err != nil {
		return s, err
	}
	s.agent = agent
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

// parseRingSize reads a byte count with an optional K or M suffix; the
// kernel wants a power of two of at least a page.
func parseRingSize(s string) (uint32, error) {
	size, ok := parseByteSize(s)
	if !ok || size == 0 {
		return 0, fmt.Errorf("%q: want a size such as 4M, 512K or 1048576", s)
	}
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

func runTrace(c *cli.Context, format string) error {
	s, err := traceConfig(c, format)
	if err != nil {
		return err
	}
	return trace(c.Context, c, s)
}

// durationFromStart returns a context that ends d after started is called.
// --duration counts from the start record, written once every program is
// attached, not from process start: loading and attaching can take longer
// than the duration asked for on a slow or emulated CPU.
func durationFromStart(parent context.Context, d time.Duration) (ctx context.Context, started func(), stop context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	var once sync.Once
	var timer *time.Timer
	started = func() { once.Do(func() { timer = time.AfterFunc(d, cancel) }) }
	stop = func() {
		once.Do(func() {}) // started arms no timer from now on
		if timer != nil {
			timer.Stop()
		}
		cancel()
	}
	return ctx, started, stop
}
