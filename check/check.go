// Package check answers "will katrace work on this host, and how": the
// facts `katrace check` prints. Every attach strategy is tried, not
// guessed: tracer.Probe loads and attaches it, then detaches at once.
package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/kernel"
	"github.com/katrace/katrace/sockets"
	"github.com/katrace/katrace/tracer"
)

// Strategy is one attach strategy and whether it works here.
type Strategy struct {
	Name   string `json:"name"`
	Works  bool   `json:"works"`
	Reason string `json:"reason,omitempty"`
}

// Capability is one capability katrace cares about.
type Capability struct {
	Name string `json:"name"`
	Held bool   `json:"held"`
	// Required: without it katrace cannot trace.
	Required bool `json:"required"`
	// Without is what katrace loses when it is missing; it starts with
	// "not needed" when nothing.
	Without string `json:"without"`
}

// Sysctl is one sysctl of the caller's network namespace.
type Sysctl struct {
	Name string `json:"name"`
	// Value is as the sysctl reads; -1 when it could not be read.
	Value int64 `json:"value"`
	// Unit is "s" for seconds, "" for a count.
	Unit string `json:"unit,omitempty"`
}

// Report is everything `katrace check` says.
type Report struct {
	Type        string `json:"type"`
	Kernel      string `json:"kernel"`
	KernelBuild string `json:"kernel_build"`
	Arch        string `json:"arch"`
	BTF         bool   `json:"btf"`
	Lockdown    string `json:"lockdown"`
	// HZ is the kernel's tick rate; HZSource is "config" (CONFIG_HZ from
	// a kernel config file) or "measured"; HZWhy says why it is 0.
	HZ            uint32       `json:"hz"`
	HZSource      string       `json:"hz_source,omitempty"`
	HZWhy         string       `json:"hz_reason,omitempty"`
	EUID          int          `json:"euid"`
	Capabilities  []Capability `json:"capabilities"`
	MemlockBytes  int64        `json:"memlock_bytes"` // -1: unlimited
	RingBuffer    bool         `json:"ring_buffer"`
	RingBufferWhy string       `json:"ring_buffer_reason,omitempty"`
	Strategies    []Strategy   `json:"strategies"`
	// TraceWouldUse is the strategy `trace --attach auto` picks, "" if none.
	TraceWouldUse string `json:"trace_would_use,omitempty"`
	// SocketsIterator says whether `katrace sockets` can use its BPF
	// iterator (else it falls back to sock_diag).
	SocketsIterator    bool   `json:"sockets_iterator"`
	SocketsIteratorWhy string `json:"sockets_iterator_reason,omitempty"`
	// CanTrace is the verdict; Reason says why not.
	CanTrace bool     `json:"can_trace"`
	Reason   string   `json:"reason,omitempty"`
	NetNS    uint64   `json:"netns"`
	Sysctls  []Sysctl `json:"sysctls"`
	Advice   []string `json:"advice"`
	// Cgroup2 is where the cgroup v2 hierarchy is mounted, "" when it
	// is not (then Cgroup2Why says why, and records carry no cgroup or
	// container fields).
	Cgroup2    string `json:"cgroup2"`
	Cgroup2Why string `json:"cgroup2_reason,omitempty"`
	// Kallsyms is "" when /proc/kallsyms lists the kernel's symbols, else
	// why it does not (hidden, as systemd's ProtectKernelTunables hides
	// it, or unreadable). katrace does not need it.
	Kallsyms string `json:"kallsyms_hidden,omitempty"`
}

// Env is where Run looks; the zero value means this host.
type Env struct {
	// ProcRoot is /proc, SysRoot /sys (for tests).
	ProcRoot string
	SysRoot  string
	// Probe tries a strategy (tracer.Probe when nil).
	Probe func(tracer.Strategy) error
	// Prerequisites is kernel.Prerequisites when nil.
	Prerequisites func() error
	// HZ is kernel.HZ when nil.
	HZ func() (uint32, string, error)
	// Capabilities is kernel.Capabilities when nil.
	Capabilities func() ([]kernel.Capability, error)
	// Iterator is sockets.IteratorWorks when nil.
	Iterator func() error
	// RingBuffer is a feature probe for BPF_MAP_TYPE_RINGBUF when nil.
	RingBuffer func() error
}

