package kernel

import (
	"errors"
	"os"
)

// BTFPath is where the kernel exposes its own BTF.
const BTFPath = "/sys/kernel/btf/vmlinux"

// ErrNoBTF means the kernel exposes no BTF, which katrace cannot do without.
var ErrNoBTF = errors.New("this kernel has no BTF (" + BTFPath + " is missing): katrace needs a kernel 5.8+ built with CONFIG_DEBUG_INFO_BTF=y")

// ErrPrivileges means the process lacks what loading BPF programs needs.
var ErrPrivileges = errors.New("katrace needs root, or the capabilities CAP_BPF and CAP_PERFMON (e.g. sudo katrace trace)")

// HasBTF says whether the kernel exposes its BTF.
func HasBTF() bool {
	_, err := os.Stat(BTFPath)
	return err == nil
}

// Prerequisites reports the first missing thing without which no katrace
// BPF program loads: ErrNoBTF or ErrPrivileges.
func Prerequisites() error {
	if !HasBTF() {
		return ErrNoBTF
	}
	if !CanLoadBPF() {
		return ErrPrivileges
	}
	return nil
}
