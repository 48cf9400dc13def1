package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/katrace/katrace/kernel"
	"github.com/katrace/katrace/tracer"
)

func TestRetriesTimeout(t *testing.T) {
	for retries, want := range map[int64]int64{15: 924_600, 8: 102_200, 3: 3_000, 9: 204_600} {
		if got := RetriesTimeoutMs(retries); got != want {
			t.Errorf("RetriesTimeoutMs(%d) = %d, want %d", retries, got, want)
		}
	}
}

func defaults() []Sysctl {
	return []Sysctl{
		{"net.ipv4.tcp_keepalive_time", 7200, "s"},
		{"net.ipv4.tcp_keepalive_intvl", 75, "s"},
		{"net.ipv4.tcp_keepalive_probes", 9, ""},
		{"net.ipv4.tcp_fin_timeout", 60, "s"},
		{"net.ipv4.tcp_retries2", 15, ""},
	}
}

func TestAdvise(t *testing.T) {
	all := strings.Join(Advise(defaults()), "\n")
	for _, want := range []string{
		"tcp_keepalive_time is 2h00m (7200 s): longer than the idle timeout of Azure Load Balancer (4 min by default), AWS NLB (350 s), GCP VPC connection tracking (10 min)",
		"TCP_KEEPIDLE",
		"7200 + 75 × 9 s = 2h11m",
		"per network namespace",
		"nginx's keepalive_timeout is 75 s",
		"gunicorn's keepalive 2 s",
		"tcp_retries2 = 15 times, about 15m25s",
		"TCP_USER_TIMEOUT",
		"tcp_fin_timeout is 1m00s",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("advice lacks %q:\n%s", want, all)
		}
	}
	short := defaults()
	short[0].Value = 300
	adv := strings.Join(Advise(short), "\n")
	if !strings.Contains(adv, "longer than the idle timeout of Azure Load Balancer (4 min by default).") {
		t.Errorf("300 s exceeds only Azure's 4 min:\n%s", adv)
	}
	short[0].Value = 60
	if adv := Advise(short)[0]; !strings.Contains(adv, "shorter than") {
		t.Errorf("60 s: %s", adv)
	}
}

// hybridMountinfo is this project's VMs: cgroup v1 controllers, with v2
// at /sys/fs/cgroup/unified.
const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// leastPrivilege is uid 65534 with exactly CAP_BPF and CAP_PERFMON.
func leastPrivilege() ([]kernel.Capability, error) {
	var out []kernel.Capability
	for _, c := range []struct {
		name    string
		held    bool
		without string
	}{
		{"CAP_BPF", true, "cannot trace: x"},
		{"CAP_PERFMON", true, "cannot trace: y"},
		{"CAP_NET_ADMIN", false, "no protocol labels: attaching the cgroup_skb programs needs CAP_NET_ADMIN"},
		{"CAP_SYSLOG", false, "not needed"},
	} {
		out = append(out, kernel.Capability{Name: c.name, Held: c.held, Required: c.held, Without: c.without})
	}
	return out, nil
}

