package sockets

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf/link"

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
		return nil, fmt.Errorf("loading the socket iterator: %w", kernel.Explain(err))
	}
	it, err := link.AttachIter(link.IterOptions{Program: x.objs.DumpSockets})
	if err != nil {
		x.objs.Close()
		return nil, fmt.Errorf("attaching the socket iterator: %w", kernel.Explain(err))
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
		return nil, fmt.Errorf("running the socket iterator: %w", kernel.Explain(err))
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
