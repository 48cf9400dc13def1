package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/container"
)

// runKatrace runs the cli app in-process and returns what it wrote.
func runKatrace(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.RunContext(context.Background(), append([]string{"katrace"}, args...))
	return out.String(), err
}

func privilegedCmdTest(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loads BPF programs)")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("needs a kernel with BTF (/sys/kernel/btf/vmlinux)")
	}
}

func TestSocketsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sockets", "-o", "yaml"},
		{"sockets", "--port", "0"},
		{"sockets", "--addr", "not-an-address"},
		{"sockets", "extra"},
		{"check", "-o", "xml"},
		{"check", "extra"},
	} {
		_, err := runKatrace(t, args...)
		var ue usageError
		if !errors.As(err, &ue) || exitCode(err, io.Discard) != exitUsage {
			t.Errorf("katrace %s: error %v, want a usage error (exit 2)", strings.Join(args, " "), err)
		}
	}
}

// sockWithKeepalive dials addr with SO_KEEPALIVE and its own settings.
func sockWithKeepalive(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{KeepAlive: -1, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range [][3]int{
				{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 17},
				{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 3},
				{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 2},
			} {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), o[0], o[1], o[2])
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSocketsCommand runs `katrace sockets` on a loopback connection of
// this process: the client with its own keepalive settings, the accepted
// side without keepalive, and the listener only with --listening.
func TestSocketsCommand(t *testing.T) {
	privilegedCmdTest(t)
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client := sockWithKeepalive(t, ln.Addr().String())
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	clientPort := client.LocalAddr().(*net.TCPAddr).Port
	comm, _ := os.ReadFile("/proc/self/comm")
	owner := fmt.Sprintf("%d/%s", os.Getpid(), strings.TrimSpace(string(comm)))

	out, err := runKatrace(t, "sockets", "-o", "json", "--port", strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Type, Family, Laddr, Raddr, State, Comm, KeepaliveSource, Timer string
		Lport, Rport                                                    int
		Pid                                                             int
		Keepalive                                                       bool
		KeepaliveIdleMs, KeepaliveIntervalMs, KeepaliveProbes           int
		TimerInMs                                                       *int
	}
	var rows []row
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		// Field names as in the contract (snake_case), read back by hand.
		b, _ := json.Marshal(m)
		var r row
		dec := json.NewDecoder(bytes.NewReader(bytes.ReplaceAll(b, []byte("_"), nil)))
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		// Other sockets may share the port (TIME_WAIT leftovers of earlier
		// runs): only this connection's two ends count.
		if r.Lport != clientPort && r.Rport != clientPort {
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want the client and the accepted socket:\n%s", len(rows), out)
	}
	for _, r := range rows {
		if r.Type != "socket" || r.Family != "ipv4" || r.State != "ESTABLISHED" || r.Pid != os.Getpid() ||
			fmt.Sprintf("%d/%s", r.Pid, r.Comm) != owner {
			t.Errorf("row %+v: want an ESTABLISHED ipv4 socket owned by %s", r, owner)
		}
		if r.Lport == clientPort {
			if !r.Keepalive || r.KeepaliveIdleMs != 17000 || r.KeepaliveIntervalMs != 3000 || r.KeepaliveProbes != 2 ||
				r.KeepaliveSource != "socket" || r.Timer != "keepalive" || r.TimerInMs == nil || *r.TimerInMs > 17000 {
				t.Errorf("client row %+v: want keepalive 17 s/3 s/2 from the socket, timer armed", r)
			}
		} else if r.Lport != port || r.Keepalive || r.KeepaliveSource != "sysctl" || r.Timer != "none" {
			t.Errorf("accepted row %+v: want port %d without keepalive", r, port)
		}
	}

	text, err := runKatrace(t, "sockets", "--port", strconv.Itoa(port), "--listening")
	if err != nil {
		t.Fatal(err)
	}
	// Other sockets may have this port at their remote end (TIME_WAIT
	// leftovers of other loopback traffic): only rows with 127.0.0.1:port
	// at one end count.
	mine := fmt.Sprintf("127.0.0.1:%d", port)
	lines := []string{}
	for i, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if f := strings.Fields(l); i == 0 || len(f) > 2 && (f[1] == mine || f[2] == mine) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "STATE ") {
		t.Fatalf("want a header and 3 rows (listener, client, accepted):\n%s", text)
	}
	listen := 0
	for _, l := range lines[1:] {
		if !strings.Contains(l, " "+owner+" ") {
			t.Errorf("row without owner %s: %q", owner, l)
		}
		if strings.HasPrefix(l, "LISTEN ") {
			listen++
		}
		if f := strings.Fields(l); len(f) > 1 && f[1] == fmt.Sprintf("127.0.0.1:%d", clientPort) &&
			!strings.Contains(strings.Join(f, " "), "on 17.0s/3.0s/2 socket 0 keepalive in") {
			t.Errorf("client row: %q", l)
		}
	}
	if listen != 1 {
		t.Errorf("%d listeners with --listening, want 1:\n%s", listen, text)
	}

	// --keepalive-only keeps just the client; --pid of another process none.
	out, err = runKatrace(t, "sockets", "-o", "json", "--port", strconv.Itoa(port), "--keepalive-only")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, fmt.Sprintf(`"lport":%d`, clientPort)) {
		t.Errorf("--keepalive-only: %v\n%s", err, out)
	}
	out, err = runKatrace(t, "sockets", "-o", "json", "--port", strconv.Itoa(port), "--pid", "1")
	if err != nil || out != "" {
		t.Errorf("--pid 1: %v\n%s", err, out)
	}
	// The sock_diag fallback says what it does not know.
	out, err = runKatrace(t, "sockets", "--sock-diag", "--port", strconv.Itoa(port))
	if err != nil || !strings.HasPrefix(out, "# from sock_diag") {
		t.Errorf("--sock-diag: %v\n%s", err, out)
	}
}

