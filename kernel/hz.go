package kernel

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Where HZ came from, as HZ reports it.
const (
	HZFromConfig   = "config"
	HZFromMeasured = "measured"
)

// possibleHZ are the tick rates Linux can be configured with
// (CONFIG_HZ_100 … CONFIG_HZ_1000); a measurement must fit one of them.
var possibleHZ = [...]uint32{100, 250, 300, 1000}

// HZ is the kernel's tick rate, the unit of jiffies. It comes from
// CONFIG_HZ in /proc/config.gz or /boot/config-$(uname -r) when either
// exists (source "config"). Debian and Ubuntu kernels have no
// /proc/config.gz and containers rarely mount the host's /boot, so
// without them the rate is measured (source "measured"): a two-instruction
// BPF program returns jiffies and is run in a loop against CLOCK_MONOTONIC.
// That needs CAP_BPF and nothing else; it takes 4 ticks and at least
// 20 ms (at most 40 ms at HZ=100), longer when the CPUs are busy, and
// gives up after half a second.
func HZ() (hz uint32, source string, err error) {
	return hzFrom(configPaths(), measureHZ)
}

func configPaths() []string {
	paths := []string{"/proc/config.gz"}
	if rel, err := Release(); err == nil {
		paths = append(paths, "/boot/config-"+rel)
	}
	return paths
}

func hzFrom(paths []string, measure func() (uint32, error)) (uint32, string, error) {
	hz, _, cfgErr := configHZ(paths)
	if cfgErr == nil {
		return hz, HZFromConfig, nil
	}
	hz, err := measure()
	if err != nil {
		return 0, "", fmt.Errorf("find the kernel's HZ: %v; measuring it: %w", cfgErr, err)
	}
	return hz, HZFromMeasured, nil
}

// configHZ reads CONFIG_HZ from the first of paths that has it; each may
// be gzip-compressed or plain. It also returns the file it came from.
func configHZ(paths []string) (uint32, string, error) {
	var why []string
	for _, p := range paths {
		hz, err := configFileHZ(p)
		if err == nil {
			return hz, p, nil
		}
		why = append(why, err.Error())
	}
	return 0, "", fmt.Errorf("no CONFIG_HZ in a kernel config file (%s)", strings.Join(why, "; "))
}

func configFileHZ(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("%s: does not exist", path)
		}
		return 0, err
	}
	defer f.Close()
	hz, err := parseConfigHZ(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return hz, nil
}

var errNoConfigHZ = errors.New("no CONFIG_HZ line")

// parseConfigHZ finds CONFIG_HZ=N in a kernel config, gzip-compressed
// (as /proc/config.gz is) or plain (as /boot/config-* is).
func parseConfigHZ(r io.Reader) (uint32, error) {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	sc := bufio.NewScanner(br)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CONFIG_HZ=")
		if !ok {
			continue
		}
		hz, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || hz == 0 {
			return 0, fmt.Errorf("CONFIG_HZ=%s is not a tick rate", v)
		}
		return uint32(hz), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	return 0, errNoConfigHZ
}

// Measurement. Each poll reads jiffies somewhere between two clock
// readings; for a given HZ that places the tick grid's phase in an
// interval, and the phase must lie in every poll's interval. Only the true
// HZ keeps them overlapping as jiffies advances, however the polls are
// spread: a poll preempted half-way just gives a wide interval. Only a
// jiffies update later than phaseTolerance (a timer interrupt held off)
// breaks the true HZ too; then no HZ fits and the measurement restarts.
const (
	// minTicks of jiffies seen decide: at HZ=100 at most 40 ms.
	minTicks = 3
	// minSpan is the least time measured, for more ticks at high HZ.
	minSpan = 20 * time.Millisecond
	// phaseTolerance is how late, as a fraction of a tick, jiffies may
	// be updated before the measurement is thrown away.
	phaseTolerance = 0.05
	// measureTimeout bounds the measurement on CPUs so busy that polls
	// rarely run.
	measureTimeout = 500 * time.Millisecond
)

