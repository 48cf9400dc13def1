package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Explain turns the kernel's terse refusals to load or attach a BPF program
// into a reason a user can act on; other errors pass through. The result
// still wraps err.
func Explain(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		return fmt.Errorf("the verifier refused a program: %w", err)
	case errors.Is(err, unix.EPERM):
		if !CanLoadBPF() {
			return ErrPrivileges
		}
		return refusedError{err}
	case errors.Is(err, os.ErrNotExist), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("not supported by this kernel: %w", err)
	}
	return err
}

// refusedError is an EPERM despite the privileges BPF needs.
type refusedError struct{ err error }

func (e refusedError) Error() string {
	return "the kernel refused (EPERM, e.g. lockdown or a security module): " + WithoutMemlockHint(e.err.Error())
}

func (e refusedError) Unwrap() error { return e.err }

// memlockHint is what cilium/ebpf adds to every EPERM; since Linux 5.11
// BPF memory is charged to the cgroup and RLIMIT_MEMLOCK does not matter.
const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"

// WithoutMemlockHint drops cilium/ebpf's RLIMIT_MEMLOCK hint from an error
// text: on the kernels katrace runs on it misleads.
func WithoutMemlockHint(s string) string { return strings.ReplaceAll(s, memlockHint, "") }