// TestSocketsContainer: a process in a podman-shaped cgroup (cgroupfs
// spelling) holds a connection; katrace sockets names its container in
// JSON (cgroup, container_id) and in the CONTAINER column, and leaves the
// fields out for this (host) process's end.
func TestSocketsContainer(t *testing.T) {
	privilegedCmdTest(t)
	mount, err := container.FindCgroup2("/proc/self/mountinfo")
	if errors.Is(err, container.ErrNoCgroup2) {
		t.Skip("needs cgroup v2 mounted")
	}
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%016x", time.Now().UnixNano())
	id = strings.Repeat(id, 4)
	parent := fmt.Sprintf("/katrace-sockets-test-%d", os.Getpid())
	cgroup := parent + "/libpod-" + id
	for _, d := range []string{parent, cgroup} {
		if err := os.Mkdir(filepath.Join(mount.Dir, d), 0o755); err != nil {
			t.Fatalf("creating cgroup %s: %v", d, err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{cgroup, parent} {
			// A killed process leaves its cgroup a moment after wait returns.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if err := os.Remove(filepath.Join(mount.Dir, d)); err == nil || os.IsNotExist(err) || time.Now().After(deadline) {
					break
				}
			}
		}
	})

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// bash connects (its /dev/tcp) once it is in the container's cgroup.
	sh := exec.Command("bash", "-c", fmt.Sprintf(`read go && exec 3<>/dev/tcp/127.0.0.1/%d && echo connected && read done`, port))
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	if err := os.WriteFile(filepath.Join(mount.Dir, cgroup, "cgroup.procs"), []byte(strconv.Itoa(sh.Process.Pid)), 0); err != nil {
		t.Fatalf("moving bash into %s: %v", cgroup, err)
	}
	io.WriteString(in, "go\n")
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "connected\n" {
		t.Fatalf("bash did not connect: %q %v", line, err)
	}
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()

	js, err := runKatrace(t, "sockets", "-o", "json", "--port", strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for _, l := range strings.Split(strings.TrimSpace(js), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		pid, _ := m["pid"].(float64) // other sockets on the port may have no owner
		switch int(pid) {
		case sh.Process.Pid:
			seen++
			if m["cgroup"] != cgroup || m["container_id"] != id {
				t.Errorf("the container's socket: cgroup %v container_id %v, want %s %s", m["cgroup"], m["container_id"], cgroup, id)
			}
		case os.Getpid():
			seen++
			if _, ok := m["container_id"]; ok {
				t.Errorf("the host end has a container_id: %s", l)
			}
			if m["cgroup"] == nil {
				t.Errorf("the host end has no cgroup: %s", l)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("want both ends of the connection:\n%s", js)
	}
	text, err := runKatrace(t, "sockets", "--port", strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(text, "\n"); !strings.Contains(lines[0], " CONTAINER ") || !strings.Contains(text, " "+id[:12]+" ") {
		t.Errorf("text: want a CONTAINER column with %s:\n%s", id[:12], text)
	}
}
