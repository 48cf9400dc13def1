package sockets

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The privileged tests run their sockets in helper processes inside network
// namespaces: this test binary, re-executed with KATRACE_SOCKETS_HELPER set,
// so that the owner (pid, comm) of each socket is a known process.
func TestMain(m *testing.M) {
	switch os.Getenv("KATRACE_SOCKETS_HELPER") {
	case "":
		os.Exit(m.Run())
	case "server":
		helperServer()
	case "client":
		helperClient()
	case "holder":
		helperHolder()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper")
		os.Exit(2)
	}
	os.Exit(0)
}

func helperFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "helper: "+format+"\n", args...)
	os.Exit(1)
}

// helperIdentity prints the helper's pid and comm.
func helperIdentity(role string) {
	comm, _ := os.ReadFile("/proc/self/comm")
	fmt.Printf("%s %d %s\n", role, os.Getpid(), strings.TrimSpace(string(comm)))
}

// waitStdin blocks until the test closes the helper's standard input.
func waitStdin() { _, _ = io.Copy(io.Discard, os.Stdin) }

// helperServer listens on KATRACE_HELPER_LISTEN (comma-separated
// host:port), without keepalive; each accepted connection is held until the
// client closes it, then closed.
func helperServer() {
	lc := net.ListenConfig{KeepAlive: -1}
	for _, addr := range strings.Split(os.Getenv("KATRACE_HELPER_LISTEN"), ",") {
		network := "tcp4"
		if strings.HasPrefix(addr, "[") {
			network = "tcp6"
		}
		ln, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			helperFail("listen %s: %v", addr, err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}()
			}
		}()
	}
	helperIdentity("server")
	fmt.Println("ready")
	waitStdin()
}

// sockopts are the options a client connection sets before connect.
type sockopts struct {
	keepalive                bool
	idle, intvl, cnt, userTO int
}

// The client connections: name → options.
var helperConns = []struct {
	name string
	opts sockopts
}{
	{"own", sockopts{keepalive: true, idle: 31, intvl: 7, cnt: 4, userTO: 21000}},
	{"partial", sockopts{keepalive: true, idle: 45}},
	{"only", sockopts{keepalive: true}},
	{"none", sockopts{}},
	{"shared", sockopts{keepalive: true}},
	{"tw", sockopts{}},
}

func dialWith(target string, o sockopts) (*net.TCPConn, error) {
	d := net.Dialer{KeepAlive: -1, Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			set := func(level, opt, v int) {
				if serr == nil && v != 0 {
					serr = unix.SetsockoptInt(int(fd), level, opt, v)
				}
			}
			if o.keepalive {
				set(unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
			}
			set(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, o.idle)
			set(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, o.intvl)
			set(unix.IPPROTO_TCP, unix.TCP_KEEPCNT, o.cnt)
			set(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, o.userTO)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// helperClient connects to each of KATRACE_HELPER_TARGETS (host:port) once
// per helperConns entry and prints "conn NAME TARGET LPORT" for each. The
// "shared" connection is also handed to a holder child process, and the
// "tw" one is closed at once (it goes to TIME_WAIT).
func helperClient() {
	var shared []*os.File
	for _, target := range strings.Split(os.Getenv("KATRACE_HELPER_TARGETS"), ",") {
		for _, hc := range helperConns {
			c, err := dialWith(target, hc.opts)
			if err != nil {
				helperFail("dial %s: %v", target, err)
			}
			fmt.Printf("conn %s %s %d\n", hc.name, target, c.LocalAddr().(*net.TCPAddr).Port)
			switch hc.name {
			case "tw":
				c.Close()
			case "shared":
				f, err := c.File()
				if err != nil {
					helperFail("dup: %v", err)
				}
				shared = append(shared, f)
				defer c.Close()
			default:
				defer c.Close()
			}
		}
	}
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), "KATRACE_SOCKETS_HELPER=holder")
	holder.ExtraFiles = shared
	holder.Stderr = os.Stderr
	in, err := holder.StdinPipe()
	if err != nil {
		helperFail("holder: %v", err)
	}
	out, err := holder.StdoutPipe()
	if err != nil {
		helperFail("holder: %v", err)
	}
	if err := holder.Start(); err != nil {
		helperFail("holder: %v", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "ready" {
			break
		}
		fmt.Println(sc.Text())
	}
	for _, f := range shared {
		f.Close()
	}
	helperIdentity("client")
	fmt.Println("ready")
	waitStdin()
	in.Close()
	_ = holder.Wait()
}

// helperHolder holds the sockets it inherited (fd 3 on) until its standard
// input closes.
func helperHolder() {
	helperIdentity("holder")
	fmt.Println("ready")
	waitStdin()
}
