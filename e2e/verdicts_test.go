package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/tracer"
)

// between fails unless lo <= v <= hi.
func between(t *testing.T, what string, v, lo, hi float64) {
	t.Helper()
	if v < lo || v > hi {
		t.Errorf("%s = %v, want between %v and %v", what, v, lo, hi)
	}
}

// TestHTTPIdleTimeout: a net/http server with IdleTimeout 1s closes a kept-
// alive connection the client left idle. Both ends are seen, with the
// server's timeout as the idle time, and the summary learns it.
func TestHTTPIdleTimeout(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{IdleThreshold: 500 * time.Millisecond, Protocols: true})
	srv := startServer(t, p, p.serverAddr, "18180", "http", "1s")
	cli, lp := startClient(t, p, p.serverAddr, "18180")
	cli.send("get")
	cli.expect("got 200", startTimeout)
	// The client waits; the server's idle timeout closes the connection.
	cli.send("wait")
	cli.expect("eof", eventTimeout)
	cli.send("close")

	server := s.waitFor("the server's idle close", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.serverIno), rport(lp)))[0]
	if server.str("side") != "local" || int(server.num("pid")) != srv.pid {
		t.Errorf("server's idle close: %v (server pid %d)", server, srv.pid)
	}
	// IdleTimeout 1s, measured from the socket's own last-data stamps:
	// within a few jiffies (4 ms at HZ=250) plus the Go scheduler.
	between(t, "server idle_ms", server.num("idle_ms"), 990, 1100)
	client := s.waitFor("the client's view", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.clientIno), lport(lp)))[0]
	if client.str("side") != "remote" || int(client.num("pid")) != cli.pid {
		t.Errorf("client's idle close: %v (client pid %d)", client, cli.pid)
	}
	between(t, "client idle_ms", client.num("idle_ms"), 990, 1100)
	for _, r := range []rec{server, client} {
		if r.str("proto") != "http/1.x" || r.num("requests") != 1 {
			t.Errorf("want proto http/1.x after 1 request: %v", r)
		}
	}
	sc := s.waitFor("server close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(lp)))[0]
	if sc.str("cause") != "idle_close_local" {
		t.Errorf("server close: %v", sc)
	}
	cc := s.waitFor("client close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if cc.str("cause") != "idle_close_remote" {
		t.Errorf("client close: %v", cc)
	}

	s.stop()
	endpoint := p.serverAddr + ":18180"
	sums := s.all(and(typeIs("summary"), func(r rec) bool { return r.str("endpoint") == endpoint }))
	if len(sums) != 1 {
		t.Fatalf("%d summary records for %s: %s", len(sums), endpoint, s.dump())
	}
	sum := sums[0]
	if sum.num("idle_closes_local") != 1 || sum.num("idle_closes_remote") != 1 {
		t.Errorf("summary: %v", sum)
	}
	between(t, "summary idle_ms_p50", sum.num("idle_ms_p50"), 990, 1100)
	recs := s.snapshot()
	if recs[len(recs)-1].str("type") != "end" || recs[len(recs)-2].str("type") != "summary" {
		t.Errorf("summary records must come right before end")
	}
}

// TestStaleReuse: a pooled client keeps a connection past the server's idle
// timeout and writes on it after the server's FIN; the server resets it.
func TestStaleReuse(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	startServer(t, p, p.serverAddr, "18181", "http", "1s")
	cli, lp := startClient(t, p, p.serverAddr, "18181")
	cli.send("get")
	cli.expect("got 200", startTimeout)
	mine := and(inNetns(p.clientIno), lport(lp))
	// Wait for the server's FIN to reach the client, then reuse.
	s.waitFor("the server's FIN", 1, eventTimeout, and(typeIs("idle_close"), mine))
	time.Sleep(300 * time.Millisecond)
	cli.send("get")
	cli.expect("error", startTimeout)

	c := s.waitFor("the client's close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	if c.str("cause") != "stale_reuse" {
		t.Fatalf("close: %v", c)
	}
	between(t, "reuse_gap_ms", c.num("reuse_gap_ms"), 250, 1000)
	between(t, "peer_idle_ms", c.num("peer_idle_ms"), 990, 1100)
	if int(c.num("pid")) != cli.pid {
		t.Errorf("close attributed to %v, want %d", c["pid"], cli.pid)
	}
	rst := s.all(and(typeIs("reset"), mine))
	if len(rst) != 1 || rst[0].str("direction") != "received" {
		t.Errorf("client resets: %v", rst)
	}
	s.stop()
	for _, sum := range s.all(typeIs("summary")) {
		if sum.str("endpoint") == p.serverAddr+":18181" && sum.num("stale_reuses") != 1 {
			t.Errorf("summary: %v", sum)
		}
	}
}