func fakeEnv(t *testing.T, works map[tracer.Strategy]bool, prereq error) Env {
	sys, proc := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(sys+"/kernel/security", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sys+"/kernel/security/lockdown", []byte("none [integrity] confidentiality\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(proc+"/self", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(proc+"/self/mountinfo", []byte(hybridMountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return Env{
		SysRoot:      sys,
		ProcRoot:     proc,
		HZ:           func() (uint32, string, error) { return 250, kernel.HZFromMeasured, nil },
		Capabilities: leastPrivilege,
		Probe: func(s tracer.Strategy) error {
			if works[s] {
				return nil
			}
			return errors.New(string(s) + " refused\nverifier log line 2")
		},
		Prerequisites: func() error { return prereq },
		Iterator:      func() error { return nil },
		RingBuffer:    func() error { return nil },
	}
}

func TestRunVerdict(t *testing.T) {
	r := Run(fakeEnv(t, map[tracer.Strategy]bool{tracer.StrategyTracepoint: true}, nil))
	if !r.CanTrace || r.TraceWouldUse != "tracepoint" || r.Err() != nil || r.Lockdown != "integrity" {
		t.Errorf("tracepoint only: can %v use %q err %v lockdown %q", r.CanTrace, r.TraceWouldUse, r.Err(), r.Lockdown)
	}
	if len(r.Strategies) != 3 || r.Strategies[0].Name != "fentry" || r.Strategies[0].Works ||
		!strings.HasPrefix(r.Strategies[0].Reason, "fentry refused …") || strings.Contains(r.Strategies[0].Reason, "\n") {
		t.Errorf("strategies: %+v", r.Strategies)
	}
	r = Run(fakeEnv(t, map[tracer.Strategy]bool{tracer.StrategyKprobe: true, tracer.StrategyTracepoint: true}, nil))
	if r.TraceWouldUse != "kprobe" {
		t.Errorf("would use %q, want the first that works (kprobe)", r.TraceWouldUse)
	}
	r = Run(fakeEnv(t, nil, nil))
	if r.CanTrace || r.Err() == nil || !errors.Is(r.Err(), ErrCannotTrace) ||
		!strings.Contains(r.Reason, "no attach strategy works here (fentry: fentry refused") {
		t.Errorf("nothing works: can %v reason %q", r.CanTrace, r.Reason)
	}
	r = Run(fakeEnv(t, map[tracer.Strategy]bool{tracer.StrategyTracepoint: true}, kernel.ErrPrivileges))
	if r.CanTrace || r.Reason != kernel.ErrPrivileges.Error() {
		t.Errorf("no privileges: can %v reason %q", r.CanTrace, r.Reason)
	}
}

func TestLockdown(t *testing.T) {
	proc, sys := t.TempDir(), t.TempDir()
	if got := lockdown(proc, sys); got != "unknown (securityfs not mounted; mount -t securityfs securityfs /sys/kernel/security to read it)" {
		t.Errorf("no securityfs: %q", got)
	}
	os.MkdirAll(proc+"/self", 0o755)
	os.WriteFile(proc+"/self/mounts", []byte("securityfs /sys/kernel/security securityfs rw 0 0\n"), 0o644)
	if got := lockdown(proc, sys); !strings.HasPrefix(got, "none") {
		t.Errorf("securityfs without lockdown: %q", got)
	}
}

func TestWriters(t *testing.T) {
	r := Run(fakeEnv(t, map[tracer.Strategy]bool{tracer.StrategyTracepoint: true}, nil))
	r.Sysctls = defaults()
	r.Advice = Advise(r.Sysctls)
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Errorf("JSON is not one line:\n%s", b.String())
	}
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "kernel", "btf", "lockdown", "capabilities", "memlock_bytes", "ring_buffer", "strategies", "trace_would_use", "can_trace", "netns", "sysctls", "advice", "hz", "hz_source", "cgroup2"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if back["hz"] != 250.0 || back["hz_source"] != "measured" || back["cgroup2"] != "/sys/fs/cgroup/unified" {
		t.Errorf("JSON hz %v from %v, cgroup2 %v", back["hz"], back["hz_source"], back["cgroup2"])
	}
	capsJSON, _ := json.Marshal(back["capabilities"])
	if want := `{"held":false,"name":"CAP_NET_ADMIN","required":false,"without":"no protocol labels: attaching the cgroup_skb programs needs CAP_NET_ADMIN"}`; !strings.Contains(string(capsJSON), want) {
		t.Errorf("JSON capabilities lack %s:\n%s", want, capsJSON)
	}
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"lockdown          integrity\n",
		"HZ                250 (measured: no kernel config file has CONFIG_HZ)\n",
		"capabilities (effective)\n  CAP_BPF              yes\n",
		"  CAP_NET_ADMIN        no: no protocol labels: attaching the cgroup_skb programs needs CAP_NET_ADMIN\n",
		"  CAP_SYSLOG           no (not needed)\n",
		"cgroup v2         /sys/fs/cgroup/unified\n",
		"  fentry          no: fentry refused …\n",
		"  tracepoint      works\n",
		"trace would use   tracepoint (--attach auto)\n",
		"verdict           katrace trace can run here, with the tracepoint strategy\n",
		"  net.ipv4.tcp_keepalive_time    7200 s (2h00m)\n",
		"  net.ipv4.tcp_keepalive_probes  9\n",
		"\nadvice\n  - tcp_keepalive_time is 2h00m",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  - ") || strings.HasPrefix(l, "    ") {
			if len([]rune(l)) > 78 {
				t.Errorf("advice line longer than 78: %q", l)
			}
		}
	}
}

// TestRunWithoutConfigOrCgroup2: HZ that cannot be found and a host
// without cgroup v2 are said in one line each, and tracing is not judged
// by them (the strategies' probes are).
func TestRunWithoutConfigOrCgroup2(t *testing.T) {
	env := fakeEnv(t, map[tracer.Strategy]bool{tracer.StrategyTracepoint: true}, nil)
	env.HZ = func() (uint32, string, error) {
		return 0, "", errors.New("find the kernel's HZ: no CONFIG_HZ\nsecond line")
	}
	if err := os.WriteFile(env.ProcRoot+"/self/mountinfo", []byte("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := Run(env)
	if r.HZ != 0 || r.HZSource != "" || r.HZWhy != "find the kernel's HZ: no CONFIG_HZ …" {
		t.Errorf("HZ %d from %q, why %q", r.HZ, r.HZSource, r.HZWhy)
	}
	if r.Cgroup2 != "" || !strings.Contains(r.Cgroup2Why, "no cgroup v2") {
		t.Errorf("cgroup2 %q, why %q", r.Cgroup2, r.Cgroup2Why)
	}
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"HZ                unknown: find the kernel's HZ: no CONFIG_HZ …\n",
		"cgroup v2         none: container/cgroup fields will be absent (no cgroup v2 hierarchy is mounted)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"hz":0,`, `"hz_reason":"find the kernel's HZ: no CONFIG_HZ …"`, `"cgroup2":"",`, `"cgroup2_reason":"no cgroup v2 hierarchy is mounted"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "hz_source") {
		t.Errorf("JSON has hz_source without a HZ:\n%s", b.String())
	}
}

func TestRunConfigHZ(t *testing.T) {
	env := fakeEnv(t, nil, nil)
	env.HZ = func() (uint32, string, error) { return 1000, kernel.HZFromConfig, nil }
	var b bytes.Buffer
	if err := WriteText(&b, Run(env)); err != nil {
		t.Fatal(err)
	}
	if want := "HZ                1000 (CONFIG_HZ from the kernel config file)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("text lacks %q:\n%s", want, b.String())
	}
}

