package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/katrace/katrace/check"
	"github.com/katrace/katrace/kernel"
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
	if hz, source, err := kernel.HZ(); err != nil || r.HZ != hz || r.HZSource != source {
		t.Errorf("HZ %d from %q (%s), kernel.HZ says %d from %q (%v)", r.HZ, r.HZSource, r.HZWhy, hz, source, err)
	}
	if mount, err := kernel.Cgroup2Mount(); r.Cgroup2 != mount || (err != nil) != (r.Cgroup2Why != "") {
		t.Errorf("cgroup2 %q (%s), kernel.Cgroup2Mount says %q (%v)", r.Cgroup2, r.Cgroup2Why, mount, err)
	}
	for _, c := range r.Capabilities {
		if (c.Name == "CAP_BPF" || c.Name == "CAP_PERFMON") && !c.Held {
			t.Errorf("root without %s", c.Name)
		}
		if c.Without == "" {
			t.Errorf("%s has no stated cost", c.Name)
		}
	}

	text, err := runKatrace(t, "check")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verdict           katrace trace can run here, with the " + r.TraceWouldUse + " strategy", "  tracepoint      works", "\nadvice\n",
		"\ncapabilities (effective)\n  CAP_BPF              yes\n", "\ncgroup v2         ", "\nHZ                "} {
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

// TestCheckLeastPrivilege runs `katrace check` as uid 65534 with only
// CAP_BPF and CAP_PERFMON, and with the kernel config hidden (a bind mount
// of /dev/null in a private mount namespace, as on Debian without /boot):
// HZ is measured, and every capability katrace lacks is named with its
// cost.
func TestCheckLeastPrivilege(t *testing.T) {
	bin := buildKatrace(t)
	for _, tool := range []string{"setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux)", tool)
		}
	}
	if _, err := os.Stat("/proc/config.gz"); err != nil {
		t.Skip("needs /proc/config.gz to hide and to compare the measured HZ with")
	}
	for dir := filepath.Dir(bin); dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	configHZ, source, err := kernel.HZ()
	if err != nil || source != kernel.HZFromConfig {
		t.Fatalf("HZ as root: %d from %q, %v", configHZ, source, err)
	}
	script := `mount --bind /dev/null /proc/config.gz && exec setpriv --reuid=65534 --regid=65534 --clear-groups ` +
		`--inh-caps=-all,+bpf,+perfmon --ambient-caps=-all,+bpf,+perfmon "$0" check -o json`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, bin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == exitFailure) {
		t.Fatalf("check: %v\n%s%s", err, out, stderr.String())
	}
	var r check.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s%s", err, out, stderr.String())
	}
	if r.EUID != 65534 {
		t.Errorf("euid %d, want 65534", r.EUID)
	}
	if r.HZ != configHZ || r.HZSource != kernel.HZFromMeasured {
		t.Errorf("HZ %d from %q (%s), want %d measured", r.HZ, r.HZSource, r.HZWhy, configHZ)
	}
	held := map[string]check.Capability{}
	for _, c := range r.Capabilities {
		held[c.Name] = c
	}
	for name, want := range map[string]string{
		"CAP_BPF":             "",
		"CAP_PERFMON":         "",
		"CAP_NET_ADMIN":       "no protocol labels",
		"CAP_SYS_PTRACE":      "/proc/PID/fd",
		"CAP_DAC_READ_SEARCH": "/proc/PID/fd",
		"CAP_SYS_ADMIN":       "network namespaces",
		"CAP_SYSLOG":          "not needed",
	} {
		c, ok := held[name]
		switch {
		case !ok:
			t.Errorf("%s not reported", name)
		case want == "" && !c.Held:
			t.Errorf("%s given but reported missing", name)
		case want != "" && (c.Held || !strings.Contains(c.Without, want)):
			t.Errorf("%s: held %v, cost %q; want missing, costing %q", name, c.Held, c.Without, want)
		}
	}
	mount, err := kernel.Cgroup2Mount()
	if err != nil {
		mount = ""
	}
	if r.Cgroup2 != mount {
		t.Errorf("cgroup2 %q (%s), want %q", r.Cgroup2, r.Cgroup2Why, mount)
	}
}
