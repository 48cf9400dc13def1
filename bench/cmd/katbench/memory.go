package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vmKB reads a Vm* line (VmRSS, VmHWM) of /proc/pid/status, in KiB.
func vmKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// settledRSS waits until pid's VmRSS stays within settleKB for
// settleSamples samples in a row (2 s) and returns the last one. Right
// after a burst of work the Go runtime still holds pages the collector
// freed; its scavenger returns them over the next seconds, so a figure
// read at a fixed moment measures the timing, not the memory.
func settledRSS(pid int) (int64, error) {
	const (
		every         = 250 * time.Millisecond
		settleSamples = 8
		settleKB      = 64
	)
	deadline := time.Now().Add(30 * time.Second)
	var recent []int64
	for {
		r, err := vmKB(pid, "VmRSS")
		if err != nil {
			return 0, err
		}
		recent = append(recent, r)
		if len(recent) > settleSamples {
			recent = recent[1:]
		}
		if len(recent) == settleSamples && slices.Max(recent)-slices.Min(recent) <= settleKB {
			return r, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("katrace's VmRSS did not settle in 30 s: last %v KiB", recent)
		}
		time.Sleep(every)
	}
}

// holder is an idleconns process holding one end of idle connections.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startHolder(bin string, args ...string) (*holder, error) {
	h := &holder{cmd: exec.Command(bin, args...)}
	h.cmd.Stderr = os.Stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h.out = bufio.NewReader(stdout)
	return h, h.cmd.Start()
}

// line waits for the holder's next line.
func (h *holder) line() (string, error) {
	l, err := h.out.ReadString('\n')
	return strings.TrimSpace(l), err
}

func (h *holder) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

// runMemory opens o.conns idle loopback connections while katrace runs with
// --all --states, so that the correlator remembers both ends of each (a
// socket is tracked from its first event, and --states gives every socket
// events as it connects), and reads katrace's settled VmRSS before and
// after. The
// ends are held by idleconns processes, a server and a client per batch
// that fits the file descriptor limit.
func runMemory(t *table, o options) {
	const what = "memory with many tracked sockets"
	fail := func(err error) { t.add(what, "≤ 64 MiB + 300 B/socket", err.Error(), ptr(false)) }
	p, err := startKatrace(o.katrace, "--all", "--states")
	if err != nil {
		fail(err)
		return
	}
	defer p.stop()
	base, err := settledRSS(p.pid())
	if err != nil {
		fail(err)
		return
	}
	// A batch per 15,000 connections: RLIMIT_NOFILE is 20,000 here and
	// cannot be raised without CAP_SYS_RESOURCE.
	const batch = 15000
	var holders []*holder
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	opened := 0
	for b := 0; opened < o.conns; b++ {
		n := min(batch, o.conns-opened)
		srv, err := startHolder(o.idleconns, "-serve", "127.0.0.1:0", "-n", strconv.Itoa(n))
		if err != nil {
			fail(err)
			return
		}
		holders = append(holders, srv)
		l, err := srv.line()
		addr, ok := strings.CutPrefix(l, "listening ")
		if err != nil || !ok {
			fail(fmt.Errorf("idleconns server: %q %v", l, err))
			return
		}
		cli, err := startHolder(o.idleconns, "-dial", addr, "-from", fmt.Sprintf("127.0.0.%d", 2+b), "-n", strconv.Itoa(n))
		if err != nil {
			fail(err)
			return
		}
		holders = append(holders, cli)
		for _, h := range []*holder{srv, cli} {
			if l, err := h.line(); err != nil || !strings.HasPrefix(l, "ready") {
				fail(fmt.Errorf("idleconns: %q %v", l, err))
				return
			}
		}
		opened += n
	}
	// Wait for katrace to have taken every event and for the Go runtime to
	// have returned what those collections freed.
	rss, err := settledRSS(p.pid())
	if err != nil {
		fail(err)
		return
	}
	hwm, _ := vmKB(p.pid(), "VmHWM")
	sockets := int64(2 * opened)
	perSock := float64(rss-base) * 1024 / float64(sockets)
	limitKB := 64*1024 + 300*sockets/1024
	t.add("memory: katrace VmRSS after start", "-", fmt.Sprintf("%.1f MiB", float64(base)/1024), nil)
	t.add(fmt.Sprintf("memory: VmRSS with %d idle connections (%d tracked sockets)", opened, sockets),
		fmt.Sprintf("≤ 64 MiB + 300 B/socket = %.1f MiB", float64(limitKB)/1024),
		fmt.Sprintf("%.1f MiB (peak %.1f MiB)", float64(rss)/1024, float64(hwm)/1024), ptr(rss <= limitKB))
	t.add("memory: RSS growth per tracked socket", "≤ 300 B", fmt.Sprintf("%.0f B", perSock), ptr(perSock <= 300))
}
