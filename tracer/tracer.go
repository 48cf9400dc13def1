// Package tracer loads katrace's kernel programs, reads their events from
// the ring buffer, and turns them into records, per socket.
package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/record"
)

// Config is everything a trace needs.
type Config struct {
	Attach        Strategy
	Filters       Filters
	RingSize      uint32
	IdleThreshold time.Duration
	// All reports every close; States every state change.
	All        bool
	States     bool
	MaxSockets int
	Version    string
	// Protocols labels connections (http/1.x, http/2, tls) and counts
	// HTTP/1.x requests, from the first bytes of their packets.
	Protocols bool
	// Attached, when set, is called once everything is attached and the
	// start record is written.
	Attached func(Strategy)
	// Workload names a socket's cgroup, container and pod from its cgroup
	// id (container.Resolver.Workload); nil leaves those fields out.
	Workload func(cgroupID uint64) *record.Workload
}

const (
	flushEvery = 100 * time.Millisecond
	// inFlight is how long before the moment the CPUs' batches were
	// emptied an event may have been stamped and still be on its way to
	// the ring (a program run interrupted by softirqs).
	inFlight = 10 * time.Millisecond
	// seqBacklog is how many events the sequencer holds before the reader
	// moves the order on without waiting for flushEvery.
	seqBacklog    = 16384
	lostEvery     = 250 * time.Millisecond
	ownerScanTick = time.Second
)

// Run traces until ctx is done or writing to sink fails.
func Run(ctx context.Context, cfg Config, sink record.Sink) error {
	if err := CheckPrerequisites(); err != nil {
		return err
	}
	if cfg.IdleThreshold <= 0 {
		cfg.IdleThreshold = time.Second
	}
	l, err := attach(cfg.Attach, loadOptions{
		Filters:         cfg.Filters,
		RingSize:        cfg.RingSize,
		IdleThresholdMs: uint32(cfg.IdleThreshold / time.Millisecond),
		EmitStates:      cfg.States,
		EmitAllCloses:   cfg.All,
		Protocols:       cfg.Protocols,
	})
	if err != nil {
		return err
	}
	defer l.Close()

	rd, err := ringbuf.NewReader(l.coll.Maps["events"])
	if err != nil {
		return fmt.Errorf("opening the ring buffer: %w", err)
	}
	defer rd.Close()

	offset, err := wallOffset()
	if err != nil {
		return err
	}
	owners := newOwnerIndex()
	byOwner := cfg.Filters.ByOwner()
	if byOwner {
		owners.wanted = cfg.Filters.MatchOwner
	}
	// Every program is attached by now. The owner filters let a socket's
	// events through only once its owner is known: what went before was
	// filtered, not unseen.
	var watchingSince uint64
	if !byOwner {
		watchingSince = monotonicNow()
	}
	corr := NewCorrelator(CorrelatorConfig{
		IdleThreshold:   cfg.IdleThreshold,
		AllCloses:       cfg.All,
		States:          cfg.States,
		MaxSockets:      cfg.MaxSockets,
		WallOffset:      offset,
		Owner:           owners.Lookup,
		Workload:        cfg.Workload,
		TimewaitExpiry:  l.timewaitExpiry,
		WatchingSinceNs: watchingSince,
	}, sink)

	p := &pump{
		rd:      rd,
		sink:    sink,
		corr:    corr,
		lostMap: l.coll.Maps["lost_events"],
		progs:   l.progs,
		flusher: l.flusher,
	}
	if l.flusher != nil {
		p.seq = &sequencer{}
	}
	if byOwner {
		p.ownedMap = l.coll.Maps["owned_inodes"]
		p.owners = owners
		p.seedOwned()
	}

	var rec record.Record
	rec.Reset()
	rec.Time = time.Now()
	rec.Type = record.TypeStart
	rec.Mode = string(l.strategy)
	rec.Kernel = kernelRelease()
	rec.Version = cfg.Version
	if err := sink.Write(&rec); err != nil {
		return err
	}
	if err := sink.Flush(); err != nil {
		return err
	}
	if cfg.Attached != nil {
		cfg.Attached(l.strategy)
	}

	runErr := p.run(ctx)
	// Detach first, so that what is left in the ring is all there will be.
	for _, lk := range l.links {
		lk.Close()
	}
	l.links = nil
	if runErr == nil {
		runErr = p.drain()
	}
	if runErr == nil && p.seq != nil {
		runErr = p.sequence(true)
	}
	if runErr == nil {
		runErr = corr.SettlePendingCloses()
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if n, missed := p.pollLost(time.Now()); n > 0 || missed > 0 {
		// Reported before the summary, like every other loss.
		rec.Reset()
		rec.Time = time.Now()
		rec.Type = record.TypeLost
		rec.Count = n
		rec.MissedRuns = missed
		if err := sink.Write(&rec); err != nil {
			return err
		}
	}
	if err := corr.WriteSummary(time.Now()); err != nil {
		return err
	}

	rec.Reset()
	rec.Time = time.Now()
	rec.Type = record.TypeEnd
	rec.Events = corr.Events()
	rec.Lost = p.lostTotal
	rec.MissedRuns = p.missedTotal
	if err := sink.Write(&rec); err != nil {
		return err
	}
	return sink.Flush()
}

// pump moves events from the ring buffer through the correlator.
type pump struct {
	rd        *ringbuf.Reader
	sink      record.Sink
	corr      *Correlator
	lostMap   *ebpf.Map
	lostTotal uint64
	lostBuf   []uint64
	// progs are the attached programs, whose runs the kernel may skip.
	progs       []*ebpf.Program
	missedTotal uint64
	lastLost    time.Time
	lastFlush   time.Time
	lastSeed    time.Time
	ownedMap    *ebpf.Map
	owners      *ownerIndex
	raw         ringbuf.Record
	ev          katraceEvent
	rec         record.Record
	// With staged events: the CPUs' batches, the events held until
	// they can be handed on in time order, and the time up to which they
	// have been (bpf_ktime_get_ns clock).
	flusher   *batchFlusher
	seq       *sequencer
	sequenced uint64
}

func (p *pump) run(ctx context.Context) error {
	var n uint32
	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		p.rd.SetDeadline(time.Now().Add(flushEvery))
		for {
			err := p.rd.ReadInto(&p.raw)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading the ring buffer: %w", err)
			}
			if err := p.handle(); err != nil {
				return err
			}
			// Checking the clock costs; every 64 events is often enough
			// to flush within flushEvery while events flow. Held events
			// are handed on sooner when many (memory).
			if n++; n%64 == 0 && (time.Since(p.lastFlush) >= flushEvery || p.seq != nil && p.seq.len() >= seqBacklog) {
				if err := p.tick(); err != nil {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
			}
		}
		if err := p.tick(); err != nil {
			return err
		}
	}
}

