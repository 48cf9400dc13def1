package sockets

import "github.com/katrace/katrace/procfs"

// Snapshot finds every network namespace (those of every process, those
// held open by a file descriptor, and those bind-mounted under /run/netns)
// and reads each from a thread that has entered it (procfs.InNetns).

// netnsRef is a network namespace and a path that opens it.
type netnsRef struct {
	ino  uint32
	path string
}

func addNamedNetns(m map[uint32]string) { procfs.AddNamedNetns(m) }

func currentNetns() uint32 { return procfs.CurrentNetns() }

func inNetns(ref netnsRef, fn func() error) error { return procfs.InNetns(ref.ino, ref.path, fn) }