func TestKernelHasKprobes(t *testing.T) {
	proc, sys := t.TempDir(), t.TempDir()
	if has, _ := kernelHasKprobes(proc, sys); !has {
		t.Error("neither sysfs nor kallsyms readable: assume kprobes exist")
	}
	write := func(s string) {
		if err := os.WriteFile(proc+"/kallsyms", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ffffffff81000000 T _text\nffffffff81100000 T register_kprobe\n")
	if has, _ := kernelHasKprobes(proc, sys); !has {
		t.Error("register_kprobe listed: kprobes exist")
	}
	write("0000000000000000 T _text\n0000000000000000 T register_kprobe\n")
	if has, _ := kernelHasKprobes(proc, sys); !has {
		t.Error("register_kprobe listed with its address hidden: kprobes exist")
	}
	write("ffffffff81000000 T _text\nffffffff81100000 T register_kprobes_other\n")
	if has, how := kernelHasKprobes(proc, sys); has || !strings.Contains(how, "kallsyms") {
		t.Errorf("no register_kprobe: has %v (%s), want no kprobes", has, how)
	}
	// Hidden as systemd's ProtectKernelTunables hides it: empty.
	write("")
	if has, _ := kernelHasKprobes(proc, sys); !has {
		t.Error("empty (hidden) kallsyms taken for a kernel without kprobes")
	}

	// The kprobe event source in sysfs answers first, kallsyms or not.
	devices := sys + "/bus/event_source/devices"
	if err := os.MkdirAll(devices+"/tracepoint", 0o755); err != nil {
		t.Fatal(err)
	}
	if has, how := kernelHasKprobes(proc, sys); has || !strings.Contains(how, devices) {
		t.Errorf("no kprobe event source: has %v (%s)", has, how)
	}
	if err := os.MkdirAll(devices+"/kprobe", 0o755); err != nil {
		t.Fatal(err)
	}
	if has, _ := kernelHasKprobes(proc, sys); !has {
		t.Error("kprobe event source present: kprobes exist")
	}
}

// katrace check where /proc/kallsyms is hidden (empty, as root sees
// systemd's ProtectKernelTunables) or unreadable: the report is complete,
// says so in one line, and no strategy is blamed on it.
func TestRunKallsymsHidden(t *testing.T) {
	for name, hide := range map[string]func(proc string) error{
		"empty":      func(proc string) error { return os.WriteFile(proc+"/kallsyms", nil, 0o644) },
		"unreadable": func(proc string) error { return os.Mkdir(proc+"/kallsyms", 0o755) }, // reading a directory fails, even for root
		"missing":    func(string) error { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			env := fakeEnv(t, map[tracer.Strategy]bool{tracer.StrategyTracepoint: true}, nil)
			if err := hide(env.ProcRoot); err != nil {
				t.Fatal(err)
			}
			r := Run(env)
			if !r.CanTrace || r.TraceWouldUse != "tracepoint" || r.Kallsyms == "" {
				t.Fatalf("report: can trace %v with %q, kallsyms %q", r.CanTrace, r.TraceWouldUse, r.Kallsyms)
			}
			for _, s := range r.Strategies {
				if strings.Contains(s.Reason, "no kprobes") {
					t.Errorf("%s blamed on missing kprobes from a hidden kallsyms: %s", s.Name, s.Reason)
				}
			}
			var b bytes.Buffer
			if err := WriteText(&b, r); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(b.String(), "\n") {
				if strings.HasPrefix(l, "kallsyms ") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "not needed") {
				t.Errorf("want one kallsyms line saying it is not needed, got %q", lines)
			}
		})
	}
	// Readable: no line.
	env := fakeEnv(t, nil, nil)
	if err := os.WriteFile(env.ProcRoot+"/kallsyms", []byte("ffffffff81000000 T _text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := Run(env); r.Kallsyms != "" {
		t.Errorf("readable kallsyms reported hidden: %q", r.Kallsyms)
	}
}
