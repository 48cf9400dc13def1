package e2e

// Issue 10: verdicts against middleboxes that forget idle flows and
// servers that say goodbye before they close. docs/issue10-findings.md
// has the kernel facts behind each assertion and the new fields:
//
//	close:   error, unacked_ms, retransmits, user_timeout_ms, after_idle,
//	         goodbye_bytes (idle closes)
//	idle_close: goodbye_bytes
//	summary: forgotten_flows, forgotten_idle_ms_min,
//	         forgotten_keepalive_off, forgotten_keepalive_idle_ms

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/katrace/katrace/tracer"
)

// natForget is how long the NAT keeps an idle established flow.
const natForget = 2 * time.Second

// textOf is katrace's text output so far.
func (s *session) textOf() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.text.String()
}

// textLinesWith returns the text lines that contain every one of words.
func (s *session) textLinesWith(words ...string) []string {
	var out []string
	for _, line := range strings.Split(s.textOf(), "\n") {
		hit := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				hit = false
				break
			}
		}
		if hit {
			out = append(out, line)
		}
	}
	return out
}

// waitTextLines is textLinesWith once a line matches, or at the deadline:
// the text output is flushed just after the JSON records a test waited
// for.
func (s *session) waitTextLines(words ...string) []string {
	lines := s.textLinesWith(words...)
	for deadline := time.Now().Add(eventTimeout); len(lines) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		lines = s.textLinesWith(words...)
	}
	return lines
}

// mentionsMiddleboxAndRestart: a reset or a silent drop after idle is said
// to be either a middlebox that forgot the flow or the peer that lost it.
func mentionsMiddlebox(line string) bool {
	return strings.Contains(line, "NAT") && strings.Contains(line, "load balancer") && strings.Contains(line, "firewall")
}

// silentDropAfterIdle drives a client whose write, after the NAT forgot
// the flow, is dropped without a word until the kernel gives up. clientOpts
// are the tclient options (ut=3s); it returns the client and its port.
func silentDropAfterIdle(t *testing.T, n *natPath, port string, clientOpts ...string) (*proc, int) {
	t.Helper()
	startHelper(t, n.server, "", "server", n.serverAddr, port, "echo").expect("listening", startTimeout)
	cli := startHelper(t, n.client, "", "tclient", append([]string{n.serverAddr, port}, clientOpts...)...)
	lp := atoi(t, cli.expect("connected", startTimeout))
	cli.send("ping")
	cli.expect("got pong", startTimeout)
	n.waitForgotten(t, lp, natForget+10*time.Second)
	dropped := n.forgottenPackets(t)
	cli.send("ping")
	if got := cli.expect("error", 30*time.Second); got != "ETIMEDOUT" {
		t.Fatalf("the client's write ended with %q, want ETIMEDOUT", got)
	}
	// Independent witnesses of the client's end, shown if the test fails
	// (katrace missing the close once in CI, unexplained): the client's
	// sockets and its namespace's abort counter right after the error.
	witness, _ := exec.Command("ip", "netns", "exec", n.client, "sh", "-c",
		"ss -tanoie; nstat -asz TcpExtTCPAbortOnTimeout").CombinedOutput()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the client's namespace after ETIMEDOUT (ss -tanoie; nstat):\n%s", witness)
		}
	})
	if n.forgottenPackets(t) <= dropped {
		t.Fatalf("the NAT dropped nothing: the write did not meet the forgotten-flow rule")
	}
	return cli, lp
}

