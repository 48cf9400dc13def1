package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/katrace/katrace/tracer"
)

// progCost is one kernel program's bpf_stats.
type progCost struct {
	name    string
	runs    uint64
	runtime time.Duration
}

func (c progCost) perRun() float64 {
	if c.runs == 0 {
		return 0
	}
	return float64(c.runtime.Nanoseconds()) / float64(c.runs)
}

// programsOf returns the BPF programs process pid holds open (its program
// and link fds name them in fdinfo), by name.
func programsOf(pid int) (map[string]progCost, error) {
	ids := map[ebpf.ProgramID]bool{}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					ids[ebpf.ProgramID(id)] = true
				}
			}
		}
	}
	out := map[string]progCost{}
	for id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		st, err2 := p.Stats()
		p.Close()
		if err != nil || err2 != nil {
			continue
		}
		c := out[info.Name]
		c.name = info.Name
		c.runs += st.RunCount
		c.runtime += st.Runtime
		out[info.Name] = c
	}
	return out, nil
}

// withStats turns kernel.bpf_stats_enabled on for the duration of f.
func withStats(f func()) error {
	const knob = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(knob)
	if err != nil {
		return err
	}
	if err := os.WriteFile(knob, []byte("1"), 0); err != nil {
		return err
	}
	defer os.WriteFile(knob, old, 0)
	f()
	return nil
}

func runKernelCost(t *table, o options) {
	type phase struct {
		name string
		args []string
		load func() error
	}
	// Connections each churn phase made, warm-up included (katrace's
	// programs ran for all of them).
	conns := make([]uint64, 4)
	churnInto := func(i int) func() error {
		return func() error {
			r, err := runChurn(o)
			conns[i] = r.Total
			return err
		}
	}
	phases := []phase{
		{"default, churn", nil, churnInto(0)},
		{"--all --states, churn", []string{"--all", "--states"}, churnInto(1)},
		{"default, delayed-ACK timers", nil, func() error { return delackTimers(3000, o.dur) }},
		{"--proto, churn", []string{"--proto"}, churnInto(3)},
	}
	results := make([]map[string]progCost, len(phases))
	points, perr := defaultPoints()
	if perr != nil {
		t.add("kernel cost", "bpf_stats", "the default's attach points: "+perr.Error(), ptr(false))
		return
	}
	err := withStats(func() {
		for i, ph := range phases {
			results[i] = measurePrograms(o, points, ph.args, ph.load, ph.name)
		}
	})
	if err != nil {
		t.add("kernel cost", "bpf_stats", "cannot enable kernel.bpf_stats_enabled: "+err.Error(), ptr(false))
		return
	}
	for i, ph := range phases {
		var names []string
		for n := range results[i] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := results[i][n]
			if c.runs == 0 {
				continue
			}
			logf("kernel cost, %s: %-18s %9d runs %7.1f ns/run", ph.name, n, c.runs, c.perRun())
		}
	}
	stateProg := "tp_inet_sock_set_state"
	floorNote := func(res map[string]progCost, key string) string {
		if f, ok := res[key]; ok && f.runs > 0 {
			return fmt.Sprintf("; an empty program there: %.0f ns", f.perRun())
		}
		return ""
	}
	// Verdicts are net of the floor: what an empty program on the same
	// tracepoint measured in the same run (bpf_stats' own cost).
	for i, ph := range phases[:2] {
		limit := []float64{stateTargetDefault, stateTargetAllStates}[i]
		target := fmt.Sprintf("≤ %.0f ns", limit)
		c, ok := results[i][stateProg]
		if !ok {
			t.add("kernel ns per state change, "+ph.name, target, "tp_inet_sock_set_state not found", ptr(false))
			continue
		}
		net := c.perRun() - results[i]["floor_state"].perRun()
		t.add("kernel ns per state change, "+ph.name, target,
			fmt.Sprintf("%.0f ns net (%.0f ns measured, %d runs%s)", net, c.perRun(), c.runs, floorNote(results[i], "floor_state")), ptr(net <= limit))
	}
	// All of katrace's programs per connection: a program's cost moved to
	// another (a claim from the state change to the owner's first read)
	// shows here.
	for i, ph := range phases[:2] {
		if conns[i] > 0 {
			t.add("kernel ns per connection, all programs, "+ph.name, "-", perConnection(results[i], conns[i]), nil)
		}
	}
	// Timer programs, net of an empty program at each one's own attach
	// point. Under churn the host's timer_list timers are few and every
	// run starts cold (the churn has evicted the programs' code and data):
	// their cost there is stated as CPU time, the per-run verdict is taken
	// where timers are the load (delayed-ACK timers, as make perfguard).
	for i, ph := range phases[:3] {
		if i == 1 {
			continue
		}
		var sum progCost
		var netTotal float64
		var parts []string
		for _, n := range []string{"tp_timer_expire_entry", "tp_timer_expire_exit"} {
			c, ok := results[i][n]
			if !ok || c.runs == 0 {
				continue
			}
			floor := results[i]["floor:"+n].perRun()
			sum.runs += c.runs
			sum.runtime += c.runtime
			netTotal += (c.perRun() - floor) * float64(c.runs)
			parts = append(parts, fmt.Sprintf("%s %.0f (empty %.0f)", strings.TrimPrefix(n, "tp_timer_expire_"), c.perRun(), floor))
		}
		if sum.runs == 0 {
			continue
		}
		net := netTotal / float64(sum.runs)
		if i == 0 {
			t.add("kernel time in timer programs, "+ph.name, "-",
				fmt.Sprintf("%.1f µs per second of churn: %d runs, %.0f ns net each (measured: %s), few and cold (a mean over few runs also carries any interrupt taken inside one)", netTotal/1e3/(o.dur+churnWarmup).Seconds(), sum.runs, net, strings.Join(parts, ", ")), nil)
			continue
		}
		t.add("kernel ns per timer program run (entry and exit each), "+ph.name, "≤ 20 ns",
			fmt.Sprintf("%.0f ns net (measured: %s; %d runs)", net, strings.Join(parts, ", "), sum.runs), ptr(net <= 20))
	}
	// The rest, for the record: per-syscall owner tracepoints and resets.
	if res := results[0]; res != nil {
		var parts []string
		for _, n := range []string{"tp_sock_recv_length", "tp_sock_send_length", "tp_tcp_receive_reset", "tp_tcp_send_reset_reason", "tp_inet_sk_error_report", "cgroup_ingress", "cgroup_egress"} {
			if c, ok := res[n]; ok && c.runs > 0 {
				if f, ok := res["floor:"+n]; ok && f.runs > 0 {
					parts = append(parts, fmt.Sprintf("%s %.0f ns net (%.0f measured) × %d", n, c.perRun()-f.perRun(), c.perRun(), c.runs))
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %.0f ns × %d", n, c.perRun(), c.runs))
			}
		}
		t.add("kernel ns, other programs (default, churn)", "-", strings.Join(parts, "; "), nil)
	}
	// Protocol labels: a program per packet and direction, and the socket
	// storage each labelled connection gets (in the state change's cost).
	if res := results[3]; res != nil {
		var parts []string
		for _, n := range []string{"cgroup_ingress", "cgroup_egress"} {
			if c, ok := res[n]; ok && c.runs > 0 {
				parts = append(parts, fmt.Sprintf("%s %.0f ns × %d", n, c.perRun(), c.runs))
			}
		}
		if c, ok := res[stateProg]; ok && c.runs > 0 {
			parts = append(parts, fmt.Sprintf("state change %.0f ns net", c.perRun()-res["floor_state"].perRun()))
		}
		t.add("kernel ns, protocol labels (--proto, churn)", "-", strings.Join(parts, "; "), nil)
	}
}

