package tracer

import (
	"io"
	"net"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/katrace/katrace/kernel"
)

// timerAddresses are the callbacks by which the tracepoint strategy tells
// keepalive and timewait timers from the host's other timers; 0 where the
// address was not found before load (the programs learn it then).
type timerAddresses struct {
	keepalive uint64
	timewait  uint64
	// primed: the iterator that learnt them ran over every TCP socket of
	// the host's namespaces, giving each a cookie (the loader's first
	// pass, before the probes attach).
	primed bool
}

// learnTimerAddresses finds the two callbacks before the programs load, so
// that they are constants to the timer programs, which run for every timer
// that expires on the host, rather than a variable read from memory on
// each run. The socket iterator alone reads them from sockets of our own
// (a loopback listener's keepalive timer, a timewait socket's timer),
// which needs no CAP_SYSLOG; /proc/kallsyms names the timewait one where
// no timewait socket could be made. Best effort: what is not found here
// is learnt as before. Its pass over the host's sockets is also the
// loader's first (primeCookies): it gives them their cookies.
func learnTimerAddresses(spec *ebpf.CollectionSpec, cache *btf.Cache) timerAddresses {
	var found timerAddresses
	coll, err := loadAlone(spec, katraceProgPrimeCookies, cache)
	if err == nil {
		defer coll.Close()
		prog := coll.Programs[katraceProgPrimeCookies]
		done := timerSockets()
		if runToEnd(prog) == nil {
			_ = coll.Variables[katraceVarKeepaliveTimerFn].Get(&found.keepalive)
			_ = coll.Variables[katraceVarTwTimerFn].Get(&found.timewait)
			primeOtherNetns(prog)
			found.primed = true
		}
		done()
	}
	if found.timewait == 0 {
		found.timewait, _ = kernel.Symbol("tw_timer_handler")
	}
	return found
}

// timerSockets makes, on loopback, a listener (whose keepalive timer is
// set up like every TCP socket's) and a connection closed from our side
// first, which leaves a timewait socket; the returned func closes what is
// still open. Either may fail (no loopback here): then it is not made.
func timerSockets() (closeAll func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp", "[::1]:0"); err != nil {
			return func() {}
		}
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		ln.Close()
		return func() {}
	}
	// Ours closes first; the peer answers its FIN with its own once it has
	// read the end, and ours is then in TIME_WAIT.
	c.Close()
	select {
	case peer, ok := <-accepted:
		if ok {
			peer.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, peer)
			peer.Close()
		}
	case <-time.After(time.Second):
	}
	return func() { ln.Close() }
}
