package main

import (
	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/check"
)

// runCheck reports whether and how trace can run here; its error says
// why not.
func runCheck(c *cli.Context, format string) error {
	r := check.Run(check.Env{})
	write := check.WriteText
	if format == "json" {
		write = check.WriteJSON
	}
	if err := write(c.App.Writer, r); err != nil {
		return err
	}
	return r.Err()
}
