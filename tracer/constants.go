package tracer

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
)

// constantPrefix names the immediates the kernel programs load struct
// config's scalar settings from (CFG in bpf/lib/globals.h).
const constantPrefix = "katrace_cfg_"

// configConstants are struct config's scalar settings by their C names.
func configConstants(cfg katraceConfig) map[string]uint64 {
	return map[string]uint64{
		"wakeup_bytes":          cfg.WakeupBytes,
		"wakeup_backlog":        cfg.WakeupBacklog,
		"hz":                    uint64(cfg.Hz),
		"idle_threshold_ms":     uint64(cfg.IdleThresholdMs),
		"filter_pid":            uint64(cfg.FilterPid),
		"filter_netns":          uint64(cfg.FilterNetns),
		"filter_port_count":     uint64(cfg.FilterPortCount),
		"filter_cidr_count":     uint64(cfg.FilterCidrCount),
		"filter_cgroup_count":   uint64(cfg.FilterCgroupCount),
		"emit_states":           boolConstant(cfg.EmitStates),
		"emit_all_closes":       boolConstant(cfg.EmitAllCloses),
		"filter_by_owner":       boolConstant(cfg.FilterByOwner),
		"filter_keepalive_only": boolConstant(cfg.FilterKeepaliveOnly),
		"owners_by_cookie":      boolConstant(cfg.OwnersByCookie),
		"stage_events":          boolConstant(cfg.StageEvents),
		"keepalive_timer_fn":    cfg.KeepaliveTimerFn,
		"tw_timer_fn":           cfg.TwTimerFn,
	}
}

func boolConstant(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// setConstants writes cfg's scalar settings into the instructions of
// spec's programs that load them. It can run again on the same spec: the
// instructions keep the names they load.
func setConstants(spec *ebpf.CollectionSpec, cfg katraceConfig) error {
	values := configConstants(cfg)
	for name, prog := range spec.Programs {
		for i := range prog.Instructions {
			ins := &prog.Instructions[i]
			setting, ok := strings.CutPrefix(ins.Reference(), constantPrefix)
			if !ok || !ins.OpCode.IsDWordLoad() {
				continue
			}
			v, ok := values[setting]
			if !ok {
				return fmt.Errorf("program %s loads setting %q, which the loader does not know", name, setting)
			}
			ins.Constant = int64(v)
		}
	}
	return nil
}
