package sockets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/kernel"
)

// iterator is the loaded and attached iter/tcp program.
type iterator struct {
	objs socketsObjects
	it   *link.Iter
}

func loadIterator() (*iterator, error) {
	if !kernel.HasBTF() {
		return nil, kernel.ErrNoBTF
	}
	hz, _, err := kernel.HZ()
	if err != nil {
		return nil, err
	}
	spec, err := loadSockets()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded socket iterator: %w", err)
	}
	if err := spec.Variables[socketsVarHz].Set(hz); err != nil {
		return nil, fmt.Errorf("setting the kernel's HZ: %w", err)
	}
	x := &iterator{}
	if err := spec.LoadAndAssign(&x.objs, nil); err != nil {
		return nil, fmt.Errorf("loading the socket iterator: %w", explain(err))
	}
	it, err := link.AttachIter(link.IterOptions{Program: x.objs.DumpSockets})
	if err != nil {
		x.objs.Close()
		return nil, fmt.Errorf("attaching the socket iterator: %w", explain(err))
	}
	x.it = it
	return x, nil
}

func (x *iterator) Close() error {
	err := x.it.Close()
	return errors.Join(err, x.objs.Close())
}

// read runs the iterator over the calling thread's network namespace.
func (x *iterator) read() ([]Socket, error) {
	rd, err := x.it.Open()
	if err != nil {
		return nil, fmt.Errorf("running the socket iterator: %w", explain(err))
	}
	defer rd.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rd); err != nil {
		return nil, fmt.Errorf("reading the socket iterator: %w", err)
	}
	return decodeRows(buf.Bytes())
}

// IteratorWorks reports whether the socket iterator loads and runs here
// (for katrace check).
func IteratorWorks() error {
	x, err := loadIterator()
	if err != nil {
		return err
	}
	defer x.Close()
	_, err = x.read()
	return err
}

// memlockHint is what cilium/ebpf adds to every EPERM; since Linux 5.11
// BPF memory is charged to the cgroup and RLIMIT_MEMLOCK does not matter.
const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"

// explain turns the kernel's terse refusals into a reason a user can act on.
func explain(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("the verifier refused the program: %v", ve)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%s (needs root, or CAP_BPF and CAP_PERFMON; or a lockdown or security module refused)",
			strings.ReplaceAll(err.Error(), memlockHint, ""))
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL), errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("not supported by this kernel: %w", err)
	}
	return err
}
