package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// runHelper is the body of a helper process (a re-exec of the test binary
// inside a network namespace). It speaks in lines: events on stdout,
// commands on stdin.
func runHelper(role string, args []string) int {
	var err error
	switch role {
	case "server":
		err = serve(args)
	case "dualstack-server":
		err = serveDualStack(args)
	case "client":
		err = client(args)
	case "dial":
		err = dialOnce(args)
	case "churn":
		err = churn(args)
	default:
		if more, ok := moreHelperRoles[role]; ok {
			err = more(args)
		} else {
			err = fmt.Errorf("unknown helper role %q", role)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// serve: server ADDR PORT MODE [IDLE]. MODE echo answers each line with
// "pong"; hold reads and discards until the peer closes; unread never
// reads; http is a net/http server whose IdleTimeout is IDLE. Commands on
// stdin: closeall closes every accepted connection, abortall does so with
// SO_LINGER 0.
func serve(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("server ADDR PORT MODE [IDLE]")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	return serveOn(ln, args)
}

// serveDualStack: dualstack-server PORT MODE [IDLE]. serve on an IPv6
// socket bound to [::] with IPV6_V6ONLY off, as Go's net/http on ":PORT"
// and many daemons listen: IPv4 clients arrive as ::ffff:a.b.c.d.
func serveDualStack(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("dualstack-server PORT MODE [IDLE]")
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp6", net.JoinHostPort("::", args[0]))
	if err != nil {
		return err
	}
	return serveOn(ln, append([]string{"::"}, args...))
}

// serveOn is serve on a listener already open; args as serve's.
func serveOn(ln net.Listener, args []string) error {
	var mu sync.Mutex
	var conns []*net.TCPConn
	// closeall/abortall [N]: close (abort: SO_LINGER 0) every accepted
	// connection, first waiting up to 10s for N of them: a client's
	// connect returns before the server's Accept does.
	go func() {
		cmds := bufio.NewScanner(os.Stdin)
		for cmds.Scan() {
			cmd, want, _ := strings.Cut(cmds.Text(), " ")
			n, _ := strconv.Atoi(want)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				mu.Lock()
				accepted := len(conns)
				mu.Unlock()
				if accepted >= n {
					break
				}
			}
			mu.Lock()
			for _, c := range conns {
				if cmd == "abortall" {
					c.SetLinger(0)
				}
				c.Close()
			}
			say("%s %d", cmd, len(conns))
			conns = nil
			mu.Unlock()
		}
	}()
	if args[2] == "http" {
		if len(args) < 4 {
			return fmt.Errorf("server ADDR PORT http IDLE")
		}
		idle, err := time.ParseDuration(args[3])
		if err != nil {
			return err
		}
		srv := &http.Server{
			IdleTimeout: idle,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, "ok")
			}),
		}
		say("listening")
		return srv.Serve(ln)
	}
	return acceptEach(ln, func(c *net.TCPConn) error {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		go func() {
			switch args[2] {
			case "unread":
				return
			case "hold":
				io.Copy(io.Discard, c)
			default:
				answerPings(c)
			}
			c.Close()
		}()
		return nil
	})
}

// acceptEach says "listening", then gives each connection ln accepts to
// accepted (which starts a goroutine for what takes time) until Accept or
// accepted fails.
func acceptEach(ln net.Listener, accepted func(*net.TCPConn) error) error {
	say("listening")
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		if err := accepted(conn.(*net.TCPConn)); err != nil {
			return err
		}
	}
}

// answerPings answers each line c sends with "pong" until c ends or fails.
func answerPings(c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if _, err := io.WriteString(c, "pong\n"); err != nil {
			return
		}
	}
}

// client: client ADDR PORT [IDLE INTVL COUNT]. Connects (with keepalive
// when given), says "connected LPORT", then runs commands from stdin
// (clientCommands): get (an HTTP/1.1 request and its answer), ping (a
// line and its answer), close, linger0close, tls and h2 (a protocol's
// first bytes), wait (read until the connection fails or ends), exit.
func client(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("client ADDR PORT [IDLE INTVL COUNT]")
	}
	var d net.Dialer
	d.KeepAlive = -1
	conn, err := d.Dial("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		return err
	}
	c := conn.(*net.TCPConn)
	if len(args) >= 5 {
		ka, ok := keepaliveConfig(args[2], args[3], args[4])
		if !ok {
			return fmt.Errorf("bad keepalive settings %v", args[2:5])
		}
		if err := c.SetKeepAliveConfig(ka); err != nil {
			return err
		}
	}
	say("connected %d", c.LocalAddr().(*net.TCPAddr).Port)
	return clientCommands(c, error.Error)
}

