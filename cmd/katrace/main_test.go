package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = exitCode(run(context.Background(), append([]string{"katrace"}, args...), &out), &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"trace", "--output", "xml"},
		{"trace", "--pid", "abc"},
		{"trace", "--port", "70000"},
		{"trace", "--port", "0"},
		{"trace", "--idle-threshold", "-1s"},
		{"trace", "--attach", "uprobe"},
		{"trace", "--ring-size", "3M"},
		{"trace", "--ring-size", "lots"},
		{"trace", "--addr", "10.0.0.0/33"},
		{"trace", "--comm", "a-name-longer-than-15"},
		{"trace", "--duration", "-5s"},
		{"trace", "--no-such-flag"},
		{"trace", "extra-argument"},
		{"frobnicate"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runArgs(t, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (stderr %q)", code, exitUsage, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "katrace: ") {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
			if strings.Contains(stdout+stderr, "goroutine") {
				t.Errorf("a stack trace: %s", stdout+stderr)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runArgs(t, "version")
	if code != 0 || !strings.HasPrefix(out, "katrace ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	code, out, _ = runArgs(t, "trace", "--help")
	if code != 0 {
		t.Errorf("trace --help: exit %d", code)
	}
	for _, flag := range []string{"--output", "--duration", "--attach", "--ring-size", "--idle-threshold", "--all", "--states",
		"--pid", "--comm", "--port", "--addr", "--netns", "--keepalive-only", "--max-sockets", "KATRACE_OUTPUT"} {
		if !strings.Contains(out, flag) {
			t.Errorf("trace --help does not mention %s", flag)
		}
	}
}

func TestParseRingSize(t *testing.T) {
	for in, want := range map[string]uint32{"4M": 4 << 20, "512K": 512 << 10, "1048576": 1 << 20, "8MiB": 8 << 20, "64k": 64 << 10} {
		got, err := parseRingSize(in)
		if err != nil || got != want {
			t.Errorf("parseRingSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"3M", "0", "", "1K0", "2G", "100"} {
		if _, err := parseRingSize(in); err == nil {
			t.Errorf("parseRingSize(%q) accepted", in)
		}
	}
}

func TestEnvironmentFallback(t *testing.T) {
	t.Setenv("KATRACE_OUTPUT", "yaml")
	if code, _, stderr := runArgs(t, "trace"); code != exitUsage || !strings.Contains(stderr, "yaml") {
		t.Errorf("KATRACE_OUTPUT=yaml: exit %d, %q", code, stderr)
	}
}

// --- the built binary, as a user runs it (root and BTF) ---

func buildKatrace(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("privileged test: this kernel has no BTF")
	}
	bin := filepath.Join(t.TempDir(), "katrace")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startKatrace runs the binary and waits for its start record.
func startKatrace(t *testing.T, bin string, args ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	lines := make(chan string, 1)
	go func() {
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		if !strings.Contains(line, `"type":"start"`) && !strings.Contains(line, "katrace tracing") {
			t.Fatalf("first line %q (stderr %q)", line, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no start line within 30s (stderr %q)", stderr.String())
	}
	return cmd, sc, &stderr
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("katrace did not exit within 20s")
		return -1
	}
}

func TestSignalsEndCleanly(t *testing.T) {
	bin := buildKatrace(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, sc, stderr := startKatrace(t, bin, "trace", "-o", "json")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var last string
			for sc.Scan() {
				last = sc.Text()
			}
			if code := waitExit(t, cmd); code != 0 || stderr.Len() != 0 {
				t.Errorf("exit %d, stderr %q", code, stderr.String())
			}
			var end map[string]any
			if err := json.Unmarshal([]byte(last), &end); err != nil || end["type"] != "end" {
				t.Errorf("last line %q, want the end record", last)
			}
		})
	}
}

func TestDurationStops(t *testing.T) {
	bin := buildKatrace(t)
	start := time.Now()
	out, err := exec.Command(bin, "trace", "--duration", "1s", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("--duration 1s ran %v", d)
	}
	// The duration counts from the start record, not from process start.
	times := map[string]time.Time{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Type string    `json:"type"`
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		times[r.Type] = r.Time
	}
	if times["start"].IsZero() || times["end"].IsZero() {
		t.Fatalf("no start or end record in %s", out)
	}
	if ran := times["end"].Sub(times["start"]); ran < time.Second {
		t.Errorf("end came %v after start, want at least --duration 1s", ran)
	}
}

func TestClosedPipeEndsQuietly(t *testing.T) {
	bin := buildKatrace(t)
	cmd := exec.Command(bin, "trace", "-o", "json")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n') // like `| head -1`
	if err != nil || !strings.Contains(line, `"start"`) {
		t.Fatalf("first line %q: %v", line, err)
	}
	r.Close()
	// The next write (the end record) meets the closed pipe.
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 || stderr.Len() != 0 {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestWithoutPrivileges(t *testing.T) {
	bin := buildKatrace(t)
	for dir := filepath.Dir(bin); dir != os.TempDir(); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "trace")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitFailure {
		t.Fatalf("as nobody: %v, want exit 1", err)
	}
	if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "CAP_BPF") || !strings.Contains(msg, "root") {
		t.Errorf("stderr %q: want one line naming root or CAP_BPF + CAP_PERFMON", msg)
	}
}