// TestResetAfterIdle: the server's side forgets the connection while it is
// idle (its RST is lost: the link is down); the client's next write draws a
// RST with no FIN ever seen.
func TestResetAfterIdle(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	srv := startServer(t, p, p.serverAddr, "18182", "echo")
	cli, lp := startClient(t, p, p.serverAddr, "18182")
	cli.send("ping")
	cli.expect("got", startTimeout)
	quiet := time.Now()

	run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "down")
	srv.send("abortall 1")
	srv.expect("abortall 1", startTimeout)
	run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "up")
	time.Sleep(1500*time.Millisecond - time.Since(quiet))
	cli.send("ping")
	cli.expect("error", startTimeout)

	c := s.waitFor("the client's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if c.str("cause") != "reset_after_idle" {
		t.Fatalf("close: %v", c)
	}
	between(t, "idle_ms", c.num("idle_ms"), 1400, 3000)
}

// TestKeepaliveAnsweredByReset: the peer lost the connection (its side was
// aborted while the link was down); the next keepalive probe draws a RST.
func TestKeepaliveAnsweredByReset(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	srv := startServer(t, p, p.serverAddr, "18183", "hold")
	cli, lp := startClient(t, p, p.serverAddr, "18183", "1s", "1s", "5")
	cli.send("wait")
	mine := and(inNetns(p.clientIno), lport(lp))

	run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "down")
	srv.send("abortall 1")
	srv.expect("abortall 1", startTimeout)
	s.waitFor("an unanswered probe", 1, eventTimeout, and(typeIs("keepalive_probe"), mine))
	run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "up")

	r := s.waitFor("the peer's reset", 1, eventTimeout, and(typeIs("reset"), mine))[0]
	if r.str("direction") != "received" || r["after_keepalive"] != true {
		t.Errorf("reset: %v", r)
	}
	c := s.waitFor("the close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	if c.str("cause") != "reset_received" {
		t.Errorf("close: %v", c)
	}
}

