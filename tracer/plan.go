package tracer

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// How a program is attached.
type attachType int

const (
	// attachTracing: tp_btf, fentry and fexit programs, whose target is in
	// their section name and BTF.
	attachTracing attachType = iota
	attachKprobe
	attachKretprobe
	attachCgroupIngress
	attachCgroupEgress
	// runIterator: a TCP socket iterator run once at start, not attached.
	runIterator
	// runOnCPU: run by userspace on each CPU in turn, not attached.
	runOnCPU
)

// What a program needs beyond its strategy.
type feature int

const (
	featureNone feature = iota
	// The tcp_send_reset tracepoint passes enum sk_rst_reason (6.10+)...
	featureKernelResetReason
	// ...or it does not.
	featureNoKernelResetReason
	// The sock_recv_length and sock_send_length tracepoints (6.4+).
	featureOwnerTracepoints
	// No owner tracepoints: owners by cookie, from tcp_recvmsg/tcp_sendmsg.
	featureOwnersByCookie
	// No owner tracepoints: the owner's reads from the
	// tcp_rcv_space_adjust tracepoint, which runs in its recvmsg.
	featureOwnersFromReads
	// --proto and a cgroup v2 mount.
	featureProtocols
	// --states or --all, and the kernel runs a program on a chosen CPU.
	featureStaged
)

// features is what the kernel and the options offer.
type features struct {
	kernelResetReason bool
	ownerTracepoints  bool
	// protocols: --proto asked and a cgroup v2 hierarchy is mounted.
	protocols bool
	// staged: --states or --all asked, and userspace can run a program
	// on a chosen CPU (stagingSupported): events go through per-CPU
	// batches.
	staged bool
}

func (f feature) metBy(fs features) bool {
	switch f {
	case featureKernelResetReason:
		return fs.kernelResetReason
	case featureNoKernelResetReason:
		return !fs.kernelResetReason
	case featureOwnerTracepoints:
		return fs.ownerTracepoints
	case featureOwnersByCookie, featureOwnersFromReads:
		return !fs.ownerTracepoints
	case featureProtocols:
		return fs.protocols
	case featureStaged:
		return fs.staged
	}
	return true
}

// plannedProgram is one kernel program: where it attaches, under which
// strategies (none listed: every strategy) and what it needs.
type plannedProgram struct {
	program    string
	attach     attachType
	kprobe     string
	strategies []Strategy
	needs      feature
}

var (
	onlyFentry       = []Strategy{StrategyFentry}
	onlyKprobe       = []Strategy{StrategyKprobe}
	onlyTracepoint   = []Strategy{StrategyTracepoint}
	kprobeTracepoint = []Strategy{StrategyKprobe, StrategyTracepoint}
	fentryKprobe     = []Strategy{StrategyFentry, StrategyKprobe}
)

// attachPlan is every program of bpf/katrace.bpf.c; the loader deletes
// from the spec the ones a strategy and the features do not select.
var attachPlan = []plannedProgram{
	// Every strategy.
	{program: katraceProgPrimeCookies, attach: runIterator},
	{program: katraceProgTpTcpReceiveReset, attach: attachTracing},
	{program: katraceProgTpTcpSendResetReason, attach: attachTracing, needs: featureKernelResetReason},
	{program: katraceProgTpTcpSendReset, attach: attachTracing, needs: featureNoKernelResetReason},
	{program: katraceProgTpInetSkErrorReport, attach: attachTracing},
	{program: katraceProgTpSockRecvLength, attach: attachTracing, needs: featureOwnerTracepoints},
	{program: katraceProgTpSockSendLength, attach: attachTracing, needs: featureOwnerTracepoints},
	{program: katraceProgCgroupIngress, attach: attachCgroupIngress, needs: featureProtocols},
	{program: katraceProgCgroupEgress, attach: attachCgroupEgress, needs: featureProtocols},
	{program: katraceProgFlushBatches, attach: runOnCPU, needs: featureStaged},

	// State changes: a tracepoint, except under fentry.
	{program: katraceProgTpInetSockSetState, attach: attachTracing, strategies: kprobeTracepoint},
	{program: katraceProgFentryTcpSetState, attach: attachTracing, strategies: onlyFentry},

	// The keepalive timer.
	{program: katraceProgFentryTcpKeepaliveTimer, attach: attachTracing, strategies: onlyFentry},
	{program: katraceProgFexitTcpKeepaliveTimer, attach: attachTracing, strategies: onlyFentry},
	{program: katraceProgKprobeTcpKeepaliveTimer, attach: attachKprobe, kprobe: "tcp_keepalive_timer", strategies: onlyKprobe},
	{program: katraceProgKretprobeTcpKeepaliveTimer, attach: attachKretprobe, kprobe: "tcp_keepalive_timer", strategies: onlyKprobe},
	{program: katraceProgTpTimerExpireEntry, attach: attachTracing, strategies: onlyTracepoint},
	{program: katraceProgTpTimerExpireExit, attach: attachTracing, strategies: onlyTracepoint},

	// The timewait socket's FIN_WAIT2 linger (tp_timer_expire_entry
	// watches it under the tracepoint strategy).
	{program: katraceProgTpTimewaitTimerExpire, attach: attachTracing, strategies: fentryKprobe},

	// Before 6.4, the owner's reads (the goodbye guard), and under the
	// tracepoint strategy its owner...
	{program: katraceProgTpTcpRcvSpaceAdjust, attach: attachTracing, needs: featureOwnersFromReads},
	// ...and where the strategy hooks functions, by cookie.
	{program: katraceProgFentryTcpRecvmsg, attach: attachTracing, strategies: onlyFentry, needs: featureOwnersByCookie},
	{program: katraceProgFentryTcpSendmsg, attach: attachTracing, strategies: onlyFentry, needs: featureOwnersByCookie},
	{program: katraceProgKprobeTcpRecvmsg, attach: attachKprobe, kprobe: "tcp_recvmsg", strategies: onlyKprobe, needs: featureOwnersByCookie},
	{program: katraceProgKprobeTcpSendmsg, attach: attachKprobe, kprobe: "tcp_sendmsg", strategies: onlyKprobe, needs: featureOwnersByCookie},
}

