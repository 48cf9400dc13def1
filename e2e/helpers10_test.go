package e2e

// Peers and a middlebox for issue 10's scenarios: a client with its own
// TCP_USER_TIMEOUT or keepalive, a server that says goodbye before it
// closes an idle connection, and a NAT namespace between client and server
// that forgets idle flows and then drops or resets what still comes.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// moreHelperRoles are the helper roles of this file; runHelper falls back
// to them.
var moreHelperRoles = map[string]func(args []string) error{
	"tclient":   tunedClient,
	"goodbye":   goodbyeServer,
	"kaserver":  keepaliveServer,
	"slowclose": slowCloseServer,
}

// slowCloseServer: slowclose ADDR PORT DELAY. Answers each connection's
// first line after DELAY with "answer" and closes 2 ms later, as an HTTP
// server answering a slow request with Connection: close: from the FIN
// alone it looks like a goodbye after idle, and must not be called one.
func slowCloseServer(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("slowclose ADDR PORT DELAY")
	}
	delay, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	return acceptEach(ln, func(c *net.TCPConn) error {
		go func() {
			defer c.Close()
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				return
			}
			time.Sleep(delay)
			if _, err := io.WriteString(c, "answer\n"); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}()
		return nil
	})
}

// keepaliveServer: kaserver ADDR PORT IDLE/INTVL/COUNT. Accepts, turns
// keepalive on each accepted connection as redis-server's tcp-keepalive
// does, answers each line with "pong".
func keepaliveServer(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("kaserver ADDR PORT IDLE/INTVL/COUNT")
	}
	ka, ok := keepaliveSpec(args[2])
	if !ok {
		return fmt.Errorf("kaserver keepalive %q: want IDLE/INTVL/COUNT", args[2])
	}
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	return acceptEach(ln, func(c *net.TCPConn) error {
		if err := c.SetKeepAliveConfig(ka); err != nil {
			return err
		}
		go func() {
			defer c.Close()
			answerPings(c)
		}()
		return nil
	})
}

// tunedClient: tclient ADDR PORT [ut=DURATION] [ka=IDLE/INTVL/COUNT].
// Connects with TCP_USER_TIMEOUT and keepalive as given (keepalive off
// otherwise), says "connected LPORT", then runs client's commands from
// stdin (ping: "got ..." or "error ..."; wait: "eof" or "error ..."),
// naming an error by its errno (ETIMEDOUT) where it has one.
func tunedClient(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("tclient ADDR PORT [ut=DURATION] [ka=IDLE/INTVL/COUNT]")
	}
	var userTimeout time.Duration
	var ka *net.KeepAliveConfig
	for _, opt := range args[2:] {
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "ut":
			d, err := time.ParseDuration(val)
			if err != nil {
				return fmt.Errorf("ut=%s: %w", val, err)
			}
			userTimeout = d
		case "ka":
			cfg, ok := keepaliveSpec(val)
			if !ok {
				return fmt.Errorf("ka=%s: want IDLE/INTVL/COUNT", val)
			}
			ka = &cfg
		default:
			return fmt.Errorf("unknown tclient option %q", opt)
		}
	}
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.Dial("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	c := conn.(*net.TCPConn)
	if userTimeout > 0 {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout/time.Millisecond))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("TCP_USER_TIMEOUT: %w", serr)
		}
	}
	if ka != nil {
		if err := c.SetKeepAliveConfig(*ka); err != nil {
			return err
		}
	}
	say("connected %d", c.LocalAddr().(*net.TCPAddr).Port)
	return clientCommands(c, errnoOf)
}

