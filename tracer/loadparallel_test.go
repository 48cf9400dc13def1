package tracer

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func specWithSizes(sizes map[string]int) *ebpf.CollectionSpec {
	spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{}}
	for name, n := range sizes {
		insns := make(asm.Instructions, n)
		for i := range insns {
			insns[i] = asm.Mov.Imm(asm.R0, 0)
		}
		spec.Programs[name] = &ebpf.ProgramSpec{Name: name, Instructions: insns}
	}
	return spec
}

func TestLoadGroupsBalanceTheLargestProgram(t *testing.T) {
	spec := specWithSizes(map[string]int{"state": 2800, "reset_sent": 1300, "reset_received": 1300, "error": 1050, "timer": 450, "recv": 100})
	groups := loadGroups(spec, 2)
	if len(groups) != 2 {
		t.Fatalf("groups = %v, want 2", groups)
	}
	if !slices.Equal(groups[0], []string{"state", "timer", "recv"}) {
		t.Errorf("first group = %v, want the state program with the two smallest (3350 instructions against 3650)", groups[0])
	}
	var all []string
	for _, g := range groups {
		all = append(all, g...)
	}
	slices.Sort(all)
	if want := []string{"error", "recv", "reset_received", "reset_sent", "state", "timer"}; !slices.Equal(all, want) {
		t.Errorf("programs in the groups = %v, want each once: %v", all, want)
	}
}

func TestLoadGroupsNeverMoreThanPrograms(t *testing.T) {
	spec := specWithSizes(map[string]int{"a": 10, "b": 20})
	if got := loadGroups(spec, 4); len(got) != 2 {
		t.Errorf("2 programs, 4 CPUs: %d groups, want 2", len(got))
	}
	if got := loadGroups(spec, 1); len(got) != 1 || len(got[0]) != 2 {
		t.Errorf("one CPU: %v, want one group of both", got)
	}
	if got := loadGroups(&ebpf.CollectionSpec{}, 2); got != nil {
		t.Errorf("no programs: %v, want none", got)
	}
}
