package kernel

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Capability is one capability katrace cares about, whether this process
// holds it (in its effective set), and what katrace cannot do without it.
type Capability struct {
	Name string
	Held bool
	// Required capabilities stop tracing when missing.
	Required bool
	// Without is what katrace loses when the capability is missing;
	// it starts with "not needed" when nothing.
	Without string
}

// capabilityCosts are the capabilities katrace can use, in the order
// `katrace check` lists them.
var capabilityCosts = []struct {
	name     string
	cap      uint
	required bool
	without  string
}{
	{"CAP_BPF", unix.CAP_BPF, true, "cannot trace: loading BPF programs and maps needs CAP_BPF"},
	{"CAP_PERFMON", unix.CAP_PERFMON, true, "cannot trace: attaching tracing programs and reading kernel memory need CAP_PERFMON"},
	{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN, false, "no protocol labels: attaching the cgroup_skb programs needs CAP_NET_ADMIN"},
	// Measured: another user's /proc/PID/fd opens only with
	// CAP_DAC_READ_SEARCH, and its links read only with CAP_SYS_PTRACE.
	{"CAP_SYS_PTRACE", unix.CAP_SYS_PTRACE, false, "no owner (pid, comm) for other users' sockets: reading the links in their /proc/PID/fd needs CAP_SYS_PTRACE (and CAP_DAC_READ_SEARCH)"},
	{"CAP_DAC_READ_SEARCH", unix.CAP_DAC_READ_SEARCH, false, "no owner (pid, comm) for other users' sockets: opening their /proc/PID/fd needs CAP_DAC_READ_SEARCH (and CAP_SYS_PTRACE)"},
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN, false, "`katrace sockets` cannot enter other network namespaces (setns), and `trace` cannot give keepalive sockets older than itself in other namespaces their cookie at start (they show sock 0 until they change state)"},
	{"CAP_SYSLOG", unix.CAP_SYSLOG, false, "not needed"},
	{"CAP_SYS_RESOURCE", unix.CAP_SYS_RESOURCE, false, "not needed on Linux 5.11+, which charges BPF memory to the cgroup; older kernels need RLIMIT_MEMLOCK raised"},
}

// Capabilities reports each capability katrace can use. Root with a full
// effective set holds them all; CAP_SYS_ADMIN stands in for CAP_BPF and
// CAP_PERFMON.
func Capabilities() ([]Capability, error) {
	effective, err := effectiveCaps()
	if err != nil {
		return nil, err
	}
	return capabilitiesFrom(effective), nil
}

func capabilitiesFrom(effective uint64) []Capability {
	sysAdmin := effective&(1<<unix.CAP_SYS_ADMIN) != 0
	out := make([]Capability, 0, len(capabilityCosts))
	for _, c := range capabilityCosts {
		cap := Capability{
			Name:     c.name,
			Held:     effective&(1<<c.cap) != 0,
			Required: c.required,
			Without:  c.without,
		}
		if c.required && sysAdmin {
			cap.Required = false
			cap.Without = "not needed: CAP_SYS_ADMIN covers it"
		}
		out = append(out, cap)
	}
	return out
}

// effectiveCaps is this thread's effective capability set as a bit mask.
func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read this process's capabilities: %w", err)
	}
	return uint64(data[1].Effective)<<32 | uint64(data[0].Effective), nil
}

// CanLoadBPF says whether this process may load and attach katrace's
// programs: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, which implies both.
func CanLoadBPF() bool {
	effective, err := effectiveCaps()
	if err != nil {
		return os.Geteuid() == 0
	}
	return canLoadBPF(effective)
}

// CanAttachCgroupPrograms says whether this process may attach cgroup_skb
// programs (protocol labels): CAP_NET_ADMIN.
func CanAttachCgroupPrograms() bool {
	effective, err := effectiveCaps()
	if err != nil {
		return os.Geteuid() == 0
	}
	return effective&(1<<unix.CAP_NET_ADMIN) != 0
}

func canLoadBPF(effective uint64) bool {
	has := func(c uint) bool { return effective&(1<<c) != 0 }
	return has(unix.CAP_SYS_ADMIN) || has(unix.CAP_BPF) && has(unix.CAP_PERFMON)
}
