package tracer

import (
	"fmt"
	"os"
)

// Limits of the kernel-side filter tables and of a process name, from the
// arrays of struct config (bpf/katrace.h).
const (
	MaxPorts    = len(katraceConfig{}.FilterPorts)
	MaxPrefixes = len(katraceConfig{}.FilterCidrs)
	// MaxCommLen is how much of a process name the kernel keeps.
	MaxCommLen = len(katraceConfig{}.FilterComm) - 1
)

// kernelConfig is struct config, what the kernel programs read as
// constants: the one place Go sets them.
func kernelConfig(opts loadOptions, ringSize uint32, keepaliveTimerFn uint64, ownersByCookie bool) (katraceConfig, error) {
	f := opts.Filters
	if len(f.Ports) > MaxPorts {
		return katraceConfig{}, fmt.Errorf("at most %d --port filters", MaxPorts)
	}
	if len(f.Prefixes) > MaxPrefixes {
		return katraceConfig{}, fmt.Errorf("at most %d --addr filters", MaxPrefixes)
	}
	cfg := katraceConfig{
		KeepaliveTimerFn:    keepaliveTimerFn,
		WakeupBytes:         max(uint64(ringSize)/8, uint64(os.Getpagesize())),
		IdleThresholdMs:     opts.IdleThresholdMs,
		FilterPid:           f.PID,
		FilterNetns:         f.NetNS,
		FilterPortCount:     uint32(len(f.Ports)),
		FilterCidrCount:     uint32(len(f.Prefixes)),
		EmitStates:          opts.EmitStates,
		EmitAllCloses:       opts.EmitAllCloses,
		FilterByOwner:       f.PID != 0 || f.Comm != "",
		FilterKeepaliveOnly: f.KeepaliveOnly,
		OwnersByCookie:      ownersByCookie,
	}
	copy(cfg.FilterPorts[:], f.Ports)
	for i, p := range f.Prefixes {
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
