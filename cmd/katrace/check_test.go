package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/katrace/katrace/check"
)

// kernelHasKprobes: this project's hosts run a 6.18 kernel built without
// kprobes, where fentry loads fail with EPERM; the vmtest guest's 6.1 has
// both.
func kernelHasKprobes(t *testing.T) bool {
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), " register_kprobe\n")
}

// TestCheckHere asks check for its verdict on this host: the tracepoint
// strategy works; where the kernel has no kprobes (the 6.18 hosts), fentry
// and kprobe do not, and trace would use tracepoint.
func TestCheckHere(t *testing.T) {
	privilegedCmdTest(t)
	out, err := runKatrace(t, "check", "-o", "json")
	if err != nil {
		t.Fatalf("check: %v (exit %d)\n%s", err, exitCode(err, io.Discard), out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("JSON output is not one object on one line:\n%s", out)
	}
	var r check.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != "check" || !r.BTF || !r.RingBuffer || !r.CanTrace || r.Reason != "" || !r.SocketsIterator || r.Kernel == "" || r.NetNS == 0 {
		t.Errorf("report: %+v", r)
	}
	works := map[string]check.Strategy{}
	for _, s := range r.Strategies {
		works[s.Name] = s
		if !s.Works && (s.Reason == "" || strings.Contains(s.Reason, "\n")) {
			t.Errorf("%s fails without a one-line reason: %q", s.Name, s.Reason)
		}
	}
	if len(r.Strategies) != 3 || !works["tracepoint"].Works {
		t.Fatalf("strategies %+v: want fentry, kprobe, tracepoint with tracepoint working", r.Strategies)
	}
	if !kernelHasKprobes(t) {
		if works["fentry"].Works || works["kprobe"].Works || r.TraceWouldUse != "tracepoint" {
			t.Errorf("on this host fentry and kprobe must fail and trace use tracepoint: %+v, would use %q", r.Strategies, r.TraceWouldUse)
		}
		if !strings.Contains(works["kprobe"].Reason, "no kprobes") {
			t.Errorf("kprobe reason does not say the kernel has none: %q", works["kprobe"].Reason)
		}
	} else {
		for _, s := range r.Strategies {
			if s.Works {
				if r.TraceWouldUse != s.Name {
					t.Errorf("would use %q, want the first that works, %q", r.TraceWouldUse, s.Name)
				}
				break
			}
		}
	}
	names := map[string]bool{}
	for _, s := range r.Sysctls {
		names[s.Name] = s.Value >= 0
	}
	for _, n := range []string{"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_retries2"} {
		if !names[n] {
			t.Errorf("sysctl %s missing or unread", n)
		}
	}
	if len(r.Advice) < 4 {
		t.Errorf("advice: %q", r.Advice)
	}

	text, err := runKatrace(t, "check")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verdict           katrace trace can run here, with the " + r.TraceWouldUse + " strategy", "  tracepoint      works", "\nadvice\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// TestCheckExitCode: a failing verdict is exit 1 with the reason.
func TestCheckExitCode(t *testing.T) {
	r := &check.Report{Reason: "no attach strategy works here (fentry: x; kprobe: y; tracepoint: z)"}
	err := r.Err()
	if !errors.Is(err, check.ErrCannotTrace) || exitCode(err, io.Discard) != exitFailure || !strings.Contains(err.Error(), "tracepoint: z") {
		t.Errorf("err %v exit %d", err, exitCode(err, io.Discard))
	}
	if exitCode((&check.Report{CanTrace: true}).Err(), io.Discard) != exitOK {
		t.Error("a working verdict is not exit 0")
	}
}
