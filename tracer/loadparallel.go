package tracer

import (
	"runtime"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// maxLoadGroups bounds the programs verified at once.
const maxLoadGroups = 4

// loadCollection makes spec's maps, then has the kernel verify its programs
// in groups, one goroutine each: the kernel verifies one program per bpf()
// call, and the state change program alone takes about half of start-up
// (~120 ms here, most of it looking types up in kernel BTF). With one CPU
// or one program it is ebpf.NewCollectionWithOptions.
func loadCollection(spec *ebpf.CollectionSpec, cache *btf.Cache) (_ *ebpf.Collection, err error) {
	groups := loadGroups(spec, min(runtime.NumCPU(), maxLoadGroups))
	if len(groups) < 2 {
		return ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Cache: cache})
	}
	mapsOnly := spec.Copy()
	mapsOnly.Programs = map[string]*ebpf.ProgramSpec{}
	coll, err := ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{Cache: cache})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			coll.Close()
		}
	}()
	parts := make([]*ebpf.Collection, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, names := range groups {
		part := spec.Copy()
		part.Programs = map[string]*ebpf.ProgramSpec{}
		for _, n := range names {
			part.Programs[n] = spec.Programs[n]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = ebpf.NewCollectionWithOptions(part, ebpf.CollectionOptions{
				Cache:           cache,
				MapReplacements: coll.Maps,
			})
		}()
	}
	wg.Wait()
	coll.Programs = map[string]*ebpf.Program{}
	for _, part := range parts {
		if part == nil {
			continue
		}
		// The part's maps are clones of coll's: its programs keep the
		// kernel maps alive.
		for name, m := range part.Maps {
			m.Close()
			delete(part.Maps, name)
		}
		for name, p := range part.Programs {
			coll.Programs[name] = p
		}
	}
	// One error, not one per group: a missing capability fails them all
	// alike, and the user reads one line.
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return coll, nil
}

// loadGroups splits spec's programs into at most n groups of about the same
// number of instructions, the largest first: a rough measure of the time
// the verifier takes.
func loadGroups(spec *ebpf.CollectionSpec, n int) [][]string {
	names := make([]string, 0, len(spec.Programs))
	for name := range spec.Programs {
		names = append(names, name)
	}
	size := func(name string) int { return len(spec.Programs[name].Instructions) }
	sort.Slice(names, func(i, j int) bool {
		if size(names[i]) != size(names[j]) {
			return size(names[i]) > size(names[j])
		}
		return names[i] < names[j]
	})
	n = min(n, len(names))
	if n < 1 {
		return nil
	}
	groups := make([][]string, n)
	totals := make([]int, n)
	for _, name := range names {
		smallest := 0
		for g := range totals {
			if totals[g] < totals[smallest] {
				smallest = g
			}
		}
		groups[smallest] = append(groups[smallest], name)
		totals[smallest] += size(name)
	}
	return groups
}
