package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/katrace/katrace/tracer"
)

const (
	startTimeout = 10 * time.Second
	eventTimeout = 20 * time.Second
)

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// startServer runs a server helper in the pair's server namespace and
// waits until it listens.
func startServer(t *testing.T, p *pair, args ...string) *proc {
	t.Helper()
	srv := startHelper(t, p.server, "", "server", args...)
	srv.expect("listening", startTimeout)
	return srv
}

// startClient connects a client helper from the client namespace and
// returns it with its local port.
func startClient(t *testing.T, p *pair, args ...string) (*proc, int) {
	t.Helper()
	cli := startHelper(t, p.client, "", "client", args...)
	return cli, atoi(t, cli.expect("connected", startTimeout))
}

// dial starts a server and connects a client to it.
func dial(t *testing.T, p *pair, addr, port, mode string, clientArgs ...string) (*proc, int) {
	t.Helper()
	startServer(t, p, addr, port, mode)
	return startClient(t, p, append([]string{addr, port}, clientArgs...)...)
}

func TestStartRecord(t *testing.T) {
	requirePrivileges(t)
	s := startTrace(t, tracer.Config{})
	end := s.stop()
	recs := s.snapshot()
	if len(recs) == 0 || recs[0].str("type") != "start" {
		t.Fatalf("first record is not start: %v", recs)
	}
	start := recs[0]
	if start.str("mode") != string(s.mode) || start.str("kernel") == "" || start.str("version") != "e2e" {
		t.Errorf("start record: %v (strategy used: %s)", start, s.mode)
	}
	if os.Getenv("KATRACE_TEST_ATTACH") == "" && s.mode != tracer.StrategyTracepoint && !fentryOrKprobeWork() {
		t.Errorf("auto picked %s", s.mode)
	}
	if end.str("type") != "end" || !end.has("events") || !end.has("lost") {
		t.Errorf("end record: %v", end)
	}
}

// fentryOrKprobeWork says whether this kernel could have given auto a
// better strategy than tracepoint (not on the developers' machines).
func fentryOrKprobeWork() bool {
	return tracer.Probe(tracer.StrategyFentry) == nil || tracer.Probe(tracer.StrategyKprobe) == nil
}

func TestKeepaliveAnswered(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	cli, lp := dial(t, p, p.serverAddr, "18081", "hold", "1s", "1s", "3")
	cli.send("wait")

	mine := and(inNetns(p.clientIno), lport(lp))
	acks := s.waitFor("keepalive_ack", 2, eventTimeout, and(typeIs("keepalive_ack"), mine))
	for _, a := range acks {
		if a.num("probe") != 1 {
			t.Errorf("ack for probe %v, want 1: %v", a["probe"], a)
		}
	}
	probes := s.all(and(typeIs("keepalive_probe"), mine))
	if len(probes) < 2 {
		t.Fatalf("want at least 2 probes, got %d", len(probes))
	}
	for _, pr := range probes {
		if pr.num("probe") != 1 || pr.num("max_probes") != 3 || pr.num("interval_ms") != 1000 || pr.num("keepalive_idle_ms") != 1000 {
			t.Errorf("probe record: %v", pr)
		}
		if int(pr.num("pid")) != cli.pid || pr.str("comm") != cli.comm {
			t.Errorf("probe attributed to %v/%v, want %d/%s", pr["pid"], pr["comm"], cli.pid, cli.comm)
		}
		if idle := pr.num("idle_ms"); idle < 900 {
			t.Errorf("idle_ms %v before a keepalive probe of a connection idle 1s", idle)
		}
	}
	if n := len(s.all(and(typeIs("keepalive_timeout"), mine))); n != 0 {
		t.Errorf("%d keepalive timeouts on a connection whose peer answers", n)
	}
}