// TestRetransmitTimeoutAfterIdleUserTimeout (issue 10 point 1): a client
// with TCP_USER_TIMEOUT 3 s writes after the NAT forgot the idle flow; the
// NAT drops the write silently and the kernel gives up with ETIMEDOUT. The
// default view must show the close, with the idle time before the write.
func TestRetransmitTimeoutAfterIdleUserTimeout(t *testing.T) {
	requirePrivileges(t)
	n := newNATPath(t, "drop", natForget)
	s := startTrace(t, tracer.Config{}) // the default view
	cli, lp := silentDropAfterIdle(t, n, "18401", "ut=3s")

	c := s.waitFor("the client's close", 1, eventTimeout,
		and(typeIs("close"), inNetns(n.clientIno), lport(lp)))[0]
	if c.str("cause") != "retransmit_timeout" {
		t.Fatalf("close: %v", c)
	}
	if int(c.num("pid")) != cli.pid || c.str("error") != "ETIMEDOUT" {
		t.Errorf("close owner/error: %v (client pid %d)", c, cli.pid)
	}
	if c.num("user_timeout_ms") != 3000 || c.num("retransmits") < 1 {
		t.Errorf("close user_timeout_ms/retransmits: %v", c)
	}
	// TCP_USER_TIMEOUT counts from the first retransmission (~200 ms
	// after the write) and is checked when the RTO timer fires.
	between(t, "unacked_ms", c.num("unacked_ms"), 3000, 5000)
	// The write came after the NAT's timeout: the idle before it.
	if c["after_idle"] != true {
		t.Errorf("close after_idle missing: %v", c)
	}
	between(t, "idle_ms (before the write)", c.num("idle_ms"), float64(natForget.Milliseconds()), float64(natForget.Milliseconds())+2500)
	lines := s.waitTextLines("retransmit_timeout")
	if len(lines) != 1 || !mentionsMiddlebox(lines[0]) || !strings.Contains(lines[0], "idle") {
		t.Errorf("text verdict must say the write after idle was never acknowledged and name NAT, load balancer, firewall: %q", lines)
	}
}

// TestRetransmitTimeoutAfterIdleRetries2 (point 1, without a user timeout):
// tcp_retries2 exhaustion; tcp_retries2=3 in the client's namespace keeps
// it to about 7 s.
func TestRetransmitTimeoutAfterIdleRetries2(t *testing.T) {
	requirePrivileges(t)
	n := newNATPath(t, "drop", natForget)
	setSysctl(t, n.client, "net.ipv4.tcp_retries2", "3")
	s := startTrace(t, tracer.Config{})
	cli, lp := silentDropAfterIdle(t, n, "18402")

	c := s.waitFor("the client's close", 1, eventTimeout,
		and(typeIs("close"), inNetns(n.clientIno), lport(lp)))[0]
	if c.str("cause") != "retransmit_timeout" || int(c.num("pid")) != cli.pid || c.str("error") != "ETIMEDOUT" {
		t.Fatalf("close: %v (client pid %d)", c, cli.pid)
	}
	if c.has("user_timeout_ms") {
		t.Errorf("no TCP_USER_TIMEOUT was set: %v", c)
	}
	// retries2=3: 3 s of backed-off RTOs from the first retransmission,
	// seen at the next RTO: 6-8 s after the write here.
	between(t, "unacked_ms", c.num("unacked_ms"), 3000, 10000)
	if c.num("retransmits") < 3 || c["after_idle"] != true {
		t.Errorf("close retransmits/after_idle: %v", c)
	}
	between(t, "idle_ms (before the write)", c.num("idle_ms"), float64(natForget.Milliseconds()), float64(natForget.Milliseconds())+2500)
}

// TestForgottenFlowsSummary (go further): the exit summary counts, per
// remote endpoint, the flows forgotten after idle, the shortest such idle,
// and the keepalive those sockets had (off here), and the text advises
// keepalive below that idle.
func TestForgottenFlowsSummary(t *testing.T) {
	requirePrivileges(t)
	n := newNATPath(t, "drop", natForget)
	// --all: the close is there today, so that this test checks the summary.
	s := startTrace(t, tracer.Config{All: true})
	_, lp := silentDropAfterIdle(t, n, "18403", "ut=2s")
	s.waitFor("the client's close", 1, eventTimeout, and(typeIs("close"), inNetns(n.clientIno), lport(lp)))
	s.stop()

	endpoint := n.serverAddr + ":18403"
	sums := s.all(and(typeIs("summary"), func(r rec) bool { return r.str("endpoint") == endpoint }))
	if len(sums) != 1 {
		t.Fatalf("%d summary records for %s:\n%s", len(sums), endpoint, s.dump())
	}
	sum := sums[0]
	if sum.num("forgotten_flows") != 1 || sum.num("forgotten_keepalive_off") != 1 || sum.has("forgotten_keepalive_idle_ms") {
		t.Errorf("summary: %v", sum)
	}
	between(t, "forgotten_idle_ms_min", sum.num("forgotten_idle_ms_min"), float64(natForget.Milliseconds()), float64(natForget.Milliseconds())+2500)
	advice := s.textLinesWith(endpoint)
	found := false
	for _, line := range advice {
		if strings.Contains(line, "keepalive") && strings.Contains(line, "forgot") {
			found = true
		}
	}
	if !found {
		t.Errorf("the text summary must advise keepalive below the forgotten idle for %s: %q", endpoint, advice)
	}
}