func (e *Env) fill() {
	if e.ProcRoot == "" {
		e.ProcRoot = "/proc"
	}
	if e.SysRoot == "" {
		e.SysRoot = "/sys"
	}
	if e.Probe == nil {
		e.Probe = tracer.Probe
	}
	if e.Prerequisites == nil {
		e.Prerequisites = kernel.Prerequisites
	}
	if e.HZ == nil {
		e.HZ = kernel.HZ
	}
	if e.Capabilities == nil {
		e.Capabilities = kernel.Capabilities
	}
	if e.Iterator == nil {
		e.Iterator = sockets.IteratorWorks
	}
	if e.RingBuffer == nil {
		e.RingBuffer = func() error { return features.HaveMapType(ebpf.RingBuf) }
	}
}

// Run gathers the report.
func Run(env Env) *Report {
	env.fill()
	r := &Report{Type: "check", Arch: runtime.GOARCH, EUID: os.Geteuid()}
	r.Kernel, _ = kernel.Release()
	r.KernelBuild, _ = kernel.Version()
	r.BTF = kernel.HasBTF()
	r.Lockdown = lockdown(env.ProcRoot, env.SysRoot)
	r.Kallsyms = kallsymsHidden(env.ProcRoot)
	if hz, source, err := env.HZ(); err != nil {
		r.HZWhy = oneLine(err)
	} else {
		r.HZ, r.HZSource = hz, source
	}
	r.Capabilities = capabilities(env.Capabilities)
	if mount, err := kernel.Cgroup2MountIn(env.ProcRoot + "/self/mountinfo"); err != nil {
		r.Cgroup2Why = oneLine(err)
	} else {
		r.Cgroup2 = mount
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil {
		if lim.Cur == unix.RLIM_INFINITY {
			r.MemlockBytes = -1
		} else {
			r.MemlockBytes = int64(lim.Cur)
		}
	}
	if err := env.RingBuffer(); err != nil {
		r.RingBufferWhy = oneLine(err)
	} else {
		r.RingBuffer = true
	}
	for _, s := range tracer.Strategies {
		st := Strategy{Name: string(s)}
		if err := env.Probe(s); err != nil {
			st.Reason = strategyReason(env, s, err)
		} else {
			st.Works = true
			if r.TraceWouldUse == "" {
				r.TraceWouldUse = st.Name
			}
		}
		r.Strategies = append(r.Strategies, st)
	}
	if err := env.Iterator(); err != nil {
		r.SocketsIteratorWhy = oneLine(err)
	} else {
		r.SocketsIterator = true
	}
	switch err := env.Prerequisites(); {
	case err != nil:
		r.Reason = oneLine(err)
	case r.TraceWouldUse == "":
		var why []string
		for _, s := range r.Strategies {
			why = append(why, s.Name+": "+s.Reason)
		}
		r.Reason = "no attach strategy works here (" + strings.Join(why, "; ") + ")"
	default:
		r.CanTrace = true
	}
	var st unix.Stat_t
	if err := unix.Stat(env.ProcRoot+"/self/ns/net", &st); err == nil {
		r.NetNS = st.Ino
	}
	r.Sysctls = readSysctls(env.ProcRoot)
	r.Advice = Advise(r.Sysctls)
	return r
}

// ErrCannotTrace wraps the reason when trace cannot run here.
var ErrCannotTrace = errors.New("katrace trace cannot run here")

// Err is nil when trace can run here, else the reason.
func (r *Report) Err() error {
	if r.CanTrace {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrCannotTrace, r.Reason)
}

// strategyReason words why a strategy failed, leading with the cause
// where check can name it better than the error.
func strategyReason(env Env, s tracer.Strategy, err error) string {
	why := kernel.WithoutMemlockHint(oneLine(err))
	if s == tracer.StrategyKprobe {
		if has, how := kernelHasKprobes(env.ProcRoot, env.SysRoot); !has {
			why = "this kernel has no kprobes (" + how + "); " + why
		}
	}
	return why
}

// kernelHasKprobes says whether the kernel can attach kprobes, and how it
// knows when it cannot: first from the kprobe event source in sysfs (what
// kprobe attachment uses; readable without privileges), else from
// register_kprobe in /proc/kallsyms (its name shows even where its address
// is hidden). When neither can be read it assumes kprobes exist, and the
// strategy's own error says why it failed.
func kernelHasKprobes(procRoot, sysRoot string) (has bool, how string) {
	devices := sysRoot + "/bus/event_source/devices"
	if list, err := os.ReadDir(devices); err == nil && len(list) > 0 {
		_, err := os.Stat(devices + "/kprobe")
		return err == nil, "no kprobe event source in " + devices
	}
	if kallsymsHidden(procRoot) != "" {
		return true, ""
	}
	_, err := kernel.SymbolIn(procRoot+"/kallsyms", "register_kprobe")
	return !errors.Is(err, kernel.ErrNoSymbol), "no register_kprobe in /proc/kallsyms"
}

// kallsymsHidden is why /proc/kallsyms lists no symbols, "" when it does:
// systemd's ProtectKernelTunables mounts an empty, inaccessible file over
// it (root reads it as empty, other users cannot open it).
func kallsymsHidden(procRoot string) string {
	f, err := os.Open(procRoot + "/kallsyms")
	if err != nil {
		return "unreadable: " + oneLine(err)
	}
	defer f.Close()
	var first [1]byte
	if n, _ := f.Read(first[:]); n == 0 {
		return "empty (hidden, e.g. by systemd's ProtectKernelTunables)"
	}
	return ""
}

// oneLine keeps the first line of an error (verifier logs are long).
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	const max = 300
	if len(s) > max {
		s = s[:max] + " …"
	}
	return s
}