func TestKeepaliveTimeout(t *testing.T) {
	requirePrivileges(t)
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) {
			p := newPair(t)
			s := startTrace(t, tracer.Config{})
			addr := p.serverAddr
			if family == "ipv6" {
				addr = p.server6
			}
			cli, lp := dial(t, p, addr, "18082", "hold", "1s", "1s", "3")
			// On failure, the kernel's own witnesses say whether the
			// connection timed out at all (then katrace missed it) or not.
			witnessKeepalive(t, p, lp)
			// The peer vanishes: nothing answers the probes.
			run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "down")
			cli.send("wait")

			mine := and(inNetns(p.clientIno), lport(lp))
			closes := s.waitFor("close", 1, eventTimeout, and(typeIs("close"), mine))
			if got := cli.expect("error", startTimeout); got == "" {
				t.Error("the client saw no error")
			}
			c := closes[0]
			if c.str("cause") != "keepalive_timeout" || c.num("probes_sent") != 3 || c.str("family") != family {
				t.Errorf("close: %v", c)
			}
			if int(c.num("pid")) != cli.pid || c.str("comm") != cli.comm {
				t.Errorf("close attributed to %v/%v, want %d/%s", c["pid"], c["comm"], cli.pid, cli.comm)
			}
			if c.str("raddr") != netip.MustParseAddr(addr).String() || int(c.num("rport")) != 18082 {
				t.Errorf("close has the wrong remote end: %v", c)
			}

			checkProbesAccounted(t, s.all(mine), 3)
			timeouts := s.all(and(typeIs("keepalive_timeout"), mine))
			if len(timeouts) != 1 {
				t.Fatalf("%d keepalive_timeout records, want 1", len(timeouts))
			}
			if to := timeouts[0]; to.num("probes") != 3 || to.num("max_probes") != 3 || to.str("error") != "ETIMEDOUT" {
				t.Errorf("keepalive_timeout: %v", to)
			}
			// The verdict comes last.
			recs := s.all(mine)
			if last := recs[len(recs)-1]; last.str("type") != "close" {
				t.Errorf("last record for the socket is %v, want the close", last)
			}
		})
	}
}

func TestIdleClose(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	srvProc := startServer(t, p, p.serverAddr, "18083", "echo")
	cli, lp := startClient(t, p, p.serverAddr, "18083")
	cli.send("ping")
	cli.expect("got", startTimeout)
	// The connection now sits idle for longer than --idle-threshold (1s).
	const idle = 1500 * time.Millisecond
	time.Sleep(idle)
	cli.send("close")

	local := s.waitFor("idle_close by the client", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.clientIno), lport(lp)))[0]
	remote := s.waitFor("idle_close seen by the server", 1, eventTimeout,
		and(typeIs("idle_close"), inNetns(p.serverIno), rport(lp)))[0]
	for _, c := range []struct {
		r    rec
		side string
		pid  int
	}{{local, "local", cli.pid}, {remote, "remote", srvProc.pid}} {
		if c.r.str("side") != c.side {
			t.Errorf("idle_close side %q, want %q: %v", c.r.str("side"), c.side, c.r)
		}
		if ms := c.r.num("idle_ms"); ms < float64(idle.Milliseconds())-10 || ms > float64(idle.Milliseconds())+500 {
			t.Errorf("idle_ms %v, want about %v", ms, idle.Milliseconds())
		}
		if int(c.r.num("pid")) != c.pid {
			t.Errorf("idle_close (%s) attributed to pid %v, want %d", c.side, c.r["pid"], c.pid)
		}
	}
	cl := s.waitFor("client close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if cl.str("cause") != "idle_close_local" {
		t.Errorf("client close cause %q: %v", cl.str("cause"), cl)
	}
	sc := s.waitFor("server close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(lp)))[0]
	if sc.str("cause") != "idle_close_remote" || int(sc.num("pid")) != srvProc.pid {
		t.Errorf("server close: %v (server pid %d)", sc, srvProc.pid)
	}
	if sc.num("bytes_sent") != 5 || sc.num("bytes_received") != 5 {
		t.Errorf("server close counts %v bytes sent, %v received; want 5 and 5", sc["bytes_sent"], sc["bytes_received"])
	}
}

