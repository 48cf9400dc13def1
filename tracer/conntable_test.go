package tracer

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/katrace/katrace/record"
)

// A host can have hundreds of thousands of sockets: what katrace keeps
// per socket must stay in the 80-byte allocation size class (issue 11's
// memory target is 300 bytes of RSS per tracked socket, map and GC
// headroom included).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 80 {
		t.Fatalf("conn is %d bytes, want at most 80", n)
	}
}

func TestConnLocalAddr(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.213.1.2", "::1", "fd00:213::5", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		var cn conn
		cn.setLocal(a, 8080)
		if got := cn.localAddr(); got != a || cn.lPort != 8080 {
			t.Errorf("%s: got %s port %d", s, got, cn.lPort)
		}
	}
	// An IPv6 address after an IPv4 one (a reused entry) must not keep
	// the IPv4 flag.
	var cn conn
	cn.setLocal(netip.MustParseAddr("127.0.0.1"), 1)
	v6 := netip.MustParseAddr("fd00:213::7")
	cn.setLocal(v6, 2)
	if got := cn.localAddr(); got != v6 {
		t.Errorf("after IPv4: got %s, want %s", got, v6)
	}
}

func TestConnTableEvictsLeastRecent(t *testing.T) {
	tb := newConnTable(2)
	a := tb.add(1)
	a.pid = 11
	tb.add(2)
	if tb.find(1) == nil { // 1 is now the most recent
		t.Fatal("socket 1 not found")
	}
	c := tb.add(3)
	if tb.len() != 2 || tb.evicted != 1 {
		t.Fatalf("len %d evicted %d, want 2 and 1", tb.len(), tb.evicted)
	}
	if tb.find(2) != nil {
		t.Error("socket 2, the least recently active, was not forgotten")
	}
	if tb.find(1) == nil || tb.find(3) != c {
		t.Error("sockets 1 and 3 must be remembered")
	}
	// The forgotten entry is reused, cleared.
	tb.forget(c)
	d := tb.add(4)
	if d != c || d.pid != 0 || d.cookie != 4 || d.workload != nil {
		t.Errorf("reused entry not cleared: %+v", *d)
	}
}

func TestInternWorkloadShares(t *testing.T) {
	c := NewCorrelator(CorrelatorConfig{}, discardSink{})
	w1 := record.Workload{Cgroup: "/system.slice/a.service"}
	w2 := record.Workload{Cgroup: "/kubepods/pod1/abc", PodUID: "1"}
	p1 := c.internWorkload(&w1)
	p2 := c.internWorkload(&w2)
	if p1 == p2 || *p1 != w1 || *p2 != w2 {
		t.Fatalf("interned %+v %+v", *p1, *p2)
	}
	// Not the last one interned: found in the table, not copied again.
	if c.internWorkload(&w1) != p1 {
		t.Error("the same workload was interned twice")
	}
	w1.Cgroup = "/changed"
	if p1.Cgroup != "/system.slice/a.service" {
		t.Error("the interned copy follows the caller's value")
	}
}

// What a socket remembers comes back in its later records: the owner, the
// protocol label and request count (timer events carry none, PROTO_OTHER
// names none), the local tuple the kernel cleared by CLOSE, for IPv6 too.
func TestRememberedSocketFields(t *testing.T) {
	s := sock{cookie: 7, start: 1e12, pid: 4242, comm: "client"}
	laddr := netip.MustParseAddr("fd00:213::1")
	v6 := func(e katraceEvent) katraceEvent {
		e.Family = 6
		e.Saddr = laddr.As16()
		e.Daddr = netip.MustParseAddr("fd00:213::2").As16()
		return e
	}
	first := s.owned(v6(s.ev(evState, 0, tcpEstablished)))
	first.OldState = tcpSynSent
	first.Proto, first.Requests = protoHTTP1, 3
	other := v6(s.ev(evState, 10, tcpFinWait1))
	other.OldState = tcpEstablished
	other.Proto = uint8(katraceProtoPROTO_OTHER)
	closing := v6(s.ev(evClose, 20, tcpClose))
	closing.OldState = tcpFinWait1
	closing.Sport = 0
	closing.Saddr = [16]byte{}
	sink := feed(t, CorrelatorConfig{IdleThreshold: time.Second, States: true, AllCloses: true}, first, other, closing)
	// The close event is also the change to CLOSE: state, state, state, close.
	if len(sink.recs) != 4 {
		t.Fatalf("records %v", sink.types())
	}
	for i, r := range sink.recs {
		sk := r.Sock
		if sk.PID != 4242 || sk.Comm != "client" || sk.Proto != "http/1.x" || sk.Requests != 3 ||
			sk.LAddr != laddr || sk.LPort != 40750 || !sk.IPv6 {
			t.Errorf("record %d (%s): %+v", i, r.Type, sk)
		}
	}

	// A label without requests replaces the remembered one.
	s4 := sock{cookie: 8, start: 1e12, pid: 4243, comm: "other"}
	http := s4.owned(s4.ev(evState, 0, tcpEstablished))
	http.OldState = tcpSynSent
	http.Proto, http.Requests = protoHTTP1, 3
	tls := s4.ev(evState, 5, tcpEstablished)
	tls.Proto, tls.Requests = uint8(katraceProtoPROTO_TLS), 9
	timer := s4.ev(evKeepalive, 10, tcpEstablished)
	timer.ProbesAfter = 1
	sink = feed(t, CorrelatorConfig{IdleThreshold: time.Second, States: true}, http, tls, timer)
	r := sink.last(record.TypeKeepaliveProbe)
	if r == nil || r.Sock.Proto != "tls" || r.Sock.Requests != record.Absent || r.Sock.LAddr != netip.MustParseAddr("10.213.0.1") || r.Sock.PID != 4243 {
		t.Fatalf("after a tls label: %+v", r)
	}
}

func TestConnProbeCounts(t *testing.T) {
	var cn conn
	cn.setLastProbe(3)
	cn.addProbesSent(2)
	if cn.probesSent() != 2 || cn.lastProbe() != 3 {
		t.Fatalf("sent %d last %d, want 2 3", cn.probesSent(), cn.lastProbe())
	}
	cn.addProbesSent(probesSentMax)
	cn.setLastProbe(255)
	if cn.probesSent() != probesSentMax || cn.lastProbe() != 255 {
		t.Fatalf("sent %d last %d, want %d (saturated) 255", cn.probesSent(), cn.lastProbe(), probesSentMax)
	}
}
