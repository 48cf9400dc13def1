package tracer

import (
	"encoding/binary"
	"io"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/katrace/katrace/output"
	"github.com/katrace/katrace/record"
)

// The userspace pipeline's benchmarks (make bench): raw ring-buffer samples,
// as the kernel writes them for the loopback churn of bench/churn, go through
// decodeEvent, Correlator.Handle and the NDJSON printer into io.Discard.
// They report ns/event and allocs/event; no timing is asserted here.

// churnStep is one kernel event of a churned connection: which end, the
// kind, the new and old states, and whether it ran in the owner's syscall.
type churnStep struct {
	server   bool
	kind     uint8
	state    uint8
	old      uint8
	ownerCtx bool
}

// churnConn is what --all --states sends for one churned connection (connect,
// 16 bytes each way, the server closes first), in the order it arrives.
var churnConn = []churnStep{
	{false, evState, tcpSynSent, tcpClose, true},
	{true, evState, tcpSynRecv, tcpClose, false},
	{false, evState, tcpEstablished, tcpSynSent, false},
	{true, evState, tcpEstablished, tcpSynRecv, false},
	{true, evState, tcpFinWait1, tcpEstablished, true},
	{false, evState, tcpCloseWait, tcpEstablished, false},
	{true, evState, tcpFinWait2, tcpFinWait1, false},
	{false, evState, 9 /* LAST_ACK */, tcpCloseWait, true},
	// With --all, a close event is also the change to CLOSE.
	{true, evClose, tcpClose, tcpFinWait2, false}, // into TIME_WAIT
	{false, evClose, tcpClose, 9, false},
}

// churnSamples encodes conns churned connections as raw samples.
func churnSamples(tb testing.TB, conns int, states bool) [][]byte {
	var out [][]byte
	ts := uint64(1e12)
	for i := 0; i < conns; i++ {
		cli := sock{cookie: uint64(2*i + 1000), start: ts, pid: 4242, comm: "churn"}
		srv := sock{cookie: uint64(2*i + 1001), start: ts, pid: 4242, comm: "churn"}
		for _, st := range churnConn {
			if st.kind == evState && !states {
				continue
			}
			s, sport, dport := cli, uint16(40000+i%20000), uint16(8080)
			if st.server {
				s, sport, dport = srv, 8080, uint16(40000+i%20000)
			}
			e := s.ev(st.kind, 0, st.state)
			e.TsNs = ts
			e.OldState = st.old
			e.Sport, e.Dport = sport, dport
			copy(e.Saddr[:], []byte{127, 0, 0, 1})
			copy(e.Daddr[:], []byte{127, 0, 0, 1})
			e = s.owned(e)
			if !st.ownerCtx {
				e.Flags &^= flagOwnerContext
			}
			if st.state == tcpSynSent || st.state == tcpSynRecv {
				e.Flags &^= flagEstablished
			}
			if st.kind == evClose {
				e.BytesSent, e.BytesReceived = 16, 17
				e.Flags |= flagPeerFin
				if st.server {
					e.FinSide = finLocal
				} else {
					e.FinSide = finRemote
				}
			}
			if st.kind == evState {
				out = append(out, encodeStateEvent(tb, &e))
			} else {
				out = append(out, encodeEvent(tb, &e))
			}
			ts += 2000
		}
	}
	return out
}

const tsOffset = unsafe.Offsetof(katraceEvent{}.TsNs)

// runPipeline feeds the samples round and round, shifting their times so
// that they keep going forward, through decode, correlate and sink.
func runPipeline(b *testing.B, raw [][]byte, cfg CorrelatorConfig, json bool) {
	var sink interface {
		Write(*record.Record) error
		Flush() error
	} = discardSink{}
	var j *output.JSON
	if json {
		j = output.NewJSON(io.Discard)
		sink = j
	}
	c := NewCorrelator(cfg, sink)
	var ev katraceEvent
	// With --states the reader holds events in a sequencer until no
	// earlier one can come (tracer.go's pump): here, those stamped
	// inFlight before the newest, released every 64 events.
	var seq *sequencer
	if cfg.States {
		seq = &sequencer{}
	}
	ne := binary.NativeEndian
	span := uint64(len(raw)) * 2000
	shift := uint64(0)
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r := raw[i]
		ne.PutUint64(r[tsOffset:], ne.Uint64(r[tsOffset:])+shift)
		if err := decodeEvent(r, &ev); err != nil {
			b.Fatal(err)
		}
		if seq == nil {
			if err := c.Handle(&ev); err != nil {
				b.Fatal(err)
			}
		} else {
			seq.push(&ev)
			if n%64 == 0 && ev.TsNs > uint64(inFlight) {
				if err := seq.release(ev.TsNs-uint64(inFlight), c.Handle); err != nil {
					b.Fatal(err)
				}
			}
		}
		if i++; i == len(raw) {
			// The next round's times follow this round's.
			i = 0
			shift = span
		}
	}
	if seq != nil {
		if err := seq.release(^uint64(0), c.Handle); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.SettlePendingCloses(); err != nil {
		b.Fatal(err)
	}
	if j != nil {
		_ = j.Flush()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	b.ReportMetric(1e9/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "events/s")
}

// BenchmarkPipelineDecode: decodeEvent alone (no allocation per event).
func BenchmarkPipelineDecode(b *testing.B) {
	raw := churnSamples(b, 256, true)
	var ev katraceEvent
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if err := decodeEvent(raw[n%len(raw)], &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelineCorrelate: decode, sequence and correlate (--all
// --states), records discarded.
func BenchmarkPipelineCorrelate(b *testing.B) {
	runPipeline(b, churnSamples(b, 1024, true),
		CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true, States: true}, false)
}

// BenchmarkPipelineAllStatesJSON: katrace trace --all --states -o json, every
// event printed: decode → sequence → correlate → NDJSON.
func BenchmarkPipelineAllStatesJSON(b *testing.B) {
	runPipeline(b, churnSamples(b, 1024, true),
		CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true, States: true}, true)
}

// BenchmarkPipelineAllJSON: katrace trace --all -o json (closes only).
func BenchmarkPipelineAllJSON(b *testing.B) {
	runPipeline(b, churnSamples(b, 1024, false),
		CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true}, true)
}

// BenchmarkCorrelatorMemory measures the Go heap per tracked socket: it
// makes the correlator remember b.N sockets (an ESTABLISHED state event
// each) and reports the heap growth per socket.
func BenchmarkCorrelatorMemory(b *testing.B) {
	const sockets = 50000
	base := sock{cookie: 1, start: 1e12, pid: 4242, comm: "idle-conns"}
	evs := make([]katraceEvent, sockets)
	for i := range evs {
		e := base.owned(base.ev(evState, 0, tcpEstablished))
		e.Cookie = uint64(i + 1)
		e.OldState = tcpSynSent
		e.TsNs += uint64(i)
		evs[i] = e
	}
	var perSock float64
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		c := NewCorrelator(CorrelatorConfig{IdleThreshold: time.Second, AllCloses: true, States: true, MaxSockets: sockets}, discardSink{})
		for i := range evs {
			_ = c.Handle(&evs[i])
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.Tracked() != sockets {
			b.Fatalf("tracking %d sockets, want %d", c.Tracked(), sockets)
		}
		perSock = float64(after.HeapAlloc-before.HeapAlloc) / sockets
		runtime.KeepAlive(c)
		b.StartTimer()
	}
	b.ReportMetric(perSock, "B/socket")
}