func TestLingerZeroAbort(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	srvProc := startServer(t, p, p.serverAddr, "18084", "echo")
	cli, lp := startClient(t, p, p.serverAddr, "18084")
	cli.send("ping")
	cli.expect("got", startTimeout)
	cli.send("linger0close")

	sent := s.waitFor("reset sent by the client", 1, eventTimeout,
		and(typeIs("reset"), inNetns(p.clientIno), lport(lp)))[0]
	if sent.str("direction") != "sent" || int(sent.num("pid")) != cli.pid {
		t.Errorf("reset: %v", sent)
	}
	if sent.str("reason_source") == "kernel" && sent.str("reason") != "TCP_STATE" && sent.str("reason") != "TCP_ABORT_ON_LINGER" {
		t.Errorf("SO_LINGER 0 reset with kernel reason %q", sent.str("reason"))
	}
	if sent.str("reason") == "" {
		t.Errorf("no reason for an SO_LINGER 0 reset: %v", sent)
	}
	got := s.waitFor("reset received by the server", 1, eventTimeout,
		and(typeIs("reset"), inNetns(p.serverIno), rport(lp)))[0]
	if got.str("direction") != "received" {
		t.Errorf("server's reset: %v", got)
	}
	cc := s.waitFor("client close", 1, eventTimeout, and(typeIs("close"), inNetns(p.clientIno), lport(lp)))[0]
	if cc.str("cause") != "reset_sent" {
		t.Errorf("client close: %v", cc)
	}
	sc := s.waitFor("server close", 1, eventTimeout, and(typeIs("close"), inNetns(p.serverIno), rport(lp)))[0]
	if sc.str("cause") != "reset_received" || int(sc.num("pid")) != srvProc.pid {
		t.Errorf("server close: %v (server pid %d)", sc, srvProc.pid)
	}
}

func TestStatesAndAllCloses(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{States: true, All: true})
	cli, lp := dial(t, p, p.serverAddr, "18085", "echo")
	cli.send("ping")
	cli.expect("got", startTimeout)
	cli.send("close")

	mine := and(inNetns(p.clientIno), lport(lp))
	c := s.waitFor("ordinary close", 1, eventTimeout, and(typeIs("close"), mine))[0]
	if c.str("cause") != "close_local" {
		t.Errorf("close: %v", c)
	}
	var got []string
	for _, r := range s.all(and(typeIs("state"), inNetns(p.clientIno))) {
		got = append(got, r.str("old_state")+">"+r.str("new_state"))
	}
	want := "[CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>CLOSE]"
	if fmt.Sprint(got) != want {
		t.Errorf("client states %v, want %s", got, want)
	}
}

// TestDefaultViewQuiet: ordinary connections print nothing by default.
func TestDefaultViewQuiet(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	s := startTrace(t, tracer.Config{})
	cli, _ := dial(t, p, p.serverAddr, "18086", "echo")
	cli.send("ping")
	cli.expect("got", startTimeout)
	cli.send("close")
	cli.expect("closed", startTimeout)
	end := s.stop()
	if recs := s.all(and(func(r rec) bool { return r.has("sock") }, inNetns(p.clientIno))); len(recs) != 0 {
		t.Errorf("an ordinary request and close printed %d records: %v", len(recs), recs)
	}
	if end.num("lost") != 0 {
		t.Errorf("lost events: %v", end)
	}
}