func measureHZ() (uint32, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "katrace_jiffies",
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.FnJiffies64.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		return 0, fmt.Errorf("load a BPF program that reads jiffies (needs CAP_BPF): %w", err)
	}
	defer prog.Close()
	// BPF_PROG_TEST_RUN of a socket filter wants at least an Ethernet
	// header's worth of packet; the program never looks at it.
	opts := &ebpf.RunOptions{Data: make([]byte, 14)}
	readJiffies := func() (uint32, error) {
		j, err := prog.Run(opts)
		if err != nil {
			return 0, fmt.Errorf("run the jiffies program: %w", err)
		}
		return j, nil
	}
	start := time.Now()
	return measureJiffies(readJiffies, func() time.Duration { return time.Since(start) })
}

// measureJiffies polls jiffies against clock until one possible HZ alone
// fits, or measureTimeout passed.
func measureJiffies(readJiffies func() (uint32, error), clock func() time.Duration) (uint32, error) {
	var m gridFit
	restarts := 0
	begin := clock()
	for {
		lo := clock()
		if lo-begin > measureTimeout {
			return 0, m.undecided(restarts)
		}
		j, err := readJiffies()
		if err != nil {
			return 0, err
		}
		hi := clock()
		if !m.add(j, lo, hi) {
			restarts++
			m = gridFit{}
			m.add(j, lo, hi)
			continue
		}
		if hz, ok := m.decided(); ok {
			return hz, nil
		}
	}
}

// gridFit holds, for each possible HZ, the interval where the phase of
// its tick grid can lie, in nanoseconds since the first poll's jiffies
// value began.
type gridFit struct {
	polls            int
	firstJ, lastJ    uint32
	firstAt, lastAt  time.Duration
	earliest, latest [len(possibleHZ)]float64
}

func tickNanos(hz uint32) float64 { return float64(time.Second) / float64(hz) }

// add narrows each HZ's interval with a poll that read jiffies j between
// lo and hi, and says whether any HZ still fits.
func (m *gridFit) add(j uint32, lo, hi time.Duration) bool {
	if m.polls == 0 {
		m.firstJ, m.firstAt = j, lo
		for i := range possibleHZ {
			m.earliest[i], m.latest[i] = math.Inf(-1), math.Inf(1)
		}
	}
	m.polls++
	m.lastJ, m.lastAt = j, hi
	ticks := float64(j - m.firstJ)
	any := false
	for i, hz := range possibleHZ {
		tick := tickNanos(hz)
		// Tick number j began at or before the read and tick j+1 after.
		m.earliest[i] = max(m.earliest[i], float64(lo)-(ticks+1)*tick)
		m.latest[i] = min(m.latest[i], float64(hi)-ticks*tick)
		any = any || m.fits(i)
	}
	return any
}

func (m *gridFit) fits(i int) bool {
	return m.earliest[i]-phaseTolerance*tickNanos(possibleHZ[i]) < m.latest[i]
}

// decided is the HZ when it alone fits over enough ticks and time.
func (m *gridFit) decided() (uint32, bool) {
	if m.lastJ-m.firstJ < minTicks || m.lastAt-m.firstAt < minSpan {
		return 0, false
	}
	var fit []uint32
	for i, hz := range possibleHZ {
		if m.fits(i) {
			fit = append(fit, hz)
		}
	}
	if len(fit) != 1 {
		return 0, false
	}
	return fit[0], true
}

func (m *gridFit) undecided(restarts int) error {
	var fit []uint32
	for i, hz := range possibleHZ {
		if m.polls > 0 && m.fits(i) {
			fit = append(fit, hz)
		}
	}
	rate := "no"
	if m.lastAt > m.firstAt {
		rate = fmt.Sprintf("%.0f Hz", float64(m.lastJ-m.firstJ)*float64(time.Second)/float64(m.lastAt-m.firstAt))
	}
	return fmt.Errorf("could not tell the tick rate in %v: %d polls over %d ticks at roughly %s rate fit %v of %v, after %d restarts for a late jiffies update",
		measureTimeout, m.polls, m.lastJ-m.firstJ, rate, fit, possibleHZ, restarts)
}
