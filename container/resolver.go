package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/katrace/katrace/kernel"
	"github.com/katrace/katrace/record"
)

// ErrNoCgroup2 says the host has no cgroup v2 hierarchy mounted: katrace
// then leaves the cgroup, container and pod fields out.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy is mounted (cgroup, container and pod fields are left out)")

// Mount is where the cgroup v2 hierarchy is mounted.
type Mount struct {
	// Dir is the mount point: /sys/fs/cgroup on cgroup-v2-only hosts,
	// /sys/fs/cgroup/unified on hybrid ones.
	Dir string
	// Root is the mount's root inside the hierarchy ("/" unless katrace
	// runs in a cgroup namespace or sees a bind mount of a subtree).
	Root string
}

// FindCgroup2 finds the cgroup v2 mount in a mountinfo file
// (/proc/self/mountinfo): the whole hierarchy's when it is mounted, else a
// subtree's.
func FindCgroup2(mountinfo string) (Mount, error) {
	m, err := kernel.FindCgroup2In(mountinfo)
	if errors.Is(err, kernel.ErrNoCgroup2) {
		return Mount{}, ErrNoCgroup2
	}
	if err != nil {
		return Mount{}, err
	}
	return Mount(m), nil
}

// Exists reports whether the cgroup at path (relative to the cgroup2 root,
// as record.Workload.Cgroup gives it) is still there. Safe for concurrent
// use.
func (m Mount) Exists(path string) bool {
	rel := "/" + strings.Trim(filepath.Clean("/"+path), "/")
	fi, err := os.Stat(filepath.Join(m.Dir, rel))
	return err == nil && fi.IsDir()
}

// Attribution is what katrace knows about the workload in one cgroup: the
// record fields (empty when unknown), and how current its names are.
type Attribution struct {
	record.Workload

	// kubeGen is the kubelet snapshot the names were looked up in.
	kubeGen uint64
}

// Cgroup is one cgroup directory: what the kernel-side filter needs.
type Cgroup struct {
	ID uint64
	// Level is the depth below the hierarchy's root (the root is 0), the
	// kernel's cgroup->level.
	Level int
	Path  string
}

// Resolver turns cgroup ids into Attributions. It remembers every cgroup it
// has seen (up to MaxEntries) and walks the hierarchy again when asked for
// an id it does not know, at most once per MinWalkInterval. It is not safe
// for concurrent use: the tracer calls it from its one reading goroutine.
type Resolver struct {
	mount Mount
	// MinWalkInterval rate-limits walks of the hierarchy on a miss.
	MinWalkInterval time.Duration
	// MaxEntries bounds the cgroups remembered.
	MaxEntries int
	kube       *Kubelet

	byID     map[uint64]*Attribution
	missing  map[uint64]struct{}
	lastWalk time.Time
}

// NewResolver returns a resolver over the cgroup2 mount m; kube, when not
// nil, adds pod and container names.
func NewResolver(m Mount, kube *Kubelet) *Resolver {
	return &Resolver{
		mount:           m,
		MinWalkInterval: time.Second,
		MaxEntries:      65536,
		kube:            kube,
		byID:            map[uint64]*Attribution{},
		missing:         map[uint64]struct{}{},
	}
}

// Mount is the cgroup2 mount the resolver reads.
func (r *Resolver) Mount() Mount { return r.mount }

// Attribution returns what is known of cgroup id, or nil. The result is
// shared and stays valid; callers must not modify it. A hit allocates
// nothing.
func (r *Resolver) Attribution(id uint64) *Attribution {
	if id == 0 {
		return nil
	}
	a := r.byID[id]
	if a == nil {
		// An id missing from the last walk is a cgroup removed before it
		// (its sockets outlive it): walking again would not find it.
		if _, gone := r.missing[id]; gone || time.Since(r.lastWalk) < r.MinWalkInterval {
			return nil
		}
		r.Walk()
		if a = r.byID[id]; a == nil {
			if len(r.missing) >= maxMissing {
				clear(r.missing)
			}
			r.missing[id] = struct{}{}
			return nil
		}
	}
	if r.kube != nil && a.PodUID != "" {
		r.kube.name(a)
	}
	return a
}

// maxMissing bounds the ids remembered as not found.
const maxMissing = 4096

// Workload is Attribution as the tracer's hook wants it: the record fields
// of cgroup id, or nil when unknown.
func (r *Resolver) Workload(id uint64) *record.Workload {
	if a := r.Attribution(id); a != nil {
		return &a.Workload
	}
	return nil
}

