// Package primitives measures what the building blocks of katrace's kernel
// programs cost on this machine: each in a program of its own on the TCP
// state change tracepoint, attached alone while a load runs, its bpf_stats
// ns per run net of the empty program's. katbench prints them (-only
// primitives); docs/PERFORMANCE.md reads katrace's costs against them.
package primitives

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
)

// Primitive is one building block and what it costs.
type Primitive struct {
	Name string
	// What the program does on each TCP state change.
	What string
	// NsPerRun is the median over rounds, net of the empty program's
	// median; Runs is how many runs that took in all.
	NsPerRun float64
	Runs     uint64
}

// catalogue is every program of bpf/primitives.bpf.c but the empty one, in
// the order they are printed.
var catalogue = []struct{ prog, what string }{
	{"tcp_only", "read sk->sk_protocol (every katrace program on this tracepoint does)"},
	{"jiffies", "bpf_jiffies64()"},
	{"clock_ns", "bpf_ktime_get_ns()"},
	{"current_comm", "bpf_get_current_comm()"},
	{"socket_cookie", "bpf_get_socket_cookie() (made on a socket's first call)"},
	{"one_line_read", "a read of one 64-byte entry, the same every run, never written"},
	{"slot_read", "the cookie, then a read of its 64-byte entry in a 16,384-entry array"},
	{"slot_read_64k", "the same in the first 1,024 entries (64 KiB), no write anywhere"},
	{"slot_read_4k", "the same in the first 64 entries (one 4 KiB page), no write anywhere"},
	{"sample_16", "one 16-byte ring buffer sample (4 MiB ring, a reader draining it)"},
	{"sample_112", "one 112-byte sample (a --states record is 112)"},
	{"sample_224", "one 224-byte sample (a close event is 224)"},
	{"own_ring_112", "one 112-byte sample into a 1 MiB ring of this CPU's own (no ring shared between CPUs)"},
	{"perf_112", "one 112-byte sample into a perf buffer of this CPU's own (1 MiB, no ring buffer spinlock)"},
	{"mmap_112", "one 112-byte record into this CPU's section of memory the reader maps, published by one atomic add (no lock)"},
	{"mmap_112_small", "the same in 256 slots (28 KiB) of the section"},
	{"staged_32", "a 32-byte record staged per CPU, sent 32 to a 1 KiB sample"},
	{"staged_112", "a 112-byte record staged per CPU, sent 32 to a 3.5 KiB sample"},
	{"least_state_record", "the least a state change record can be: clock, cookie and states, 32 bytes staged per CPU, sent 32 at a time"},
}

// Measure attaches each primitive alone for rounds runs of load, the empty
// program too, and returns their costs.
func Measure(load func() error, rounds int) ([]Primitive, error) {
	spec, err := loadPrim()
	if err != nil {
		return nil, fmt.Errorf("reading the primitives: %w", err)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	spec.Maps["mmap_heads"].MaxEntries = uint32(cpus)
	spec.Maps["mmap_records"].MaxEntries = uint32(cpus) * mmapSlots
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading the primitives: %w", err)
	}
	defer coll.Close()
	stopMmap, err := drainMmap(coll.Maps["mmap_heads"], coll.Maps["mmap_records"], cpus)
	if err != nil {
		return nil, fmt.Errorf("mapping the records: %w", err)
	}
	defer stopMmap()
	rings := []*ebpf.Map{coll.Maps["samples"]}
	own, err := ownRings(spec.Maps["cpu_rings"], coll.Maps["cpu_rings"])
	if err != nil {
		return nil, fmt.Errorf("making the rings of each CPU: %w", err)
	}
	defer func() {
		for _, m := range own {
			m.Close()
		}
	}()
	for _, ring := range append(rings, own...) {
		rd, err := ringbuf.NewReader(ring)
		if err != nil {
			return nil, err
		}
		defer rd.Close()
		go func() {
			var rec ringbuf.Record
			for rd.ReadInto(&rec) == nil {
			}
		}()
	}
	// Woken every 128 KiB, as the rings are.
	perfRd, err := perf.NewReaderWithOptions(coll.Maps["perf_samples"], 1<<20, perf.ReaderOptions{Watermark: 128 << 10})
	if err != nil {
		return nil, fmt.Errorf("making the perf buffers: %w", err)
	}
	defer perfRd.Close()
	go func() {
		var rec perf.Record
		for perfRd.ReadInto(&rec) == nil {
		}
	}()
	progs := map[string]*ebpf.Program{"empty": coll.Programs["empty"]}
	for _, c := range catalogue {
		p := coll.Programs[c.prog]
		if p == nil {
			return nil, fmt.Errorf("program %s is not in bpf/primitives.bpf.c", c.prog)
		}
		progs[c.prog] = p
	}
	order := append([]string{"empty"}, names()...)
	perRun := map[string][]float64{}
	runs := map[string]uint64{}
	for r := 0; r < rounds; r++ {
		for _, name := range order {
			ns, n, err := measureOne(progs[name], load)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			perRun[name] = append(perRun[name], ns)
			runs[name] += n
		}
	}
	floor := median(perRun["empty"])
	out := make([]Primitive, 0, len(catalogue))
	for _, c := range catalogue {
		out = append(out, Primitive{Name: c.prog, What: c.what, NsPerRun: median(perRun[c.prog]) - floor, Runs: runs[c.prog]})
	}
	return out, nil
}

