package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/tracer"
)

// Containers and pods (issue 12): cgroups made the way container runtimes
// make them, with test clients moved into them, and katrace's records of
// their sockets.

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func cgroup2(t *testing.T) container.Mount {
	t.Helper()
	m, err := container.FindCgroup2("/proc/self/mountinfo")
	if errors.Is(err, container.ErrNoCgroup2) {
		t.Skip("container test: this host has no cgroup v2 mounted")
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// makeCgroup creates path (relative to the cgroup2 root) and whatever of
// its parents is missing, and removes what it created when the test ends
// (after the processes in it, registered later, have been killed).
func makeCgroup(t *testing.T, m container.Mount, path string) string {
	t.Helper()
	var created []string
	dir := m.Dir
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		dir = filepath.Join(dir, seg)
		if err := os.Mkdir(dir, 0o755); err == nil {
			created = append(created, dir)
		} else if !os.IsExist(err) {
			t.Fatalf("creating cgroup %s: %v", dir, err)
		}
	}
	t.Cleanup(func() {
		for i := len(created) - 1; i >= 0; i-- {
			// A killed process leaves its cgroup a moment after wait returns.
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := os.Remove(created[i])
				if err == nil || os.IsNotExist(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("removing cgroup %s: %v", created[i], err)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	return dir
}

// startHelperInCgroup is startHelper with the helper moved into the cgroup
// directory cgDir before it runs: a socket belongs to the cgroup of the
// task that created it. `ip netns exec` remounts /sys, so the move is done
// from here (outside), while a shell waits to exec the helper.
func startHelperInCgroup(t *testing.T, ns, cgDir, role string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-c", `read go && exec "$0"`, exe)
	// ip netns exec and sh both exec: the pid stays the helper's.
	p := startHelperCommand(t, cmd, exe, role, args)
	if err := os.WriteFile(filepath.Join(cgDir, "cgroup.procs"), []byte(strconv.Itoa(p.pid)), 0); err != nil {
		t.Fatalf("moving helper %d into %s: %v", p.pid, cgDir, err)
	}
	if _, err := p.in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	return p
}

// procCgroup is the process's cgroup v2 path, from /proc/PID/cgroup.
func procCgroup(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	t.Fatalf("no cgroup v2 line in /proc/%d/cgroup:\n%s", pid, b)
	return ""
}

// startTraceNamed runs katrace with the workload hook and host, as katrace
// trace wires them.
func startTraceNamed(t *testing.T, m container.Mount, cfg tracer.Config) *session {
	t.Helper()
	r := container.NewResolver(m, nil)
	r.Walk()
	cfg.Workload = r.Workload
	return startTraceWith(t, cfg, func(s record.Sink) record.Sink { return record.WithHost(s, "e2e-node") })
}

func hasWorkloadFields(r rec) bool {
	for _, k := range []string{"container_id", "pod_uid", "pod", "namespace", "container"} {
		if r.has(k) {
			return true
		}
	}
	return false
}

// TestContainerAttributionAndFilters: three clients, one in a kubepods
// containerd container, one in a podman (cgroupfs) container, one on the
// host, each has its connection aborted by the server, so that the reset
// reaches it in softirq, where the current task is whatever the CPU ran.
// An unfiltered katrace names each one's container and pod; one filtered
// with --container keeps only the first; one with --cgroup of the podman
// parent keeps only the second.
func TestContainerAttributionAndFilters(t *testing.T) {
	requirePrivileges(t)
	m := cgroup2(t)
	ctrID, libpodID := randomHex(t, 64), randomHex(t, 64)
	podUID := fmt.Sprintf("%s-%s-4%s-8%s-%s", randomHex(t, 8), randomHex(t, 4), randomHex(t, 4)[1:], randomHex(t, 4)[1:], randomHex(t, 12))
	kubeParent := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podUID, "-", "_") + ".slice"
	kubeCgroup := kubeParent + "/cri-containerd-" + ctrID + ".scope"
	libpodParent := "/libpod_parent"
	libpodCgroup := libpodParent + "/libpod-" + libpodID
	kubeDir := makeCgroup(t, m, kubeCgroup)
	libpodDir := makeCgroup(t, m, libpodCgroup)

	p := newPair(t)
	resolver := container.NewResolver(m, nil)
	ctrs, err := resolver.ContainerCgroups(ctrID[:12])
	if err != nil || len(ctrs) != 1 {
		t.Fatalf("cgroups of container %s: %v, %v", ctrID[:12], ctrs, err)
	}
	parent, err := resolver.Lookup(libpodParent)
	if err != nil {
		t.Fatal(err)
	}

	all := startTraceNamed(t, m, tracer.Config{})
	byContainer := startTraceNamed(t, m, tracer.Config{Filters: tracer.Filters{Cgroups: []tracer.CgroupFilter{{ID: ctrs[0].ID, Level: uint32(ctrs[0].Level)}}}})
	byCgroup := startTraceNamed(t, m, tracer.Config{Filters: tracer.Filters{Cgroups: []tracer.CgroupFilter{{ID: parent.ID, Level: uint32(parent.Level)}}}})

	srv := startServer(t, p, p.serverAddr, "18301", "hold")
	clients := []struct {
		name, cgroup, dir string
		cli               *proc
		port              int
	}{
		{name: "kubepods", cgroup: kubeCgroup, dir: kubeDir},
		{name: "libpod", cgroup: libpodCgroup, dir: libpodDir},
		{name: "host"},
	}
	for i := range clients {
		c := &clients[i]
		if c.dir != "" {
			c.cli = startHelperInCgroup(t, p.client, c.dir, "client", p.serverAddr, "18301")
			if got := procCgroup(t, c.cli.pid); got != c.cgroup {
				t.Fatalf("%s client is in cgroup %s, want %s", c.name, got, c.cgroup)
			}
		} else {
			c.cli = startHelper(t, p.client, "", "client", p.serverAddr, "18301")
			c.cgroup = procCgroup(t, c.cli.pid)
		}
		c.port = atoi(t, c.cli.expect("connected", startTimeout))
		c.cli.send("wait")
	}
	srv.send("abortall 3")
	srv.expect("abortall 3", startTimeout)
	for _, c := range clients {
		c.cli.expect("error", startTimeout)
	}

	received := func(port int) func(rec) bool {
		return and(typeIs("reset"), inNetns(p.clientIno), lport(port), func(r rec) bool { return r.str("direction") == "received" })
	}
	for _, c := range clients {
		r := all.waitFor(c.name+" client's reset", 1, eventTimeout, received(c.port))[0]
		if r.str("host") != "e2e-node" {
			t.Errorf("%s: host %q", c.name, r.str("host"))
		}
		if r.str("cgroup") != c.cgroup {
			t.Errorf("%s: cgroup %q, want %q (from the socket, not the task in softirq)", c.name, r.str("cgroup"), c.cgroup)
		}
		switch c.name {
		case "kubepods":
			if r.str("container_id") != ctrID || r.str("pod_uid") != podUID {
				t.Errorf("kubepods client: container_id %q pod_uid %q, want %s %s", r.str("container_id"), r.str("pod_uid"), ctrID, podUID)
			}
		case "libpod":
			if r.str("container_id") != libpodID || r.has("pod_uid") {
				t.Errorf("podman client: container_id %q pod_uid %q, want %s and none", r.str("container_id"), r.str("pod_uid"), libpodID)
			}
		case "host":
			if hasWorkloadFields(r) {
				t.Errorf("host client named a container or pod: %v", r)
			}
		}
	}
	// The close records (the verdict) carry them too.
	kc := all.waitFor("the kubepods client's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(clients[0].port)))[0]
	if kc.str("container_id") != ctrID || kc.str("pod_uid") != podUID || kc.str("host") != "e2e-node" {
		t.Errorf("close of the kubepods client: %v", kc)
	}

	byContainer.waitFor("the kubepods client's reset, filtered by --container", 1, eventTimeout, received(clients[0].port))
	byCgroup.waitFor("the podman client's reset, filtered by --cgroup of its parent", 1, eventTimeout, received(clients[1].port))
	for _, s := range []*session{all, byContainer, byCgroup} {
		s.stop()
		for _, r := range s.all(func(r rec) bool { return true }) {
			if r.str("host") != "e2e-node" {
				t.Errorf("record without host: %v", r)
			}
		}
	}
	for _, f := range []struct {
		name string
		s    *session
		keep int
	}{{"--container", byContainer, 0}, {"--cgroup", byCgroup, 1}} {
		for i, c := range clients {
			got := f.s.all(and(inNetns(p.clientIno), lport(c.port)))
			if i != f.keep && len(got) > 0 {
				t.Errorf("%s %s let through the %s client's records: %v", f.name, clients[f.keep].name, c.name, got)
			}
			if i == f.keep {
				for _, r := range got {
					if r.str("cgroup") != c.cgroup {
						t.Errorf("%s: record of another cgroup: %v", f.name, r)
					}
				}
			}
		}
		// Nothing of the server (host cgroup) either.
		if got := f.s.all(inNetns(p.serverIno)); len(got) > 0 {
			t.Errorf("%s let through the server's records: %v", f.name, got)
		}
	}
}

const podmanImage = "katrace-busybox"

// podmanImageReady imports a busybox image from the host's busybox-static
// (nothing can be pulled here), or skips saying what is missing.
func podmanImageReady(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman test: podman is not installed")
	}
	if exec.Command("podman", "image", "exists", podmanImage).Run() == nil {
		return
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("podman test: needs busybox (busybox-static) to make an image")
	}
	if out, err := exec.Command("file", "-L", busybox).CombinedOutput(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Skipf("podman test: %s is not statically linked (install busybox-static)", busybox)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", busybox, filepath.Join(root, "bin", "busybox"))
	for _, applet := range []string{"sh", "nc", "sleep", "test", "["} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "sh", "-c", "tar -C "+root+" -c . | podman import - "+podmanImage)
}

// TestPodmanContainer: a real podman container (runc: crun refuses this
// host's hybrid cgroup layout) whose connection is reset in softirq; its
// records carry the id podman reports, and --container keeps only them.
func TestPodmanContainer(t *testing.T) {
	requirePrivileges(t)
	m := cgroup2(t)
	podmanImageReady(t)
	p := newPair(t)
	srv := startServer(t, p, p.serverAddr, "18302", "hold")

	// The container connects once told to (podman exec touch /go), so
	// that the filtered katrace, which needs its cgroup, starts first.
	out := run(t, "podman", "run", "-d", "--runtime", "runc",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"--network", "ns:/run/netns/"+p.client, podmanImage,
		"sh", "-c", "while ! test -e /go; do sleep 0.05; done; sleep 3600 | nc "+p.serverAddr+" 18302")
	id := strings.TrimSpace(out)
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", "-t", "0", id).Run() })
	inspected := strings.TrimSpace(run(t, "podman", "inspect", "--format", "{{.Id}} {{.State.Pid}}", id))
	podmanID, pidText, _ := strings.Cut(inspected, " ")
	cg := procCgroup(t, atoi(t, pidText))
	if container.ParsePath(cg).ContainerID != podmanID {
		t.Fatalf("podman's container %s is in cgroup %s", podmanID, cg)
	}

	r := container.NewResolver(m, nil)
	cgs, err := r.ContainerCgroups(podmanID[:12])
	if err != nil || len(cgs) != 1 {
		t.Fatalf("cgroups of container %s: %v, %v", podmanID[:12], cgs, err)
	}
	all := startTraceNamed(t, m, tracer.Config{})
	filtered := startTraceNamed(t, m, tracer.Config{Filters: tracer.Filters{Cgroups: []tracer.CgroupFilter{{ID: cgs[0].ID, Level: uint32(cgs[0].Level)}}}})

	run(t, "podman", "exec", id, "sh", "-c", "echo > /go")
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(run(t, "ip", "netns", "exec", p.server, "ss", "-Htn", "state", "established", "sport", "= :18302"), p.clientAddr) {
		if time.Now().After(deadline) {
			t.Fatalf("the container did not connect within %v", startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.send("abortall 1")
	srv.expect("abortall 1", startTimeout)

	isReset := and(typeIs("reset"), inNetns(p.clientIno), func(r rec) bool { return r.str("direction") == "received" })
	rst := all.waitFor("the container's reset", 1, eventTimeout, isReset)[0]
	if rst.str("container_id") != podmanID || rst.str("cgroup") != cg || rst.str("comm") != "nc" {
		t.Errorf("reset of podman's container %s (cgroup %s): %v", podmanID, cg, rst)
	}
	frst := filtered.waitFor("the container's reset with --container", 1, eventTimeout, isReset)[0]
	if frst.str("container_id") != podmanID {
		t.Errorf("filtered reset: %v", frst)
	}
	all.stop()
	filtered.stop()
	if got := filtered.all(inNetns(p.serverIno)); len(got) > 0 {
		t.Errorf("--container %s let through the server's records: %v", podmanID[:12], got)
	}
	t.Logf("podman inspect: %s; katrace: %v", podmanID, rst)
}
