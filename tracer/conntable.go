package tracer

import "github.com/katrace/katrace/record"

// conn is what katrace remembers about one socket between its events.
type conn struct {
	cookie     uint64
	sock       record.Socket
	lastNs     uint64
	probesSent int
	// timeoutReported: the keepalive_timeout record is out (the kernel
	// reports the error and the CLOSE in either order, by version).
	timeoutReported bool
	// resetReason is the reason of the last reset sent, for the close.
	resetReason string

	prev, next *conn // recency list, most recent first
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

// find returns the socket's memory, or nil, marking it active at ns.
func (t *connTable) find(cookie uint64, ns uint64) *conn {
	cn := t.byCookie[cookie]
	if cn != nil {
		t.touch(cn, ns)
	}
	return cn
}

// add remembers a socket not remembered yet, active at ns.
func (t *connTable) add(cookie uint64, ns uint64) *conn {
	if len(t.byCookie) >= t.max {
		t.evict()
	}
	var cn *conn
	if n := len(t.free); n > 0 {
		cn = t.free[n-1]
		t.free = t.free[:n-1]
		*cn = conn{}
	} else {
		cn = &conn{}
	}
	cn.cookie = cookie
	cn.sock.Requests = record.Absent
	cn.lastNs = ns
	t.byCookie[cookie] = cn
	t.pushFront(cn)
	return cn
}

// forget drops the socket's memory; cn must not be used afterwards.
func (t *connTable) forget(cn *conn) {
	t.unlink(cn)
	delete(t.byCookie, cn.cookie)
	t.free = append(t.free, cn)
}

func (t *connTable) touch(cn *conn, ns uint64) {
	cn.lastNs = ns
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
