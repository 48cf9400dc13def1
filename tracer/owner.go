package tracer

import (
	"time"

	"github.com/katrace/katrace/procfs"
)

// ownerIndex finds which process holds a socket inode, from /proc. The
// kernel names a socket's owner only in the owner's own syscalls; sockets
// that did none since katrace started get theirs from here. A full scan is
// costly on a big host, so it runs at most once per minInterval, and only
// for an inode not found yet.
type ownerIndex struct {
	procRoot    string
	minInterval time.Duration
	lastScan    time.Time
	byInode     map[uint64][]procfs.Owner
	// wanted limits a scan to these processes when non-nil (--pid, --comm).
	wanted func(pid uint32, comm string) bool
}

func newOwnerIndex() *ownerIndex {
	return &ownerIndex{procRoot: "/proc", minInterval: 500 * time.Millisecond}
}

// Lookup is an OwnerLookup: the lowest pid holding the socket.
func (x *ownerIndex) Lookup(inode uint32) (uint32, string, bool) {
	owners, ok := x.byInode[uint64(inode)]
	if !ok && time.Since(x.lastScan) >= x.minInterval {
		x.scan()
		owners, ok = x.byInode[uint64(inode)]
	}
	if !ok || len(owners) == 0 {
		return 0, "", false
	}
	return owners[0].PID, owners[0].Comm, true
}

// scan rebuilds the index from /proc.
func (x *ownerIndex) scan() {
	x.lastScan = time.Now()
	x.byInode = procfs.ScanProc(x.procRoot, x.wanted).Owners
}

// inodes lists every socket inode in the index.
func (x *ownerIndex) inodes() []uint32 {
	out := make([]uint32, 0, len(x.byInode))
	for ino := range x.byInode {
		out = append(out, uint32(ino))
	}
	return out
}
