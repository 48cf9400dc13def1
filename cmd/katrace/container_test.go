package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/katrace/katrace/container"
)

func TestContainerFlagErrors(t *testing.T) {
	_, cgErr := container.FindCgroup2("/proc/self/mountinfo")
	for _, tc := range []struct {
		args []string
		want string
		// needsCgroup2: the error names what the cgroup2 tree lacks.
		needsCgroup2 bool
	}{
		{[]string{"trace", "--container", "xyz"}, `--container "xyz": want a container id, at least 12 hex digits`, false},
		{[]string{"trace", "--container", "0123456789a"}, `--container "0123456789a": want a container id`, false},
		{[]string{"trace", "--container", "0123456789ag"}, `--container "0123456789ag": want a container id`, false},
		{[]string{"trace", "--container", strings.Repeat("a", 65)}, `want a container id`, false},
		{[]string{"trace", "--container", "0123456789abfedc"}, "--container 0123456789abfedc: no running container has an id starting with it", true},
		{[]string{"trace", "--cgroup", "/katrace-no-such-cgroup/x"}, "--cgroup /katrace-no-such-cgroup/x: no cgroup /katrace-no-such-cgroup/x under ", true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if tc.needsCgroup2 && cgErr != nil {
				t.Skipf("this host has no cgroup v2: %v", cgErr)
			}
			code, _, stderr := runArgs(t, tc.args...)
			if code != exitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", code, stderr, tc.want)
			}
		})
	}
}

func TestHostName(t *testing.T) {
	t.Setenv("NODE_NAME", "node-7")
	if h, _ := hostName("from-flag"); h != "from-flag" {
		t.Errorf("--node-name: %q", h)
	}
	if h, _ := hostName(""); h != "node-7" {
		t.Errorf("$NODE_NAME: %q", h)
	}
	os.Unsetenv("NODE_NAME")
	want, _ := os.Hostname()
	if h, _ := hostName(""); h != want || h == "" {
		t.Errorf("hostname: %q, want %q", h, want)
	}
}

// A valid --cgroup becomes the kernel filter's (id, level) pair.
func TestCgroupFlagResolves(t *testing.T) {
	m, err := container.FindCgroup2("/proc/self/mountinfo")
	if errors.Is(err, container.ErrNoCgroup2) {
		t.Skip("this host has no cgroup v2")
	}
	if err != nil {
		t.Fatal(err)
	}
	app := newApp()
	var got []uint64
	var levels []uint32
	app.Commands[0].Action = func(c *cli.Context) error {
		s, err := traceConfig(c, "text")
		for _, f := range s.tracer.Filters.Cgroups {
			got = append(got, f.ID)
			levels = append(levels, f.Level)
		}
		return err
	}
	if err := app.Run([]string{"katrace", "trace", "--cgroup", "/", "--cgroup", m.Dir}); err != nil {
		t.Fatal(err)
	}
	r := container.NewResolver(m, nil)
	root, err := r.Lookup("/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != root.ID || got[1] != root.ID || levels[0] != 0 {
		t.Errorf("--cgroup / and --cgroup %s: ids %v levels %v, want the root %d at level 0 twice", m.Dir, got, levels, root.ID)
	}
}
