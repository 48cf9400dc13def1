package main

import "github.com/urfave/cli/v2"

// The subcommands: what each is for, its flags, and what runs it.

func traceCommand() *cli.Command {
	return subcommand(cli.Command{
		Name:  "trace",
		Usage: "trace TCP connections and explain how they end",
		Description: `By default only what explains a connection's end is shown: keepalive probes
and timeouts, idle closes, resets, lost events, and closes whose cause is not
an ordinary close. --all adds every close, --states every state change.
Filters run in the kernel. Ctrl-C stops; the last record says how many
events were seen and lost.`,
		Flags: traceFlags(),
	}, "text (a timeline), json (NDJSON, one record per line) or none (no records: metrics only)", runTrace, formatNone)
}

func socketsCommand() *cli.Command {
	return subcommand(cli.Command{
		Name:  "sockets",
		Usage: "list TCP sockets with their effective keepalive settings and armed timer",
		Description: `A snapshot of every TCP socket of the host, in every network namespace: owner,
whether SO_KEEPALIVE is on, the effective keepalive idle time, interval and
probe count (the socket's own TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT, else the
net.ipv4.tcp_keepalive_* sysctls of the socket's own namespace), unanswered
probes, the armed timer and when it fires, time since the last data,
TCP_USER_TIMEOUT, and the container and pod of its owner (its cgroup). Read
from the kernel with a BPF socket iterator; where that cannot load, from sock_diag, which cannot tell the keepalive settings.
Listening sockets are listed only with --listening.`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "listening", Usage: "list listening sockets too", Category: catFilter},
			&cli.BoolFlag{Name: "sock-diag", Usage: "read from sock_diag instead of the BPF iterator (this namespace only; keepalive settings unknown)", Category: catTuning},
			kubeletURLFlag(),
		}, filterFlags()...),
	}, "text (an aligned table) or json (NDJSON, one record per socket)", runSockets)
}

func checkCommand() *cli.Command {
	return subcommand(cli.Command{
		Name:  "check",
		Usage: "tell whether katrace trace can run on this host, and how",
		Description: `Reports the kernel version, BTF, the tick rate (HZ) and where it came from,
lockdown mode, each capability katrace can use (held or missing, and what its
absence costs), the cgroup v2 mount, ring buffer support,
which attach strategies load and attach here (each is tried, then detached)
and which one trace would use; then the keepalive sysctls of this network
namespace, with advice. Exit status 0 when trace can run here, 1 when it
cannot (the reason is on the last line of standard error).`,
	}, "text, or json (one JSON object)", runCheck)
}

// subcommand completes cmd, a command that takes flags and no arguments and
// writes in the --output format it is given (formats describes them; text
// and json, and the extra ones named).
func subcommand(cmd cli.Command, formats string, run func(c *cli.Context, format string) error, extraFormats ...string) *cli.Command {
	cmd.Flags = append([]cli.Flag{outputFlag(formats)}, cmd.Flags...)
	cmd.OnUsageError = onUsageError
	cmd.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usagef("%s takes no arguments, got %q", cmd.Name, c.Args().First())
		}
		format, err := outputFormat(c, extraFormats...)
		if err != nil {
			return err
		}
		return run(c, format)
	}
	return &cmd
}

// onUsageError makes a flag urfave/cli could not parse a usage error.
func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err} }
