package tracer

import (
	"os"
	"strings"
	"testing"
)

// Every setting the compiled programs load as an immediate is one the
// loader knows, and each instruction ends up holding its value.
func TestSetConstantsFillsEveryImmediate(t *testing.T) {
	spec, err := loadKatrace()
	if err != nil {
		t.Fatal(err)
	}
	cfg := katraceConfig{
		WakeupBytes:      131072,
		WakeupBacklog:    1 << 20,
		Hz:               250,
		IdleThresholdMs:  1500,
		FilterPid:        4242,
		EmitStates:       true,
		KeepaliveTimerFn: 0xffffffff82082e60,
		TwTimerFn:        0xffffffff8205c7b0,
	}
	if err := setConstants(spec, cfg); err != nil {
		t.Fatal(err)
	}
	want := configConstants(cfg)
	seen := map[string]int{}
	for name, prog := range spec.Programs {
		for _, ins := range prog.Instructions {
			setting, ok := strings.CutPrefix(ins.Reference(), constantPrefix)
			if !ok {
				continue
			}
			seen[setting]++
			if got := uint64(ins.Constant); got != want[setting] {
				t.Errorf("program %s: %s is %#x, want %#x", name, setting, got, want[setting])
			}
		}
	}
	// The hot paths' settings are immediates (a load from cfg would put
	// a map page back on every run).
	for _, s := range []string{"emit_states", "emit_all_closes", "idle_threshold_ms", "hz", "keepalive_timer_fn", "tw_timer_fn", "wakeup_bytes", "wakeup_backlog"} {
		if seen[s] == 0 {
			t.Errorf("no program loads %s as an immediate", s)
		}
	}
	// Setting them again (the strategies tried by --attach auto share one
	// spec) writes the new values over the old.
	cfg.IdleThresholdMs = 30000
	if err := setConstants(spec, cfg); err != nil {
		t.Fatal(err)
	}
	for _, prog := range spec.Programs {
		for _, ins := range prog.Instructions {
			if ins.Reference() == constantPrefix+"idle_threshold_ms" && ins.Constant != 30000 {
				t.Fatalf("idle_threshold_ms is %d after setting it again, want 30000", ins.Constant)
			}
		}
	}
}

// A program that loads a setting the loader has no value for is refused
// before load, not loaded with whatever the compiler left there.
func TestSetConstantsRefusesUnknownSetting(t *testing.T) {
	spec, err := loadKatrace()
	if err != nil {
		t.Fatal(err)
	}
	prog := spec.Programs[katraceProgTpInetSockSetState]
	for i := range prog.Instructions {
		if strings.HasPrefix(prog.Instructions[i].Reference(), constantPrefix) {
			prog.Instructions[i] = prog.Instructions[i].WithReference(constantPrefix + "no_such_setting")
			break
		}
	}
	err = setConstants(spec, katraceConfig{})
	if err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("setConstants = %v, want an error naming no_such_setting", err)
	}
}

// TestWakeupBytes: every CPU sending alike, the reader is woken before a
// quarter of the ring (a 32nd per CPU up to 8 CPUs) is waiting, on hosts
// of any size, and never more often than once a page.
func TestWakeupBytes(t *testing.T) {
	page := uint64(os.Getpagesize())
	for _, c := range []struct {
		ring uint32
		cpus int
		want uint64
	}{
		{4 << 20, 0, 128 << 10}, // CPUs unknown: a 32nd
		{4 << 20, 2, 128 << 10},
		{4 << 20, 8, 128 << 10},
		{4 << 20, 16, 64 << 10},
		{4 << 20, 64, 16 << 10},
		{4 << 20, 256, 4 << 10},
		{64 << 10, 2, page},
		{64 << 10, 64, page},
	} {
		got := wakeupBytes(c.ring, c.cpus)
		if got != max(c.want, page) {
			t.Errorf("wakeupBytes(%d, %d) = %d, want %d", c.ring, c.cpus, got, max(c.want, page))
		}
		if c.cpus > 8 && got > page && got*uint64(c.cpus) > uint64(c.ring)/4 {
			t.Errorf("wakeupBytes(%d, %d) = %d: %d CPUs hold %d unwoken", c.ring, c.cpus, got, c.cpus, got*uint64(c.cpus))
		}
	}
}

// TestWakeupBacklog: a ring of 1 MiB or more wakes its reader once a
// quarter of it waits; a smaller one at every look, as before.
func TestWakeupBacklog(t *testing.T) {
	for ring, want := range map[uint32]uint64{4 << 10: 0, 64 << 10: 0, 512 << 10: 0, 1 << 20: 256 << 10, 4 << 20: 1 << 20, 64 << 20: 16 << 20} {
		if got := wakeupBacklog(ring); got != want {
			t.Errorf("wakeupBacklog(%d) = %d, want %d", ring, got, want)
		}
	}
}
