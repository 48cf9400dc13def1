package procfs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// A fake /proc: two processes sharing socket 42, one holding 7 and a
// network namespace open.
func TestScanProc(t *testing.T) {
	root := t.TempDir()
	mk := func(pid int, comm string, links map[string]string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for name, target := range links {
			if err := os.Symlink(target, filepath.Join(dir, "fd", name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk(200, "worker", map[string]string{"3": "socket:[42]", "4": "socket:[7]", "5": "net:[4026532000]"})
	mk(100, "master", map[string]string{"3": "socket:[42]", "4": "/dev/null", "5": "pipe:[9]"})
	if err := os.WriteFile(filepath.Join(root, "version"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	sc := ScanProc(root, nil)
	if got := sc.Owners[42]; len(got) != 2 || got[0] != (Owner{100, "master"}) || got[1] != (Owner{200, "worker"}) {
		t.Errorf("socket 42: %v", got)
	}
	if got := sc.Owners[7]; len(got) != 1 || got[0].PID != 200 {
		t.Errorf("socket 7: %v", got)
	}
	if sc.NetNS[4026532000] == "" {
		t.Errorf("namespace held open not found: %v", sc.NetNS)
	}
	only := ScanProc(root, func(_ uint32, comm string) bool { return comm == "worker" })
	if got := only.Owners[42]; len(got) != 1 || got[0].PID != 200 {
		t.Errorf("wanted filter: %v", got)
	}
}
