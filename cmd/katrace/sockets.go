package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/sockets"
)

// runSockets prints the snapshot of the sockets the filters select.
func runSockets(c *cli.Context, format string) error {
	filters, err := parseFilters(c)
	if err != nil {
		return err
	}
	workload, err := socketsWorkload(c, "/proc/self/mountinfo", c.App.ErrWriter)
	if err != nil {
		return err
	}
	opts := sockets.Options{
		Filters:    filters,
		Listening:  c.Bool("listening"),
		NoIterator: c.Bool("sock-diag"),
		Workload:   workload,
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

// socketsWorkload is how the snapshot names each socket's container and
// pod: from its owner's cgroup v2 path, with pod and container names from
// the kubelet inside Kubernetes. nil on a host without cgroup v2 (the
// fields are left out).
func socketsWorkload(c *cli.Context, mountinfo string, warn io.Writer) (func(string) record.Workload, error) {
	mount, err := container.FindCgroup2(mountinfo)
	if errors.Is(err, container.ErrNoCgroup2) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kube, err := container.KubeletFromEnvironment(c.String("kubelet-url"), warn)
	if err != nil {
		return nil, err
	}
	if kube != nil {
		_ = kube.Refresh(c.Context) // a failure has warned: no names, the rest goes on
	}
	r := container.NewResolver(mount, kube)
	r.Walk()
	return r.ByPath, nil
}
