package tracer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/katrace/katrace/kernel"
)

// Strategy is how katrace attaches to the keepalive timer and to TCP state
// changes. The other probe points are BTF tracepoints under every strategy.
type Strategy string

const (
	StrategyAuto       Strategy = "auto"
	StrategyFentry     Strategy = "fentry"
	StrategyKprobe     Strategy = "kprobe"
	StrategyTracepoint Strategy = "tracepoint"
)

// Strategies lists the concrete strategies in the order auto tries them.
var Strategies = []Strategy{StrategyFentry, StrategyKprobe, StrategyTracepoint}

// ParseStrategy accepts auto or one of Strategies.
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(s); st {
	case StrategyAuto, StrategyFentry, StrategyKprobe, StrategyTracepoint:
		return st, nil
	}
	return "", fmt.Errorf("unknown attach strategy %q (want auto, fentry, kprobe or tracepoint)", s)
}

// loadOptions is what shapes the kernel programs.
type loadOptions struct {
	Filters         Filters
	RingSize        uint32
	IdleThresholdMs uint32
	EmitStates      bool
	EmitAllCloses   bool
	// Protocols attaches the cgroup_skb programs that label connections.
	Protocols bool
}

// attachedPrograms are the loaded programs of one strategy and their links.
type attachedPrograms struct {
	strategy Strategy
	coll     *ebpf.Collection
	links    []link.Link
	// progs are the attached programs (not the iterators run at start).
	progs []*ebpf.Program
	// kernelResetReason says the kernel names why it sent a reset.
	kernelResetReason bool
	// timewaitExpiry says a timewait socket's FIN_WAIT2 timeout is reported.
	timewaitExpiry bool
	// flusher empties the CPUs' batches of events; nil when events are
	// not staged.
	flusher *batchFlusher
}

func (l *attachedPrograms) Close() error {
	var errs []error
	for _, lk := range l.links {
		errs = append(errs, lk.Close())
	}
	if l.flusher != nil {
		errs = append(errs, l.flusher.Close())
	}
	if l.coll != nil {
		l.coll.Close()
	}
	return errors.Join(errs...)
}

// The prerequisites of loading any program (package kernel decides).
var (
	ErrNoBTF      = kernel.ErrNoBTF
	ErrPrivileges = kernel.ErrPrivileges
)

// CheckPrerequisites reports the first missing prerequisite, as one line.
func CheckPrerequisites() error { return kernel.Prerequisites() }

