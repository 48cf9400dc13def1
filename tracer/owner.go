package tracer

import (
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/procfs"
)

// ownerIndex finds which process holds a socket inode, from /proc. The
// kernel names a socket's owner only in the owner's own syscalls; sockets
// that did none since katrace started get theirs from here. A full scan is
// costly on a big host, so it runs at most once per minInterval, and only
// for an inode not found yet.
//
// A scan reads a link per open file of every process: on a host with
// 50,000 sockets, procfs.ScanProc's strings, slices and map made 12 MB of
// garbage per scan and kept ~100 bytes per socket, which showed as
// katrace's RSS (issue 11). This index is refilled in place, reads the
// directories and links into buffers it keeps, and keeps 8 bytes per
// socket (the pid; names are per process).
type ownerIndex struct {
	procRoot    string
	minInterval time.Duration
	lastScan    time.Time
	// byInode maps a socket inode to the lowest pid holding it.
	byInode map[uint32]uint32
	// comms names the processes in byInode.
	comms map[uint32]string
	// wanted limits a scan to these processes when non-nil (--pid, --comm).
	wanted func(pid uint32, comm string) bool

	procBuf, fdBuf []byte // getdents buffers
	linkBuf        [64]byte
}

func newOwnerIndex() *ownerIndex {
	return &ownerIndex{procRoot: "/proc", minInterval: 500 * time.Millisecond}
}

// Lookup is an OwnerLookup: the lowest pid holding the socket.
func (x *ownerIndex) Lookup(inode uint32) (uint32, string, bool) {
	pid, ok := x.byInode[inode]
	if !ok && time.Since(x.lastScan) >= x.minInterval {
		x.scan()
		pid, ok = x.byInode[inode]
	}
	if !ok {
		return 0, "", false
	}
	return pid, x.comms[pid], true
}

// scan rebuilds the index from /proc.
func (x *ownerIndex) scan() {
	x.lastScan = time.Now()
	if x.byInode == nil {
		x.byInode = make(map[uint32]uint32)
		x.comms = make(map[uint32]string)
		x.procBuf = make([]byte, 16<<10)
		x.fdBuf = make([]byte, 32<<10)
	}
	clear(x.byInode)
	clear(x.comms)
	procDir, err := unix.Open(x.procRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(procDir)
	_ = eachDirent(procDir, x.procBuf, func(name []byte) {
		pid, ok := parseUint32(name)
		if ok {
			x.scanProcess(pid, string(name))
		}
	})
}

// scanProcess adds the sockets in one process's file table.
func (x *ownerIndex) scanProcess(pid uint32, name string) {
	comm, commRead := "", false
	if x.wanted != nil {
		comm, commRead = procfs.ReadComm(x.procRoot, name), true
		if !x.wanted(pid, comm) {
			return
		}
	}
	fdDir, err := unix.Open(x.procRoot+"/"+name+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fdDir)
	_ = eachDirent(fdDir, x.fdBuf, func(fd []byte) {
		ino, ok := x.socketInode(fdDir, fd)
		if !ok {
			return
		}
		if !commRead {
			comm, commRead = procfs.ReadComm(x.procRoot, name), true
		}
		if held, ok := x.byInode[ino]; ok && held <= pid {
			return
		}
		x.byInode[ino] = pid
		x.comms[pid] = comm
	})
}

// socketInode reads the link fd (a NUL-terminated name in a dirent
// buffer) in dir and returns its inode when it is "socket:[N]".
func (x *ownerIndex) socketInode(dir int, fd []byte) (uint32, bool) {
	// unix.Readlinkat copies its path argument on every call; this is
	// called once per open file of the host.
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dir),
		uintptr(unsafe.Pointer(&fd[0])), uintptr(unsafe.Pointer(&x.linkBuf[0])), uintptr(len(x.linkBuf)), 0, 0)
	if errno != 0 {
		return 0, false
	}
	const prefix = "socket:["
	link := x.linkBuf[:n]
	if len(link) < len(prefix)+2 || string(link[:len(prefix)]) != prefix || link[len(link)-1] != ']' {
		return 0, false
	}
	return parseUint32(link[len(prefix) : len(link)-1])
}

// eachDirent calls fn with the name of every entry of the open directory
// dir, NUL-terminated in buf (the terminator is not part of the slice but
// follows it), without allocating.
func eachDirent(dir int, buf []byte, fn func(name []byte)) error {
	// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
	const nameOff = 19
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off+nameOff < n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen <= nameOff || off+reclen > n {
				return nil
			}
			rec := buf[off : off+reclen]
			end := nameOff
			for end < len(rec) && rec[end] != 0 {
				end++
			}
			if name := rec[nameOff:end]; end < len(rec) && string(name) != "." && string(name) != ".." {
				fn(name)
			}
			off += reclen
		}
	}
}

// parseUint32 parses a decimal number of 32 bits.
func parseUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

// inodes lists every socket inode in the index.
func (x *ownerIndex) inodes() []uint32 {
	out := make([]uint32, 0, len(x.byInode))
	for ino := range x.byInode {
		out = append(out, ino)
	}
	return out
}
