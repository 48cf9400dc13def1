package main

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/filter"
	"github.com/katrace/katrace/tracer"
)

// Flag categories make --help read in groups.
const (
	catOutput = "Output"
	catFilter = "Filters (repeat --port and --addr for more)"
	catTuning = "Tuning"
)

// env names the environment variable that sets a flag.
func env(name string) []string { return []string{"KATRACE_" + name} }

// outputFlag is --output, whose two formats each command describes.
func outputFlag(formats string) cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "`FORMAT`: " + formats, EnvVars: env("OUTPUT"), Category: catOutput}
}

// outputFormat is the --output asked for: text, json, or one of the
// command's extra formats.
func outputFormat(c *cli.Context, extra ...string) (string, error) {
	format := c.String("output")
	if format == "text" || format == "json" || slices.Contains(extra, format) {
		return format, nil
	}
	want := "text or json"
	if len(extra) > 0 {
		want = "text, json or " + strings.Join(extra, ", ")
	}
	return "", usagef("--output %q: want %s", format, want)
}

// filterFlags select sockets, in `trace` and `sockets` alike.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.UintFlag{Name: "pid", Usage: "only sockets held by process `PID`", EnvVars: env("PID"), Category: catFilter},
		&cli.StringFlag{Name: "comm", Usage: "only sockets held by processes named `NAME` (as in /proc/PID/comm)", EnvVars: env("COMM"), Category: catFilter},
		&cli.StringSliceFlag{Name: "port", Usage: "only connections with `PORT` at either end", EnvVars: env("PORT"), Category: catFilter},
		&cli.StringSliceFlag{Name: "addr", Usage: "only connections with an address in `CIDR` at either end (IPv4 or IPv6)", EnvVars: env("ADDR"), Category: catFilter},
		&cli.UintFlag{Name: "netns", Usage: "only sockets in the network namespace with inode `INODE` (ls -L -i /proc/PID/ns/net)", EnvVars: env("NETNS"), Category: catFilter},
		&cli.BoolFlag{Name: "keepalive-only", Usage: "only sockets with SO_KEEPALIVE on", EnvVars: env("KEEPALIVE_ONLY"), Category: catFilter},
	}
}

// parseFilters reads filterFlags. The kernel's limits apply to both
// commands, so that a filter that works for one works for the other.
func parseFilters(c *cli.Context) (filter.Set, error) {
	var f filter.Set
	pid := c.Uint("pid")
	if pid > 1<<22 {
		return f, usagef("--pid %d: not a process id", pid)
	}
	f.PID = uint32(pid)
	f.Comm = c.String("comm")
	if len(f.Comm) > tracer.MaxCommLen {
		return f, usagef("--comm %q: the kernel keeps at most %d characters of a process name", f.Comm, tracer.MaxCommLen)
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
		f.Addrs = append(f.Addrs, p)
	}
	if len(f.Addrs) > tracer.MaxPrefixes {
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

// parseByteSize reads a byte count with an optional K, M or G suffix
// (powers of 1024, with or without a trailing B or iB); ok is false for
// anything else, and for counts of 2^62 bytes or more.
func parseByteSize(s string) (n uint64, ok bool) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "B")
	t = strings.TrimSuffix(t, "I")
	shift := 0
	if t != "" {
		if unit := strings.IndexByte("KMG", t[len(t)-1]); unit >= 0 {
			shift, t = 10*(unit+1), t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n >= 1<<(62-shift) {
		return 0, false
	}
	return n << shift, true
}