// Walk reads the whole hierarchy again. Cgroups removed since the last walk
// are kept while there is room (their sockets may still be open: a cgroup
// id is never reused), and dropped first when there is not.
func (r *Resolver) Walk() {
	r.lastWalk = time.Now()
	next := make(map[uint64]*Attribution, len(r.byID))
	_ = r.walk(func(c Cgroup) bool {
		if len(next) >= r.MaxEntries {
			return false
		}
		a := r.byID[c.ID]
		if a == nil {
			id := ParsePath(c.Path)
			a = &Attribution{Workload: record.Workload{Cgroup: c.Path, ContainerID: id.ContainerID, PodUID: id.PodUID}}
		}
		next[c.ID] = a
		return true
	})
	for id, a := range r.byID {
		if len(next) >= r.MaxEntries {
			break
		}
		if _, ok := next[id]; !ok {
			next[id] = a
		}
	}
	r.byID = next
}

// HasContainers reports whether the last walk saw a container's or a pod's
// cgroup.
func (r *Resolver) HasContainers() bool {
	for _, a := range r.byID {
		if a.Known() {
			return true
		}
	}
	return false
}

// walk calls fn for every cgroup under the mount until fn returns false.
func (r *Resolver) walk(fn func(Cgroup) bool) error {
	stop := errors.New("stop")
	rootLevel := depth(r.mount.Root)
	err := filepath.WalkDir(r.mount.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed during the walk: skip it.
			if p == r.mount.Dir {
				return err
			}
			return fs.SkipDir
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fs.SkipDir
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fs.SkipDir
		}
		rel := r.relative(p)
		if !fn(Cgroup{ID: st.Ino, Level: rootLevel + depth(rel), Path: rel}) {
			return stop
		}
		return nil
	})
	if errors.Is(err, stop) {
		return nil
	}
	return err
}

// relative turns a directory under the mount into a cgroup path as
// /proc/PID/cgroup shows it.
func (r *Resolver) relative(dir string) string {
	rel := strings.TrimPrefix(dir, r.mount.Dir)
	if rel == "" {
		return "/"
	}
	return rel
}

func depth(p string) int {
	p = strings.Trim(p, "/")
	if p == "" {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// Lookup finds the cgroup at path, given as /proc/PID/cgroup shows it
// (relative to the cgroup2 root) or as a directory under the mount.
func (r *Resolver) Lookup(path string) (Cgroup, error) {
	rel := path
	if p, ok := strings.CutPrefix(filepath.Clean(path), filepath.Clean(r.mount.Dir)); ok && (p == "" || p[0] == '/') {
		rel = p
	}
	rel = "/" + strings.Trim(filepath.Clean("/"+rel), "/")
	dir := filepath.Join(r.mount.Dir, rel)
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return Cgroup{}, fmt.Errorf("no cgroup %s under %s", path, r.mount.Dir)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return Cgroup{}, fmt.Errorf("%s is not a cgroup (not a directory under %s)", path, r.mount.Dir)
	}
	return Cgroup{ID: st.Ino, Level: depth(r.mount.Root) + depth(rel), Path: rel}, nil
}

// ContainerCgroups lists the cgroups of the containers whose id starts with
// prefix: the outermost cgroup of each (podman's "container" leaf and a
// runtime's nested ones are below it, and the kernel filter keeps a cgroup's
// descendants).
func (r *Resolver) ContainerCgroups(prefix string) ([]Cgroup, error) {
	var out []Cgroup
	seen := map[string]bool{}
	err := r.walk(func(c Cgroup) bool {
		id := ParsePath(c.Path).ContainerID
		if id != "" && strings.HasPrefix(id, prefix) && !seen[id] {
			seen[id] = true
			out = append(out, c)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("reading the cgroup hierarchy at %s: %w", r.mount.Dir, err)
	}
	return out, nil
}

// ProcCgroup reads the cgroup v2 path of process pid: the "0::" line of
// procRoot/PID/cgroup. It is "" (and no error) on a host without cgroup v2,
// where the file has no such line.
func ProcCgroup(procRoot string, pid uint32) (string, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("reading the cgroup of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path, nil
		}
	}
	return "", nil
}

// ByPath is Workload for a cgroup given by its path (as ProcCgroup reads
// it): what is known of the cgroup, or, for a cgroup the last walk did not
// see, what its path says.
func (r *Resolver) ByPath(path string) record.Workload {
	if path == "" {
		return record.Workload{}
	}
	if c, err := r.Lookup(path); err == nil {
		if a := r.Attribution(c.ID); a != nil {
			return a.Workload
		}
	}
	id := ParsePath(path)
	return record.Workload{Cgroup: path, ContainerID: id.ContainerID, PodUID: id.PodUID}
}
