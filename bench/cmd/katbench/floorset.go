package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/katrace/katrace/tracer"
)

// defaultPoints are the tracing attach points of katrace's default
// `trace` on this kernel (tracepoint strategy: the one that runs here).
func defaultPoints() ([]tracer.AttachPoint, error) {
	return tracer.TracingAttachPoints(tracer.StrategyTracepoint)
}

// floorSet is an empty program at each of a set of attach points.
type floorSet struct {
	byTarget map[string]*floorProbe
}

func attachFloorSet(points []tracer.AttachPoint) (*floorSet, error) {
	fs := &floorSet{byTarget: map[string]*floorProbe{}}
	for _, p := range points {
		if fs.byTarget[p.Target] != nil {
			continue
		}
		f, err := attachFloor(p.Target)
		if err != nil {
			fs.close()
			return nil, fmt.Errorf("empty program on %s: %w", p.Target, err)
		}
		fs.byTarget[p.Target] = f
	}
	return fs, nil
}

// cost is the empty program's bpf_stats at target.
func (fs *floorSet) cost(target string) progCost {
	if f := fs.byTarget[target]; f != nil {
		return f.cost()
	}
	return progCost{}
}

func (fs *floorSet) close() {
	for _, f := range fs.byTarget {
		f.close()
	}
}

func (fs *floorSet) targets() []string {
	var out []string
	for t := range fs.byTarget {
		out = append(out, t)
	}
	return out
}

// serveFloor is katbench -floor-serve FILE: empty programs at every attach
// point of the default, "Attaching" written to FILE once they are in
// place, until SIGINT. The churn pairs run it as a tracer: the floor row.
func serveFloor(out string) error {
	points, err := defaultPoints()
	if err != nil {
		return err
	}
	fs, err := attachFloorSet(points)
	if err != nil {
		return err
	}
	defer fs.close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if err := os.WriteFile(out, []byte("Attaching "+strings.Join(fs.targets(), ",")+"\n"), 0o600); err != nil {
		return err
	}
	<-sig
	return nil
}

// startFloor runs this katbench as the floor tracer.
func startFloor() (*tracerProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "katbench-*.floor")
	if err != nil {
		return nil, err
	}
	f.Close()
	os.Remove(f.Name())
	return startTracer(exec.Command(self, "-floor-serve", f.Name()), f.Name(), "Attaching")
}
