package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// leastPrivilege runs a command as nobody (uid 65534) with exactly the
// capabilities the README documents for tracing: CAP_BPF and CAP_PERFMON
// to load and attach, CAP_NET_ADMIN for the protocol labels' cgroup_skb
// program.
var leastPrivilege = []string{
	"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
	"--inh-caps=-all,+bpf,+perfmon,+net_admin",
	"--ambient-caps=-all,+bpf,+perfmon,+net_admin",
}

// TestLeastPrivilege: katrace as uid 65534 with only CAP_BPF, CAP_PERFMON
// and CAP_NET_ADMIN sees a keepalive timeout end to end, as it does as root.
func TestLeastPrivilege(t *testing.T) {
	requirePrivileges(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("least-privilege test: needs setpriv (util-linux)")
	}
	p := newPair(t)
	bin := buildKatrace(t)
	d := startKatrace(t, append(leastPrivilege, bin), "trace", "-o", "json", "--netns", strconv.Itoa(int(p.clientIno)))
	eventually(t, "the start record (every program attached, as uid 65534)", 30*time.Second, d, func() (bool, string) {
		n := len(d.stdoutRecords(typeIs("start")))
		return n == 1, fmt.Sprintf("%d start records", n)
	})

	cli, lp := keepaliveTimeout(t, p, "18295")

	mine := and(inNetns(p.clientIno), lport(lp))
	eventually(t, "the keepalive_timeout close", eventTimeout, d, func() (bool, string) {
		n := len(d.stdoutRecords(and(typeIs("close"), mine)))
		return n > 0, fmt.Sprintf("%d closes", n)
	})
	c := d.stdoutRecords(and(typeIs("close"), mine))[0]
	if c.str("cause") != "keepalive_timeout" || c.num("probes_sent") != 3 {
		t.Errorf("close: %v", c)
	}
	checkProbesAccounted(t, d.stdoutRecords(mine), 3)
	// The owner is read from /proc without CAP_SYS_PTRACE: it may be
	// missing, but it must never be wrong.
	if c.has("pid") && (int(c.num("pid")) != cli.pid || c.str("comm") != cli.comm) {
		t.Errorf("close attributed to %v/%v, want %d/%s", c["pid"], c["comm"], cli.pid, cli.comm)
	}
	if code := d.stop(); code != 0 {
		t.Errorf("katrace exited %d: %s", code, d.stderrText())
	}
}

// TestLeastPrivilegeWithoutNetAdmin: without CAP_NET_ADMIN, asking for
// protocol labels costs the labels, said in one line, not the trace.
func TestLeastPrivilegeWithoutNetAdmin(t *testing.T) {
	requirePrivileges(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("least-privilege test: needs setpriv (util-linux)")
	}
	bin := buildKatrace(t)
	noNetAdmin := []string{
		"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=-all,+bpf,+perfmon",
	}
	d := startKatrace(t, append(noNetAdmin, bin), "trace", "-o", "json", "--proto")
	eventually(t, "the start record (every program attached, as uid 65534)", 30*time.Second, d, func() (bool, string) {
		n := len(d.stdoutRecords(typeIs("start")))
		return n == 1, fmt.Sprintf("%d start records", n)
	})
	if code := d.stop(); code != 0 {
		t.Errorf("katrace exited %d: %s", code, d.stderrText())
	}
	const warning = "katrace: protocol labels are off: attaching their cgroup_skb programs needs CAP_NET_ADMIN\n"
	if got := d.stderrText(); got != warning {
		t.Errorf("standard error %q, want the one line %q", got, warning)
	}
}