// attach loads and attaches the programs of one strategy (auto: the first
// that works, in the order of Strategies).
func attach(want Strategy, opts loadOptions) (*attachedPrograms, error) {
	// Read once: parsing the programs and asking kernel BTF what it offers
	// cost ~20 ms, which auto would pay per strategy it tries; every load
	// relocates against the kernel BTF decoded once (cache).
	cache := btf.NewCache()
	spec, fs, cgroupRoot, err := programsAndFeatures(opts.Protocols, cache)
	if err != nil {
		return nil, err
	}
	fs.staged = (opts.EmitStates || opts.EmitAllCloses) && stagingSupported()
	timers := learnTimerAddresses(spec, cache)
	if want != StrategyAuto {
		return attachStrategy(want, opts, spec, fs, cgroupRoot, cache, timers)
	}
	var reasons []string
	for _, s := range Strategies {
		l, err := attachStrategy(s, opts, spec.Copy(), fs, cgroupRoot, cache, timers)
		if err == nil {
			return l, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %v", s, err))
	}
	return nil, fmt.Errorf("no attach strategy works here (%s)", strings.Join(reasons, "; "))
}

// attachStrategy loads and attaches one strategy's programs from spec,
// which it changes.
func attachStrategy(s Strategy, opts loadOptions, spec *ebpf.CollectionSpec, fs features,
	cgroupRoot string, cache *btf.Cache, timers timerAddresses) (_ *attachedPrograms, err error) {
	reason := fs.kernelResetReason
	plan := planFor(s, fs)
	if err := preflight(spec, plan, s, cache); err != nil {
		return nil, err
	}
	if err := keepOnly(spec, plan); err != nil {
		return nil, err
	}
	if err := configure(spec, opts, ownersByCookie(plan), stagesEvents(plan), timers); err != nil {
		return nil, err
	}

	coll, err := loadCollection(spec, cache)
	if err != nil {
		return nil, fmt.Errorf("loading programs: %w", kernel.Explain(err))
	}
	l := &attachedPrograms{strategy: s, coll: coll, kernelResetReason: reason}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	var iterators []*ebpf.Program
	for _, p := range plan {
		if p.attach == runIterator {
			iterators = append(iterators, coll.Programs[p.program])
		}
	}
	// Twice: before the probes, so that a keepalive timer that runs while
	// they attach finds its socket's cookie already made (the timer path
	// can read one, not make one; learnTimerAddresses did this pass when it
	// ran the iterator); after them, for the sockets made in between. From
	// then on every new socket is seen by the probes.
	timerFn := coll.Variables[katraceVarKeepaliveTimerFn]
	if timers.keepalive != 0 {
		timerFn = nil
	}
	if !timers.primed {
		if err := primeCookies(iterators, timerFn); err != nil {
			return nil, err
		}
	}
	for _, p := range plan {
		if p.attach == runOnCPU {
			if l.flusher, err = newBatchFlusher(coll.Programs[p.program], coll.Maps[katraceMapStateBatches], coll.Maps[katraceMapEventBatches]); err != nil {
				return nil, err
			}
			continue
		}
		if p.attach == runIterator {
			continue
		}
		lk, err := attachPlanned(p, coll.Programs[p.program], cgroupRoot)
		if err != nil {
			return nil, fmt.Errorf("attaching %s: %w", p.program, kernel.Explain(err))
		}
		l.links = append(l.links, lk)
		l.progs = append(l.progs, coll.Programs[p.program])
	}
	if err := primeCookies(iterators, timerFn); err != nil {
		return nil, err
	}
	l.timewaitExpiry = timers.timewait != 0 || watchTimewaitTimer(coll.Variables[katraceVarTwTimerFn])
	return l, nil
}

// preflight loads and attaches the small programs that only strategy s
// uses (its keepalive timer entry) before the whole plan: a strategy this
// kernel cannot run fails here in milliseconds, not after verifying every
// program (--attach auto tries fentry and kprobe first).
func preflight(spec *ebpf.CollectionSpec, plan []plannedProgram, s Strategy, cache *btf.Cache) error {
	var own []plannedProgram
	for _, p := range plan {
		if p.program == preflightProgram[s] {
			own = append(own, p)
		}
	}
	if len(own) == 0 {
		return nil
	}
	coll, err := loadAlone(spec, own[0].program, cache)
	if err != nil {
		return err
	}
	defer coll.Close()
	lk, err := attachPlanned(own[0], coll.Programs[own[0].program], "")
	if err != nil {
		return fmt.Errorf("attaching %s: %w", own[0].program, kernel.Explain(err))
	}
	return lk.Close()
}

// loadAlone loads one program of spec with only the maps and variables it
// uses: the others (the ring, preallocated hashes) take longer to make
// than a small program to load.
func loadAlone(spec *ebpf.CollectionSpec, program string, cache *btf.Cache) (*ebpf.Collection, error) {
	small := spec.Copy()
	if err := keepOnly(small, []plannedProgram{{program: program}}); err != nil {
		return nil, err
	}
	// Alone, a program runs with every setting at zero: it does not report.
	if err := setConstants(small, katraceConfig{}); err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, ins := range small.Programs[program].Instructions {
		if ref := ins.Reference(); ref != "" {
			used[ref] = true
		}
	}
	for name, v := range small.Variables {
		if !used[v.SectionName] {
			delete(small.Variables, name)
		}
	}
	for name := range small.Maps {
		if !used[name] {
			delete(small.Maps, name)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(small, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, fmt.Errorf("loading programs: %w", kernel.Explain(err))
	}
	return coll, nil
}

// primeCookies runs the socket iterators over every TCP socket once: they
// give each a cookie and, where the loader did not know it (timerFn not
// nil), learn tcp_keepalive_timer's address from one, which the tracepoint
// strategy needs before the first timer runs. A loopback listener of our
// own makes sure one exists; where none can be made, the first state
// change of a new socket teaches it.
func primeCookies(iterators []*ebpf.Program, timerFn *ebpf.Variable) error {
	ln, lnErr := net.Listen("tcp", "127.0.0.1:0")
	if lnErr != nil {
		ln, lnErr = net.Listen("tcp", "[::1]:0")
	}
	if lnErr == nil {
		defer ln.Close()
	}
	for _, prog := range iterators {
		if err := runToEnd(prog); err != nil {
			return fmt.Errorf("giving existing sockets a cookie: %w", kernel.Explain(err))
		}
		primeOtherNetns(prog)
	}
	if timerFn == nil {
		return nil
	}
	var fn uint64
	if err := timerFn.Get(&fn); err != nil {
		return fmt.Errorf("reading tcp_keepalive_timer's address: %w", err)
	}
	if fn == 0 && lnErr == nil {
		return errors.New("the socket iterator did not learn tcp_keepalive_timer's address from a TCP socket")
	}
	return nil
}

// runToEnd runs an iterator program to its end.
func runToEnd(prog *ebpf.Program) error {
	it, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		return err
	}
	defer it.Close()
	return readIterator(it)
}

// readIterator runs one pass of an attached iterator, in the caller's
// network namespace.
func readIterator(it *link.Iter) error {
	rd, err := it.Open()
	if err != nil {
		return err
	}
	defer rd.Close()
	_, err = io.Copy(io.Discard, rd)
	return err
}

// configure sets the ring buffer's size and struct config.
func configure(spec *ebpf.CollectionSpec, opts loadOptions, ownersByCookie, stageEvents bool, timers timerAddresses) error {
	events := spec.Maps[katraceMapEvents]
	if opts.RingSize != 0 {
		events.MaxEntries = opts.RingSize
	}
	rate, err := kernelHZ()
	if err != nil {
		return err
	}
	// Unknown, the ring's 32nd stands: what it was before CPUs counted.
	cpus, _ := onlineCPUs()
	cfg, err := kernelConfig(opts, kernelFacts{
		hz:             rate.hz,
		ringSize:       events.MaxEntries,
		cpus:           len(cpus),
		ownersByCookie: ownersByCookie,
		stageEvents:    stageEvents,
		timers:         timers,
	})
	if err != nil {
		return err
	}
	if err := spec.Variables[katraceVarCfg].Set(cfg); err != nil {
		return fmt.Errorf("setting the programs' configuration: %w", err)
	}
	if err := setConstants(spec, cfg); err != nil {
		return fmt.Errorf("setting the programs' configuration: %w", err)
	}
	return nil
}

// programsAndFeatures reads what a plan is made of: the embedded programs,
// what this kernel offers them, and the cgroup v2 root the protocol labels
// attach to ("" without protocols or cgroup v2).
func programsAndFeatures(protocols bool, cache *btf.Cache) (*ebpf.CollectionSpec, features, string, error) {
	spec, err := loadKatrace()
	if err != nil {
		return nil, features{}, "", fmt.Errorf("reading the embedded programs: %w", err)
	}
	kspec, err := cache.Kernel()
	if err != nil {
		return nil, features{}, "", fmt.Errorf("reading kernel BTF: %w", err)
	}
	fs, cgroupRoot, err := kernelFeatures(kspec, protocols)
	if err != nil {
		return nil, features{}, "", err
	}
	return spec, fs, cgroupRoot, nil
}

// kernelFeatures is what the kernel offers the plan, and the cgroup v2
// root the protocol labels attach to ("" without --proto or cgroup v2).
func kernelFeatures(kspec *btf.Spec, protocols bool) (features, string, error) {
	reason, err := kernelHasResetReason(kspec)
	if err != nil {
		return features{}, "", err
	}
	fs := features{kernelResetReason: reason, ownerTracepoints: true}
	for _, tp := range ownerTracepoints {
		fs.ownerTracepoints = fs.ownerTracepoints && hasTracepoint(kspec, tp)
	}
	// Protocol labels attach to the cgroup v2 root, which covers every
	// process; without one, connections go unlabelled.
	cgroupRoot := ""
	if protocols {
		cgroupRoot, _ = kernel.Cgroup2Mount()
		fs.protocols = cgroupRoot != ""
	}
	return fs, cgroupRoot, nil
}

// ownerTracepoints teach the kernel side who owns accepted sockets (6.4+);
// older kernels go without them.
var ownerTracepoints = []string{"sock_recv_length", "sock_send_length"}

func hasTracepoint(spec *btf.Spec, name string) bool {
	var td *btf.Typedef
	return spec.TypeByName("btf_trace_"+name, &td) == nil
}

// kernelHasResetReason reports whether the tcp_send_reset tracepoint passes
// enum sk_rst_reason (Linux 6.10+).
func kernelHasResetReason(spec *btf.Spec) (bool, error) {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_tcp_send_reset", &td); err != nil {
		return false, fmt.Errorf("kernel BTF has no tcp_send_reset tracepoint: %w", err)
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return false, fmt.Errorf("unexpected BTF for btf_trace_tcp_send_reset: %v", td.Type)
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return false, fmt.Errorf("unexpected BTF for btf_trace_tcp_send_reset: %v", ptr.Target)
	}
	// void *ctx, const struct sock *sk, const struct sk_buff *skb[, reason]
	return len(proto.Params) >= 4, nil
}

// Probe reports whether a strategy loads and attaches on this kernel, by
// trying it with the smallest ring buffer and detaching at once.
func Probe(s Strategy) error {
	if s == StrategyAuto {
		return fmt.Errorf("probe a concrete strategy, not %s", s)
	}
	l, err := attach(s, loadOptions{RingSize: uint32(os.Getpagesize()), IdleThresholdMs: 1000})
	if err != nil {
		return err
	}
	return l.Close()
}
