package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MountinfoPath lists this process's mounts.
const MountinfoPath = "/proc/self/mountinfo"

// ErrNoCgroup2 means no cgroup v2 hierarchy is mounted here (a host with
// cgroup v1 only, or a container that does not see the host's).
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy is mounted")

// Cgroup2Mount is where the root of the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on v2-only hosts, /sys/fs/cgroup/unified on hybrid ones.
func Cgroup2Mount() (string, error) {
	return Cgroup2MountIn(MountinfoPath)
}

// Cgroup2MountIn is Cgroup2Mount reading a mountinfo file at path.
func Cgroup2MountIn(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	return cgroup2Mount(f)
}

// Cgroup2 is a mount of the cgroup v2 hierarchy.
type Cgroup2 struct {
	// Dir is the mount point: /sys/fs/cgroup on cgroup-v2-only hosts,
	// /sys/fs/cgroup/unified on hybrid ones.
	Dir string
	// Root is the mount's root inside the hierarchy: "/" unless only a
	// subtree is mounted (a bind mount, a cgroup namespace).
	Root string
}

// FindCgroup2In finds the cgroup v2 mount in a mountinfo file: the whole
// hierarchy's when it is mounted, else the first subtree's. The error is
// ErrNoCgroup2 when there is none.
func FindCgroup2In(path string) (Cgroup2, error) {
	f, err := os.Open(path)
	if err != nil {
		return Cgroup2{}, fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	return findCgroup2(f)
}

func findCgroup2(r io.Reader) (Cgroup2, error) {
	var found Cgroup2
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 {
			continue
		}
		m := Cgroup2{Root: unescapeMountinfo(f[3]), Dir: unescapeMountinfo(f[4])}
		if m.Root == "/" {
			return m, nil
		}
		if found.Dir == "" {
			found = m
		}
	}
	if err := sc.Err(); err != nil {
		return Cgroup2{}, fmt.Errorf("find the cgroup v2 mount: read %s: %w", MountinfoPath, err)
	}
	if found.Dir == "" {
		return Cgroup2{}, ErrNoCgroup2
	}
	return found, nil
}

// cgroup2Mount is the mount point of the whole hierarchy.
func cgroup2Mount(r io.Reader) (string, error) {
	m, err := findCgroup2(r)
	if err != nil {
		return "", err
	}
	if m.Root != "/" {
		return "", fmt.Errorf("%w at its root: only %s (the subtree %s)", ErrNoCgroup2, m.Dir, m.Root)
	}
	return m.Dir, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) the
// kernel writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
