package main

import (
	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/check"
)

func checkCommand(onUsageError cli.OnUsageErrorFunc) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "tell whether katrace trace can run on this host, and how",
		Description: "Reports the kernel version, BTF, the tick rate (HZ) and where it came from,\n" +
			"lockdown mode, each capability katrace can use (held or missing, and what its\n" +
			"absence costs), the cgroup v2 mount, ring buffer support,\n" +
			"which attach strategies load and attach here (each is tried, then detached)\n" +
			"and which one trace would use; then the keepalive sysctls of this network\n" +
			"namespace, with advice. Exit status 0 when trace can run here, 1 when it\n" +
			"cannot (the reason is on the last line of standard error).",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "`FORMAT`: text, or json (one JSON object)", EnvVars: []string{"KATRACE_OUTPUT"}, Category: catOutput},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("check takes no arguments, got %q", c.Args().First())
			}
			format := c.String("output")
			if format != "text" && format != "json" {
				return usagef("--output %q: want text or json", format)
			}
			r := check.Run(check.Env{})
			var err error
			if format == "json" {
				err = check.WriteJSON(c.App.Writer, r)
			} else {
				err = check.WriteText(c.App.Writer, r)
			}
			if err != nil {
				return err
			}
			return r.Err()
		},
	}
}