// preflightProgram is the small program only that strategy uses, tried
// before the whole plan (preflight).
var preflightProgram = map[Strategy]string{
	StrategyFentry: katraceProgFentryTcpKeepaliveTimer,
	StrategyKprobe: katraceProgKprobeTcpKeepaliveTimer,
}

func (p plannedProgram) selected(s Strategy, fs features) bool {
	if !p.needs.metBy(fs) {
		return false
	}
	if len(p.strategies) == 0 {
		return true
	}
	for _, ps := range p.strategies {
		if ps == s {
			return true
		}
	}
	return false
}

// planFor lists the programs a strategy loads with these features.
func planFor(s Strategy, fs features) []plannedProgram {
	var out []plannedProgram
	for _, p := range attachPlan {
		if p.selected(s, fs) {
			out = append(out, p)
		}
	}
	return out
}

// ownersByCookie says whether the plan learns owners by cookie (then the
// event path looks them up).
func ownersByCookie(plan []plannedProgram) bool {
	for _, p := range plan {
		if p.needs == featureOwnersByCookie {
			return true
		}
	}
	return false
}

// keepOnly deletes from the spec every program the plan does not name.
func keepOnly(spec *ebpf.CollectionSpec, plan []plannedProgram) error {
	keep := make(map[string]bool, len(plan))
	for _, p := range plan {
		if spec.Programs[p.program] == nil {
			return fmt.Errorf("program %s is not in the compiled programs", p.program)
		}
		keep[p.program] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	return nil
}

// stagesEvents says whether the plan stages events per CPU.
func stagesEvents(plan []plannedProgram) bool {
	for _, p := range plan {
		if p.needs == featureStaged {
			return true
		}
	}
	return false
}

// attachPlanned attaches one loaded program as planned; iterators and
// programs run on a CPU are run by the caller, not attached.
func attachPlanned(p plannedProgram, prog *ebpf.Program, cgroupRoot string) (link.Link, error) {
	switch p.attach {
	case attachTracing:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case attachKprobe:
		return link.Kprobe(p.kprobe, prog, nil)
	case attachKretprobe:
		return link.Kretprobe(p.kprobe, prog, nil)
	case attachCgroupIngress:
		return link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: ebpf.AttachCGroupInetIngress, Program: prog})
	case attachCgroupEgress:
		return link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: ebpf.AttachCGroupInetEgress, Program: prog})
	}
	return nil, fmt.Errorf("program %s: no way to attach type %d", p.program, p.attach)
}

// AttachPoint is one place a strategy's plan attaches a program on this
// kernel: the program and its BTF target (a tracepoint for tp_btf, a
// function for fentry/fexit); kprobes, cgroup programs and iterators are
// not listed. The benchmark and CI guard put empty programs there.
type AttachPoint struct {
	Program string
	Target  string
}

// TracingAttachPoints lists the tracing attach points of strategy s with
// the default options (protocol labels off) on this kernel.
func TracingAttachPoints(s Strategy) ([]AttachPoint, error) {
	spec, fs, _, err := programsAndFeatures(false, btf.NewCache())
	if err != nil {
		return nil, err
	}
	var out []AttachPoint
	for _, p := range planFor(s, fs) {
		if p.attach != attachTracing {
			continue
		}
		ps := spec.Programs[p.program]
		if ps == nil {
			return nil, fmt.Errorf("program %s is not in the compiled programs", p.program)
		}
		out = append(out, AttachPoint{Program: p.program, Target: ps.AttachTo})
	}
	return out, nil
}
