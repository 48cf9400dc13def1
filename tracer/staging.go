package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// With --states or --all the kernel stages events per CPU and sends them
// a batch at a time (struct state_batch and struct event_batch, bpf/
// katrace.h): a batch reaches the ring later than an event sent alone, so
// the reader puts every event back in time order (sequencer) before the
// correlator sees it, and empties the CPUs' partial batches itself
// (batchFlusher) each time it moves the order on.

// Batch layout: a header (count, magic), then count records.
const (
	stateBatchMagic  = 0x6b617362
	eventBatchMagic  = 0x6b616562
	stateBatchHeader = int(unsafe.Offsetof(katraceStateBatch{}.Recs))
	eventBatchHeader = int(unsafe.Offsetof(katraceEventBatch{}.Recs))
)

// stateBatch returns the records of a state change batch sample, or nil
// when b is not one. The magic tells: where a batch has it, a struct
// event has the upper half of its bpf_ktime_get_ns() time, which would
// need 245 years of uptime to match it.
func stateBatch(b []byte) []byte {
	return batchRecords(b, stateBatchMagic, stateBatchHeader, stateEventSize)
}

// eventBatch returns the records (struct event) of an event batch
// sample, or nil when b is not one.
func eventBatch(b []byte) []byte {
	return batchRecords(b, eventBatchMagic, eventBatchHeader, eventSize)
}

func batchRecords(b []byte, magic uint32, header, size int) []byte {
	if len(b) < header+size || binary.NativeEndian.Uint32(b[4:]) != magic {
		return nil
	}
	recs := b[header:]
	if int(binary.NativeEndian.Uint32(b))*size != len(recs) {
		return nil
	}
	return recs
}

// stagingSupported says whether userspace can run a program on a chosen
// CPU (BPF_PROG_TEST_RUN of a raw tracepoint program with
// BPF_F_TEST_RUN_ON_CPU, Linux 5.10+): what emptying the CPUs' batches
// takes. Tried with a program that does nothing.
func stagingSupported() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.RawTracepoint,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "Dual MIT/GPL",
	})
	if err != nil {
		return false
	}
	defer prog.Close()
	cpus, err := onlineCPUs()
	if err != nil || len(cpus) == 0 {
		return false
	}
	_, err = prog.Run(&ebpf.RunOptions{CPU: uint32(cpus[0]), Flags: unix.BPF_F_TEST_RUN_ON_CPU})
	return err == nil
}

// batchFlusher empties every CPU's batches into the ring.
type batchFlusher struct {
	prog *ebpf.Program
	// The per-CPU batches of state changes and of other events.
	stateBatches, eventBatches *ebpf.Map
	// cpus are the CPUs online at the last flush; next is where the
	// list is read into, swapped with cpus once read whole.
	cpus, next []int
	// online is the kernel's list of online CPUs, kept open to be read
	// again at each flush into listBuf.
	online  *os.File
	listBuf []byte
	opts    ebpf.RunOptions
}

func newBatchFlusher(prog *ebpf.Program, stateBatches, eventBatches *ebpf.Map) (*batchFlusher, error) {
	online, err := os.Open(onlineCPUsPath)
	if err != nil {
		return nil, fmt.Errorf("listing the CPUs whose state changes to empty: %w", err)
	}
	f := &batchFlusher{prog: prog, stateBatches: stateBatches, eventBatches: eventBatches, online: online,
		listBuf: make([]byte, 4096), opts: ebpf.RunOptions{Flags: unix.BPF_F_TEST_RUN_ON_CPU}}
	if err := f.readOnline(); err != nil {
		online.Close()
		return nil, fmt.Errorf("listing the CPUs whose state changes to empty: %w", err)
	}
	return f, nil
}

// readOnline reads the online CPUs into f.cpus; on an error f.cpus stays
// as it was.
func (f *batchFlusher) readOnline() error {
	n, err := f.online.ReadAt(f.listBuf, 0)
	if n == 0 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	next, err := appendCPUList(f.next[:0], bytes.TrimSpace(f.listBuf[:n]))
	if err != nil {
		return err
	}
	f.next, f.cpus = f.cpus, next
	return nil
}

// Close closes the kernel's CPU list.
func (f *batchFlusher) Close() error { return f.online.Close() }

// busyTries is how often a CPU's flush is tried while a state change on
// that CPU is adding a record (well under a microsecond, unless the
// program was preempted under the fentry strategy).
const busyTries = 16

// flush sends every CPU's staged events to the ring. all is false when a
// CPU's batch stayed busy: records older than now may still come.
func (f *batchFlusher) flush() (all bool, err error) {
	all = true
	// A CPU brought online since the last flush has a batch too.
	_ = f.readOnline()
	for _, cpu := range f.cpus {
		f.opts.CPU = uint32(cpu)
		for try := 1; ; try++ {
			busy, err := f.prog.Run(&f.opts)
			if errors.Is(err, unix.ENXIO) {
				// Gone offline since start: nothing of it to empty.
				break
			}
			if err != nil {
				return false, fmt.Errorf("emptying CPU %d's state changes: %w", cpu, err)
			}
			if busy == 0 {
				break
			}
			if try == busyTries {
				all = false
				break
			}
		}
	}
	return all, nil
}

