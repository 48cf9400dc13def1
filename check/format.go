package check

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the report as one JSON object on one line.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func memlockText(n int64) string {
	switch {
	case n < 0:
		return "unlimited"
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func hzText(r *Report) string {
	switch r.HZSource {
	case "":
		return "unknown: " + r.HZWhy
	case "config":
		return fmt.Sprintf("%d (CONFIG_HZ from the kernel config file)", r.HZ)
	case "measured":
		return fmt.Sprintf("%d (measured: no kernel config file has CONFIG_HZ)", r.HZ)
	}
	return fmt.Sprintf("%d (%s)", r.HZ, r.HZSource)
}

func capabilityText(c Capability) string {
	switch {
	case c.Held:
		return "yes"
	case strings.HasPrefix(c.Without, "not needed"):
		return "no (" + c.Without + ")"
	}
	return "no: " + c.Without
}

// WriteText writes the report for a person.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	p := func(label, format string, args ...any) {
		fmt.Fprintf(bw, "%-17s %s\n", label, fmt.Sprintf(format, args...))
	}
	p("kernel", "%s (%s)", r.Kernel, r.Arch)
	if r.BTF {
		p("BTF", "yes (/sys/kernel/btf/vmlinux)")
	} else {
		p("BTF", "no (/sys/kernel/btf/vmlinux is missing: katrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y)")
	}
	p("HZ", "%s", hzText(r))
	p("lockdown", "%s", r.Lockdown)
	who := fmt.Sprintf("euid %d", r.EUID)
	if r.EUID == 0 {
		who = "root (euid 0)"
	}
	p("privileges", "%s; RLIMIT_MEMLOCK %s", who, memlockText(r.MemlockBytes))
	fmt.Fprintln(bw, "capabilities (effective)")
	for _, c := range r.Capabilities {
		fmt.Fprintf(bw, "  %-20s %s\n", c.Name, capabilityText(c))
	}
	if r.Cgroup2 != "" {
		p("cgroup v2", "%s", r.Cgroup2)
	} else {
		p("cgroup v2", "none: container/cgroup fields will be absent (%s)", r.Cgroup2Why)
	}
	if r.Kallsyms != "" {
		p("kallsyms", "%s; not needed (kprobe support is read from sysfs, the keepalive timer found in the kernel)", r.Kallsyms)
	}
	if r.RingBuffer {
		p("ring buffer", "yes")
	} else {
		p("ring buffer", "no: %s", r.RingBufferWhy)
	}
	fmt.Fprintln(bw, "attach strategies (tried)")
	for _, s := range r.Strategies {
		if s.Works {
			p("  "+s.Name, "works")
		} else {
			p("  "+s.Name, "no: %s", s.Reason)
		}
	}
	if r.TraceWouldUse != "" {
		p("trace would use", "%s (--attach auto)", r.TraceWouldUse)
	} else {
		p("trace would use", "none")
	}
	if r.SocketsIterator {
		p("sockets", "BPF socket iterator works (every namespace, keepalive settings known)")
	} else {
		p("sockets", "BPF socket iterator fails, falls back to sock_diag: %s", r.SocketsIteratorWhy)
	}
	if r.CanTrace {
		p("verdict", "katrace trace can run here, with the %s strategy", r.TraceWouldUse)
	} else {
		p("verdict", "katrace trace cannot run here: %s", r.Reason)
	}

	fmt.Fprintf(bw, "\nsysctls of this network namespace (inode %d)\n", r.NetNS)
	for _, s := range r.Sysctls {
		v := "unreadable"
		if s.Value >= 0 {
			v = fmt.Sprintf("%d", s.Value)
			if s.Unit == "s" {
				v += " s (" + secs(s.Value) + ")"
			}
		}
		fmt.Fprintf(bw, "  %-30s %s\n", s.Name, v)
	}
	fmt.Fprintln(bw, "\nadvice")
	for _, a := range r.Advice {
		fmt.Fprintf(bw, "%s\n", wrap(a, 78, "  - ", "    "))
	}
	return bw.Flush()
}

// wrap breaks s into lines of at most width, the first with prefix first.
func wrap(s string, width int, first, rest string) string {
	var b strings.Builder
	line := first
	n := len(first)
	for i, word := range strings.Fields(s) {
		if i > 0 && n+1+len(word) > width {
			b.WriteString(line + "\n")
			line, n = rest+word, len(rest)+len(word)
			continue
		}
		if i > 0 {
			line += " "
			n++
		}
		line += word
		n += len(word)
	}
	b.WriteString(line)
	return b.String()
}
