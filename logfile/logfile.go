// Package logfile is katrace's output file: appended to, never truncated,
// created readable by its owner only (records name processes, addresses
// and ports), rotated by size between whole lines, and reopened on demand
// for logrotate's create mode.
//
// The printers write through a bufio.Writer, whose writes end wherever its
// buffer filled, often in the middle of a record. File keeps such a tail
// until its newline arrives, so a rotation or a reopen always falls between
// two records.
package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// Perm is the mode of a file katrace creates.
const Perm = 0o600

// Options say when to rotate. A zero MaxSize never rotates.
type Options struct {
	// MaxSize is the size in bytes past which the file is rotated, at the
	// next record boundary. A single record larger than MaxSize gets a
	// file of its own.
	MaxSize int64
	// MaxBackups is how many rotated files to keep: PATH.1 (the newest)
	// to PATH.N. At least 1 when MaxSize is set.
	MaxBackups int
}

// File is an output file. Write, Reopen and Close may be called from
// different goroutines.
type File struct {
	mu   sync.Mutex
	path string
	opt  Options
	f    *os.File
	size int64
	// tail is the end of the last write that did not finish a line.
	tail []byte
}

// Open opens path for appending, creating it with mode Perm.
func Open(path string, o Options) (*File, error) {
	if o.MaxSize < 0 {
		return nil, fmt.Errorf("max size %d: must not be negative", o.MaxSize)
	}
	if o.MaxSize > 0 && o.MaxBackups < 1 {
		return nil, fmt.Errorf("max backups %d: rotation keeps at least one earlier file", o.MaxBackups)
	}
	l := &File{path: path, opt: o}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, Perm)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write takes any part of the stream; only whole lines reach the file.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	written := len(p)
	end := bytes.LastIndexByte(p, '\n')
	if end < 0 {
		l.tail = append(l.tail, p...)
		return len(p), nil
	}
	if len(l.tail) > 0 {
		// Finish the pending line first; this copies only the one line.
		nl := bytes.IndexByte(p, '\n')
		l.tail = append(l.tail, p[:nl+1]...)
		if err := l.writeLines(l.tail); err != nil {
			return 0, err
		}
		l.tail = l.tail[:0]
		p, end = p[nl+1:], end-nl-1
	}
	if err := l.writeLines(p[:end+1]); err != nil {
		return 0, err
	}
	l.tail = append(l.tail, p[end+1:]...)
	return written, nil
}

// writeLines writes whole lines, rotating between two of them when the
// file would grow past MaxSize.
func (l *File) writeLines(b []byte) error {
	for len(b) > 0 {
		n := len(b)
		if max := l.opt.MaxSize; max > 0 && l.size+int64(n) > max {
			room := max - l.size
			n = 0
			if room > 0 {
				n = bytes.LastIndexByte(b[:min(int64(len(b)), room)], '\n') + 1
			}
			if n == 0 {
				if l.size > 0 {
					if err := l.rotate(); err != nil {
						return err
					}
					continue
				}
				// A line longer than MaxSize in an empty file: alone.
				n = bytes.IndexByte(b, '\n') + 1
			}
		}
		w, err := l.f.Write(b[:n])
		l.size += int64(w)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// rotate shifts PATH.i to PATH.i+1, drops the oldest, and starts a new
// PATH.
func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("closing %s to rotate it: %w", l.path, err)
	}
	l.f = nil
	backup := func(i int) string { return l.path + "." + strconv.Itoa(i) }
	// Shift only the backups there are: PATH.1 to PATH.n, n at most
	// MaxBackups, the one beyond the limit removed.
	n := 0
	for n < l.opt.MaxBackups {
		if _, err := os.Lstat(backup(n + 1)); err != nil {
			break
		}
		n++
	}
	if n == l.opt.MaxBackups {
		if err := os.Remove(backup(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating %s: %w", l.path, err)
		}
		n--
	}
	for i := n; i >= 1; i-- {
		if err := os.Rename(backup(i), backup(i+1)); err != nil {
			return fmt.Errorf("rotating %s: %w", l.path, err)
		}
	}
	if err := os.Rename(l.path, backup(1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotating %s: %w", l.path, err)
	}
	if err := l.open(); err != nil {
		return fmt.Errorf("opening %s after rotating it: %w", l.path, err)
	}
	return nil
}

// Reopen closes the file and opens PATH again, for logrotate's create
// mode: after it renamed the file, records go to the new PATH. A record
// that was half written stays whole: its tail is still held here.
func (l *File) Reopen() error {
	return l.whileOpen(func() error {
		old := l.f
		if err := l.open(); err != nil {
			return fmt.Errorf("reopening %s: %w", l.path, err)
		}
		if err := old.Close(); err != nil {
			return fmt.Errorf("closing %s before reopening it: %w", l.path, err)
		}
		return nil
	})
}

// Close writes what is left (a last line without its newline, if the
// stream ended so) and closes the file.
func (l *File) Close() error {
	return l.whileOpen(func() error {
		var err error
		if len(l.tail) > 0 {
			_, err = l.f.Write(l.tail)
			l.tail = l.tail[:0]
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
		l.f = nil
		return err
	})
}

// whileOpen runs fn holding the lock, if the file is still open.
func (l *File) whileOpen(fn func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	return fn()
}