func (p *pump) handle() error {
	if recs := stateBatch(p.raw.RawSample); recs != nil {
		return p.deliverStates(recs)
	}
	if recs := eventBatch(p.raw.RawSample); recs != nil {
		return p.deliverEvents(recs)
	}
	if err := decodeEvent(p.raw.RawSample, &p.ev); err != nil {
		return nil
	}
	return p.deliver()
}

// deliverStates delivers each struct state_event of a batch's records.
func (p *pump) deliverStates(recs []byte) error {
	for off := 0; off+stateEventSize <= len(recs); off += stateEventSize {
		decodeStateEvent(recs[off:off+stateEventSize], &p.ev)
		if err := p.deliver(); err != nil {
			return err
		}
	}
	return nil
}

// deliverEvents delivers each struct event of a batch's records.
func (p *pump) deliverEvents(recs []byte) error {
	for off := 0; off+eventSize <= len(recs); off += eventSize {
		if err := decodeEvent(recs[off:off+eventSize], &p.ev); err != nil {
			return nil
		}
		if err := p.deliver(); err != nil {
			return err
		}
	}
	return nil
}

// deliver hands p.ev to the correlator, or to the sequencer when events
// are staged.
func (p *pump) deliver() error {
	if p.seq != nil {
		p.seq.push(&p.ev)
		return nil
	}
	return p.corr.Handle(&p.ev)
}