// lockdown reads the kernel lockdown mode: "none", "integrity" or
// "confidentiality".
func lockdown(procRoot, sysRoot string) string {
	b, err := os.ReadFile(sysRoot + "/kernel/security/lockdown")
	if err == nil {
		// "none [integrity] confidentiality"
		s := string(b)
		if i := strings.IndexByte(s, '['); i >= 0 {
			if j := strings.IndexByte(s[i:], ']'); j > 0 {
				return s[i+1 : i+j]
			}
		}
		return strings.TrimSpace(s)
	}
	if !securityfsMounted(procRoot) {
		return "unknown (securityfs not mounted; mount -t securityfs securityfs /sys/kernel/security to read it)"
	}
	return "none (the kernel has no lockdown LSM)"
}

func securityfsMounted(procRoot string) bool {
	b, err := os.ReadFile(procRoot + "/self/mounts")
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[2] == "securityfs" {
			return true
		}
	}
	return false
}

// capabilities lists what kernel.Capabilities reports; empty when the
// process's capability set cannot be read.
func capabilities(read func() ([]kernel.Capability, error)) []Capability {
	caps, err := read()
	if err != nil {
		return []Capability{}
	}
	out := make([]Capability, 0, len(caps))
	for _, c := range caps {
		out = append(out, Capability{Name: c.Name, Held: c.Held, Required: c.Required, Without: c.Without})
	}
	return out
}

// The sysctls check reads, in the order it prints them.
var sysctlNames = []struct{ name, unit string }{
	{"net.ipv4.tcp_keepalive_time", "s"},
	{"net.ipv4.tcp_keepalive_intvl", "s"},
	{"net.ipv4.tcp_keepalive_probes", ""},
	{"net.ipv4.tcp_fin_timeout", "s"},
	{"net.ipv4.tcp_retries2", ""},
}

func readSysctls(procRoot string) []Sysctl {
	out := make([]Sysctl, 0, len(sysctlNames))
	for _, s := range sysctlNames {
		v := int64(-1)
		b, err := os.ReadFile(procRoot + "/sys/" + strings.ReplaceAll(s.name, ".", "/"))
		if err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				v = n
			}
		}
		out = append(out, Sysctl{Name: s.name, Value: v, Unit: s.unit})
	}
	return out
}
