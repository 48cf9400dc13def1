package tracer

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// ownerIndex finds which process holds a socket inode, the way `ss -p` does:
// by reading /proc/*/fd. The kernel names a socket's owner only in the
// owner's own syscalls; accepted sockets and sockets opened before katrace
// started get theirs from here. A full scan is costly on a big host, so it
// runs at most once per minInterval, and only for an inode not found yet.
type ownerIndex struct {
	procRoot    string
	minInterval time.Duration
	lastScan    time.Time
	byInode     map[uint32]procOwner
	// wanted limits a scan to these pids when non-nil (--pid, --comm).
	wanted func(pid uint32, comm string) bool
}

type procOwner struct {
	pid  uint32
	comm string
}

func newOwnerIndex() *ownerIndex {
	return &ownerIndex{procRoot: "/proc", minInterval: 500 * time.Millisecond, byInode: map[uint32]procOwner{}}
}

// Lookup is an OwnerLookup.
func (x *ownerIndex) Lookup(inode uint32) (uint32, string, bool) {
	if o, ok := x.byInode[inode]; ok {
		return o.pid, o.comm, true
	}
	if time.Since(x.lastScan) < x.minInterval {
		return 0, "", false
	}
	x.scan()
	o, ok := x.byInode[inode]
	return o.pid, o.comm, ok
}

// scan rebuilds the index from /proc.
func (x *ownerIndex) scan() {
	x.lastScan = time.Now()
	clear(x.byInode)
	procs, err := os.ReadDir(x.procRoot)
	if err != nil {
		return
	}
	for _, p := range procs {
		pid64, err := strconv.ParseUint(p.Name(), 10, 32)
		if err != nil {
			continue
		}
		pid := uint32(pid64)
		comm := readComm(x.procRoot, p.Name())
		if x.wanted != nil && !x.wanted(pid, comm) {
			continue
		}
		fdDir := x.procRoot + "/" + p.Name() + "/fd"
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(fdDir + "/" + fd.Name())
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(target[len("socket:["):], "]"), 10, 32)
			if err != nil {
				continue
			}
			if _, seen := x.byInode[uint32(ino)]; !seen {
				x.byInode[uint32(ino)] = procOwner{pid: pid, comm: comm}
			}
		}
	}
}

// inodes lists every socket inode in the index.
func (x *ownerIndex) inodes() []uint32 {
	out := make([]uint32, 0, len(x.byInode))
	for ino := range x.byInode {
		out = append(out, ino)
	}
	return out
}

func readComm(procRoot, pid string) string {
	b, err := os.ReadFile(procRoot + "/" + pid + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}
