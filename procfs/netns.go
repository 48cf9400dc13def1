package procfs

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// A TCP socket iterator, like sock_diag, answers for one network namespace:
// the namespace of the thread that opens it. To reach every socket on the
// host, read each namespace from a thread that has entered it.

// AddNamedNetns adds to m (namespace inode → path) the namespaces
// bind-mounted by `ip netns add`.
func AddNamedNetns(m map[uint32]string) {
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

// CurrentNetns is the inode of the calling thread's network namespace.
func CurrentNetns() uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0
	}
	return uint32(st.Ino)
}

// InNetns runs fn on a thread inside the network namespace ino, which path
// opens. The thread is locked and never unlocked, so the Go runtime ends
// it after fn: no other goroutine ever runs in the foreign namespace.
func InNetns(ino uint32, path string, fn func() error) error {
	if ino == CurrentNetns() {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("opening network namespace %d (%s): %w", ino, path, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			done <- fmt.Errorf("entering network namespace %d (%s): %w", ino, path, err)
			return
		}
		if got := CurrentNetns(); got != ino {
			done <- fmt.Errorf("entered network namespace %d, not %d (%s)", got, ino, path)
			return
		}
		done <- fn()
	}()
	return <-done
}
