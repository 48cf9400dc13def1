package tracer

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// stateBatchSample encodes events as the kernel's batch sample: the
// header, then one struct state_event each.
func stateBatchSample(t *testing.T, evs []katraceEvent) []byte {
	t.Helper()
	b := make([]byte, stateBatchHeader)
	binary.NativeEndian.PutUint32(b, uint32(len(evs)))
	binary.NativeEndian.PutUint32(b[4:], stateBatchMagic)
	for i := range evs {
		b = append(b, encodeStateEvent(t, &evs[i])...)
	}
	return b
}

func TestStateBatchLayout(t *testing.T) {
	if stateBatchHeader != 8 {
		t.Fatalf("state batch header is %d bytes, want 8", stateBatchHeader)
	}
	if n := len(katraceStateBatch{}.Recs); n != 32 {
		t.Fatalf("a batch holds %d records, want KATRACE_STATE_BATCH 32", n)
	}
	if eventBatchHeader != 8 {
		t.Fatalf("event batch header is %d bytes, want 8", eventBatchHeader)
	}
	// Sizes alone do not tell a batch from a single event (two records
	// and their header are the size of struct event today): the magic
	// does, where a struct event has the upper half of its time, which
	// reaches the magic after 245 years of uptime.
	s := sock{cookie: 9, start: 1e12, pid: 42, comm: "client"}
	e := s.owned(s.ev(evClose, 0, tcpClose))
	e.TsNs = 1 << 60
	if stateBatch(encodeEvent(t, &e)) != nil || eventBatch(encodeEvent(t, &e)) != nil {
		t.Error("a struct event was read as a batch")
	}
}

func TestStateBatchDecode(t *testing.T) {
	s := sock{cookie: 7, start: 1e12, pid: 42, comm: "client"}
	var evs []katraceEvent
	for i, st := range []uint8{tcpSynSent, tcpEstablished, tcpFinWait1} {
		e := s.owned(s.ev(evState, 0, st))
		e.TsNs += uint64(i)
		evs = append(evs, e)
	}
	sample := stateBatchSample(t, evs)
	recs := stateBatch(sample)
	if len(recs) != 3*stateEventSize {
		t.Fatalf("stateBatch returned %d bytes of records, want %d", len(recs), 3*stateEventSize)
	}
	for i := range evs {
		var got katraceEvent
		decodeStateEvent(recs[i*stateEventSize:(i+1)*stateEventSize], &got)
		if got.Cookie != 7 || got.State != evs[i].State || got.TsNs != evs[i].TsNs || got.Pid != 42 {
			t.Errorf("record %d: cookie %d state %d ts %d pid %d, want 7 %d %d 42",
				i, got.Cookie, got.State, got.TsNs, got.Pid, evs[i].State, evs[i].TsNs)
		}
	}

	bad := slices.Clone(sample)
	binary.NativeEndian.PutUint32(bad[4:], 0)
	if stateBatch(bad) != nil {
		t.Error("a sample without the magic was read as a batch")
	}
	bad = slices.Clone(sample)
	binary.NativeEndian.PutUint32(bad, 4)
	if stateBatch(bad) != nil {
		t.Error("a batch whose count does not match its size was read")
	}
	if stateBatch(encodeStateEvent(t, &evs[0])) != nil {
		t.Error("a single state event was read as a batch")
	}
}

func TestEventBatchDecode(t *testing.T) {
	s := sock{cookie: 5, start: 1e12, pid: 42, comm: "server"}
	fin := s.owned(s.ev(evIdleFin, 0, tcpFinWait1))
	closed := s.owned(s.ev(evClose, 0, tcpClose))
	sample := make([]byte, eventBatchHeader)
	binary.NativeEndian.PutUint32(sample, 2)
	binary.NativeEndian.PutUint32(sample[4:], eventBatchMagic)
	sample = append(sample, encodeEvent(t, &fin)...)
	sample = append(sample, encodeEvent(t, &closed)...)
	recs := eventBatch(sample)
	if len(recs) != 2*eventSize {
		t.Fatalf("eventBatch returned %d bytes of records, want %d", len(recs), 2*eventSize)
	}
	var got katraceEvent
	if err := decodeEvent(recs[eventSize:], &got); err != nil || got.Kind != evClose || got.Cookie != 5 {
		t.Fatalf("second record: kind %d cookie %d (%v), want a close of 5", got.Kind, got.Cookie, err)
	}
	if stateBatch(sample) != nil {
		t.Error("an event batch was read as a state batch")
	}
}

