package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/sockets"
	"github.com/katrace/katrace/tracer"
)

// A server listening on [::] with IPV6_V6ONLY off accepts an IPv4 client
// (issue 14): both ends of the connection carry the same IPv4 addresses in
// JSON, family ipv4 (the server's end says v4_mapped), an IPv4 --addr
// filter keeps both ends, and the summary lists the service once.
func TestDualStackServer(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	const port = "18400"
	only := netip.PrefixFrom(netip.MustParseAddr(p.serverAddr), 32)
	s := startTrace(t, tracer.Config{Filters: tracer.Filters{Addrs: []netip.Prefix{only}}})
	srv := startHelper(t, p.server, "", "dualstack-server", port, "echo")
	srv.expect("listening", startTimeout)
	cli, lp := startClient(t, p, p.serverAddr, port)
	cli.send("ping")
	cli.expect("got", startTimeout)

	// katrace sockets reports the accepted socket the same way.
	snap, err := sockets.Snapshot(sockets.Options{Filters: tracer.Filters{NetNS: p.serverIno, Ports: []uint16{uint16(lp)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sockets) != 1 {
		t.Fatalf("katrace sockets: %d sockets in the server's namespace with port %d, want 1: %+v", len(snap.Sockets), lp, snap.Sockets)
	}
	if ss := snap.Sockets[0]; ss.Family() != "ipv4" || (snap.Source == sockets.FromIterator && !ss.V4Mapped) ||
		ss.LAddr.String() != p.serverAddr || ss.RAddr.String() != p.clientAddr {
		t.Errorf("katrace sockets (%s): the server's socket is %s %s → %s, v4_mapped %v; want ipv4 %s → %s, v4_mapped",
			snap.Source, ss.Family(), ss.LAddr, ss.RAddr, ss.V4Mapped, p.serverAddr, p.clientAddr)
	}

	// Idle longer than --idle-threshold (1s), then the server closes.
	time.Sleep(1500 * time.Millisecond)
	srv.send("closeall 1")
	srv.expect("closeall 1", startTimeout)
	cli.send("wait")
	cli.expect("eof", startTimeout)
	cli.send("close")

	serverEnd := and(inNetns(p.serverIno), rport(lp))
	clientEnd := and(inNetns(p.clientIno), lport(lp))
	for _, end := range []struct {
		name         string
		match        func(rec) bool
		laddr, raddr string
		mapped       bool
		cause        string
	}{
		{"server", serverEnd, p.serverAddr, p.clientAddr, true, "idle_close_local"},
		{"client", clientEnd, p.clientAddr, p.serverAddr, false, "idle_close_remote"},
	} {
		cl := s.waitFor(end.name+"'s close", 1, eventTimeout, and(typeIs("close"), end.match))[0]
		if cl.str("cause") != end.cause {
			t.Errorf("%s's close: cause %q, want %q: %v", end.name, cl.str("cause"), end.cause, cl)
		}
		recs := s.all(end.match)
		for _, r := range recs {
			if r.str("family") != "ipv4" || r.str("laddr") != end.laddr || r.str("raddr") != end.raddr {
				t.Errorf("%s's %s record: family %q %s → %s, want ipv4 %s → %s: %v", end.name, r.str("type"),
					r.str("family"), r.str("laddr"), r.str("raddr"), end.laddr, end.raddr, r)
			}
			if mapped, _ := r["v4_mapped"].(bool); mapped != end.mapped || (!end.mapped && r.has("v4_mapped")) {
				t.Errorf("%s's %s record: v4_mapped %v, want %v: %v", end.name, r.str("type"), r["v4_mapped"], end.mapped, r)
			}
		}
		if len(s.all(and(typeIs("idle_close"), end.match))) != 1 {
			t.Errorf("%s: want one idle_close record kept by --addr %s, have:\n%v", end.name, only, recs)
		}
	}

	s.stop()
	var endpoints []string
	for _, r := range s.all(typeIs("summary")) {
		endpoints = append(endpoints, r.str("endpoint"))
		if strings.Contains(r.str("endpoint"), "::ffff:") {
			t.Errorf("summary names a mapped-v6 endpoint: %v", r)
		}
	}
	want := p.serverAddr + ":" + port
	if len(endpoints) != 1 || endpoints[0] != want {
		t.Fatalf("summary endpoints %q, want one: %s", endpoints, want)
	}
	sum := s.last("summary")
	if sum.num("idle_closes_local") != 1 || sum.num("idle_closes_remote") != 1 {
		t.Errorf("summary: %v; want 1 idle close seen from each end", sum)
	}
}
