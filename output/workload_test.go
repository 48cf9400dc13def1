package output

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

const (
	ctrID  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	podUID = "1b4a3c5d-7e8f-4a1b-9c2d-3e4f5a6b7c8d"
	cgPath = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4a3c5d_7e8f_4a1b_9c2d_3e4f5a6b7c8d.slice/cri-containerd-" + ctrID + ".scope"
)

func containerReset(named bool) *record.Record {
	r := sockRecord(record.TypeReset, at(10))
	r.Direction, r.Reason, r.ReasonSource = record.DirectionReceived, "NOT_SPECIFIED", record.SourceKernel
	r.Sock.Workload = record.Workload{Cgroup: cgPath, ContainerID: ctrID, PodUID: podUID}
	if named {
		r.Sock.Workload.Pod, r.Sock.Workload.Namespace, r.Sock.Workload.Container = "web-7d9c8b6f5d-x2kqp", "shop", "nginx"
	}
	return r
}

func TestJSONHostAndWorkload(t *testing.T) {
	var buf bytes.Buffer
	sink := record.WithHost(NewJSON(&buf), "node-1")
	start := startRecord()
	plain := sockRecord(record.TypeReset, at(5))
	plain.Direction = record.DirectionSent
	sum := newRecord(record.TypeSummary, at(20))
	sum.Endpoint, sum.IdleClosesLocal, sum.IdleMsP50, sum.IdleMsP90 = "10.213.0.2:80", 1, 1000, 1000
	sum.EndpointWorkload = containerReset(true).Sock.Workload
	lost := newRecord(record.TypeLost, at(21))
	lost.Count = 1
	end := newRecord(record.TypeEnd, at(22))
	for _, r := range []*record.Record{start, plain, containerReset(true), sum, lost, end} {
		if err := sink.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, l)
		}
		if m["host"] != "node-1" {
			t.Errorf("no host on %s", l)
		}
	}
	if strings.Contains(lines[1], `"container`) || strings.Contains(lines[1], `"cgroup"`) || strings.Contains(lines[1], `"pod`) {
		t.Errorf("unknown workload fields written: %s", lines[1])
	}
	want := `{"time":"2025-03-14T03:41:02.128000000Z","type":"reset","host":"node-1","sock":8193,"family":"ipv4","laddr":"10.213.0.1","lport":40750,"raddr":"10.213.0.2","rport":18081,"netns":4026531840,"state":"ESTABLISHED","pid":4121,"comm":"python3",` +
		`"cgroup":"` + cgPath + `","container_id":"` + ctrID + `","pod_uid":"` + podUID + `","pod":"web-7d9c8b6f5d-x2kqp","namespace":"shop","container":"nginx",` +
		`"direction":"received","reason":"NOT_SPECIFIED","reason_source":"kernel"}`
	if lines[2] != want {
		t.Errorf("reset line\n got %s\nwant %s", lines[2], want)
	}
	if !strings.Contains(lines[3], `"endpoint":"10.213.0.2:80"`) || !strings.Contains(lines[3], `"container_id":"`+ctrID+`"`) || !strings.Contains(lines[3], `"pod":"web-7d9c8b6f5d-x2kqp"`) {
		t.Errorf("summary does not name the endpoint's container: %s", lines[3])
	}
}

func TestJSONWorkloadZeroAllocs(t *testing.T) {
	r := containerReset(true)
	j := record.WithHost(NewJSON(io.Discard), "node-1")
	if allocs := testing.AllocsPerRun(1000, func() { _ = j.Write(r) }); allocs != 0 {
		t.Errorf("%v allocations per record, want 0", allocs)
	}
}

func TestTextContainerColumnAppearsWithTheFirstContainer(t *testing.T) {
	plain := sockRecord(record.TypeReset, at(5))
	plain.Direction = record.DirectionSent
	byID := containerReset(false)
	named := containerReset(true)
	hostSock := sockRecord(record.TypeReset, at(30))
	hostSock.Direction = record.DirectionSent
	sum := newRecord(record.TypeSummary, at(40))
	sum.Endpoint, sum.IdleClosesLocal, sum.IdleMsP50, sum.IdleMsP90 = "10.213.0.2:80", 1, 1000, 1000
	sum.EndpointWorkload = named.Sock.Workload

	got := writeText(t, time.UTC, startRecord(), plain, byID, named, hostSock, sum)
	want := `katrace tracing with the tracepoint strategy (kernel 6.18.0, katrace v0.3.1); Ctrl-C to stop
TIME          PID     COMM             LOCAL → REMOTE                                 EVENT
03:41:02.123  4121    python3          10.213.0.1:40750 → 10.213.0.2:18081            reset sent
TIME          PID     COMM             CONTAINER                 LOCAL → REMOTE                                 EVENT
03:41:02.128  4121    python3          0123456789ab              10.213.0.1:40750 → 10.213.0.2:18081            reset received: unspecified
03:41:02.128  4121    python3          web-7d9c8b6f5d-x2kqp/nginx  10.213.0.1:40750 → 10.213.0.2:18081            reset received: unspecified
03:41:02.148  4121    python3          -                         10.213.0.1:40750 → 10.213.0.2:18081            reset sent

IDLE TIMEOUTS SEEN      ENDPOINT                 LOCAL  REMOTE   P50      P90
                        10.213.0.2:80                1       0   1.0s     1.0s  served by shop/web-7d9c8b6f5d-x2kqp/nginx
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTextNoContainerColumnWithoutContainers(t *testing.T) {
	r := sockRecord(record.TypeReset, at(5))
	r.Direction = record.DirectionSent
	r.Sock.Workload.Cgroup = "/user.slice/user-1000.slice/session-3.scope" // a cgroup, no container
	got := writeText(t, time.UTC, r)
	if strings.Contains(got, "CONTAINER") {
		t.Errorf("CONTAINER column on a host without containers:\n%s", got)
	}
}

func TestTextWorkloadNamesAreSanitized(t *testing.T) {
	r := containerReset(true)
	r.Sock.Workload.Pod = "evil\x1b[2Jpod"
	got := writeText(t, time.UTC, r)
	if strings.Contains(got, "\x1b") {
		t.Errorf("terminal escape passed through: %q", got)
	}
}

func TestTextContainerColumnFromTheStart(t *testing.T) {
	plain := sockRecord(record.TypeReset, at(5))
	plain.Direction = record.DirectionSent
	var buf bytes.Buffer
	p := NewText(&buf, WithLocation(time.UTC), WithContainerColumn(true))
	for _, r := range []*record.Record{startRecord(), plain, containerReset(false)} {
		if err := p.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `katrace tracing with the tracepoint strategy (kernel 6.18.0, katrace v0.3.1); Ctrl-C to stop
TIME          PID     COMM             CONTAINER                 LOCAL → REMOTE                                 EVENT
03:41:02.123  4121    python3          -                         10.213.0.1:40750 → 10.213.0.2:18081            reset sent
03:41:02.128  4121    python3          0123456789ab              10.213.0.1:40750 → 10.213.0.2:18081            reset received: unspecified
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