// dialOnce: dial ADDR PORT [blocking|TIMEOUT]. One connect, with no
// deadline but the kernel's, or TIMEOUT (a duration: the application's
// own); says "connected PORT" or "failed ERROR". Go's dialer connects
// without blocking and reads the outcome with SO_ERROR; blocking (IPv4
// only) sleeps in connect(2) instead, as C clients and Python do.
func dialOnce(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("dial ADDR PORT [blocking|TIMEOUT]")
	}
	var d net.Dialer
	if len(args) > 2 {
		if args[2] == "blocking" {
			return dialBlocking(args[0], args[1])
		}
		timeout, err := time.ParseDuration(args[2])
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		d.Timeout = timeout
	}
	conn, err := d.Dial("tcp", net.JoinHostPort(args[0], args[1]))
	if err != nil {
		say("failed %v", err)
		return nil
	}
	defer conn.Close()
	say("connected %d", conn.LocalAddr().(*net.TCPAddr).Port)
	return nil
}

func dialBlocking(addr, port string) error {
	ip := net.ParseIP(addr).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return fmt.Errorf("dial %s %s blocking: an IPv4 address and a port", addr, port)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sa := &syscall.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	if err := syscall.Connect(fd, sa); err != nil {
		say("failed %v", err)
		return nil
	}
	local, err := syscall.Getsockname(fd)
	if err != nil {
		return err
	}
	say("connected %d", local.(*syscall.SockaddrInet4).Port)
	return nil
}

// keepaliveConfig turns keepalive on with these settings (durations and
// a count); ok is false when one does not parse.
func keepaliveConfig(idle, intvl, count string) (_ net.KeepAliveConfig, ok bool) {
	i, err1 := time.ParseDuration(idle)
	v, err2 := time.ParseDuration(intvl)
	n, err3 := strconv.Atoi(count)
	if err1 != nil || err2 != nil || err3 != nil {
		return net.KeepAliveConfig{}, false
	}
	return net.KeepAliveConfig{Enable: true, Idle: i, Interval: v, Count: n}, true
}

// keepaliveSpec is keepaliveConfig of "IDLE/INTVL/COUNT".
func keepaliveSpec(spec string) (net.KeepAliveConfig, bool) {
	parts := strings.Split(spec, "/")
	if len(parts) != 3 {
		return net.KeepAliveConfig{}, false
	}
	return keepaliveConfig(parts[0], parts[1], parts[2])
}

// clientCommands runs a client's commands from stdin on c, saying what
// came of each; describe words an error.
func clientCommands(c *net.TCPConn, describe func(error) string) error {
	answers := bufio.NewReader(c)
	cmds := bufio.NewScanner(os.Stdin)
	for cmds.Scan() {
		switch cmd := strings.TrimSpace(cmds.Text()); cmd {
		case "get":
			// One HTTP/1.1 request on the kept-alive connection, as a pool
			// that does not watch its idle connections would send it.
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: katrace\r\n\r\n"); err != nil {
				say("error %s", describe(err))
				continue
			}
			resp, err := http.ReadResponse(answers, nil)
			if err != nil {
				say("error %s", describe(err))
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			say("got %s", resp.Status)
		case "ping":
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				say("error %s", describe(err))
				continue
			}
			line, err := answers.ReadString('\n')
			if err != nil {
				say("error %s", describe(err))
				continue
			}
			say("got %s", strings.TrimSpace(line))
		case "send":
			// A request whose answer is left unread until "wait".
			_, err := io.WriteString(c, "ping\n")
			say("sent %v", err)
		case "close":
			say("closed %v", c.Close())
		case "tls", "h2":
			// The first bytes of a TLS ClientHello, or the HTTP/2 preface.
			first := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
			if cmd == "h2" {
				first = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
			}
			_, err := io.WriteString(c, first)
			say("sent %v", err)
		case "linger0close":
			if err := c.SetLinger(0); err != nil {
				return err
			}
			say("closed %v", c.Close())
		case "wait":
			_, err := io.Copy(io.Discard, answers)
			if err == nil {
				say("eof")
			} else {
				say("error %s", describe(err))
			}
		case "exit":
			return nil
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return nil
}

// churn: churn ADDR PORT N. N connections one after the other, each a ping
// and its answer, closed by us first.
func churn(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("churn ADDR PORT N")
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", net.JoinHostPort(args[0], args[1]))
		if err != nil {
			return err
		}
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return err
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return err
		}
		c.Close()
	}
	say("done %d", n)
	return nil
}
