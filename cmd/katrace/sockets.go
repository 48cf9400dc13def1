package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/sockets"
)

func socketsCommand(onUsageError cli.OnUsageErrorFunc) *cli.Command {
	env := func(name string) []string { return []string{"KATRACE_" + name} }
	return &cli.Command{
		Name:  "sockets",
		Usage: "list TCP sockets with their effective keepalive settings and armed timer",
		Description: "A snapshot of every TCP socket of the host, in every network namespace: owner,\n" +
			"whether SO_KEEPALIVE is on, the effective keepalive idle time, interval and\n" +
			"probe count (the socket's own TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT, else the\n" +
			"net.ipv4.tcp_keepalive_* sysctls of the socket's own namespace), unanswered\n" +
			"probes, the armed timer and when it fires, time since the last data, and\n" +
			"TCP_USER_TIMEOUT. Read from the kernel with a BPF socket iterator; where that\n" +
			"cannot load, from sock_diag, which cannot tell the keepalive settings.\n" +
			"Listening sockets are listed only with --listening.",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "`FORMAT`: text (an aligned table) or json (NDJSON, one record per socket)", EnvVars: env("OUTPUT"), Category: catOutput},
			&cli.BoolFlag{Name: "listening", Usage: "list listening sockets too", Category: catFilter},
			&cli.BoolFlag{Name: "sock-diag", Usage: "read from sock_diag instead of the BPF iterator (this namespace only; keepalive settings unknown)", Category: catTuning},

			&cli.UintFlag{Name: "pid", Usage: "only sockets held by process `PID`", EnvVars: env("PID"), Category: catFilter},
			&cli.StringFlag{Name: "comm", Usage: "only sockets held by processes named `NAME` (as in /proc/PID/comm)", EnvVars: env("COMM"), Category: catFilter},
			&cli.StringSliceFlag{Name: "port", Usage: "only sockets with `PORT` at either end", EnvVars: env("PORT"), Category: catFilter},
			&cli.StringSliceFlag{Name: "addr", Usage: "only sockets with an address in `CIDR` at either end (IPv4 or IPv6)", EnvVars: env("ADDR"), Category: catFilter},
			&cli.UintFlag{Name: "netns", Usage: "only sockets in the network namespace with inode `INODE` (ls -L -i /proc/PID/ns/net)", EnvVars: env("NETNS"), Category: catFilter},
			&cli.BoolFlag{Name: "keepalive-only", Usage: "only sockets with SO_KEEPALIVE on", EnvVars: env("KEEPALIVE_ONLY"), Category: catFilter},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("sockets takes no arguments, got %q", c.Args().First())
			}
			format := c.String("output")
			if format != "text" && format != "json" {
				return usagef("--output %q: want text or json", format)
			}
			f, err := parseFilters(c)
			if err != nil {
				return err
			}
			opts := sockets.Options{
				Filters: sockets.Filters{
					PID:           f.PID,
					Comm:          f.Comm,
					Ports:         f.Ports,
					Prefixes:      f.Prefixes,
					NetNS:         f.NetNS,
					KeepaliveOnly: f.KeepaliveOnly,
					Listening:     c.Bool("listening"),
				},
				NoIterator: c.Bool("sock-diag"),
			}
			res, err := sockets.Snapshot(opts)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(c.App.ErrWriter, "katrace: %s\n", w)
			}
			if res.Source == sockets.FromSockDiag && format == "json" {
				fmt.Fprintf(c.App.ErrWriter, "katrace: from sock_diag (%v): unknown: %s\n", res.Fallback, strings.Join(res.Unknown, ", "))
			}
			if format == "json" {
				return sockets.WriteJSON(c.App.Writer, res)
			}
			return sockets.WriteText(c.App.Writer, res)
		},
	}
}
