package sockets

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// A TCP socket iterator, like sock_diag, answers for one network namespace:
// the namespace of the thread that opens it. To see the whole host,
// Snapshot finds every network namespace (those of every process, those
// held open by a file descriptor, and those bind-mounted under /run/netns)
// and reads each from a thread that has entered it.

// netnsRef is a network namespace and a path that opens it.
type netnsRef struct {
	ino  uint32
	path string
}

// addNamedNetns adds the namespaces bind-mounted by `ip netns add`.
func addNamedNetns(m map[uint32]string) {
	for _, dir := range []string{"/run/netns", "/var/run/netns"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			var st unix.Stat_t
			path := dir + "/" + e.Name()
			if err := unix.Stat(path, &st); err != nil {
				continue
			}
			if _, seen := m[uint32(st.Ino)]; !seen {
				m[uint32(st.Ino)] = path
			}
		}
	}
}

// currentNetns is the inode of the calling thread's network namespace.
func currentNetns() uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0
	}
	return uint32(st.Ino)
}

// inNetns runs fn on a thread inside the namespace that path opens. The
// thread is locked and never unlocked, so the Go runtime ends it after fn:
// no other goroutine ever runs in the foreign namespace.
func inNetns(ref netnsRef, fn func() error) error {
	if ref.ino == currentNetns() {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(ref.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("opening network namespace %d (%s): %w", ref.ino, ref.path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- fmt.Errorf("entering network namespace %d (%s): %w", ref.ino, ref.path, err)
			return
		}
		if got := currentNetns(); got != ref.ino {
			done <- fmt.Errorf("entered network namespace %d, not %d (%s)", got, ref.ino, ref.path)
			return
		}
		done <- fn()
	}()
	return <-done
}
