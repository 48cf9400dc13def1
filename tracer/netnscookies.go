package tracer

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/katrace/katrace/kernel"
	"github.com/katrace/katrace/procfs"
)

// primeOtherNetns runs a socket iterator once in every other network
// namespace on the host: an iterator walks the namespace of the thread
// that opens it, and a keepalive socket in a container that did nothing
// since katrace started would otherwise have no cookie when its keepalive
// timer runs (the timer path can read a cookie, not make one). Best
// effort: a namespace that went away meanwhile has no sockets to prime.
func primeOtherNetns(prog *ebpf.Program) {
	nets := procfs.ScanProc("/proc", nil).NetNS
	procfs.AddNamedNetns(nets)
	own := procfs.CurrentNetns()
	if len(nets) == 0 || (len(nets) == 1 && nets[own] != "") {
		return
	}
	it, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		return
	}
	defer it.Close()
	for ino, path := range nets {
		if ino == own {
			continue
		}
		_ = procfs.InNetns(ino, path, func() error { return readIterator(it) })
	}
}

// watchTimewaitTimer makes sure the kernel program knows tw_timer_handler's
// address (the start-up iterator learns it from a timewait socket if one
// exists; else /proc/kallsyms names it), and says whether the timewait
// FIN_WAIT2 linger is watched: without the address it is not.
func watchTimewaitTimer(twTimerFn *ebpf.Variable) bool {
	if twTimerFn == nil {
		return false
	}
	var fn uint64
	if err := twTimerFn.Get(&fn); err == nil && fn != 0 {
		return true
	}
	addr, err := kernel.Symbol("tw_timer_handler")
	if err != nil || addr == 0 {
		return false
	}
	return twTimerFn.Set(addr) == nil
}
