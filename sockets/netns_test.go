package sockets

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/filter"
	"github.com/katrace/katrace/record"
)

// privileged skips the test, with one line, unless it can load BPF
// programs and make network namespaces.
func privileged(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loads a BPF iterator, makes network namespaces)")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("needs a kernel with BTF (/sys/kernel/btf/vmlinux)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// nsPair makes two network namespaces joined by a veth pair: a at
// 10.213.X.1 and fd00:213:X::1, b at .2 and ::2. Both are deleted when the
// test ends, whatever happens.
type nsPair struct {
	a, b       string
	inoA, inoB uint32
	v4A, v4B   string
	v6A, v6B   string
}

const testSubnet = 44 // 10.213.44.0/24, fd00:213:44::/64

func newNSPair(t *testing.T) *nsPair {
	t.Helper()
	sfx := fmt.Sprintf("%d-%04x", os.Getpid(), rand.IntN(1<<16))
	p := &nsPair{
		a: "katrace-sk-a-" + sfx, b: "katrace-sk-b-" + sfx,
		v4A: fmt.Sprintf("10.213.%d.1", testSubnet), v4B: fmt.Sprintf("10.213.%d.2", testSubnet),
		v6A: fmt.Sprintf("fd00:213:%d::1", testSubnet), v6B: fmt.Sprintf("fd00:213:%d::2", testSubnet),
	}
	for _, ns := range []string{p.a, p.b} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh(t, "ip", "link", "add", "vka", "netns", p.a, "type", "veth", "peer", "name", "vkb", "netns", p.b)
	for _, x := range []struct{ ns, dev, v4, v6 string }{{p.a, "vka", p.v4A, p.v6A}, {p.b, "vkb", p.v4B, p.v6B}} {
		sh(t, "ip", "-n", x.ns, "addr", "add", x.v4+"/24", "dev", x.dev)
		sh(t, "ip", "-n", x.ns, "-6", "addr", "add", x.v6+"/64", "dev", x.dev, "nodad")
		sh(t, "ip", "-n", x.ns, "link", "set", x.dev, "up")
		sh(t, "ip", "-n", x.ns, "link", "set", "lo", "up")
	}
	p.inoA, p.inoB = nsInode(t, p.a), nsInode(t, p.b)
	return p
}

func nsInode(t *testing.T, ns string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+ns, &st); err != nil {
		t.Fatalf("stat /run/netns/%s: %v", ns, err)
	}
	return uint32(st.Ino)
}

// helper is a helper process started inside a namespace.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines []string // what it printed before "ready"
}

func startHelper(t *testing.T, ns, role string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "KATRACE_SOCKETS_HELPER="+role), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the %s helper: %v", role, err)
	}
	h := &helper{cmd: cmd, stdin: in}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
			h.lines = append(h.lines, sc.Text())
		}
		ready <- fmt.Errorf("exited before it was ready: %s", stderr.String())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%s helper: %v", role, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s helper not ready after 15 s: %s", role, stderr.String())
	}
	return h
}

// identities returns role → owner from the helper's "ROLE PID COMM" lines.
func (h *helper) identities(t *testing.T) map[string]Owner {
	out := map[string]Owner{}
	for _, l := range h.lines {
		f := strings.Fields(l)
		if len(f) == 3 && (f[0] == "server" || f[0] == "client" || f[0] == "holder") {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("helper line %q", l)
			}
			out[f[0]] = Owner{PID: uint32(pid), Comm: f[2]}
		}
	}
	return out
}

type helperConn struct {
	name   string
	target netip.AddrPort
	lport  uint16
}

func (h *helper) conns(t *testing.T) []helperConn {
	var out []helperConn
	for _, l := range h.lines {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "conn" {
			continue
		}
		ap, err := netip.ParseAddrPort(f[2])
		if err != nil {
			t.Fatalf("helper line %q: %v", l, err)
		}
		port, _ := strconv.Atoi(f[3])
		out = append(out, helperConn{name: f[1], target: ap, lport: uint16(port)})
	}
	return out
}

