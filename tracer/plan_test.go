package tracer

import (
	"slices"
	"testing"
)

// allFeatures is every combination of what the kernel and options offer.
func allFeatures() []features {
	var out []features
	for i := range 8 {
		out = append(out, features{kernelResetReason: i&1 != 0, ownerTracepoints: i&2 != 0, protocols: i&4 != 0})
	}
	return out
}

func TestAttachPlanMatchesCompiledPrograms(t *testing.T) {
	spec, err := loadKatrace()
	if err != nil {
		t.Fatal(err)
	}
	planned := map[string]bool{}
	for _, p := range attachPlan {
		if planned[p.program] {
			t.Errorf("program %s is planned twice", p.program)
		}
		planned[p.program] = true
		if spec.Programs[p.program] == nil {
			t.Errorf("planned program %s is not in the compiled programs", p.program)
		}
		if (p.attach == attachKprobe || p.attach == attachKretprobe) != (p.kprobe != "") {
			t.Errorf("program %s: a kprobe target goes with, and only with, a kprobe", p.program)
		}
	}
	for name := range spec.Programs {
		if !planned[name] {
			t.Errorf("compiled program %s is in no attach plan", name)
		}
	}
}

func TestEveryStrategyPlansTimerAndStateChanges(t *testing.T) {
	spec, err := loadKatrace()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Strategies {
		for _, fs := range allFeatures() {
			plan := planFor(s, fs)
			var names []string
			for _, p := range plan {
				names = append(names, p.program)
			}
			// One program per attach point: a second would report twice.
			targets := map[string]string{}
			for _, p := range plan {
				ps := spec.Programs[p.program]
				key := ps.SectionName + " " + p.kprobe
				if other, ok := targets[key]; ok {
					t.Errorf("%s %+v: %s and %s both attach to %s", s, fs, other, p.program, key)
				}
				targets[key] = p.program
			}
			has := func(name string) bool { return slices.Contains(names, name) }
			var timerEntry, timerExit, stateChange, ownerByCookie bool
			switch s {
			case StrategyFentry:
				timerEntry, timerExit = has(katraceProgFentryTcpKeepaliveTimer), has(katraceProgFexitTcpKeepaliveTimer)
				stateChange = has(katraceProgFentryTcpSetState)
				ownerByCookie = has(katraceProgFentryTcpRecvmsg) && has(katraceProgFentryTcpSendmsg)
			case StrategyKprobe:
				timerEntry, timerExit = has(katraceProgKprobeTcpKeepaliveTimer), has(katraceProgKretprobeTcpKeepaliveTimer)
				stateChange = has(katraceProgTpInetSockSetState)
				ownerByCookie = has(katraceProgKprobeTcpRecvmsg) && has(katraceProgKprobeTcpSendmsg)
			case StrategyTracepoint:
				timerEntry, timerExit = has(katraceProgTpTimerExpireEntry), has(katraceProgTpTimerExpireExit)
				stateChange = has(katraceProgTpInetSockSetState)
			}
			if !timerEntry || !timerExit || !stateChange {
				t.Errorf("%s %+v: timer entry %v, exit %v, state changes %v in %v", s, fs, timerEntry, timerExit, stateChange, names)
			}
			wantCookie := !fs.ownerTracepoints && s != StrategyTracepoint
			if ownerByCookie != wantCookie || ownersByCookie(plan) != wantCookie {
				t.Errorf("%s %+v: owners by cookie planned %v, config %v, want %v", s, fs, ownerByCookie, ownersByCookie(plan), wantCookie)
			}
			if has(katraceProgTpSockRecvLength) != fs.ownerTracepoints {
				t.Errorf("%s %+v: owner tracepoints planned %v", s, fs, has(katraceProgTpSockRecvLength))
			}
			if has(katraceProgTpTcpSendResetReason) != fs.kernelResetReason || has(katraceProgTpTcpSendReset) == fs.kernelResetReason {
				t.Errorf("%s %+v: wrong tcp_send_reset program in %v", s, fs, names)
			}
			if has(katraceProgCgroupIngress) != fs.protocols || has(katraceProgCgroupEgress) != fs.protocols {
				t.Errorf("%s %+v: protocol programs planned wrongly in %v", s, fs, names)
			}
			if !has(katraceProgPrimeCookies) || !has(katraceProgTpTcpReceiveReset) || !has(katraceProgTpInetSkErrorReport) {
				t.Errorf("%s %+v: a program of every strategy is missing from %v", s, fs, names)
			}
			// keepOnly leaves exactly the plan in the spec.
			sc := spec.Copy()
			if err := keepOnly(sc, plan); err != nil {
				t.Fatal(err)
			}
			if len(sc.Programs) != len(plan) {
				t.Errorf("%s %+v: %d programs left for a plan of %d", s, fs, len(sc.Programs), len(plan))
			}
		}
	}
}
