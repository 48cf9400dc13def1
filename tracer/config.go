package tracer

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/katrace/katrace/kernel"
)

// kernelHZ is the kernel's tick rate and where it came from (config file
// or measured), looked up once: measuring takes some 20-40 ms.
var kernelHZ = sync.OnceValues(func() (kernelTickRate, error) {
	hz, source, err := kernel.HZ()
	return kernelTickRate{hz: hz, source: source}, err
})

type kernelTickRate struct {
	hz     uint32
	source string
}

// Limits of the kernel-side filter tables and of a process name, from the
// arrays of struct config (bpf/katrace.h).
const (
	MaxPorts    = len(katraceConfig{}.FilterPorts)
	MaxPrefixes = len(katraceConfig{}.FilterCidrs)
	MaxCgroups  = len(katraceConfig{}.FilterCgroups)
	// MaxCommLen is how much of a process name the kernel keeps.
	MaxCommLen = len(katraceConfig{}.FilterComm) - 1
)

// kernelFacts are what struct config needs beyond the options.
type kernelFacts struct {
	hz             uint32
	ringSize       uint32
	cpus           int // online at start; 0 when unknown
	ownersByCookie bool
	stageEvents    bool
	timers         timerAddresses
}

// wakeupBytes is how much a CPU sends to the ring before it looks at the
// ring's backlog to decide whether to wake the reader (wakeupBacklog;
// each CPU counts its own: a shared count would be a line every CPU
// writes). A 32nd of the ring; on a host with more than 8 CPUs, a quarter
// of the ring shared among them: with every CPU sending alike, none would
// otherwise reach its 32nd before the ring is full (64 CPUs hold twice
// the ring unlooked at), and the reader's own 100 ms poll is late at the
// rates --all --states reaches there. Never under a page: a look reads a
// line the reader writes, and a wakeup costs microseconds.
func wakeupBytes(ringSize uint32, cpus int) uint64 {
	b := uint64(ringSize) / 32
	if cpus > 8 {
		b = uint64(ringSize) / (4 * uint64(cpus))
	}
	return max(b, uint64(os.Getpagesize()))
}

// wakeupBacklog is how much must wait in the ring for a CPU that reached
// its wakeupBytes to wake the reader: a quarter of a ring of 1 MiB or
// more (the reader polls every 100 ms anyway, and a wakeup costs a few
// microseconds in the program), 0 below. With a small ring, waiting for a
// backlog leaves too little room for the reader to wake in: under
// --all --states churn a 64K ring lost events when woken less often.
func wakeupBacklog(ringSize uint32) uint64 {
	if ringSize < 1<<20 {
		return 0
	}
	return uint64(ringSize) / 4
}

// kernelConfig is struct config, what the kernel programs read as
// constants: the one place Go sets them.
func kernelConfig(opts loadOptions, k kernelFacts) (katraceConfig, error) {
	f := opts.Filters
	if k.hz == 0 {
		return katraceConfig{}, errors.New("the kernel's HZ is unknown")
	}
	if len(f.Ports) > MaxPorts {
		return katraceConfig{}, fmt.Errorf("at most %d --port filters", MaxPorts)
	}
	if len(f.Addrs) > MaxPrefixes {
		return katraceConfig{}, fmt.Errorf("at most %d --addr filters", MaxPrefixes)
	}
	if len(f.Cgroups) > MaxCgroups {
		return katraceConfig{}, fmt.Errorf("at most %d cgroups in --container and --cgroup together", MaxCgroups)
	}
	cfg := katraceConfig{
		WakeupBytes:         wakeupBytes(k.ringSize, k.cpus),
		WakeupBacklog:       wakeupBacklog(k.ringSize),
		Hz:                  k.hz,
		IdleThresholdMs:     opts.IdleThresholdMs,
		FilterPid:           f.PID,
		FilterNetns:         f.NetNS,
		FilterPortCount:     uint32(len(f.Ports)),
		FilterCidrCount:     uint32(len(f.Addrs)),
		FilterCgroupCount:   uint32(len(f.Cgroups)),
		EmitStates:          opts.EmitStates,
		EmitAllCloses:       opts.EmitAllCloses,
		FilterByOwner:       f.ByOwner(),
		FilterKeepaliveOnly: f.KeepaliveOnly,
		OwnersByCookie:      k.ownersByCookie,
		StageEvents:         k.stageEvents,
		KeepaliveTimerFn:    k.timers.keepalive,
		TwTimerFn:           k.timers.timewait,
	}
	copy(cfg.FilterPorts[:], f.Ports)
	for i, cg := range f.Cgroups {
		cfg.FilterCgroups[i].Id, cfg.FilterCgroups[i].Level = cg.ID, cg.Level
	}
	for i, p := range f.Addrs {
		p = p.Masked()
		a := p.Addr()
		c := &cfg.FilterCidrs[i]
		c.PrefixLen = uint8(p.Bits())
		if a.Is4() {
			c.Family = 4
			b := a.As4()
			copy(c.Addr[:], b[:])
		} else {
			c.Family = 6
			c.Addr = a.As16()
		}
	}
	for i := 0; i < len(f.Comm) && i < MaxCommLen; i++ {
		cfg.FilterComm[i] = int8(f.Comm[i])
	}
	return cfg, nil
}
