package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/sockets"
)

// runSockets prints the snapshot of the sockets the filters select.
func runSockets(c *cli.Context, format string) error {
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
}