func TestFilters(t *testing.T) {
	requirePrivileges(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A second name for this binary gives a helper another comm.
	other := filepath.Join(t.TempDir(), "kafilterother")
	if err := os.Symlink(exe, other); err != nil {
		t.Fatal(err)
	}

	type conn struct {
		exe, addr, port string
		keepalive       bool
	}
	cases := []struct {
		name    string
		filters func(p *pair, pids []int) tracer.Filters
		conns   func(p *pair) [2]conn // [0] must be filtered out, [1] must pass
		// side: whose sockets the filter selects. both: the wanted
		// connection's two ends; client: only client-side sockets (the
		// filtered-out connection's client end must not pass); server-ka:
		// the filtered-out client end must not pass (Go servers turn
		// keepalive on for accepted sockets, so server ends pass).
		side string
	}{
		{"port", func(p *pair, _ []int) tracer.Filters { return tracer.Filters{Ports: []uint16{18091}} },
			func(p *pair) [2]conn {
				return [2]conn{{"", p.serverAddr, "18090", false}, {"", p.serverAddr, "18091", false}}
			}, "both"},
		{"addr", func(p *pair, _ []int) tracer.Filters {
			return tracer.Filters{Addrs: []netip.Prefix{netip.MustParsePrefix(p.server6 + "/128")}}
		}, func(p *pair) [2]conn {
			return [2]conn{{"", p.serverAddr, "18092", false}, {"", p.server6, "18092", false}}
		}, "both"},
		{"addr-v4-cidr", func(p *pair, _ []int) tracer.Filters {
			return tracer.Filters{Addrs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(p.serverAddr), 24).Masked()}}
		}, func(p *pair) [2]conn {
			return [2]conn{{"", p.server6, "18093", false}, {"", p.serverAddr, "18093", false}}
		}, "both"},
		{"netns", func(p *pair, _ []int) tracer.Filters { return tracer.Filters{NetNS: p.clientIno} },
			func(p *pair) [2]conn {
				return [2]conn{{"", p.serverAddr, "18094", false}, {"", p.serverAddr, "18095", false}}
			}, "netns"},
		{"pid", func(p *pair, pids []int) tracer.Filters { return tracer.Filters{PID: uint32(pids[1])} },
			func(p *pair) [2]conn {
				return [2]conn{{"", p.serverAddr, "18096", false}, {"", p.serverAddr, "18097", false}}
			}, "client"},
		{"comm", func(p *pair, _ []int) tracer.Filters { return tracer.Filters{Comm: "kafilterother"} },
			func(p *pair) [2]conn {
				return [2]conn{{"", p.serverAddr, "18098", false}, {other, p.serverAddr, "18099", false}}
			}, "client"},
		{"keepalive-only", func(p *pair, _ []int) tracer.Filters { return tracer.Filters{KeepaliveOnly: true} },
			func(p *pair) [2]conn {
				return [2]conn{{"", p.serverAddr, "18100", false}, {"", p.serverAddr, "18101", true}}
			}, "server-ka"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			conns := tc.conns(p)
			var clients [2]*proc
			var ports [2]int
			servers := map[string]bool{}
			for i, c := range conns {
				key := c.addr + " " + c.port
				if !servers[key] {
					startServer(t, p, c.addr, c.port, "echo")
					servers[key] = true
				}
				args := []string{c.addr, c.port}
				if c.keepalive {
					args = append(args, "1h", "1h", "3")
				}
				clients[i] = startHelper(t, p.client, c.exe, "client", args...)
				ports[i] = atoi(t, clients[i].expect("connected", startTimeout))
			}
			s := startTrace(t, tracer.Config{All: true, Filters: tc.filters(p, []int{clients[0].pid, clients[1].pid})})
			// The filtered-out connection closes first: once the wanted
			// one's close is out, the other's would have been too.
			for _, i := range []int{0, 1} {
				clients[i].send("ping")
				clients[i].expect("got", startTimeout)
				clients[i].send("close")
				clients[i].expect("closed", startTimeout)
			}
			s.waitFor("the wanted connection's close", 1, eventTimeout,
				and(typeIs("close"), inNetns(p.clientIno), lport(ports[1])))
			if tc.side == "both" {
				s.waitFor("the wanted connection's server-side close", 1, eventTimeout,
					and(typeIs("close"), inNetns(p.serverIno), rport(ports[1])))
			}
			s.stop()
			for _, r := range s.all(func(r rec) bool { return r.has("sock") }) {
				ino := uint32(r.num("netns"))
				if ino != p.clientIno && ino != p.serverIno {
					// Other sockets on the host may match too (and the
					// namespaces of earlier subtests close theirs late).
					if tc.side == "netns" {
						t.Errorf("a record from another namespace passed the netns filter: %v", r)
					}
					continue
				}
				clientOut := ino == p.clientIno && int(r.num("lport")) == ports[0]
				serverOut := ino == p.serverIno && int(r.num("rport")) == ports[0]
				switch {
				case tc.side == "netns" && ino != p.clientIno:
					t.Errorf("a record from another namespace passed: %v", r)
				case tc.side == "client" && ino != p.clientIno:
					t.Errorf("a server-side record passed a filter on the client: %v", r)
				case tc.side == "netns":
				case clientOut || (serverOut && tc.side != "server-ka"):
					t.Errorf("a record of the filtered-out connection passed: %v", r)
				}
			}
		})
	}
}

// witnessKeepalive logs, when the test fails, what the client's network
// namespace says of the connection from local port lport: its socket and
// timer (ss) and the kernel's keepalive counters (nstat). Registered before
// the scenario, it runs after the test's own cleanups have not yet removed
// the namespace.
func witnessKeepalive(t *testing.T, p *pair, lport int) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ss, _ := exec.Command("ip", "netns", "exec", p.client, "ss", "-tonie", "sport", fmt.Sprintf("= :%d", lport)).CombinedOutput()
		nstat, _ := exec.Command("ip", "netns", "exec", p.client, "nstat", "-az", "TcpExtTCPKeepAlive", "TcpExtTCPAbortOnTimeout", "TcpExtTCPAbortOnData").CombinedOutput()
		t.Logf("the client's namespace when the test failed:\nss -tonie:\n%s\nnstat:\n%s", ss, nstat)
	})
}
