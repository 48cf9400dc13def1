package main

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// floorProbe is an empty tp_btf program ("return 0") attached next to
// katrace's: its bpf_stats are what bpf_stats itself costs per run on this
// machine (two sched_clock reads and the dispatch), the floor under every
// per-run figure.
type floorProbe struct {
	prog *ebpf.Program
	lk   link.Link
}

func attachFloor(tracepoint string) (*floorProbe, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "katbench_floor",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     tracepoint,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return nil, err
	}
	lk, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		prog.Close()
		return nil, err
	}
	return &floorProbe{prog: prog, lk: lk}, nil
}

func (f *floorProbe) cost() progCost {
	st, err := f.prog.Stats()
	if err != nil {
		return progCost{}
	}
	return progCost{name: "floor", runs: st.RunCount, runtime: st.Runtime}
}

func (f *floorProbe) close() {
	f.lk.Close()
	f.prog.Close()
}
