package tracer

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/katrace/katrace/procfs"
)

// fakeProc builds a /proc with processes holding links in fd/.
func fakeProc(t *testing.T, procs map[string]struct {
	comm  string
	links []string
}) string {
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(p.comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for i, l := range p.links {
			if err := os.Symlink(l, filepath.Join(dir, "fd", strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// The index answers what procfs.ScanProc's lowest pid does.
func TestOwnerIndexMatchesScanProc(t *testing.T) {
	type proc = struct {
		comm  string
		links []string
	}
	many := make([]string, 3000) // more than one getdents buffer
	for i := range many {
		many[i] = "socket:[" + strconv.Itoa(500000+i) + "]"
	}
	root := fakeProc(t, map[string]proc{
		"1":     {"init", []string{"/dev/null", "socket:[100]"}},
		"42":    {"nginx", []string{"socket:[100]", "socket:[200]", "pipe:[300]", "net:[4026531840]", "anon_inode:[eventfd]"}},
		"4242":  {"worker", append([]string{"socket:[200]", "socket:[4294967295]", "socket:[4294967296]", "socket:[]", "socket:[12x]"}, many...)},
		"self":  {"ignored", []string{"socket:[999]"}},
		"31337": {"nosock", []string{"/etc/passwd", "/a/very/long/path/that/is/longer/than/the/sixty-four/bytes/of/the/link/buffer"}},
	})
	want := procfs.ScanProc(root, nil).Owners
	x := &ownerIndex{procRoot: root}
	x.scan()
	got := 0
	for ino, owners := range want {
		if ino > 1<<32-1 {
			continue
		}
		got++
		pid, comm, ok := x.Lookup(uint32(ino))
		if !ok || pid != owners[0].PID || comm != owners[0].Comm {
			t.Errorf("inode %d: got %d %q %v, want %+v", ino, pid, comm, ok, owners[0])
		}
	}
	if len(x.inodes()) != got {
		t.Errorf("%d inodes indexed, want %d", len(x.inodes()), got)
	}
	if pid, _, _ := x.Lookup(100); pid != 1 {
		t.Errorf("inode 100: pid %d, want the lowest, 1", pid)
	}
	if _, _, ok := x.Lookup(999); ok {
		t.Error("a non-numeric /proc entry was read")
	}

	// wanted limits the scan.
	x = &ownerIndex{procRoot: root, wanted: func(pid uint32, comm string) bool { return comm == "worker" }}
	x.scan()
	if pid, comm, ok := x.Lookup(200); !ok || pid != 4242 || comm != "worker" {
		t.Errorf("inode 200 with --comm worker: got %d %q %v", pid, comm, ok)
	}
	if _, _, ok := x.Lookup(100); ok {
		t.Error("a process --comm does not select was read")
	}
}

// Against the real /proc: katrace's own listening socket.
func TestOwnerIndexFindsOwnSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	x := newOwnerIndex()
	pid, _, ok := x.Lookup(uint32(st.Ino))
	if !ok || pid != uint32(os.Getpid()) {
		t.Fatalf("own socket %d: got pid %d %v, want %d", st.Ino, pid, ok, os.Getpid())
	}
}

// A scan of a big file table allocates next to nothing once the index
// has its size.
func TestOwnerIndexScanAllocations(t *testing.T) {
	type proc = struct {
		comm  string
		links []string
	}
	links := make([]string, 5000)
	for i := range links {
		links[i] = "socket:[" + strconv.Itoa(1000+i) + "]"
	}
	x := &ownerIndex{procRoot: fakeProc(t, map[string]proc{"7": {"holder", links}})}
	x.scan()
	if n := testing.AllocsPerRun(5, x.scan); n > 50 {
		t.Errorf("%.0f allocations per scan of 5000 sockets, want a few per process", n)
	}
}
