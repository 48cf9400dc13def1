package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers for the tests that run the katrace binary itself, as a daemon
// does: for its metrics endpoint, its output files and signals, and to run
// it under another user.

// buildKatrace builds the binary (or copies $KATRACE_E2E_BIN, for a
// machine without the Go toolchain, such as the vmtest guest) into a
// directory every user can read, so that it also runs as an unprivileged
// user.
func buildKatrace(t *testing.T) string {
	t.Helper()
	prebuilt := os.Getenv("KATRACE_E2E_BIN")
	goTool := ""
	if prebuilt == "" {
		goTool = findGo()
		if _, err := os.Stat("../cmd/katrace"); goTool == "" || err != nil {
			t.Skip("katrace binary test: no Go toolchain and source here to build katrace; set KATRACE_E2E_BIN to a built one")
		}
	}
	dir, err := os.MkdirTemp("", "katrace-e2e-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "katrace")
	if prebuilt != "" {
		b, err := os.ReadFile(prebuilt)
		if err != nil {
			t.Fatalf("KATRACE_E2E_BIN: %v", err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	} else if out, err := exec.Command(goTool, "build", "-o", bin, "../cmd/katrace").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func findGo() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	for _, p := range []string{filepath.Join(os.Getenv("GOROOT"), "bin", "go"), "/usr/local/go/bin/go"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// daemon is the katrace binary running; its stdout is parsed as NDJSON
// when it writes any.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	mu      sync.Mutex
	records []rec
	stderr  bytes.Buffer
	changed chan struct{}
	exited  chan struct{}
	exitErr error
}

// startKatrace runs argv (the binary, or a wrapper such as setpriv and
// then the binary) with katrace's arguments, adding the attach strategy
// the tests ask for.
func startKatrace(t *testing.T, argv []string, args ...string) *daemon {
	t.Helper()
	args = append(args, "--attach", string(wantStrategy(t)))
	d := &daemon{t: t, changed: make(chan struct{}, 1), exited: make(chan struct{})}
	d.cmd = exec.Command(argv[0], append(argv[1:], args...)...)
	d.cmd.Stderr = lockedWriter{&d.mu, &d.stderr}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting katrace: %v", err)
	}
	t.Logf("katrace pid %d: %s", d.cmd.Process.Pid, strings.Join(d.cmd.Args, " "))
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r rec
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			d.mu.Lock()
			d.records = append(d.records, r)
			d.mu.Unlock()
			select {
			case d.changed <- struct{}{}:
			default:
			}
		}
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			// Where each of katrace's goroutines stood when the test gave
			// up: a stalled pipeline shows here.
			_ = d.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-d.exited:
			case <-time.After(3 * time.Second):
			}
		}
		d.cmd.Process.Kill()
		<-d.exited
		if t.Failed() {
			t.Logf("katrace's stderr:\n%s", d.stderrText())
		}
	})
	return d
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (d *daemon) stderrText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

func (d *daemon) stdoutRecords(match func(rec) bool) []rec {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []rec
	for _, r := range d.records {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// failIfExited fails the test with katrace's own words if it ended.
func (d *daemon) failIfExited() {
	d.t.Helper()
	select {
	case <-d.exited:
		d.t.Fatalf("katrace exited (%v): %s", d.exitErr, strings.TrimSpace(d.stderrText()))
	default:
	}
}

// stop sends SIGINT and returns the exit code.
func (d *daemon) stop() int {
	d.t.Helper()
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.t.Fatal("katrace did not exit within 20s of SIGINT")
	}
	if ee, ok := d.exitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

func (d *daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signalling katrace: %v", err)
	}
}

// eventually polls cond until it holds; cond says what it saw, for the
// failure message.
func eventually(t *testing.T, what string, timeout time.Duration, d *daemon, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if d != nil {
			d.failIfExited()
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; saw %s", timeout, what, saw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// exposition reads Prometheus text format into series → value, the series
// written as in the text (name{labels}).
func exposition(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// readRecords parses every line of an NDJSON file; a line that is not a
// whole JSON object fails the test. While katrace runs, a reader may catch
// a write half done: with whileWriting, an unfinished last line is left
// for the next read.
func readRecords(t *testing.T, path string, whileWriting bool) []rec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); whileWriting {
		b = b[:i+1]
	} else if i != len(b)-1 {
		t.Errorf("%s ends in the middle of a record", path)
	}
	var out []rec
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(b) == 0 {
			break
		}
		var r rec
		if err := json.Unmarshal(line, &r); err != nil {
			t.Errorf("%s line %d is not a JSON record: %q: %v", path, i+1, line, err)
			continue
		}
		out = append(out, r)
	}
	return out
}

func countTypes(recs []rec) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		n[r.str("type")]++
	}
	return n
}

// keepaliveTimeout connects a client with keepalive 1s/1s/3 to a server
// that then vanishes, and waits until the client saw the connection fail.
// It returns the client and its local port.
func keepaliveTimeout(t *testing.T, p *pair, port string) (*proc, int) {
	t.Helper()
	cli, lp := dial(t, p, p.serverAddr, port, "hold", "1s", "1s", "3")
	run(t, "ip", "-n", p.server, "link", "set", p.serverDev, "down")
	cli.send("wait")
	cli.expect("error", 2*eventTimeout)
	return cli, lp
}