// TestKeepaliveProbeOwnerAndNATReset (points 2 and 4): a keepalive server
// behind the NAT path (as redis-server with tcp-keepalive): the NAT forgets
// the idle flow, the server's first probe reaches the NAT's own stack,
// which answers with a reset. Every line of the socket names its owner.
func TestKeepaliveProbeOwnerAndNATReset(t *testing.T) {
	requirePrivileges(t)
	n, s, r := probeAnsweredByNAT(t, "18404", nil)
	if r["after_keepalive"] != true {
		t.Errorf("reset not marked after_keepalive: %v", r)
	}
	checkProbeResetWording(t, s)
	// Forgotten after idle, with keepalive on at 3 s: the summary says so.
	s.stop()
	for _, sum := range s.all(typeIs("summary")) {
		if sum.str("endpoint") == n.serverAddr+":18404" {
			if sum.num("forgotten_flows") != 1 || sum.num("forgotten_keepalive_idle_ms") != 3000 {
				t.Errorf("summary: %v", sum)
			}
			return
		}
	}
	t.Errorf("no summary for %s:%d:\n%s", n.serverAddr, 18404, s.dump())
}

// probeAnsweredByNAT runs a keepalive server (3s/1s/3) on port behind a
// NAT path that forgets the idle flow, and a client that pings it once;
// prepare, if any, runs once the trace has started. It checks that the
// server's keepalive probes, the NAT's reset and the close all name the
// server, and returns the path, the trace and the reset.
func probeAnsweredByNAT(t *testing.T, port string, prepare func()) (*natPath, *session, rec) {
	t.Helper()
	n := newNATPath(t, "drop", natForget/2)
	s := startTrace(t, tracer.Config{})
	if prepare != nil {
		prepare()
	}
	srv := startHelper(t, n.server, "", "kaserver", n.serverAddr, port, "3s/1s/3")
	srv.expect("listening", startTimeout)
	cli := startHelper(t, n.client, "", "tclient", n.serverAddr, port)
	lp := atoi(t, cli.expect("connected", startTimeout))
	cli.send("ping")
	cli.expect("got pong", startTimeout)
	outside := n.outsidePort(t, lp)
	mine := and(inNetns(n.serverIno), rport(outside))

	c := s.waitFor("the server's close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	probes := s.all(and(typeIs("keepalive_probe"), mine))
	if len(probes) == 0 {
		t.Fatalf("no keepalive probe before the reset:\n%s", s.dump())
	}
	for _, p := range probes {
		// The owner is known from the server's own reads: the probe line
		// must name it like every other line of this socket.
		if int(p.num("pid")) != srv.pid || p.str("comm") != srv.comm {
			t.Errorf("probe attributed to %v/%v, want %d/%s: %v", p["pid"], p["comm"], srv.pid, srv.comm, p)
		}
	}
	r := s.waitFor("the NAT's reset", 1, eventTimeout, and(typeIs("reset"), mine))[0]
	if r.str("direction") != "received" || int(r.num("pid")) != srv.pid {
		t.Errorf("reset: %v", r)
	}
	if c.str("cause") != "reset_received" || int(c.num("pid")) != srv.pid {
		t.Errorf("close: %v", c)
	}
	return n, s, r
}

// checkProbeResetWording (point 4): a reset answering a keepalive probe
// comes from a peer that lost the connection or from a NAT, load balancer
// or firewall that forgot the flow: both are said.
func checkProbeResetWording(t *testing.T, s *session) {
	t.Helper()
	lines := s.waitTextLines("keepalive probe", "reset")
	if len(lines) == 0 {
		t.Fatalf("no text line about the reset answering a probe:\n%s", s.textOf())
	}
	for _, line := range lines {
		if !mentionsMiddlebox(line) || !strings.Contains(line, "restart") {
			t.Errorf("the reset after a keepalive probe must name both a restarted peer and a NAT, load balancer or firewall: %q", line)
		}
	}
}

// TestKeepaliveAnsweredByFirewallReset (point 4): the client's own
// keepalive probe crosses a NAT that forgot the flow and rejects it with a
// reset (nftables "reject with tcp reset").
func TestKeepaliveAnsweredByFirewallReset(t *testing.T) {
	requirePrivileges(t)
	n := newNATPath(t, "reset", natForget/2)
	s := startTrace(t, tracer.Config{})
	startHelper(t, n.server, "", "server", n.serverAddr, "18405", "hold").expect("listening", startTimeout)
	cli := startHelper(t, n.client, "", "tclient", n.serverAddr, "18405", "ka=3s/1s/3")
	lp := atoi(t, cli.expect("connected", startTimeout))
	cli.send("wait")
	if got := cli.expect("error", eventTimeout); got != "ECONNRESET" {
		t.Fatalf("the client's connection ended with %q, want ECONNRESET", got)
	}
	mine := and(inNetns(n.clientIno), lport(lp))
	r := s.waitFor("the firewall's reset", 1, eventTimeout, and(typeIs("reset"), mine))[0]
	if r["after_keepalive"] != true || int(r.num("pid")) != cli.pid {
		t.Errorf("reset: %v", r)
	}
	c := s.waitFor("the close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	if c.str("cause") != "reset_received" || c.num("probes_sent") != 1 {
		t.Errorf("close: %v", c)
	}
	checkProbeResetWording(t, s)
}

// TestGoodbyeThenClose (point 3): a server that, after 1.5 s of silence,
// writes a 116-byte goodbye (as PostgreSQL's idle_session_timeout does)
// and closes 2 ms later. Both ends must see an idle close with the idle
// time before the goodbye and its size; the client's late write is a
// stale reuse with the server's real idle timeout; the summary learns it.
func TestGoodbyeThenClose(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{IdleThreshold: 500 * time.Millisecond})
	srv := startHelper(t, p.server, "", "goodbye", p.serverAddr, "18406", "1500ms", "116")
	srv.expect("listening", startTimeout)
	cli := startHelper(t, p.client, "", "tclient", p.serverAddr, "18406")
	lp := atoi(t, cli.expect("connected", startTimeout))
	cli.send("ping")
	cli.expect("got pong", startTimeout)
	srv.expect("goodbye", eventTimeout)

	server := s.waitFor("the server's idle close", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.serverIno), rport(lp)))[0]
	// The server's own goodbye is acknowledged before its FIN over veth:
	// its size is gone from tcp_sock then, and katrace leaves it out
	// rather than guess (it is there while the goodbye is in flight).
	if server.str("side") != "local" || int(server.num("pid")) != srv.pid || server["goodbye"] != true ||
		server.has("goodbye_bytes") && server.num("goodbye_bytes") != 116 {
		t.Errorf("server's idle close: %v (server pid %d)", server, srv.pid)
	}
	between(t, "server idle_ms (before the goodbye)", server.num("idle_ms"), 1490, 1600)
	client := s.waitFor("the client's idle close", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.clientIno), lport(lp)))[0]
	if client.str("side") != "remote" || client["goodbye"] != true || client.num("goodbye_bytes") != 116 {
		t.Errorf("client's idle close: %v", client)
	}
	between(t, "client idle_ms (before the goodbye)", client.num("idle_ms"), 1490, 1600)

	// The client writes again after the goodbye: a stale reuse whose peer
	// idle timeout is the server's 1.5 s, not the 2 ms between goodbye and FIN.
	time.Sleep(200 * time.Millisecond)
	// (The client reads the unread goodbye line as the answer to this
	// ping; the server's RST to the ping ends the socket right after.)
	cli.send("ping")
	c := s.waitFor("the client's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if c.str("cause") != "stale_reuse" {
		t.Fatalf("client close: %v", c)
	}
	between(t, "peer_idle_ms", c.num("peer_idle_ms"), 1490, 1600)
	sc := s.waitFor("the server's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(lp)))[0]
	if sc.str("cause") != "idle_close_local" || sc["goodbye"] != true || sc.has("goodbye_bytes") && sc.num("goodbye_bytes") != 116 {
		t.Errorf("server close: %v", sc)
	}
	between(t, "server close idle_ms", sc.num("idle_ms"), 1490, 1600)
	if lines := s.waitTextLines("idle close by peer", "goodbye first: 116 bytes"); len(lines) != 1 {
		t.Errorf("the client's text must say there was a goodbye before the idle close: %q", lines)
	}
	if lines := s.waitTextLines("idle close by us", "goodbye first"); len(lines) != 1 {
		t.Errorf("the server's text must say it said goodbye before the idle close: %q", lines)
	}

	s.stop()
	for _, sum := range s.all(typeIs("summary")) {
		if sum.str("endpoint") == p.serverAddr+":18406" {
			if sum.num("idle_closes_local") != 1 || sum.num("idle_closes_remote") != 1 {
				t.Errorf("summary: %v", sum)
			}
			between(t, "summary idle_ms_p50", sum.num("idle_ms_p50"), 1490, 1600)
			return
		}
	}
	t.Errorf("no summary for %s:18406:\n%s", p.serverAddr, s.dump())
}

