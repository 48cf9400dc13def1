// Command katrace tells why TCP connections on this host die.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is stamped by the Makefile (-ldflags -X main.version=...).
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a mistake in how katrace was called: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	// A reader that goes away (katrace | head) must end katrace quietly: with
	// SIGPIPE ignored, the write fails with EPIPE and run returns.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args, os.Stdout), os.Stderr))
}

// exitCode reports err on stderr in one line and picks the exit code.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, syscall.EPIPE):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "katrace: %v (see katrace --help)\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "katrace: %v\n", err)
		return exitFailure
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	app := newApp()
	app.Writer = stdout
	return app.RunContext(ctx, args)
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "katrace",
		Usage:   "tell why TCP connections on this host die",
		Version: version,
		Description: "katrace traces TCP connections with eBPF and explains how each one ends:\n" +
			"keepalive probes sent and answered or not, keepalive timeouts, connections\n" +
			"closed for idleness (who closed, after how long idle), and every reset with\n" +
			"its reason. Run it as root (or with CAP_BPF and CAP_PERFMON).",
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		OnUsageError:         onUsageError,
		CommandNotFound: func(_ *cli.Context, name string) {
			// Reported by the Action below: urfave/cli ignores a return here.
		},
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			traceCommand(),
			socketsCommand(),
			checkCommand(),
			versionCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	return app
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print katrace's version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintf(c.App.Writer, "katrace %s\n", version)
			return err
		},
	}
}
