package sockets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/katrace/katrace/container"
	"github.com/katrace/katrace/record"
)

const ctrID = "4c9dc594ddf89160f6d00a686f49bd8ad183796916f9c0ed701df379e2d92dd8"

// Each owned socket is named after its first owner's cgroup; unowned
// sockets (timewait) and a process gone since the scan get nothing.
func TestAddWorkloads(t *testing.T) {
	proc := t.TempDir()
	for pid, cg := range map[string]string{"300": "/libpod_parent/libpod-" + ctrID, "400": "/user.slice"} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte("1:name=systemd:/x\n0::"+cg+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := sampleResult()
	owned := func(pid uint32, comm string) Socket {
		s := newSocket(record.SocketID{State: "ESTABLISHED"})
		s.Kind, s.Owners = KindFull, []Owner{{PID: pid, Comm: comm}}
		return s
	}
	res.Sockets = append(res.Sockets, owned(400, "sshd"), owned(500, "gone"))
	calls := map[string]int{}
	addWorkloads(res.Sockets, proc, func(cg string) record.Workload {
		calls[cg]++
		id := container.ParsePath(cg)
		return record.Workload{Cgroup: cg, ContainerID: id.ContainerID, PodUID: id.PodUID}
	})
	if w := res.Sockets[0].Workload; w.ContainerID != ctrID || w.Cgroup != "/libpod_parent/libpod-"+ctrID {
		t.Errorf("container owner's socket: %+v", w)
	}
	if w := res.Sockets[1].Workload; w != (record.Workload{}) {
		t.Errorf("timewait socket (no owner): %+v", w)
	}
	if w := res.Sockets[2].Workload; w.Known() || w.Cgroup != "/user.slice" {
		t.Errorf("host owner's socket: %+v", w)
	}
	if w := res.Sockets[3].Workload; w != (record.Workload{}) {
		t.Errorf("socket of a process gone since the scan: %+v", w)
	}
	if len(calls) != 2 {
		t.Errorf("workload asked for %v, want each existing cgroup once", calls)
	}

	var b bytes.Buffer
	if err := WriteJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if want := `"cgroup":"/libpod_parent/libpod-` + ctrID + `","container_id":"` + ctrID + `","kind"`; !strings.Contains(lines[0], want) {
		t.Errorf("JSON of the container's socket lacks %s:\n%s", want, lines[0])
	}
	if strings.Contains(lines[1], "cgroup") || strings.Contains(lines[2], "container_id") {
		t.Errorf("JSON of sockets outside containers:\n%s\n%s", lines[1], lines[2])
	}

	b.Reset()
	if err := WriteText(&b, res); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(b.String(), "\n")
	head := strings.Fields(rows[0])
	if len(head) < 5 || head[4] != "CONTAINER" {
		t.Fatalf("header %q: want CONTAINER after OWNER", rows[0])
	}
	if f := strings.Fields(rows[1]); len(f) < 5 || f[4] != ctrID[:12] {
		t.Errorf("container's row: %q", rows[1])
	}
	if f := strings.Fields(rows[3]); len(f) < 5 || f[4] != "-" {
		t.Errorf("host row: %q", rows[3])
	}

	// No container anywhere: no column.
	b.Reset()
	if err := WriteText(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "CONTAINER") {
		t.Errorf("CONTAINER column on a host without containers:\n%s", b.String())
	}
}