// slowCloseConnection traces (idle threshold 500 ms, --all) a client's
// connection to a slowclose server on port that answers after 1.5 s and
// closes 2 ms later; it returns the client and its local port.
func slowCloseConnection(t *testing.T, port string) (*pair, *session, *proc, int) {
	t.Helper()
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{IdleThreshold: 500 * time.Millisecond, All: true})
	startHelper(t, p.server, "", "slowclose", p.serverAddr, port, "1500ms").expect("listening", startTimeout)
	cli := startHelper(t, p.client, "", "tclient", p.serverAddr, port)
	return p, s, cli, atoi(t, cli.expect("connected", startTimeout))
}

// TestSlowAnswerThenCloseIsNoGoodbye (point 3's false positive): a server
// that answers a request after 1.5 s and closes 2 ms later sends a short
// write after a silence and then its FIN, like a goodbye; but the request
// was still waiting, so neither end's close is an idle close.
func TestSlowAnswerThenCloseIsNoGoodbye(t *testing.T) {
	p, s, cli, lp := slowCloseConnection(t, "18409")
	cli.send("ping")
	if got := cli.expect("got", 10*time.Second); got != "answer" {
		t.Fatalf("client got %q, want the slow answer", got)
	}
	cli.send("wait")
	cli.expect("eof", startTimeout)
	cli.send("close")
	sc := s.waitFor("the server's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(lp)))[0]
	cc := s.waitFor("the client's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	// The server's side: the slow answer cleared the kernel's pingpong
	// mode. The client's: it read nothing after its request.
	if sc.str("cause") != "close_local" {
		t.Errorf("server's close %v; want close_local", sc)
	}
	if cc.str("cause") != "close_remote" {
		t.Errorf("client's close %v; want close_remote", cc)
	}
	if idle := append(s.all(and(typeIs("idle_close"), inNetns(p.serverIno), rport(lp))),
		s.all(and(typeIs("idle_close"), inNetns(p.clientIno), lport(lp)))...); len(idle) > 0 {
		t.Errorf("a slow answer before a close is no idle close: %v", idle)
	}
}

// TestUnreadSlowAnswerThenCloseIsNoGoodbye: the same server, and a client
// that does not read while it waits, so the slow answer and the FIN are
// both unread at the FIN, as when a loaded client is slow to run: the
// client never read after its request, so the answer is no goodbye.
func TestUnreadSlowAnswerThenCloseIsNoGoodbye(t *testing.T) {
	p, s, cli, lp := slowCloseConnection(t, "18412")
	cli.send("send")
	if got := cli.expect("sent", startTimeout); got != "<nil>" {
		t.Fatalf("client: sent %s", got)
	}
	s.waitFor("the server's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(lp)))
	cli.send("wait")
	cli.expect("eof", startTimeout)
	cli.send("close")
	cc := s.waitFor("the client's close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if cc.str("cause") != "close_remote" {
		t.Errorf("client's close %v; want close_remote", cc)
	}
	if idle := s.all(and(typeIs("idle_close"), inNetns(p.clientIno), lport(lp))); len(idle) > 0 {
		t.Errorf("an unread slow answer before the FIN is no goodbye: %v", idle)
	}
}

// ssCookie is the socket cookie ss -e reports for the connection from
// local port lport in namespace ns.
func ssCookie(t *testing.T, ns string, lport int) uint64 {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-tnHe", "state", "established", "sport", "= :"+strconv.Itoa(lport)).Output()
	m := regexp.MustCompile(` sk:([0-9a-f]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no socket cookie from ss for port %d in %s: %q", lport, ns, out)
	}
	cookie, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return cookie
}

// TestKeepaliveSocketOlderThanTraceInOtherNetns: a keepalive connection in
// another network namespace, opened before katrace started, must be
// reported with its cookie (today: sock 0, since the start-up iterator
// only walks katrace's own namespace). On a shared machine the test can
// pass by chance today: any other katrace running while the connection is
// established gives the socket a cookie (its state-change program calls
// bpf_get_socket_cookie for every socket); in CI it fails until fixed.
func TestKeepaliveSocketOlderThanTraceInOtherNetns(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	startServer(t, p, p.serverAddr, "18407", "hold")
	cli, lp := startClient(t, p, p.serverAddr, "18407", "1s", "1s", "3")
	cli.send("wait")
	// Let a probe go before katrace starts: the socket is settled, its
	// cookie not yet made by anybody but ss below.
	time.Sleep(1500 * time.Millisecond)
	s := startTrace(t, tracer.Config{})
	mine := and(inNetns(p.clientIno), rport(18407))
	pr := s.waitFor("a keepalive probe", 1, eventTimeout, and(typeIs("keepalive_probe"), mine))[0]
	if pr.num("sock") == 0 {
		t.Errorf("probe of a socket older than katrace reported with sock 0: %v", pr)
	}
	if int(pr.num("lport")) != lp {
		t.Errorf("probe on port %v, want %d", pr["lport"], lp)
	}
	// The socket's own cookie, as the kernel's bpf_get_socket_cookie gives
	// it on the state-change path: the peer goes, the keepalive times out,
	// and the close names the socket. (On 6.18 ss -e's sk: is that cookie
	// too; Debian's 6.1 sock_diag reports another number there.)
	run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "down")
	cl := s.waitFor("the keepalive timeout's close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	if cl.num("sock") != pr.num("sock") {
		t.Errorf("probe sock %v, but the socket's close says sock %v", pr["sock"], cl["sock"])
	}
}

// TestFinWait2LingerByTimewait: the client closes, the server never does;
// with tcp_fin_timeout at most 60 s the kernel hands the orphaned
// FIN_WAIT2 socket to a timewait socket at once, and the linger ends
// there without the peer's FIN: a fin_wait2_timeout close, by the socket's
// cookie and owner, about tcp_fin_timeout after the close. The kernel says
// nothing when the peer's FIN reaches a timewait socket, so the full
// socket's close at the hand-off cannot wait for the linger's outcome:
// with --all it is reported then (close_local), and the timeout follows
// as the socket's second close record (README, "FIN_WAIT2 linger").
func TestFinWait2LingerByTimewait(t *testing.T) {
	requirePrivileges(t)
	for _, all := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "all"}[all], func(t *testing.T) {
			p := newPair(t)
			setSysctl(t, p.client, "net.ipv4.tcp_fin_timeout", "2")
			s := startTrace(t, tracer.Config{All: all})
			startServer(t, p, p.serverAddr, "18408", "unread")
			cli, lp := startClient(t, p, p.serverAddr, "18408")
			closed := time.Now()
			cli.send("close")
			cli.expect("closed", startTimeout)
			mine := and(typeIs("close"), inNetns(p.clientIno), lport(lp))
			c := s.waitFor("the FIN_WAIT2 timeout", 1, eventTimeout,
				and(mine, func(r rec) bool { return r.str("cause") == "fin_wait2_timeout" }))[0]
			at, err := time.Parse(time.RFC3339Nano, c.str("time"))
			if err != nil {
				t.Fatalf("close time: %v: %v", err, c)
			}
			if d := at.Sub(closed); d < 1900*time.Millisecond || d > 4*time.Second {
				t.Errorf("fin_wait2_timeout %v after the close, want about tcp_fin_timeout (2s)", d)
			}
			closes := s.all(mine)
			if c.num("sock") == 0 || closes[0].num("sock") != c.num("sock") {
				t.Errorf("the timeout must carry the socket's cookie: %v", closes)
			}
			if all {
				if len(closes) != 2 || closes[0].str("cause") != "close_local" || int(c.num("pid")) != cli.pid {
					t.Errorf("--all: want close_local at the hand-off, then fin_wait2_timeout by pid %d: %v", cli.pid, closes)
				}
			} else if len(closes) != 1 {
				t.Errorf("default view: want only the timeout: %v", closes)
			}
			if lines := s.waitTextLines("fin_wait2_timeout"); len(lines) != 1 {
				t.Errorf("text: %q", lines)
			}
		})
	}
}

// startThirdParty runs a server program in namespace ns until the test
// ends, and waits until it listens on port.
func startThirdParty(t *testing.T, ns string, port int, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout = &testLogWriter{t: t, prefix: name + ": "}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitListening(t, ns, port)
	return cmd
}

func waitListening(t *testing.T, ns string, port int) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-tlnH", "sport", "= :"+strconv.Itoa(port)).Output()
		if strings.Contains(string(out), ":"+strconv.Itoa(port)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d in %s after %v", port, ns, startTimeout)
}

// TestRedisKeepaliveBehindNAT (points 2 and 4, against the real server):
// redis-server's tcp-keepalive probe meets a NAT that forgot the flow; the
// NAT's reset kills redis's connection. The probe line must name
// redis-server, and the words must name a NAT as well as a restart.
func TestRedisKeepaliveBehindNAT(t *testing.T) {
	requirePrivileges(t)
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("privileged end-to-end test: needs redis-server (apt-get install redis-server)")
	}
	n := newNATPath(t, "drop", natForget/2)
	s := startTrace(t, tracer.Config{})
	// tcp-keepalive 3: idle 3 s, interval 1 s (redis divides by 3).
	startThirdParty(t, n.server, 18410, redis, "--port", "18410", "--bind", n.serverAddr,
		"--tcp-keepalive", "3", "--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--daemonize", "no", "--dir", t.TempDir())
	cli := startHelper(t, n.client, "", "tclient", n.serverAddr, "18410")
	lp := atoi(t, cli.expect("connected", startTimeout))
	cli.send("ping") // an inline command: redis answers +PONG
	cli.expect("got +PONG", startTimeout)
	outside := n.outsidePort(t, lp)
	mine := and(inNetns(n.serverIno), rport(outside))

	c := s.waitFor("redis's close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	if c.str("cause") != "reset_received" || c.str("comm") != "redis-server" {
		t.Errorf("close: %v", c)
	}
	probes := s.all(and(typeIs("keepalive_probe"), mine))
	if len(probes) == 0 {
		t.Fatalf("no keepalive probe:\n%s", s.dump())
	}
	for _, p := range probes {
		if p.str("comm") != "redis-server" || p.num("pid") == 0 {
			t.Errorf("probe without redis-server as its owner: %v", p)
		}
	}
	checkProbeResetWording(t, s)
}

// TestPostgresIdleSessionTimeout (point 3, against the real server):
// PostgreSQL's idle_session_timeout sends its FATAL message (a goodbye of
// about 116 bytes), then its FIN. Both ends must see an idle close with the
// configured timeout.
func TestPostgresIdleSessionTimeout(t *testing.T) {
	requirePrivileges(t)
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	psql, err := exec.LookPath("psql")
	if len(bins) == 0 || err != nil {
		t.Skip("privileged end-to-end test: needs PostgreSQL (apt-get install postgresql)")
	}
	bin := strings.TrimSuffix(bins[len(bins)-1], "/initdb")
	p := newPair(t)
	dir := t.TempDir()
	data, sock := dir+"/data", dir+"/sock"
	run(t, "install", "-d", "-o", "postgres", "-m", "0700", data, sock)
	run(t, "chmod", "0755", dir, filepath.Dir(dir))
	run(t, "su", "postgres", "-s", "/bin/sh", "-c", bin+"/initdb -A trust -D "+data)
	run(t, "sh", "-c", "echo 'host all all 10.213.0.0/16 trust' >> "+data+"/pg_hba.conf")
	s := startTrace(t, tracer.Config{IdleThreshold: 500 * time.Millisecond})
	server := exec.Command("ip", "netns", "exec", p.server, "su", "postgres", "-s", "/bin/sh", "-c",
		"exec "+bin+"/postgres -D "+data+" -c listen_addresses="+p.serverAddr+" -p 18411 -k "+sock+
			" -c idle_session_timeout=1500ms")
	server.Stdout = &testLogWriter{t: t, prefix: "postgres: "}
	server.Stderr = server.Stdout
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("su", "postgres", "-s", "/bin/sh", "-c", bin+"/pg_ctl -D "+data+" -m immediate stop").Run()
		server.Wait()
	})
	waitListening(t, p.server, 18411)

	client := exec.Command("ip", "netns", "exec", p.client, psql, "-h", p.serverAddr, "-p", "18411", "-U", "postgres", "-X", "-At")
	in, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	client.Stdout = &testLogWriter{t: t, prefix: "psql: "}
	client.Stderr = client.Stdout
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		client.Process.Kill()
		client.Wait()
	})
	query := func(q string) {
		if _, err := in.Write([]byte(q + "\n")); err != nil {
			t.Fatalf("psql: %v", err)
		}
	}
	query("select 1;")
	// psql's side is certain: the goodbye sits unread when the FIN comes.
	// (Under load postgres's timer fires late: the idle time grows.)
	cl := s.waitFor("psql's idle close", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.clientIno), rport(18411)))[0]
	if cl.str("side") != "remote" || cl.str("comm") != "psql" || cl.num("goodbye_bytes") < 100 {
		t.Errorf("psql's idle close: %v", cl)
	}
	between(t, "psql idle_ms", cl.num("idle_ms"), 1490, 3000)
	// postgres's side needs the kernel's sign that the last query was
	// answered at once (icsk_ack.pingpong); a loaded host can clear it,
	// and then the verdict is left out, never wrong. Its FIN went before
	// psql saw it: its record, if any, is already written.
	srvIdle := and(typeIs("idle_close"), inNetns(p.serverIno), lport(18411))
	srvRecs := s.all(srvIdle)
	if len(srvRecs) == 0 {
		t.Logf("postgres's idle close left out (the pingpong guard)")
		return
	}
	srv := srvRecs[0]
	// The goodbye's size is known on the server's side only while it is in
	// flight at the FIN; over veth it is acknowledged first, and left out.
	if srv.str("side") != "local" || srv.str("comm") != "postgres" ||
		srv["goodbye"] != true || srv.has("goodbye_bytes") && srv.num("goodbye_bytes") < 100 {
		t.Errorf("postgres's idle close: %v", srv)
	}
	between(t, "postgres idle_ms", srv.num("idle_ms"), 1490, 3000)
}
