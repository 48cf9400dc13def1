package container

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

func writeMountinfo(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindCgroup2(t *testing.T) {
	for _, tc := range []struct {
		name, mountinfo string
		want            Mount
		err             error
	}{
		{"v2 only", `24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`, Mount{Dir: "/sys/fs/cgroup", Root: "/"}, nil},
		// This machine: v1 controllers, v2 at unified.
		{"hybrid", `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`, Mount{Dir: "/sys/fs/cgroup/unified", Root: "/"}, nil},
		{"bind of a subtree first, whole hierarchy preferred", `50 40 0:24 /kubepods.slice /mnt/pods rw - cgroup2 cgroup2 rw
51 40 0:24 / /host/sys/fs/cgroup rw - cgroup2 cgroup2 rw
`, Mount{Dir: "/host/sys/fs/cgroup", Root: "/"}, nil},
		{"escaped mount point", `41 31 0:38 / /mnt/my\040cgroup rw,relatime - cgroup2 cgroup2 rw
`, Mount{Dir: "/mnt/my cgroup", Root: "/"}, nil},
		{"optional fields", `41 31 0:38 / /sys/fs/cgroup rw,relatime shared:9 master:2 - cgroup2 cgroup2 rw
`, Mount{Dir: "/sys/fs/cgroup", Root: "/"}, nil},
		{"v1 only", `32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /mnt/cgroup2-lookalike rw,relatime - tmpfs cgroup2 rw
`, Mount{}, ErrNoCgroup2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindCgroup2(writeMountinfo(t, tc.mountinfo))
			if err != tc.err || got != tc.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func inode(t *testing.T, p string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A directory tree stands in for the cgroup2 mount: a cgroup's id is its
// directory's inode number there too.
func TestResolverAttribution(t *testing.T) {
	root := t.TempDir()
	podDir := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"
	ctrDir := podDir + "/cri-containerd-" + id64 + ".scope"
	if err := os.MkdirAll(filepath.Join(root, ctrDir), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(Mount{Dir: root, Root: "/"}, nil)
	r.MinWalkInterval = time.Hour

	a := r.Attribution(inode(t, filepath.Join(root, ctrDir)))
	if a == nil || a.Cgroup != ctrDir || a.ContainerID != id64 || a.PodUID != uid {
		t.Fatalf("container cgroup: %+v", a)
	}
	if p := r.Attribution(inode(t, filepath.Join(root, podDir))); p == nil || p.ContainerID != "" || p.PodUID != uid {
		t.Errorf("pod cgroup: %+v", p)
	}
	if h := r.Attribution(inode(t, root)); h == nil || h.Cgroup != "/" || h.ContainerID != "" || h.PodUID != "" {
		t.Errorf("root cgroup: %+v", h)
	}
	if r.Attribution(0) != nil {
		t.Error("id 0 (no cgroup read) resolved")
	}

	// A cgroup made after the walk is not found until the rate limit
	// allows another walk.
	late := "/libpod_parent/libpod-" + id64b
	if err := os.MkdirAll(filepath.Join(root, late), 0o755); err != nil {
		t.Fatal(err)
	}
	lateID := inode(t, filepath.Join(root, late))
	if r.Attribution(lateID) != nil {
		t.Fatal("a miss walked again within MinWalkInterval")
	}
	r.MinWalkInterval = 0
	if l := r.Attribution(lateID); l == nil || l.ContainerID != id64b || l.Cgroup != late {
		t.Fatalf("new cgroup after a walk: %+v", l)
	}
	// The same Attribution is handed out again: no allocation per event.
	if allocs := testing.AllocsPerRun(100, func() { r.Attribution(lateID) }); allocs != 0 {
		t.Errorf("a hit allocates %v times", allocs)
	}
}

func TestResolverIsBounded(t *testing.T) {
	root := t.TempDir()
	for i := range 20 {
		if err := os.MkdirAll(filepath.Join(root, "s", string(rune('a'+i))), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResolver(Mount{Dir: root, Root: "/"}, nil)
	r.MaxEntries = 5
	r.Walk()
	if len(r.byID) != 5 {
		t.Errorf("remembered %d cgroups, bound is 5", len(r.byID))
	}
}

func TestResolverLookupAndContainerCgroups(t *testing.T) {
	root := t.TempDir()
	ctr := "/machine.slice/libpod-" + id64 + ".scope"
	for _, d := range []string{ctr + "/container", "/machine.slice/libpod-conmon-" + id64 + ".scope", "/system.slice/docker-" + id64b + ".scope"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResolver(Mount{Dir: root, Root: "/"}, nil)

	for _, path := range []string{ctr, filepath.Join(root, ctr), ctr + "/"} {
		c, err := r.Lookup(path)
		if err != nil || c.Path != ctr || c.Level != 2 || c.ID != inode(t, filepath.Join(root, ctr)) {
			t.Errorf("Lookup(%q) = %+v, %v", path, c, err)
		}
	}
	if _, err := r.Lookup("/machine.slice/nope"); err == nil {
		t.Error("Lookup of a missing cgroup succeeded")
	}
	if _, err := r.Lookup(ctr + "/../../../../etc"); err == nil {
		t.Error("Lookup escaped the mount")
	}

	got, err := r.ContainerCgroups(id64[:12])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != ctr || got[0].Level != 2 {
		t.Errorf("ContainerCgroups(%s) = %+v, want only the scope (not conmon, not the leaf)", id64[:12], got)
	}
	if got, _ := r.ContainerCgroups("ffffffffffff"); len(got) != 0 {
		t.Errorf("ContainerCgroups of an unknown id = %+v", got)
	}
}

func TestResolverLevelsUnderAMountedSubtree(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(Mount{Dir: root, Root: "/kubepods.slice"}, nil)
	c, err := r.Lookup("/a")
	if err != nil || c.Level != 2 {
		t.Errorf("Lookup under a subtree mount: %+v, %v; want level 2", c, err)
	}
}

// A socket can outlive its container's cgroup: what was learned stays, and
// an id no walk finds does not make every event walk again.
func TestResolverRemovedCgroupsAndMisses(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "libpod_parent", "libpod-"+id64)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id := inode(t, dir)
	r := NewResolver(Mount{Dir: root, Root: "/"}, nil)
	r.MinWalkInterval = 0
	if a := r.Attribution(id); a == nil || a.ContainerID != id64 {
		t.Fatalf("before removal: %+v", a)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	r.Walk()
	if a := r.Attribution(id); a == nil || a.ContainerID != id64 {
		t.Errorf("after removal: %+v", a)
	}

	const never = 1 << 62
	if r.Attribution(never) != nil {
		t.Fatal("an unknown id resolved")
	}
	walked := r.lastWalk
	for range 100 {
		r.Attribution(never)
	}
	if r.lastWalk != walked {
		t.Error("a known miss walked the hierarchy again")
	}
}

// ProcCgroup reads the "0::" line; on a hybrid host it is the last of
// several, on a v1-only host there is none.
func TestProcCgroup(t *testing.T) {
	proc := t.TempDir()
	for pid, text := range map[string]string{
		"10": "12:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n0::/machine.slice/libpod-" + id64 + ".scope/container\n",
		"11": "0::/\n",
		"12": "12:pids:/\n1:name=systemd:/\n",
	} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for pid, want := range map[uint32]string{10: "/machine.slice/libpod-" + id64 + ".scope/container", 11: "/", 12: ""} {
		if got, err := ProcCgroup(proc, pid); err != nil || got != want {
			t.Errorf("ProcCgroup(%d) = %q, %v; want %q", pid, got, err, want)
		}
	}
	if _, err := ProcCgroup(proc, 13); err == nil {
		t.Error("a process without /proc entry had a cgroup")
	}
}

// ByPath names a cgroup that exists from the walk, and one that is gone
// (its process still listed) from its path alone.
func TestResolverByPath(t *testing.T) {
	root := t.TempDir()
	ctr := "/machine.slice/libpod-" + id64 + ".scope"
	if err := os.MkdirAll(filepath.Join(root, ctr, "container"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(Mount{Dir: root, Root: "/"}, nil)
	r.Walk()
	if w := r.ByPath(ctr + "/container"); w.ContainerID != id64 || w.Cgroup != ctr+"/container" {
		t.Errorf("ByPath of a known cgroup: %+v", w)
	}
	gone := "/system.slice/docker-" + id64b + ".scope"
	if w := r.ByPath(gone); w.ContainerID != id64b || w.Cgroup != gone {
		t.Errorf("ByPath of a removed cgroup: %+v", w)
	}
	if w := r.ByPath("/user.slice"); w.Known() || w.Cgroup != "/user.slice" {
		t.Errorf("ByPath of a host cgroup: %+v", w)
	}
	if w := r.ByPath(""); w != (record.Workload{}) {
		t.Errorf("ByPath(\"\") = %+v, want nothing", w)
	}
}

func TestMountExists(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "libpod_parent", "libpod-"+id64), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := Mount{Dir: root, Root: "/"}
	for path, want := range map[string]bool{
		"/libpod_parent/libpod-" + id64: true, "/": true, "/libpod_parent/libpod-" + id64b: false,
		"/cgroup.procs": false, "/../../etc": false,
	} {
		if got := m.Exists(path); got != want {
			t.Errorf("Exists(%q) = %v, want %v", path, got, want)
		}
	}
}