// sequence empties the CPUs' batches into the ring, reads it, and hands
// the correlator every event no earlier one can follow any more: those
// stamped inFlight before the batches were emptied, or all of them at the
// end (final, the programs detached).
func (p *pump) sequence(final bool) error {
	emptied := monotonicNow()
	all, err := p.flusher.flush()
	if err != nil {
		return err
	}
	if err := p.drain(); err != nil {
		return err
	}
	if final {
		states, events, err := p.flusher.leftover()
		if err != nil {
			return err
		}
		for _, recs := range states {
			if err := p.deliverStates(recs); err != nil {
				return err
			}
		}
		for _, recs := range events {
			if err := p.deliverEvents(recs); err != nil {
				return err
			}
		}
	} else {
		p.rd.SetDeadline(time.Now().Add(flushEvery))
	}
	switch {
	case final:
		p.sequenced = ^uint64(0)
	case all && emptied > uint64(inFlight):
		p.sequenced = max(p.sequenced, emptied-uint64(inFlight))
	}
	return p.seq.release(p.sequenced, p.corr.Handle)
}

// drain reads what the ring still holds after the programs were detached.
func (p *pump) drain() error {
	p.rd.SetDeadline(time.Now())
	for {
		err := p.rd.ReadInto(&p.raw)
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ringbuf.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the ring buffer: %w", err)
		}
		if err := p.handle(); err != nil {
			return err
		}
	}
}

func (p *pump) tick() error {
	now := time.Now()
	if now.Sub(p.lastLost) >= lostEvery {
		if err := p.reportLost(now); err != nil {
			return err
		}
	}
	if p.ownedMap != nil && now.Sub(p.lastSeed) >= ownerScanTick {
		p.seedOwned()
	}
	p.lastFlush = now
	settleAt := monotonicNow()
	if p.seq != nil {
		if err := p.sequence(false); err != nil {
			return err
		}
		// The correlator has seen everything up to there, not to now.
		settleAt = p.sequenced
	}
	if err := p.corr.SettleExpiredCloses(settleAt); err != nil {
		return err
	}
	return p.sink.Flush()
}

// pollLost reads the kernel's count of events it could not deliver (the
// ring buffer was full) and of program runs it skipped, and returns how
// many of each are new. The kernel skips a run when the program is already
// running on that CPU: a softirq (a timer, a packet) that interrupts the
// program in a syscall and reaches the same attach point. The events of a
// skipped run are missing, and nothing else would say so.
func (p *pump) pollLost(now time.Time) (lost, missed uint64) {
	p.lastLost = now
	if err := p.lostMap.Lookup(uint32(0), &p.lostBuf); err == nil {
		var total uint64
		for _, v := range p.lostBuf {
			total += v
		}
		if total > p.lostTotal {
			lost = total - p.lostTotal
			p.lostTotal = total
		}
	}
	var total uint64
	for _, prog := range p.progs {
		if st, err := prog.Stats(); err == nil {
			total += st.RecursionMisses
		}
	}
	if total > p.missedTotal {
		missed = total - p.missedTotal
		p.missedTotal = total
	}
	return lost, missed
}

func (p *pump) reportLost(now time.Time) error {
	lost, missed := p.pollLost(now)
	if lost == 0 && missed == 0 {
		return nil
	}
	p.rec.Reset()
	p.rec.Time = now
	p.rec.Type = record.TypeLost
	p.rec.Count = lost
	p.rec.MissedRuns = missed
	return p.sink.Write(&p.rec)
}

// seedOwned tells the kernel which socket inodes the processes selected by
// --pid/--comm hold, so that their timer and softirq events pass the filter.
func (p *pump) seedOwned() {
	p.lastSeed = time.Now()
	p.owners.scan()
	one := uint8(1)
	for _, ino := range p.owners.inodes() {
		_ = p.ownedMap.Update(ino, one, ebpf.UpdateAny)
	}
}

// wallOffset is what to add to bpf_ktime_get_ns() to get Unix nanoseconds.
func wallOffset() (int64, error) {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("reading the monotonic clock: %w", err)
	}
	return before.UnixNano() - ts.Nano(), nil
}

// monotonicNow reads the clock bpf_ktime_get_ns() uses.
func monotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
