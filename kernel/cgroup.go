package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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

func cgroup2Mount(r io.Reader) (string, error) {
	var subtree string
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
		root, mountPoint := unescapeMountinfo(f[3]), unescapeMountinfo(f[4])
		if root == "/" {
			return mountPoint, nil
		}
		if subtree == "" {
			subtree = fmt.Sprintf("%s (the subtree %s)", mountPoint, root)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: read %s: %w", MountinfoPath, err)
	}
	if subtree != "" {
		return "", fmt.Errorf("%w at its root: only %s", ErrNoCgroup2, subtree)
	}
	return "", ErrNoCgroup2
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) the
// kernel writes in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