// mmapSlots is MMAP_SLOTS of bpf/primitives.bpf.c.
const mmapSlots = 4096

// drainMmap consumes what mmap_112 publishes, as a reader polling every
// 100 µs would: it reads each record's first word (the line comes to the
// reader's CPU, as a real reader's would) and advances the CPU's consumed
// count.
func drainMmap(heads, records *ebpf.Map, cpus int) (func(), error) {
	mem, err := unix.Mmap(heads.FD(), 0, cpus*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	recs, err := unix.Mmap(records.FD(), 0, cpus*mmapSlots*112, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	var sink uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for cpu := 0; cpu < cpus; cpu++ {
				produced := (*uint64)(unsafe.Pointer(&mem[cpu*64]))
				consumed := (*uint64)(unsafe.Pointer(&mem[cpu*64+8]))
				end := atomic.LoadUint64(produced)
				for c := atomic.LoadUint64(consumed); c < end; c++ {
					// The writer uses the first 256 or all slots: read both places.
					for _, slots := range []uint64{256, mmapSlots} {
						off := (uint64(cpu)*mmapSlots + c%slots) * 112
						sink += *(*uint64)(unsafe.Pointer(&recs[off]))
					}
				}
				atomic.StoreUint64(consumed, end)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		unix.Munmap(mem)
		unix.Munmap(recs)
		_ = sink
	}, nil
}

// ownRings makes a ring for each possible CPU and puts it in outer at the
// CPU's index.
func ownRings(outerSpec *ebpf.MapSpec, outer *ebpf.Map) ([]*ebpf.Map, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	if uint32(cpus) > outerSpec.MaxEntries {
		return nil, fmt.Errorf("%d CPUs, room for %d", cpus, outerSpec.MaxEntries)
	}
	var made []*ebpf.Map
	for cpu := 0; cpu < cpus; cpu++ {
		ring, err := ebpf.NewMap(outerSpec.InnerMap)
		if err != nil {
			return made, err
		}
		made = append(made, ring)
		if err := outer.Put(uint32(cpu), ring); err != nil {
			return made, err
		}
	}
	return made, nil
}

func names() []string {
	out := make([]string, len(catalogue))
	for i, c := range catalogue {
		out[i] = c.prog
	}
	return out
}

// measureOne is prog's bpf_stats ns per run over one run of load, with
// prog attached alone (kernel.bpf_stats_enabled is the caller's).
func measureOne(prog *ebpf.Program, load func() error) (float64, uint64, error) {
	before, err := prog.Stats()
	if err != nil {
		return 0, 0, err
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return 0, 0, err
	}
	loadErr := load()
	closeErr := l.Close()
	if err := errors.Join(loadErr, closeErr); err != nil {
		return 0, 0, err
	}
	after, err := prog.Stats()
	if err != nil {
		return 0, 0, err
	}
	n := after.RunCount - before.RunCount
	if n == 0 {
		return 0, 0, errors.New("the load made no TCP state change")
	}
	return float64((after.Runtime - before.Runtime).Nanoseconds()) / float64(n), n, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
