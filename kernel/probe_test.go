package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const kallsyms = `ffffffff81000000 T _text
ffffffff8202df70 t tcp_keepalive_timer
ffffffff8202e000 t tcp_keepalive_timer_helper
ffffffffc0a01000 t nf_conntrack_in	[nf_conntrack]
`

func TestFindSymbol(t *testing.T) {
	addr, err := findSymbol(strings.NewReader(kallsyms), "kallsyms", "tcp_keepalive_timer")
	if err != nil || addr != 0xffffffff8202df70 {
		t.Fatalf("got %#x, %v", addr, err)
	}
	addr, err = findSymbol(strings.NewReader(kallsyms), "kallsyms", "nf_conntrack_in")
	if err != nil || addr != 0xffffffffc0a01000 {
		t.Fatalf("module symbol: got %#x, %v", addr, err)
	}
	hidden := strings.ReplaceAll(kallsyms, "ffffffff8202df70", "0000000000000000")
	if _, err := findSymbol(strings.NewReader(hidden), "kallsyms", "tcp_keepalive_timer"); !errors.Is(err, ErrSymbolHidden) || !strings.Contains(err.Error(), "CAP_SYSLOG") {
		t.Fatalf("hidden address: got %v, want ErrSymbolHidden naming CAP_SYSLOG", err)
	}
	if _, err := findSymbol(strings.NewReader(kallsyms), "kallsyms", "register_kprobe"); !errors.Is(err, ErrNoSymbol) {
		t.Fatalf("missing symbol: got %v, want ErrNoSymbol", err)
	}
	if _, err := findSymbol(strings.NewReader("zz t tcp_keepalive_timer\n"), "kallsyms", "tcp_keepalive_timer"); err == nil || errors.Is(err, ErrNoSymbol) {
		t.Fatalf("garbage address: got %v, want a parse error", err)
	}
	if _, err := SymbolIn(filepath.Join(t.TempDir(), "none"), "x"); err == nil || errors.Is(err, ErrNoSymbol) {
		t.Fatalf("missing file: got %v", err)
	}
}

func TestSymbolOnThisKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to read kernel addresses in /proc/kallsyms")
	}
	addr, err := Symbol("tcp_keepalive_timer")
	if err != nil || addr == 0 {
		t.Fatalf("tcp_keepalive_timer: %#x, %v", addr, err)
	}
}

const mountinfoHybrid = `22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const mountinfoV2Only = `24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
29 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

