package e2e

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// fillSockSlots takes every entry of this process's sock_slots maps (the
// in-process tracer's) for a cookie no socket has, so that every socket
// made from now on goes without a slot, as when other sockets hold its
// entry on a busy host. Returns how many maps it filled.
func fillSockSlots(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("listing this process's files: %v", err)
	}
	filled := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || target != "anon_inode:bpf-map" {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue
		}
		var id uint32
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "map_id:"); ok {
				id = uint32(atoi(t, strings.TrimSpace(v)))
			}
		}
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			continue
		}
		mi, err := m.Info()
		if err != nil || mi.Name != "sock_slots" {
			m.Close()
			continue
		}
		value := make([]byte, mi.ValueSize)
		for i := uint32(0); i < mi.MaxEntries; i++ {
			// Cookies count up from 1: this one is never a socket's.
			binary.LittleEndian.PutUint64(value, 1<<63|uint64(i))
			if err := m.Update(i, value, ebpf.UpdateAny); err != nil {
				m.Close()
				t.Fatalf("filling sock_slots entry %d: %v", i, err)
			}
		}
		m.Close()
		filled++
	}
	return filled
}

// TestKeepaliveOwnerWithoutSlot: a keepalive socket whose slot another
// socket holds still names its owner on the keepalive probe line (the
// owner goes to the owners map by cookie for the keepalive timer), and its
// reset and close do too.
func TestKeepaliveOwnerWithoutSlot(t *testing.T) {
	requirePrivileges(t)
	probeAnsweredByNAT(t, "18406", func() {
		if fillSockSlots(t) == 0 {
			t.Fatal("no sock_slots map among this process's files: the tracer's maps were not found")
		}
	})
}
