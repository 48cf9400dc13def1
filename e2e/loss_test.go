package e2e

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
	"github.com/katrace/katrace/tracer"
)

// heldSink holds every record after start until released: the reader stops
// draining the ring buffer, as a slow consumer would.
type heldSink struct {
	record.Sink
	release chan struct{}
	once    sync.Once
}

func (h *heldSink) Write(r *record.Record) error {
	if r.Type != record.TypeStart {
		<-h.release
	}
	return h.Sink.Write(r)
}

func (h *heldSink) open() { h.once.Do(func() { close(h.release) }) }

// TestLostEventsCounted: with a one-page ring buffer and a stalled reader,
// the kernel drops events; every one is counted, reported in lost records,
// and delivered + lost is exactly what the connections produced.
func TestLostEventsCounted(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	held := &heldSink{release: make(chan struct{})}
	t.Cleanup(held.open)
	s := startTraceWith(t, tracer.Config{
		States: true, All: true,
		RingSize: ringForLossTest(),
		Filters:  tracer.Filters{NetNS: p.clientIno},
	}, func(inner record.Sink) record.Sink { held.Sink = inner; return held })

	startServer(t, p, p.serverAddr, "18190", "echo")
	const conns = 200
	churn := startHelper(t, p.client, "", "churn", p.serverAddr, "18190", "200")
	churn.expect("done", 2*eventTimeout)
	// Every client socket has closed: wait until none is left closing.
	deadline := time.Now().Add(eventTimeout)
	for strings.TrimSpace(run(t, "ip", "netns", "exec", p.client, "ss", "-tanH",
		"state", "fin-wait-1", "state", "fin-wait-2", "state", "syn-sent", "state", "established")) != "" {
		if time.Now().After(deadline) {
			t.Fatal("client sockets still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	held.open()
	end := s.stop()
	if os.Getenv("KATRACE_TEST_BIGRING") != "" {
		counts := map[string]int{}
		for _, r := range s.snapshot() {
			counts[r.str("type")+" "+r.str("old_state")+">"+r.str("new_state")+" "+r.str("cause")]++
		}
		t.Logf("%v", counts)
	}

	// Per connection on the client side: CLOSE>SYN_SENT, SYN_SENT>
	// ESTABLISHED, ESTABLISHED>FIN_WAIT1, FIN_WAIT1>FIN_WAIT2, and the
	// close event, which is the change FIN_WAIT2>CLOSE too.
	const perConn = 5
	delivered, lost := int(end.num("events")), int(end.num("lost"))
	if lost == 0 {
		t.Fatalf("nothing was lost with a one-page ring and a stalled reader: %v", end)
	}
	if delivered+lost != conns*perConn {
		t.Errorf("delivered %d + lost %d = %d, want exactly %d", delivered, lost, delivered+lost, conns*perConn)
	}
	var reported int
	for _, r := range s.all(typeIs("lost")) {
		reported += int(r.num("count"))
	}
	if reported != lost {
		t.Errorf("lost records add up to %d, the end record says %d", reported, lost)
	}
	t.Logf("%d connections: %d events delivered, %d lost and reported", conns, delivered, lost)
}

func ringForLossTest() uint32 {
	if os.Getenv("KATRACE_TEST_BIGRING") != "" {
		return 4 << 20
	}
	return uint32(os.Getpagesize())
}
