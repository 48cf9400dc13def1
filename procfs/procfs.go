// Package procfs finds, from /proc, which processes hold which sockets and
// which network namespaces they use, the way `ss -p` and lsof do: by
// reading the links in /proc/PID/fd.
package procfs

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// Owner is a process holding a socket in its file table.
type Owner struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
}

// Scan is what one pass over /proc finds.
type Scan struct {
	// Owners maps a socket inode to every process that holds it (inherited
	// over fork, passed over a Unix socket), lowest pid first, each once.
	Owners map[uint64][]Owner
	// NetNS maps a network namespace inode to a path that opens it: a
	// process's ns/net, or an fd that holds the namespace open.
	NetNS map[uint32]string
}

// ScanProc reads procRoot (normally /proc). When wanted is not nil, only
// the processes it accepts are read.
func ScanProc(procRoot string, wanted func(pid uint32, comm string) bool) Scan {
	sc := Scan{Owners: map[uint64][]Owner{}, NetNS: map[uint32]string{}}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return sc
	}
	for _, p := range procs {
		pid64, err := strconv.ParseUint(p.Name(), 10, 32)
		if err != nil {
			continue
		}
		pid := uint32(pid64)
		comm := ""
		if wanted != nil {
			if comm = ReadComm(procRoot, p.Name()); !wanted(pid, comm) {
				continue
			}
		}
		dir := procRoot + "/" + p.Name()
		if t, err := os.Readlink(dir + "/ns/net"); err == nil {
			if ino, ok := inodeOf(t, "net"); ok {
				if _, seen := sc.NetNS[uint32(ino)]; !seen {
					sc.NetNS[uint32(ino)] = dir + "/ns/net"
				}
			}
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link := dir + "/fd/" + fd.Name()
			t, err := os.Readlink(link)
			if err != nil {
				continue
			}
			if ino, ok := inodeOf(t, "net"); ok {
				if _, seen := sc.NetNS[uint32(ino)]; !seen {
					sc.NetNS[uint32(ino)] = link
				}
				continue
			}
			ino, ok := inodeOf(t, "socket")
			if !ok {
				continue
			}
			if comm == "" {
				comm = ReadComm(procRoot, p.Name())
			}
			owners := sc.Owners[ino]
			if n := len(owners); n > 0 && owners[n-1].PID == pid {
				continue
			}
			sc.Owners[ino] = append(owners, Owner{PID: pid, Comm: comm})
		}
	}
	for _, owners := range sc.Owners {
		slices.SortFunc(owners, func(a, b Owner) int { return int(a.PID) - int(b.PID) })
	}
	return sc
}

// ReadComm is a process's name, as /proc/PID/comm gives it.
func ReadComm(procRoot, pid string) string {
	b, err := os.ReadFile(procRoot + "/" + pid + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}

// inodeOf reads links of the form "socket:[12345]" or "net:[4026531840]".
func inodeOf(target, kind string) (uint64, bool) {
	if !strings.HasPrefix(target, kind+":[") || !strings.HasSuffix(target, "]") {
		return 0, false
	}
	ino, err := strconv.ParseUint(target[len(kind)+2:len(target)-1], 10, 64)
	return ino, err == nil
}