// perConnection is the kernel time of katrace's programs in res per
// connection of the churn, net of the empty program at each one's attach
// point where there is one, with the programs' shares.
func perConnection(res map[string]progCost, conns uint64) string {
	type share struct {
		name string
		ns   float64
	}
	var shares []share
	var netTotal, gross float64
	for n, c := range res {
		// The floors, and the start-up pass over existing sockets.
		if strings.HasPrefix(n, "floor") || n == "prime_cookies" || c.runs == 0 {
			continue
		}
		ns := float64(c.runtime.Nanoseconds())
		gross += ns
		if f, ok := res["floor:"+n]; ok && f.runs > 0 {
			ns -= f.perRun() * float64(c.runs)
		}
		netTotal += ns
		shares = append(shares, share{n, ns / float64(conns)})
	}
	sort.Slice(shares, func(a, b int) bool { return shares[a].ns > shares[b].ns })
	var parts []string
	for _, sh := range shares {
		if sh.ns >= 1 {
			parts = append(parts, fmt.Sprintf("%s %.0f", sh.name, sh.ns))
		}
	}
	return fmt.Sprintf("%.0f ns net (%.0f measured) over %d connections: %s", netTotal/float64(conns), gross/float64(conns), conns, strings.Join(parts, ", "))
}

// Targets of issue 11: kernel ns per state change net of an empty program
// at the same tracepoint.
const (
	stateTargetDefault   = 60
	stateTargetAllStates = 150
)

// measurePrograms runs katrace trace args with empty programs at every
// default attach point beside it, drives load, and returns katrace's
// programs' bpf_stats by name, with "floor:NAME" the empty program at
// NAME's attach point (and floor_state, floor_timer as before).
func measurePrograms(o options, points []tracer.AttachPoint, args []string, load func() error, what string) map[string]progCost {
	res := map[string]progCost{}
	fs, err := attachFloorSet(points)
	if err != nil {
		logf("kernel cost, %s: %v", what, err)
		return res
	}
	defer fs.close()
	p, err := startKatrace(o.katrace, args...)
	if err != nil {
		logf("kernel cost, %s: %v", what, err)
		return res
	}
	if err := load(); err != nil {
		logf("kernel cost, %s: %v", what, err)
	}
	progs, err := programsOf(p.pid())
	if err != nil {
		logf("kernel cost, %s: %v", what, err)
	}
	p.stop()
	for n, c := range progs {
		res[n] = c
	}
	for _, pt := range points {
		res["floor:"+pt.Program] = fs.cost(pt.Target)
	}
	res["floor_state"] = fs.cost("inet_sock_set_state")
	res["floor_timer"] = fs.cost("timer_expire_entry")
	return res
}

// delackTimers keeps conns loopback connections where the client writes a
// byte every 40 ms and the server never answers: the server's delayed-ACK
// timer (a timer_list, not a keepalive timer) fires for each.
func delackTimers(conns int, d time.Duration) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	var wg sync.WaitGroup
	var stop atomic.Bool
	var accepted []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	dialer := net.Dialer{KeepAlive: -1}
	for i := 0; i < conns; i++ {
		c, err := dialer.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer c.Close()
			time.Sleep(time.Duration(i) * 40 * time.Millisecond / time.Duration(conns))
			tk := time.NewTicker(40 * time.Millisecond)
			defer tk.Stop()
			for !stop.Load() {
				if _, err := c.Write([]byte{1}); err != nil {
					return
				}
				<-tk.C
			}
		}(i)
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	for _, c := range accepted {
		c.Close()
	}
	mu.Unlock()
	return nil
}
