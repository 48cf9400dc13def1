package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/output"
	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/tracer"
)

// Which host, container and pod each record belongs to (issue 12).

const catWorkload = "Hosts, containers and pods"

func workloadFlags() []cli.Flag {
	env := func(name string) []string { return []string{"KATRACE_" + name} }
	return []cli.Flag{
		&cli.StringFlag{Name: "node-name", Usage: "the `NAME` put in every record's host field (default: $NODE_NAME, else the hostname)", EnvVars: env("NODE_NAME"), Category: catWorkload},
		&cli.StringSliceFlag{Name: "container", Usage: "only sockets of the container whose id starts with `ID` (at least 12 hex digits), as docker, podman or crictl show it; inside Kubernetes also a container NAME or POD/NAME", EnvVars: env("CONTAINER"), Category: catFilter},
		&cli.StringSliceFlag{Name: "cgroup", Usage: "only sockets in the cgroup v2 `PATH` or below it (as /proc/PID/cgroup shows it, or a directory under the cgroup2 mount)", EnvVars: env("CGROUP"), Category: catFilter},
		kubeletURLFlag(),
	}
}

// kubeletURLFlag is --kubelet-url, of trace and sockets.
func kubeletURLFlag() cli.Flag {
	return &cli.StringFlag{Name: "kubelet-url", Usage: "ask `URL` for pod and container names (default https://$NODE_NAME:10250/pods; only tried in Kubernetes: a service-account token mounted and $NODE_NAME set)", EnvVars: []string{"KATRACE_KUBELET_URL"}, Category: catWorkload}
}

// workloadSettings is what the trace needs to name hosts, containers and
// pods.
type workloadSettings struct {
	host string
	// resolver is nil on a host without cgroup v2: the fields are left out.
	resolver   *container.Resolver
	kubeletURL string
	// kube is the kubelet client, when a --container name needed it early.
	kube *container.Kubelet
}

// minContainerPrefix is what docker and podman print: 12 hex digits are
// unique on any real host.
const minContainerPrefix = 12

// parseWorkload reads the flags, finds the cgroup2 mount, and turns
// --container and --cgroup into the kernel's cgroup filters.
func parseWorkload(c *cli.Context, f *tracer.Filters) (workloadSettings, error) {
	var w workloadSettings
	host, err := hostName(c.String("node-name"))
	if err != nil {
		return w, err
	}
	w.host = host
	w.kubeletURL = c.String("kubelet-url")

	prefixes := splitList(c.StringSlice("container"))
	var names []string
	for _, p := range prefixes {
		if len(p) >= minContainerPrefix && len(p) <= 64 && isHex(p) {
			continue
		}
		// Not an id: a container's name, which only the kubelet knows.
		if w.kube == nil {
			if w.kube, err = container.KubeletFromEnvironment(w.kubeletURL, c.App.ErrWriter); err != nil {
				return w, err
			}
			if w.kube == nil {
				return w, usagef("--container %q: want a container id, at least %d hex digits (container names work inside Kubernetes only)", p, minContainerPrefix)
			}
			if err := w.kube.Refresh(c.Context); err != nil {
				return w, usagef("--container %q: a container name needs the kubelet's pod list: %v", p, err)
			}
		}
		names = append(names, p)
	}
	paths := splitList(c.StringSlice("cgroup"))

	mount, err := container.FindCgroup2("/proc/self/mountinfo")
	switch {
	case errors.Is(err, container.ErrNoCgroup2):
		if len(prefixes) > 0 || len(paths) > 0 {
			return w, usagef("--container and --cgroup need cgroup v2, and this host has none mounted")
		}
		return w, nil
	case err != nil:
		return w, err
	}
	w.resolver = container.NewResolver(mount, nil)

	for _, name := range names {
		ids := w.kube.ContainerIDs(name)
		if len(ids) == 0 {
			return w, usagef("--container %s: the kubelet knows no container of that name on this node", name)
		}
		for _, id := range ids {
			cgs, err := w.resolver.ContainerCgroups(id)
			if err != nil {
				return w, err
			}
			for _, cg := range cgs {
				f.Cgroups = append(f.Cgroups, tracer.CgroupFilter{ID: cg.ID, Level: uint32(cg.Level)})
			}
		}
	}
	for _, p := range prefixes {
		if slices.Contains(names, p) {
			continue
		}
		cgs, err := w.resolver.ContainerCgroups(strings.ToLower(p))
		if err != nil {
			return w, err
		}
		if len(cgs) == 0 {
			return w, usagef("--container %s: no running container has an id starting with it (looked under %s)", p, mount.Dir)
		}
		for _, cg := range cgs {
			f.Cgroups = append(f.Cgroups, tracer.CgroupFilter{ID: cg.ID, Level: uint32(cg.Level)})
		}
	}
	for _, p := range paths {
		cg, err := w.resolver.Lookup(p)
		if err != nil {
			return w, usagef("--cgroup %s: %v", p, err)
		}
		f.Cgroups = append(f.Cgroups, tracer.CgroupFilter{ID: cg.ID, Level: uint32(cg.Level)})
	}
	if len(f.Cgroups) > tracer.MaxCgroups {
		return w, usagef("--container and --cgroup: at most %d cgroups together, these name %d", tracer.MaxCgroups, len(f.Cgroups))
	}
	return w, nil
}

// textOptions shows the CONTAINER column from the start on a host that runs
// containers (or when the trace is limited to some).
func (w workloadSettings) textOptions(filtered bool) []output.TextOption {
	if w.resolver == nil {
		return nil
	}
	w.resolver.Walk()
	return []output.TextOption{output.WithContainerColumn(filtered || w.resolver.HasContainers())}
}

func hostName(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n, nil
	}
	n, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("finding the host name (set --node-name): %w", err)
	}
	return n, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // ASCII lower case
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// startWorkload connects the resolver to the kubelet (inside Kubernetes
// only) and returns the sink with host on every record and the tracer's
// workload hook. The kubelet being unreachable costs one warning line on
// warn, never the trace.
func startWorkload(ctx context.Context, w workloadSettings, sink record.Sink, warn io.Writer) (record.Sink, func(uint64) *record.Workload, error) {
	sink = record.WithHost(sink, w.host)
	if w.resolver == nil {
		return sink, nil, nil
	}
	kube := w.kube
	if kube == nil {
		var err error
		if kube, err = container.KubeletFromEnvironment(w.kubeletURL, warn); err != nil {
			return nil, nil, err
		}
		if kube != nil {
			_ = kube.Refresh(ctx) // a failure has warned; names come later or never
		}
	}
	if kube != nil {
		w.resolver = container.NewResolver(w.resolver.Mount(), kube)
	}
	w.resolver.Walk()
	return sink, w.resolver.Workload, nil
}