// leftover returns the records still staged on any CPU, state changes
// and other events, each as a batch sample's records: at the end, with
// the programs detached, what CPUs taken offline while tracing kept
// (flush cannot run there).
func (f *batchFlusher) leftover() (states, events [][]byte, err error) {
	if states, err = leftIn(f.stateBatches, stateBatchHeader, stateEventSize); err != nil {
		return nil, nil, err
	}
	if events, err = leftIn(f.eventBatches, eventBatchHeader, eventSize); err != nil {
		return nil, nil, err
	}
	return states, events, nil
}

// leftIn returns the records each CPU's batch in m still holds.
func leftIn(m *ebpf.Map, header, size int) ([][]byte, error) {
	var perCPU [][]byte
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return nil, fmt.Errorf("reading the CPUs' staged events: %w", err)
	}
	var out [][]byte
	for _, b := range perCPU {
		if len(b) < header {
			continue
		}
		n := int(binary.NativeEndian.Uint32(b))
		if n == 0 || header+n*size > len(b) {
			continue
		}
		out = append(out, b[header:header+n*size])
	}
	return out, nil
}

const onlineCPUsPath = "/sys/devices/system/cpu/online"

// onlineCPUs lists the CPUs that are online now.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile(onlineCPUsPath)
	if err != nil {
		return nil, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

// parseCPUList reads the kernel's CPU list format ("0-3,8,10-11").
func parseCPUList(s string) ([]int, error) {
	return appendCPUList(nil, []byte(s))
}

// appendCPUList appends the CPUs of a list in the kernel's format to dst,
// allocating nothing once dst has room: the flusher reads the list every
// 100 ms.
func appendCPUList(dst []int, list []byte) ([]int, error) {
	bad := func() ([]int, error) { return dst, fmt.Errorf("CPU list %q: not a list of CPUs", list) }
	if len(list) == 0 {
		return bad()
	}
	for part := range bytes.SplitSeq(list, []byte(",")) {
		lo, hi, isRange := bytes.Cut(part, []byte("-"))
		first, ok := cpuNumber(lo)
		last, lastOK := first, true
		if isRange {
			last, lastOK = cpuNumber(hi)
		}
		if !ok || !lastOK || last < first {
			return bad()
		}
		for cpu := first; cpu <= last; cpu++ {
			dst = append(dst, cpu)
		}
	}
	return dst, nil
}

// cpuNumber reads a CPU number, at most five digits.
func cpuNumber(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// sequencer holds events until no earlier one can still arrive and hands
// them on in time order (ties in arrival order). Events are kept in a
// slab reused once handed on: no allocation once it has grown to the
// backlog.
type sequencer struct {
	slab []katraceEvent
	// arrival of each slab entry, for ties.
	arrival []uint64
	free    []uint32
	heap    []uint32
	next    uint64
}

func (s *sequencer) len() int { return len(s.heap) }

// push keeps a copy of e.
func (s *sequencer) push(e *katraceEvent) {
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
		s.slab[i] = *e
		s.arrival[i] = s.next
	} else {
		i = uint32(len(s.slab))
		s.slab = append(s.slab, *e)
		s.arrival = append(s.arrival, s.next)
	}
	s.next++
	s.heap = append(s.heap, i)
	s.up(len(s.heap) - 1)
}

// release hands fn, in time order, every event that happened at or
// before until.
func (s *sequencer) release(until uint64, fn func(*katraceEvent) error) error {
	for len(s.heap) > 0 {
		i := s.heap[0]
		if s.slab[i].TsNs > until {
			return nil
		}
		last := len(s.heap) - 1
		s.heap[0] = s.heap[last]
		s.heap = s.heap[:last]
		if last > 0 {
			s.down(0)
		}
		err := fn(&s.slab[i])
		s.free = append(s.free, i)
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *sequencer) less(a, b uint32) bool {
	ta, tb := s.slab[a].TsNs, s.slab[b].TsNs
	return ta < tb || ta == tb && s.arrival[a] < s.arrival[b]
}

func (s *sequencer) up(j int) {
	for j > 0 {
		parent := (j - 1) / 2
		if !s.less(s.heap[j], s.heap[parent]) {
			return
		}
		s.heap[j], s.heap[parent] = s.heap[parent], s.heap[j]
		j = parent
	}
}

func (s *sequencer) down(j int) {
	n := len(s.heap)
	for {
		child := 2*j + 1
		if child >= n {
			return
		}
		if right := child + 1; right < n && s.less(s.heap[right], s.heap[child]) {
			child = right
		}
		if !s.less(s.heap[child], s.heap[j]) {
			return
		}
		s.heap[j], s.heap[child] = s.heap[child], s.heap[j]
		j = child
	}
}