const mountinfoV1Only = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
`

// A container without its own cgroup namespace sees the host's hierarchy
// mounted from its own cgroup down: not the root.
const mountinfoContainer = `700 600 0:26 /system.slice/docker-0123abcd.scope /sys/fs/cgroup ro,nosuid - cgroup2 cgroup ro,nsdelegate
`

func TestCgroup2Mount(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, wantErr string
	}{
		{"hybrid", mountinfoHybrid, "/sys/fs/cgroup/unified", ""},
		{"v2 only", mountinfoV2Only, "/sys/fs/cgroup", ""},
		{"space in the path", `41 31 0:38 / /mnt/cg\0402 rw - cgroup2 none rw` + "\n", "/mnt/cg 2", ""},
		{"subtree then root", mountinfoContainer + mountinfoV2Only, "/sys/fs/cgroup", ""},
		{"v1 only", mountinfoV1Only, "", "no cgroup v2 hierarchy is mounted"},
		{"empty", "", "", "no cgroup v2 hierarchy is mounted"},
		{"only a subtree", mountinfoContainer, "", "only /sys/fs/cgroup (the subtree /system.slice/docker-0123abcd.scope)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cgroup2Mount(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrNoCgroup2) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want ErrNoCgroup2 containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := Cgroup2MountIn(filepath.Join(t.TempDir(), "none")); err == nil || errors.Is(err, ErrNoCgroup2) {
		t.Fatalf("unreadable mountinfo: got %v, want a read error", err)
	}
}

func TestCgroup2MountOnThisHost(t *testing.T) {
	got, err := Cgroup2Mount()
	if errors.Is(err, ErrNoCgroup2) {
		t.Skip("this host has no cgroup v2")
	}
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(got, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("%s is not a cgroup2 mount (statfs type %#x, %v)", got, st.Type, err)
	}
}

func TestCapabilitiesFrom(t *testing.T) {
	bit := func(caps ...uint) uint64 {
		var m uint64
		for _, c := range caps {
			m |= 1 << c
		}
		return m
	}
	find := func(cs []Capability, name string) Capability {
		for _, c := range cs {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("%s not reported", name)
		return Capability{}
	}
	least := capabilitiesFrom(bit(unix.CAP_BPF, unix.CAP_PERFMON))
	for _, name := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYSLOG", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN"} {
		c := find(least, name)
		if want := name == "CAP_BPF" || name == "CAP_PERFMON"; c.Held != want {
			t.Errorf("%s held = %v, want %v", name, c.Held, want)
		}
		if c.Without == "" {
			t.Errorf("%s says nothing about its cost", name)
		}
	}
	for name, want := range map[string]string{
		"CAP_BPF":             "cannot trace",
		"CAP_PERFMON":         "cannot trace",
		"CAP_NET_ADMIN":       "no protocol labels",
		"CAP_SYS_PTRACE":      "/proc/PID/fd",
		"CAP_DAC_READ_SEARCH": "/proc/PID/fd",
		"CAP_SYS_ADMIN":       "network namespaces",
		"CAP_SYSLOG":          "not needed",
	} {
		if c := find(least, name); !strings.Contains(c.Without, want) {
			t.Errorf("%s: %q lacks %q", name, c.Without, want)
		}
	}
	if c := find(least, "CAP_BPF"); !c.Required {
		t.Error("CAP_BPF must be required")
	}
	if c := find(least, "CAP_NET_ADMIN"); c.Required {
		t.Error("CAP_NET_ADMIN must be optional")
	}
	admin := capabilitiesFrom(bit(unix.CAP_SYS_ADMIN))
	if c := find(admin, "CAP_BPF"); c.Held || c.Required || !strings.HasPrefix(c.Without, "not needed") {
		t.Errorf("with CAP_SYS_ADMIN, missing CAP_BPF costs nothing: %+v", c)
	}
	for _, c := range capabilitiesFrom(^uint64(0)) {
		if !c.Held {
			t.Errorf("full set: %s not held", c.Name)
		}
	}
	if canLoadBPF(bit(unix.CAP_BPF)) || !canLoadBPF(bit(unix.CAP_BPF, unix.CAP_PERFMON)) || !canLoadBPF(bit(unix.CAP_SYS_ADMIN)) {
		t.Error("canLoadBPF: want CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN")
	}
}

// TestCapabilitiesOfThisProcess compares with the effective set the
// kernel shows in /proc/self/status.
func TestCapabilitiesOfThisProcess(t *testing.T) {
	caps, err := Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "CapEff:\t")
	if !ok {
		t.Fatal("no CapEff in /proc/self/status")
	}
	eff, err := strconv.ParseUint(strings.Fields(rest)[0], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	numbers := map[string]uint{"CAP_BPF": unix.CAP_BPF, "CAP_PERFMON": unix.CAP_PERFMON, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
		"CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE, "CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
		"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE}
	for _, c := range caps {
		n, ok := numbers[c.Name]
		if !ok {
			t.Fatalf("unexpected %s", c.Name)
		}
		if want := eff&(1<<n) != 0; c.Held != want {
			t.Errorf("%s held = %v, CapEff %#x says %v", c.Name, c.Held, eff, want)
		}
	}
	if len(caps) != len(numbers) {
		t.Errorf("got %d capabilities, want %d", len(caps), len(numbers))
	}
}

func TestRelease(t *testing.T) {
	rel, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(b)); rel != want {
		t.Fatalf("Release() = %q, /proc/sys/kernel/osrelease = %q", rel, want)
	}
}
