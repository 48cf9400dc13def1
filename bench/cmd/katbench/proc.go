package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// tracerProc is a running tracer (katrace or bpftrace) writing to a file.
type tracerProc struct {
	cmd     *exec.Cmd
	out     string
	started time.Time
	ready   time.Duration // from exec to the ready line
	stderr  bytes.Buffer
}

// startKatrace runs katrace trace with args, its output in a temporary file,
// and waits for the start record.
func startKatrace(bin string, args ...string) (*tracerProc, error) {
	f, err := os.CreateTemp("", "katbench-*.json")
	if err != nil {
		return nil, err
	}
	f.Close()
	full := append([]string{"trace", "-o", "json", "-w", f.Name()}, args...)
	return startTracer(exec.Command(bin, full...), f.Name(), `"type":"start"`)
}

// startBpftrace runs a bpftrace program with its output in a temporary file
// and waits until it says its probes are attached.
func startBpftrace(bin, prog string) (*tracerProc, error) {
	f, err := os.CreateTemp("", "katbench-*.bt.out")
	if err != nil {
		return nil, err
	}
	f.Close()
	cmd := exec.Command(bin, "-o", f.Name(), "-e", prog)
	cmd.Env = append(os.Environ(), "BPFTRACE_STRLEN=16")
	return startTracer(cmd, f.Name(), "Attaching")
}

func startTracer(cmd *exec.Cmd, out, ready string) (*tracerProc, error) {
	p := &tracerProc{cmd: cmd, out: out}
	cmd.Stderr = &p.stderr
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if bytes.Contains(b, []byte(ready)) {
			p.ready = time.Since(p.started)
			return p, nil
		}
		if time.Now().After(deadline) || (cmd.ProcessState != nil) {
			p.kill()
			return nil, fmt.Errorf("%s did not get ready: %s", cmd.Path, strings.TrimSpace(p.stderr.String()))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *tracerProc) pid() int { return p.cmd.Process.Pid }

func (p *tracerProc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	os.Remove(p.out)
}

// endRecord is katrace's last record.
type endRecord struct {
	Type   string `json:"type"`
	Events uint64 `json:"events"`
	Lost   uint64 `json:"lost"`
}

// stop interrupts the tracer, waits for it, and returns katrace's end
// record (zero for bpftrace) and the number of output lines.
func (p *tracerProc) stop() (endRecord, int, error) { return p.stopKeep(nil) }

// stopKeep is stop that also hands the whole output to inspect.
func (p *tracerProc) stopKeep(inspect func([]byte)) (endRecord, int, error) {
	defer os.Remove(p.out)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		return endRecord{}, 0, fmt.Errorf("%s did not stop on SIGINT", p.cmd.Path)
	}
	b, err := os.ReadFile(p.out)
	if err != nil {
		return endRecord{}, 0, err
	}
	if inspect != nil {
		inspect(b)
	}
	var end endRecord
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		lines++
		l := sc.Bytes()
		if bytes.Contains(l, []byte(`"type":"end"`)) {
			_ = json.Unmarshal(l, &end)
		}
	}
	return end, lines, sc.Err()
}

// churnResult is bench/cmd/churn's JSON.
type churnResult struct {
	Conns  uint64  `json:"conns"`
	Total  uint64  `json:"total_conns"`
	Errors uint64  `json:"errors"`
	PerSec float64 `json:"conns_per_sec"`
}

// churnWarmup runs before each churn's measured time (and is traced too).
const churnWarmup = 300 * time.Millisecond

func runChurn(o options) (churnResult, error) {
	var r churnResult
	out, err := exec.Command(o.churn, "-json", "-clients", fmt.Sprint(o.clients),
		"-duration", o.dur.String(), "-warmup", churnWarmup.String()).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return r, fmt.Errorf("churn: %v: %s", err, ee.Stderr)
		}
		return r, fmt.Errorf("churn: %v", err)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("churn output %q: %v", out, err)
	}
	return r, nil
}