// errnoOf names the errno under a network error (ETIMEDOUT, ECONNRESET),
// which is what the tests check against katrace's verdict.
func errnoOf(err error) string {
	var errno syscall.Errno
	if ok := asErrno(err, &errno); ok {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

func asErrno(err error, target *syscall.Errno) bool {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// goodbyeServer: goodbye ADDR PORT IDLE SIZE. Answers each line with
// "pong"; a connection silent for IDLE gets a SIZE-byte goodbye (as
// PostgreSQL's idle_session_timeout, MySQL's wait_timeout or an SMTP 421
// send one), then, 2 ms later, its FIN. Says "goodbye RPORT" for each.
func goodbyeServer(args []string) error {
	if len(args) < 4 {
		return fmt.Errorf("goodbye ADDR PORT IDLE SIZE")
	}
	idle, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(args[3])
	if err != nil || size < 2 {
		return fmt.Errorf("goodbye SIZE %q: want a number of bytes, at least 2", args[3])
	}
	msg := goodbyeMessage(size)
	ln, err := net.Listen("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	var out sync.Mutex
	return acceptEach(ln, func(c *net.TCPConn) error {
		go func() {
			defer c.Close()
			lines := bufio.NewReader(c)
			for {
				c.SetReadDeadline(time.Now().Add(idle))
				_, err := lines.ReadString('\n')
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break
				}
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, "pong\n"); err != nil {
					return
				}
			}
			if _, err := io.WriteString(c, msg); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
			c.Close()
			out.Lock()
			say("goodbye %d", c.RemoteAddr().(*net.TCPAddr).Port)
			out.Unlock()
		}()
		return nil
	})
}

// goodbyeMessage is PostgreSQL's idle-session goodbye, cut or padded to size.
func goodbyeMessage(size int) string {
	const text = "FATAL:  terminating connection due to idle-session timeout"
	b := []byte(strings.Repeat(text+" ", size/len(text)+1))[:size-1]
	return string(b) + "\n"
}

// --- a middlebox between client and server ---

// natPath is three network namespaces: the client, a NAT router, the
// server. The router masquerades the client's flows behind its outside
// address and forgets an established flow after ctTimeout without
// packets; a packet of a forgotten flow (not a SYN) is then dropped
// silently or answered with a reset (forgotten: "drop" or "reset"), as
// cloud NATs, load balancers and stateful firewalls do. The server sees
// the router's outside address as its peer.
type natPath struct {
	client, router, server string
	clientAddr             string // client's address, inside
	routerInside           string // the client's gateway
	routerOutside          string // what the server sees
	serverAddr             string
	clientIno, serverIno   uint32
	routerIno              uint32
}

func newNATPath(t *testing.T, forgotten string, ctTimeout time.Duration) *natPath {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("privileged end-to-end test: needs nft (nftables)")
	}
	if _, err := exec.LookPath("conntrack"); err != nil {
		t.Skip("privileged end-to-end test: needs conntrack (conntrack-tools)")
	}
	verdict := map[string]string{"drop": "drop", "reset": "reject with tcp reset"}[forgotten]
	if verdict == "" {
		t.Fatalf("newNATPath: forgotten flows are dropped or reset, not %q", forgotten)
	}
	seq := int(netSeq.Add(1)) + 100
	in, out := subnetOctet(seq), subnetOctet(int(netSeq.Add(1))+100)
	id := fmt.Sprintf("kt%d-%d", os.Getpid()%100000, seq)
	n := &natPath{
		client: id + "c", router: id + "r", server: id + "s",
		clientAddr: fmt.Sprintf("10.213.%d.1", in), routerInside: fmt.Sprintf("10.213.%d.2", in),
		routerOutside: fmt.Sprintf("10.213.%d.1", out), serverAddr: fmt.Sprintf("10.213.%d.2", out),
	}
	t.Cleanup(func() {
		for _, ns := range []string{n.client, n.router, n.server} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range []string{n.client, n.router, n.server} {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "v"+id+"c", "netns", n.client, "type", "veth", "peer", "name", "v"+id+"i", "netns", n.router)
	run(t, "ip", "link", "add", "v"+id+"s", "netns", n.server, "type", "veth", "peer", "name", "v"+id+"o", "netns", n.router)
	for _, l := range []struct{ ns, dev, addr string }{
		{n.client, "v" + id + "c", n.clientAddr},
		{n.router, "v" + id + "i", n.routerInside},
		{n.router, "v" + id + "o", n.routerOutside},
		{n.server, "v" + id + "s", n.serverAddr},
	} {
		run(t, "ip", "-n", l.ns, "addr", "add", l.addr+"/24", "dev", l.dev)
		run(t, "ip", "-n", l.ns, "link", "set", l.dev, "up")
	}
	run(t, "ip", "-n", n.client, "route", "add", "default", "via", n.routerInside)
	run(t, "ip", "-n", n.server, "route", "add", "default", "via", n.routerOutside)
	run(t, "ip", "netns", "exec", n.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ruleset := fmt.Sprintf(`table ip katrace_nat {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct state new tcp flags & (syn|ack|rst) != syn counter %s
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		oifname "v%so" masquerade
	}
}
`, verdict, id)
	cmd := exec.Command("ip", "netns", "exec", n.router, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", n.router, err, out)
	}
	// The conntrack sysctls of a namespace exist once its table is in use.
	run(t, "ip", "netns", "exec", n.router, "sysctl", "-qw",
		fmt.Sprintf("net.netfilter.nf_conntrack_tcp_timeout_established=%d", int(ctTimeout/time.Second)))
	n.clientIno = netnsInode(t, n.client)
	n.routerIno = netnsInode(t, n.router)
	n.serverIno = netnsInode(t, n.server)
	return n
}

// waitForgotten waits until the router no longer tracks the client's flow
// from port clientPort: its next packet meets the forgotten-flow rule.
func (n *natPath) waitForgotten(t *testing.T, clientPort int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, _ := exec.Command("ip", "netns", "exec", n.router, "conntrack", "-L", "-p", "tcp",
			"--orig-src", n.clientAddr, "--sport", strconv.Itoa(clientPort)).CombinedOutput()
		if !strings.Contains(string(out), "sport="+strconv.Itoa(clientPort)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router still tracks the flow from port %d after %v:\n%s", clientPort, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forgottenPackets is how many packets the forgotten-flow rule has met.
func (n *natPath) forgottenPackets(t *testing.T) int {
	t.Helper()
	out := run(t, "ip", "netns", "exec", n.router, "nft", "list", "chain", "ip", "katrace_nat", "forward")
	i := strings.Index(out, "counter packets ")
	if i < 0 {
		t.Fatalf("no counter in the router's rule:\n%s", out)
	}
	var packets int
	fmt.Sscan(out[i+len("counter packets "):], &packets)
	return packets
}

// outsidePort is the port the router gave the client's flow, as the server
// sees it (masquerade keeps the client's port when it is free).
func (n *natPath) outsidePort(t *testing.T, clientPort int) int {
	t.Helper()
	out := run(t, "ip", "netns", "exec", n.router, "conntrack", "-L", "-p", "tcp",
		"--orig-src", n.clientAddr, "--sport", strconv.Itoa(clientPort))
	// The reply direction's dport is the outside port.
	fields := strings.Fields(out)
	var ports []string
	for _, f := range fields {
		if p, ok := strings.CutPrefix(f, "dport="); ok {
			ports = append(ports, p)
		}
	}
	if len(ports) < 2 {
		t.Fatalf("no NAT entry for port %d:\n%s", clientPort, out)
	}
	return atoi(t, ports[1])
}

// setSysctl sets a sysctl inside a namespace.
func setSysctl(t *testing.T, ns, key, value string) {
	t.Helper()
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", key+"="+value)
}