// TestSequencerOrder: events pushed out of order (batches of different
// CPUs arrive late) come out in time order, and none before its time.
func TestSequencerOrder(t *testing.T) {
	var seq sequencer
	rng := rand.New(rand.NewPCG(1, 2))
	var handed []uint64
	collect := func(e *katraceEvent) error {
		handed = append(handed, e.TsNs)
		return nil
	}
	var until uint64
	for round := 0; round < 50; round++ {
		for i := 0; i < 100; i++ {
			// Anything after what was handed on already.
			e := katraceEvent{TsNs: until + 1 + uint64(rng.IntN(10000))}
			seq.push(&e)
		}
		until += 5000
		before := len(handed)
		if err := seq.release(until, collect); err != nil {
			t.Fatal(err)
		}
		for _, ts := range handed[before:] {
			if ts > until {
				t.Fatalf("event at %d handed on before %d", ts, until)
			}
		}
		for i := 0; i < seq.len(); i++ {
			if seq.slab[seq.heap[i]].TsNs <= until {
				t.Fatalf("event at %d held after release up to %d", seq.slab[seq.heap[i]].TsNs, until)
			}
		}
	}
	if err := seq.release(^uint64(0), collect); err != nil {
		t.Fatal(err)
	}
	if len(handed) != 5000 || seq.len() != 0 {
		t.Fatalf("handed on %d of 5000 events, %d held", len(handed), seq.len())
	}
	if !slices.IsSorted(handed) {
		t.Fatal("events handed on out of time order")
	}
}

// TestSequencerTies: events of the same time keep their arrival order (a
// batch's records of one socket, a close event and its reset).
func TestSequencerTies(t *testing.T) {
	var seq sequencer
	for i := 0; i < 20; i++ {
		e := katraceEvent{TsNs: 100, Cookie: uint64(i)}
		seq.push(&e)
	}
	var cookies []uint64
	if err := seq.release(100, func(e *katraceEvent) error {
		cookies = append(cookies, e.Cookie)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, c := range cookies {
		if c != uint64(i) {
			t.Fatalf("ties handed on as %v, want arrival order", cookies)
		}
	}
}

// TestSequencerNoAllocation: once grown to the backlog, holding and
// handing on events allocates nothing (the pipeline's hot path).
func TestSequencerNoAllocation(t *testing.T) {
	var seq sequencer
	handle := func(*katraceEvent) error { return nil }
	var ts uint64
	cycle := func() {
		for i := 0; i < 64; i++ {
			ts++
			e := katraceEvent{TsNs: ts}
			seq.push(&e)
		}
		_ = seq.release(ts-32, handle)
	}
	for i := 0; i < 10; i++ {
		cycle()
	}
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Fatalf("%.1f allocations per 64 events", allocs)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{
		"0":         {0},
		"0-3":       {0, 1, 2, 3},
		"0-1,4,6-7": {0, 1, 4, 6, 7},
		"2,5":       {2, 5},
		"0-0,10-11": {0, 10, 11},
	} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "0-b", "1,", "3-1", "-1", "123456"} {
		if _, err := parseCPUList(in); err == nil {
			t.Errorf("parseCPUList(%q) took a bad list", in)
		}
	}
	// Read again into the room of the last read: nothing allocated.
	list := []byte("0-63,128-191")
	dst, _ := appendCPUList(nil, list)
	if allocs := testing.AllocsPerRun(100, func() { dst, _ = appendCPUList(dst[:0], list) }); allocs != 0 || len(dst) != 128 {
		t.Errorf("appendCPUList into its last result: %v allocations, %d CPUs; want none, 128", allocs, len(dst))
	}
}

// TestFlushAllocatesNothing: the reader empties the CPUs' batches every
// 100 ms for as long as katrace runs; reading the CPU list again and
// running the program on each CPU allocate nothing.
func TestFlushAllocatesNothing(t *testing.T) {
	requireRoot(t)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.RawTracepoint,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "Dual MIT/GPL",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	f, err := newBatchFlusher(prog, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	var flushErr error
	allocs := testing.AllocsPerRun(50, func() { _, flushErr = f.flush() })
	if flushErr != nil || allocs != 0 {
		t.Errorf("flush: %v allocations, error %v; want none", allocs, flushErr)
	}
	if !slices.Equal(f.cpus, want) {
		t.Errorf("flush read the online CPUs as %v, want %v", f.cpus, want)
	}
}

// requireRoot skips a test that loads BPF maps or programs.
func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("loads BPF objects: needs root, not -short")
	}
}

