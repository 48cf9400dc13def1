package sockets

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

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

// procScan is what one pass over /proc finds.
type procScan struct {
	owners map[uint64][]Owner
	netns  map[uint32]string // inode → a path that opens it
}

// inodeOf reads links of the form "socket:[12345]" or "net:[4026531840]".
func inodeOf(target, kind string) (uint64, bool) {
	if !strings.HasPrefix(target, kind+":[") || !strings.HasSuffix(target, "]") {
		return 0, false
	}
	ino, err := strconv.ParseUint(target[len(kind)+2:len(target)-1], 10, 64)
	return ino, err == nil
}

// scanProc maps every socket inode to each process that holds it, the way
// ss -p and lsof do, by reading the links in /proc/PID/fd; and collects
// every network namespace a process is in or holds open. A socket held by
// several processes (inherited over fork, passed over a Unix socket) lists
// them all, lowest pid first, each once.
func scanProc(procRoot string) procScan {
	sc := procScan{owners: map[uint64][]Owner{}, netns: map[uint32]string{}}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return sc
	}
	for _, p := range procs {
		pid, err := strconv.ParseUint(p.Name(), 10, 32)
		if err != nil {
			continue
		}
		dir := procRoot + "/" + p.Name()
		if t, err := os.Readlink(dir + "/ns/net"); err == nil {
			if ino, ok := inodeOf(t, "net"); ok {
				if _, seen := sc.netns[uint32(ino)]; !seen {
					sc.netns[uint32(ino)] = dir + "/ns/net"
				}
			}
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		comm := ""
		for _, fd := range fds {
			link := dir + "/fd/" + fd.Name()
			t, err := os.Readlink(link)
			if err != nil {
				continue
			}
			if ino, ok := inodeOf(t, "net"); ok {
				if _, seen := sc.netns[uint32(ino)]; !seen {
					sc.netns[uint32(ino)] = link
				}
				continue
			}
			ino, ok := inodeOf(t, "socket")
			if !ok {
				continue
			}
			if comm == "" {
				comm = readComm(procRoot, p.Name())
			}
			os := sc.owners[ino]
			if n := len(os); n > 0 && os[n-1].PID == uint32(pid) {
				continue
			}
			sc.owners[ino] = append(os, Owner{PID: uint32(pid), Comm: comm})
		}
	}
	for _, os := range sc.owners {
		slices.SortFunc(os, func(a, b Owner) int { return cmpU(a.PID, b.PID) })
	}
	return sc
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

func readComm(procRoot, pid string) string {
	b, err := os.ReadFile(procRoot + "/" + pid + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
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
