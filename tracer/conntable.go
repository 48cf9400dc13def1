package tracer

import (
	"net/netip"

	"github.com/katrace/katrace/record"
)

// conn is what katrace remembers about one socket between its events. It
// is kept to 80 bytes (one allocation size class, no rounding up) because
// a host can have hundreds of thousands of sockets: strings and the
// workload are shared, not copied, and the rest is stored as the kernel
// gave it (the record's Socket is rebuilt from it when needed).
type conn struct {
	cookie     uint64
	prev, next *conn // recency list, most recent first
	// comm is the owner's name, an interned string (commString).
	comm string
	// workload is an interned copy shared by every socket of the same
	// cgroup (internWorkload), nil when none was seen.
	workload *record.Workload
	// lAddr is the local address: IPv4 in its first 4 bytes when
	// flags&connLAddr4, else IPv6; set with lPort.
	lAddr    [16]byte
	pid      uint32
	requests uint32 // HTTP/1.x requests seen, meaningful when proto is protoHTTP1
	// probes packs two keepalive counts in the 80-byte size class: the
	// probes sent, seen or inferred (low 24 bits, saturating), and the
	// kernel's count of unanswered probes after the last timer run seen
	// (high 8 bits; 0 for none, or no run seen).
	probes uint32
	lPort  uint16
	// proto is the index of the last protocol label in protoNames, 0 for none.
	proto uint8
	flags connFlags
}

const probesSentMax = 1<<24 - 1

func (cn *conn) probesSent() uint32 { return cn.probes & probesSentMax }

func (cn *conn) addProbesSent(n uint32) {
	cn.probes = cn.probes&^probesSentMax | min(cn.probesSent()+n, probesSentMax)
}

func (cn *conn) lastProbe() uint8 { return uint8(cn.probes >> 24) }

func (cn *conn) setLastProbe(p uint8) {
	cn.probes = cn.probes&probesSentMax | uint32(p)<<24
}

type connFlags uint8

const (
	// connLAddr4: lAddr holds an IPv4 address.
	connLAddr4 connFlags = 1 << iota
	// connTimeoutReported: the keepalive_timeout record is out (the kernel
	// reports the error and the CLOSE in either order, by version).
	connTimeoutReported
)

func (cn *conn) localAddr() netip.Addr {
	if cn.flags&connLAddr4 != 0 {
		return netip.AddrFrom4([4]byte(cn.lAddr[:4]))
	}
	return netip.AddrFrom16(cn.lAddr)
}

func (cn *conn) setLocal(a netip.Addr, port uint16) {
	cn.lPort = port
	if a.Is4() {
		cn.flags |= connLAddr4
		v4 := a.As4()
		cn.lAddr = [16]byte{}
		copy(cn.lAddr[:], v4[:])
		return
	}
	cn.flags &^= connLAddr4
	cn.lAddr = a.As16()
}

// connTable remembers sockets by cookie, at most max at once: when full,
// the least recently active socket is forgotten to make room. Forgotten
// entries are reused, so that a busy host does not allocate one per
// connection.
type connTable struct {
	max      int
	byCookie map[uint64]*conn
	// head and tail of the recency list.
	head, tail *conn
	free       []*conn
	evicted    uint64
}

func newConnTable(max int) connTable {
	return connTable{max: max, byCookie: make(map[uint64]*conn)}
}

// len is the number of sockets remembered now.
func (t *connTable) len() int { return len(t.byCookie) }

// find returns the socket's memory, or nil, marking it the most recently
// active.
func (t *connTable) find(cookie uint64) *conn {
	cn := t.byCookie[cookie]
	if cn != nil {
		t.touch(cn)
	}
	return cn
}

// add remembers a socket not remembered yet, as the most recently active.
func (t *connTable) add(cookie uint64) *conn {
	if len(t.byCookie) >= t.max {
		t.evict()
	}
	var cn *conn
	if n := len(t.free); n > 0 {
		cn = t.free[n-1]
		t.free[n-1] = nil
		t.free = t.free[:n-1]
	} else {
		cn = &conn{}
	}
	cn.cookie = cookie
	t.byCookie[cookie] = cn
	t.pushFront(cn)
	return cn
}

// forget drops the socket's memory; cn must not be used afterwards.
func (t *connTable) forget(cn *conn) {
	t.unlink(cn)
	delete(t.byCookie, cn.cookie)
	// Drop what it points to now: a free entry must not keep a workload
	// or a name alive.
	*cn = conn{}
	t.free = append(t.free, cn)
}

func (t *connTable) touch(cn *conn) {
	if t.head == cn {
		return
	}
	t.unlink(cn)
	t.pushFront(cn)
}

func (t *connTable) pushFront(cn *conn) {
	cn.prev, cn.next = nil, t.head
	if t.head != nil {
		t.head.prev = cn
	}
	t.head = cn
	if t.tail == nil {
		t.tail = cn
	}
}

func (t *connTable) unlink(cn *conn) {
	if cn.prev != nil {
		cn.prev.next = cn.next
	} else {
		t.head = cn.next
	}
	if cn.next != nil {
		cn.next.prev = cn.prev
	} else {
		t.tail = cn.prev
	}
	cn.prev, cn.next = nil, nil
}

func (t *connTable) evict() {
	if t.tail != nil {
		t.forget(t.tail)
		t.evicted++
	}
}
