package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/sockets"
)

func socketsCommand(onUsageError cli.OnUsageErrorFunc) *cli.Command {
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
		Flags: append([]cli.Flag{
			outputFlag("text (an aligned table) or json (NDJSON, one record per socket)"),
			&cli.BoolFlag{Name: "listening", Usage: "list listening sockets too", Category: catFilter},
			&cli.BoolFlag{Name: "sock-diag", Usage: "read from sock_diag instead of the BPF iterator (this namespace only; keepalive settings unknown)", Category: catTuning},
		}, filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("sockets takes no arguments, got %q", c.Args().First())
			}
			format, err := outputFormat(c)
			if err != nil {
				return err
			}
			filters, err := parseFilters(c)
			if err != nil {
				return err
			}
			opts := sockets.Options{
				Filters:    filters,
				Listening:  c.Bool("listening"),
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