// TestStagingSupportedHere: the kernels katrace is tested on (5.10 and
// later) run a program on a chosen CPU, so --states is staged there, not
// silently sent one record at a time.
func TestStagingSupportedHere(t *testing.T) {
	requireRoot(t)
	if !stagingSupported() {
		t.Fatal("this kernel does not run a raw tracepoint program on a chosen CPU: --states would not be staged")
	}
}

// perCPUBatches makes a per-CPU array of one valueSize-byte batch a CPU,
// the last CPU's holding recs.
func perCPUBatches(t *testing.T, valueSize uint32, recs [][]byte) *ebpf.Map {
	t.Helper()
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: valueSize, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	values := make([][]byte, cpus)
	for cpu := range values {
		values[cpu] = make([]byte, valueSize)
	}
	last := values[cpus-1]
	binary.NativeEndian.PutUint32(last, uint32(len(recs)))
	off := 8
	for _, r := range recs {
		off += copy(last[off:], r)
	}
	if err := m.Put(uint32(0), values); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBatchFlusherLeftover: at the end, what a CPU still holds in its
// batches (one taken offline while tracing) is read back, every record.
func TestBatchFlusherLeftover(t *testing.T) {
	requireRoot(t)
	s := sock{cookie: 11, start: 1e12, pid: 42, comm: "client"}
	var states [][]byte
	for _, st := range []uint8{tcpSynSent, tcpEstablished} {
		e := s.owned(s.ev(evState, 0, st))
		states = append(states, encodeStateEvent(t, &e))
	}
	closed := s.owned(s.ev(evClose, 0, tcpClose))
	f := &batchFlusher{
		stateBatches: perCPUBatches(t, uint32(unsafe.Sizeof(katraceStateBatch{})), states),
		eventBatches: perCPUBatches(t, uint32(unsafe.Sizeof(katraceEventBatch{})), [][]byte{encodeEvent(t, &closed)}),
	}
	leftStates, leftEvents, err := f.leftover()
	if err != nil {
		t.Fatal(err)
	}
	if len(leftStates) != 1 || len(leftStates[0]) != 2*stateEventSize {
		t.Fatalf("leftover returned %d state batches, want one of 2 records", len(leftStates))
	}
	var got katraceEvent
	decodeStateEvent(leftStates[0][stateEventSize:], &got)
	if got.Cookie != 11 || got.State != tcpEstablished {
		t.Fatalf("second state record: cookie %d state %d, want 11 ESTABLISHED", got.Cookie, got.State)
	}
	if len(leftEvents) != 1 || len(leftEvents[0]) != eventSize {
		t.Fatalf("leftover returned %d event batches, want one of 1 record", len(leftEvents))
	}
	if err := decodeEvent(leftEvents[0], &got); err != nil || got.Kind != evClose || got.Cookie != 11 {
		t.Fatalf("event record: kind %d cookie %d (%v), want a close of 11", got.Kind, got.Cookie, err)
	}
}
