// Package kernel answers what katrace needs to know about the running
// kernel and its own privileges, in one place: the tick rate (HZ), the
// kernel release, BTF, the capabilities katrace holds, kernel symbols and
// the cgroup v2 mount. It knows nothing about katrace's BPF programs.
package kernel