func readSysctl(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pollSnapshot takes snapshots until ok accepts one, or fails at the deadline.
func pollSnapshot(t *testing.T, opts Options, ok func(*Result) string) *Result {
	t.Helper()
	return pollWith(t, func() (*Result, error) { return Snapshot(opts) }, ok)
}

func pollWith(t *testing.T, take func() (*Result, error), ok func(*Result) string) *Result {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := take()
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		why := ok(res)
		if why == "" {
			return res
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			_ = WriteText(&b, res)
			t.Fatalf("after 15 s: %s\n%s", why, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func find(ss []Socket, v6 bool, lport uint16) *Socket {
	for i := range ss {
		if ss[i].IPv6 == v6 && ss[i].LPort == lport {
			return &ss[i]
		}
	}
	return nil
}

// TestSnapshotNamespaces opens connections with their own keepalive
// settings, with only SO_KEEPALIVE, and without it, over IPv4 and IPv6,
// from a client namespace whose net.ipv4.tcp_keepalive_* differ from the
// host's, and checks every row the iterator gives for them.
func TestSnapshotNamespaces(t *testing.T) {
	privileged(t)
	p := newNSPair(t)

	// The client namespace's sysctls, different from the host's.
	kaTime := 600
	if readSysctl(t, "net.ipv4.tcp_keepalive_time") == kaTime {
		kaTime = 660
	}
	kaIntvl, kaProbes := 33, 5
	sh(t, "ip", "netns", "exec", p.a, "sysctl", "-q", "-w",
		fmt.Sprintf("net.ipv4.tcp_keepalive_time=%d", kaTime),
		fmt.Sprintf("net.ipv4.tcp_keepalive_intvl=%d", kaIntvl),
		fmt.Sprintf("net.ipv4.tcp_keepalive_probes=%d", kaProbes))

	const port = 7044
	v4 := net.JoinHostPort(p.v4B, strconv.Itoa(port))
	v6 := net.JoinHostPort(p.v6B, strconv.Itoa(port))
	server := startHelper(t, p.b, "server", "KATRACE_HELPER_LISTEN="+v4+","+v6)
	client := startHelper(t, p.a, "client", "KATRACE_HELPER_TARGETS="+v4+","+v6)
	srv := server.identities(t)["server"]
	ids := client.identities(t)
	cli, holder := ids["client"], ids["holder"]
	if srv.PID == 0 || cli.PID == 0 || holder.PID == 0 {
		t.Fatalf("helpers did not say who they are: %v %v", server.lines, client.lines)
	}
	conns := client.conns(t)
	if len(conns) != 2*len(helperConns) {
		t.Fatalf("client made %d connections, want %d: %v", len(conns), 2*len(helperConns), client.lines)
	}

	// Client side: wait until the "tw" connections reached TIME_WAIT.
	res := pollSnapshot(t, Options{Filters: filter.Set{NetNS: p.inoA}}, func(r *Result) string {
		for _, c := range conns {
			s := find(r.Sockets, c.target.Addr().Is6(), c.lport)
			if s == nil {
				return fmt.Sprintf("no row for %s (local port %d)", c.name, c.lport)
			}
			if c.name == "tw" && s.State != "TIME_WAIT" {
				return fmt.Sprintf("%s is %s, not yet TIME_WAIT", c.name, s.State)
			}
		}
		return ""
	})
	if res.Source != FromIterator {
		t.Fatalf("source %q, want %q (fallback: %v)", res.Source, FromIterator, res.Fallback)
	}
	if len(res.Sockets) != len(conns) {
		t.Errorf("%d sockets in the client namespace, want %d", len(res.Sockets), len(conns))
	}
	nsIdle, nsIntvl := int64(kaTime)*1000, int64(kaIntvl)*1000
	for _, c := range conns {
		v6 := c.target.Addr().Is6()
		s := find(res.Sockets, v6, c.lport)
		t.Run(fmt.Sprintf("%s/%s", c.name, s.Family()), func(t *testing.T) {
			want := record.SocketID{
				IPv6: v6, LAddr: netip.MustParseAddr(map[bool]string{false: p.v4A, true: p.v6A}[v6]),
				RAddr: c.target.Addr(), LPort: c.lport, RPort: port, NetNS: p.inoA,
			}
			if s.LAddr != want.LAddr || s.RAddr != want.RAddr || s.RPort != want.RPort || s.NetNS != want.NetNS {
				t.Errorf("endpoints %v:%d → %v:%d netns %d, want %v:%d → %v:%d netns %d",
					s.LAddr, s.LPort, s.RAddr, s.RPort, s.NetNS, want.LAddr, want.LPort, want.RAddr, want.RPort, want.NetNS)
			}
			if s.Cookie == 0 {
				t.Error("no cookie")
			}
			if c.name == "tw" {
				if s.Kind != KindTimewait || s.Timer != TimerTimeWait || s.TimerInMs <= 0 || s.TimerInMs > 60_000 {
					t.Errorf("kind %s timer %s in %d ms, want a timewait socket with time_wait in (0, 60 s]", s.Kind, s.Timer, s.TimerInMs)
				}
				if len(s.Owners) != 0 || s.Keepalive || s.KeepaliveSource != "" {
					t.Errorf("timewait socket has owners %v, keepalive %v, source %q", s.Owners, s.Keepalive, s.KeepaliveSource)
				}
				return
			}
			if s.State != "ESTABLISHED" || s.Kind != KindFull {
				t.Errorf("state %s kind %s, want ESTABLISHED full", s.State, s.Kind)
			}
			wantOwners := []Owner{cli}
			if c.name == "shared" {
				wantOwners = []Owner{cli, holder}
				if holder.PID < cli.PID {
					wantOwners = []Owner{holder, cli}
				}
			}
			if fmt.Sprint(s.Owners) != fmt.Sprint(wantOwners) {
				t.Errorf("owners %v, want %v", s.Owners, wantOwners)
			}
			if s.IdleMs < 0 || s.IdleMs > 60_000 {
				t.Errorf("idle %d ms, want a known, recent idle time", s.IdleMs)
			}
			if s.ProbesOut != 0 {
				t.Errorf("probes out %d, want 0", s.ProbesOut)
			}
			type ka struct {
				on          bool
				idle, intvl int64
				probes      int
				source      string
				inherited   string
				userTO      int64
			}
			got := ka{s.Keepalive, s.KeepaliveIdleMs, s.KeepaliveIntervalMs, s.KeepaliveProbes, s.KeepaliveSource, strings.Join(s.KeepaliveInherited, ","), s.UserTimeoutMs}
			var exp ka
			switch c.name {
			case "own":
				exp = ka{true, 31_000, 7_000, 4, SourceSocket, "", 21_000}
			case "partial":
				exp = ka{true, 45_000, nsIntvl, kaProbes, SourceSocket, "interval,probes", Absent}
			case "only", "shared":
				exp = ka{true, nsIdle, nsIntvl, kaProbes, SourceSysctl, "", Absent}
			case "none":
				exp = ka{false, nsIdle, nsIntvl, kaProbes, SourceSysctl, "", Absent}
			}
			if got != exp {
				t.Errorf("keepalive %+v, want %+v", got, exp)
			}
			if exp.on {
				if s.Timer != TimerKeepalive || s.TimerInMs <= 0 || s.TimerInMs > exp.idle {
					t.Errorf("timer %s in %d ms, want keepalive in (0, %d]", s.Timer, s.TimerInMs, exp.idle)
				}
			} else if s.Timer != TimerNone || s.TimerInMs != Absent {
				t.Errorf("timer %s in %d ms, want none", s.Timer, s.TimerInMs)
			}
		})
	}

	// The text table shows the shared socket's owners as pid/comm,+1.
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	first := cli
	if holder.PID < cli.PID {
		first = holder
	}
	if want := fmt.Sprintf("%d/%s,+1", first.PID, first.Comm); !strings.Contains(text.String(), want) {
		t.Errorf("text output lacks %q:\n%s", want, text.String())
	}

	// Filters: --pid of the holder gives only the two shared sockets.
	byPid, err := Snapshot(Options{Filters: filter.Set{NetNS: p.inoA, PID: holder.PID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(byPid.Sockets) != 2 {
		t.Errorf("--pid %d: %d sockets, want the 2 shared ones", holder.PID, len(byPid.Sockets))
	}
	ka, err := Snapshot(Options{Filters: filter.Set{NetNS: p.inoA, KeepaliveOnly: true, Addrs: []netip.Prefix{netip.MustParsePrefix(p.v6B + "/128")}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ka.Sockets) != 4 { // own, partial, only, shared over IPv6
		t.Errorf("--keepalive-only --addr %s: %d sockets, want 4", p.v6B, len(ka.Sockets))
	}

	// Server side: accepted sockets without keepalive, the host's defaults
	// (a new namespace starts with the kernel's 7200/75/9, not the host's
	// values), owned by the server; listeners only with Listening.
	// Wait until the server accepted every connection and closed the
	// closed ones.
	srvRes := pollSnapshot(t, Options{Filters: filter.Set{NetNS: p.inoB}}, serverSettled(2*(len(helperConns)-1), srv))
	for _, s := range srvRes.Sockets {
		if s.State == "LISTEN" {
			t.Errorf("listening socket listed without Listening: %+v", s)
		}
		if s.LPort != port || s.Keepalive || s.KeepaliveSource != SourceSysctl || s.KeepaliveIdleMs != 7_200_000 {
			t.Errorf("server socket %v:%d keepalive %v %d ms from %s, want port %d without keepalive, 7200 s from sysctl",
				s.LAddr, s.LPort, s.Keepalive, s.KeepaliveIdleMs, s.KeepaliveSource, port)
		}
		if fmt.Sprint(s.Owners) != fmt.Sprint([]Owner{srv}) {
			t.Errorf("server socket owners %v, want %v", s.Owners, srv)
		}
	}
	lis, err := Snapshot(Options{Filters: filter.Set{NetNS: p.inoB, Ports: []uint16{port}}, Listening: true})
	if err != nil {
		t.Fatal(err)
	}
	listeners := 0
	for _, s := range lis.Sockets {
		if s.State == "LISTEN" {
			listeners++
			if fmt.Sprint(s.Owners) != fmt.Sprint([]Owner{srv}) {
				t.Errorf("listener owners %v, want %v", s.Owners, srv)
			}
		}
	}
	if listeners != 2 {
		t.Errorf("%d listeners with Listening, want 2 (IPv4 and IPv6)", listeners)
	}
}

// TestSockDiagFallback reads the same namespace through sock_diag: the
// identities, owners, timers and idle times agree with the iterator, and
// the keepalive settings are reported unknown.
func TestSockDiagFallback(t *testing.T) {
	privileged(t)
	if _, err := sockDiag(); errors.Is(err, unix.ENOENT) {
		t.Skip("sock_diag has no TCP support here (the tcp_diag module is not loaded)")
	}
	p := newNSPair(t)
	const port = 7045
	v4 := net.JoinHostPort(p.v4B, strconv.Itoa(port))
	server := startHelper(t, p.b, "server", "KATRACE_HELPER_LISTEN="+v4)
	srv := server.identities(t)["server"]
	client := startHelper(t, p.a, "client", "KATRACE_HELPER_TARGETS="+v4)
	conns := client.conns(t)

	// sock_diag answers for the caller's namespace: Snapshot enters b.
	pollSnapshot(t, Options{NoIterator: true, Filters: filter.Set{NetNS: p.inoB}}, serverSettled(len(conns)-1, srv))
	res, err := Snapshot(Options{NoIterator: true, Filters: filter.Set{NetNS: p.inoB}, Listening: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != FromSockDiag || len(res.Unknown) == 0 {
		t.Fatalf("source %q unknown %v", res.Source, res.Unknown)
	}
	estab, listen := 0, 0
	for _, s := range res.Sockets {
		if s.NetNS != p.inoB {
			t.Errorf("netns %d, want %d", s.NetNS, p.inoB)
		}
		switch s.State {
		case "LISTEN":
			listen++
		case "ESTABLISHED":
			estab++
			if s.IdleMs < 0 || s.ProbesOut != 0 || s.KeepaliveIdleMs != Absent || s.KeepaliveSource != "" {
				t.Errorf("row %+v: want idle and probes known, keepalive settings unknown", s)
			}
		}
		if s.Kind == KindFull && fmt.Sprint(s.Owners) != fmt.Sprint([]Owner{srv}) {
			t.Errorf("owners %v, want %v", s.Owners, srv)
		}
	}
	if listen != 1 || estab != len(conns)-1 {
		t.Errorf("%d listeners and %d established, want 1 and %d", listen, estab, len(conns)-1)
	}
}

// serverSettled accepts a snapshot of the server namespace once it holds n
// established sockets, each accepted (owned) by srv.
func serverSettled(n int, srv Owner) func(*Result) string {
	return func(r *Result) string {
		estab := 0
		for _, s := range r.Sockets {
			if s.State != "ESTABLISHED" {
				return fmt.Sprintf("%v:%d is %s", s.LAddr, s.LPort, s.State)
			}
			if fmt.Sprint(s.Owners) != fmt.Sprint([]Owner{srv}) {
				return fmt.Sprintf("%v:%d → %v:%d owned by %v, not yet accepted", s.LAddr, s.LPort, s.RAddr, s.RPort, s.Owners)
			}
			estab++
		}
		if estab != n {
			return fmt.Sprintf("%d established sockets, want %d", estab, n)
		}
		return ""
	}
}