// TestCloseWithUnreadData: the server closes a connection without reading
// what the client sent: the kernel aborts it with a RST.
func TestCloseWithUnreadData(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	srv := startServer(t, p, p.serverAddr, "18184", "unread")
	cli, lp := startClient(t, p, p.serverAddr, "18184")
	cli.send("ping") // sends 5 bytes the server never reads
	waitUnread(t, p, lp)
	srv.send("closeall 1")
	srv.expect("closeall 1", startTimeout)

	r := s.waitFor("the server's reset", 1, eventTimeout,
		and(typeIs("reset"), inNetns(p.serverIno), rport(lp)))[0]
	if r.str("direction") != "sent" || r.str("reason") != "TCP_ABORT_ON_CLOSE" || int(r.num("pid")) != srv.pid {
		t.Errorf("reset: %v (server pid %d)", r, srv.pid)
	}
	c := s.waitFor("the server's close", 1, eventTimeout,
		and(typeIs("close"), inNetns(p.serverIno), rport(lp)))[0]
	if c.str("cause") != "reset_sent" {
		t.Errorf("close: %v", c)
	}
	cc := s.waitFor("the client's close", 1, eventTimeout,
		and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if cc.str("cause") != "reset_received" {
		t.Errorf("client close: %v", cc)
	}
}

// TestFailedConnects: a connect that never completes is told by how it
// failed, against the verdicts the kernel's own errors give: answered by
// a reset (no listener; a firewall's tcp reset), by an ICMP error (a
// firewall's default reject: port unreachable; host unreachable), or by
// nothing until the kernel gives up (tcp_syn_retries 1 here: three SYNs
// over about 3 s), or by nothing until the application gives up.
func TestFailedConnects(t *testing.T) {
	requirePrivileges(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("privileged end-to-end test: needs nft (nftables)")
	}
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	run(t, "ip", "netns", "exec", p.client, "sysctl", "-qw", "net.ipv4.tcp_syn_retries=1")
	startServer(t, p, p.serverAddr, "18187", "hold") // the firewall rejects it
	cmd := exec.Command("ip", "netns", "exec", p.server, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet katrace_input {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 18187 reject with tcp reset
		tcp dport 18188 drop
		tcp dport 18189 reject
		tcp dport 18190 reject with icmpx host-unreachable
		tcp dport 18191 drop
	}
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", p.server, err, out)
	}

	for _, tc := range []struct {
		name    string
		port    int
		dial    []string // dial's args after the port
		appSays string
		cause   string
		errno   string
		text    string // in the close's text line
		reset   bool   // a reset record comes first
	}{
		{"no listener", 18186, nil, "connection refused", "reset_received", "ECONNREFUSED",
			"closed: reset_received: connection refused: our SYN drew a reset after", true},
		{"firewall reset", 18187, nil, "connection refused", "reset_received", "ECONNREFUSED",
			"closed: reset_received: connection refused: our SYN drew a reset after", true},
		{"firewall drop", 18188, nil, "connection timed out", "retransmit_timeout", "ETIMEDOUT",
			"closed: retransmit_timeout: connect timed out: our SYN was never answered; gave up after", false},
		{"own timeout", 18191, []string{"1500ms"}, "i/o timeout", "connect_abandoned", "",
			"closed: connect_abandoned: the application closed the socket", false},
		// Blocking: the ICMP error must end the socket, not mark it for
		// SO_ERROR (see the README).
		{"icmp port unreachable", 18189, []string{"blocking"}, "connection refused", "error", "ECONNREFUSED",
			"closed: error: connect failed after", false},
		{"icmp host unreachable", 18190, []string{"blocking"}, "no route to host", "error", "EHOSTUNREACH",
			"closed: error: connect failed after", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startHelper(t, p.client, "", "dial", append([]string{p.serverAddr, strconv.Itoa(tc.port)}, tc.dial...)...)
			if msg := d.expect("failed", 30*time.Second); !strings.Contains(msg, tc.appSays) {
				t.Fatalf("connect: %s: want %s", msg, tc.appSays)
			}
			c := s.waitFor("the close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), rport(tc.port)))[0]
			if c.str("cause") != tc.cause || c.str("old_state") != "SYN_SENT" || c.str("error") != tc.errno ||
				int(c.num("pid")) != d.pid {
				t.Errorf("close: %v (dialer pid %d)", c, d.pid)
			}
			remote := fmt.Sprintf("%s:%d", p.serverAddr, tc.port)
			words := []string{remote, tc.text}
			if tc.errno != "" {
				words = append(words, "→ "+tc.errno)
			}
			if got := s.waitTextLines(words...); len(got) != 1 {
				t.Errorf("text lines for the close: %q", got)
			}
			if tc.cause == "connect_abandoned" {
				// Its SYN at 0 and once more at 1 s; given up at 1.5 s.
				between(t, "retransmits", c.num("retransmits"), 1, 1)
				between(t, "duration_ms", c.num("duration_ms"), 1400, 2500)
			}
			if tc.cause == "retransmit_timeout" {
				// SYNs at 0, 1 and 2 s (the first four retransmissions a
				// second apart: tcp_syn_linear_timeouts), given up at 3;
				// before 6.5 at 0 and 1 s.
				between(t, "retransmits", c.num("retransmits"), 1, 2)
				between(t, "duration_ms", c.num("duration_ms"), 2500, 8000)
			}
			resets := s.all(and(typeIs("reset"), inNetns(p.clientIno), rport(tc.port)))
			if !tc.reset {
				if len(resets) != 0 {
					t.Errorf("resets: %v", resets)
				}
				return
			}
			if len(resets) != 1 || resets[0].str("direction") != "received" || resets[0].str("state") != "SYN_SENT" {
				t.Errorf("resets: %v", resets)
			}
			if got := s.waitTextLines(remote, "reset received while connecting: connection refused"); len(got) != 1 {
				t.Errorf("text lines for the reset: %q", got)
			}
		})
	}
}

// waitUnread waits until the server's socket holds the client's bytes.
func waitUnread(t *testing.T, p *pair, clientPort int) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		out := run(t, "ip", "netns", "exec", p.server, "ss", "-tnH", "state", "established", "dport", "= :"+strconv.Itoa(clientPort))
		var recvQ int
		if _, err := fmt.Sscan(out, &recvQ); err == nil && recvQ > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the server never received the client's bytes")
}

// TestProtocolLabels: connections are labelled by their first bytes.
func TestProtocolLabels(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{All: true, Protocols: true})
	startServer(t, p, p.serverAddr, "18185", "hold")
	// http/1.x, with its request count, is checked by TestHTTPIdleTimeout.
	want := map[string]string{"tls": "tls", "h2": "http/2"}
	ports := map[string]int{}
	for cmd := range want {
		cli := startHelper(t, p.client, "", "client", p.serverAddr, "18185")
		ports[cmd] = atoi(t, cli.expect("connected", startTimeout))
		cli.send(cmd)
		cli.expect("sent", startTimeout)
		cli.send("close")
		cli.expect("closed", startTimeout)
	}
	for cmd, proto := range want {
		c := s.waitFor(cmd+" close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(ports[cmd])))[0]
		if c.str("proto") != proto {
			t.Errorf("%s connection labelled %q, want %q: %v", cmd, c.str("proto"), proto, c)
		}
		sc := s.waitFor(cmd+" server close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(ports[cmd])))[0]
		if sc.str("proto") != proto {
			t.Errorf("%s connection's server end labelled %q, want %q", cmd, sc.str("proto"), proto)
		}
	}
}
