// Package metrics counts katrace's records as Prometheus metrics.
//
// Sink is a record.Sink: the tracer writes the same records to it that it
// writes to the text or NDJSON printer, so the metrics count exactly what
// the stream shows under the same filters (--all, --states, --port...).
// The metric names are part of katrace's contract (README "Metrics").
//
// Cardinality is bounded by design: no label ever carries a pid, port,
// address or socket. Opt-in labels (today: endpoint) are capped per label;
// values beyond the cap are counted under "other", and Forget drops the
// series of a value that went away.
package metrics

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/katrace/katrace/record"
)

// Other is the label value that counts everything beyond a label's cap.
const Other = "other"

// DefaultMaxSeries is the default cap on the values of one opt-in label.
const DefaultMaxSeries = 100

// Options choose the opt-in labels and their cap.
type Options struct {
	// Labels are opt-in label names, each one of OptionalLabels().
	Labels []string
	// MaxSeries caps the distinct values of each opt-in label; values
	// beyond it are counted under Other. 0 means DefaultMaxSeries.
	MaxSeries int
}

// optionalLabel is a label a user may add to the per-connection metrics.
// value must not allocate for a value seen before: it runs per record.
type optionalLabel struct {
	name  string
	value func(l *limiter, r *record.Record) string
	// workload: the label names a container or pod, whose series go when
	// its cgroups do.
	workload bool
}

// optionalLabels is every opt-in label katrace knows. The workload labels
// (container, pod, namespace) are "" for sockets outside containers or
// when the name is not known; their values are forgotten once every cgroup
// they were seen in has gone (ForgetGone).
var optionalLabels = []optionalLabel{
	{"endpoint", endpointValue, false},
	{"container", containerValue, true},
	{"pod", podValue, true},
	{"namespace", namespaceValue, true},
}

// maxOptional is how many opt-in labels a series may carry at once.
const maxOptional = 4

// OptionalLabels names the opt-in labels --metrics-labels accepts.
func OptionalLabels() []string {
	names := make([]string, len(optionalLabels))
	for i, o := range optionalLabels {
		names[i] = o.name
	}
	return names
}

// ParseLabels reads a comma-separated list of opt-in labels.
func ParseLabels(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if findOptional(part) < 0 {
			return nil, fmt.Errorf("unknown label %q: want one of %s", part, strings.Join(OptionalLabels(), ", "))
		}
		for _, seen := range out {
			if seen == part {
				return nil, fmt.Errorf("label %q given twice", part)
			}
		}
		out = append(out, part)
	}
	return out, nil
}

func findOptional(name string) int {
	for i, o := range optionalLabels {
		if o.name == name {
			return i
		}
	}
	return -1
}

// idleBuckets reach from sub-second HTTP keep-alive timeouts to the
// hours of a NAT or load balancer table.
var idleBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800}

// seriesKey names one child of a vector: its fixed labels, then the
// opt-in ones. A struct of strings makes a map key that costs no
// allocation to look up.
type seriesKey struct {
	a, b string
	opt  [maxOptional]string
}

// family is one metric vector with its children cached by label values.
type family struct {
	counters *prometheus.CounterVec
	hist     *prometheus.HistogramVec
	fixed    int // how many fixed labels come before the opt-in ones
	optional int // how many opt-in labels follow
	children map[seriesKey]prometheus.Counter
	observed map[seriesKey]prometheus.Observer
	// maxFixed caps the distinct fixed-label tuples (e.g. reset reasons,
	// which the kernel names) so that no label grows without bound.
	maxFixed  int
	fixedSeen map[[2]string]struct{}
}

// Sink turns records into metrics. Write and Forget may be called from
// different goroutines.
type Sink struct {
	mu       sync.Mutex
	registry *prometheus.Registry
	opt      []optionalLabel
	limiters []*limiter

	closes, resets, probes, acks, timeouts, idleCloses, staleReuses, idleSeconds *family

	events    [16]prometheus.Counter // by record.Type
	eventsVec *prometheus.CounterVec
	lost      prometheus.Counter
	missed    prometheus.Counter
	unseen    prometheus.Counter
	buildInfo *prometheus.GaugeVec

	key seriesKey // scratch, reused per record
}

var _ record.Sink = (*Sink)(nil)

// New returns a Sink with its own registry.
func New(o Options) (*Sink, error) {
	if o.MaxSeries == 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxSeries < 1 {
		return nil, fmt.Errorf("max series %d: must be at least 1", o.MaxSeries)
	}
	if len(o.Labels) > maxOptional {
		return nil, fmt.Errorf("at most %d opt-in labels", maxOptional)
	}
	s := &Sink{registry: prometheus.NewRegistry()}
	var optNames []string
	for _, name := range o.Labels {
		i := findOptional(name)
		if i < 0 {
			return nil, fmt.Errorf("unknown label %q: want one of %s", name, strings.Join(OptionalLabels(), ", "))
		}
		s.opt = append(s.opt, optionalLabels[i])
		s.limiters = append(s.limiters, newLimiter(o.MaxSeries))
		optNames = append(optNames, name)
	}
	labels := func(fixed ...string) []string { return append(fixed, optNames...) }
	counter := func(name, help string, maxFixed int, fixed ...string) *family {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels(fixed...))
		s.registry.MustRegister(v)
		return &family{counters: v, fixed: len(fixed), optional: len(optNames), children: map[seriesKey]prometheus.Counter{}, maxFixed: maxFixed, fixedSeen: map[[2]string]struct{}{}}
	}
	s.closes = counter("katrace_connection_closes_total", "Connections whose end katrace reported, by the cause of the end (close.cause).", 64, "cause")
	s.resets = counter("katrace_resets_total", "Resets sent or received, by direction and reason.", 128, "direction", "reason")
	s.probes = counter("katrace_keepalive_probes_total", "Keepalive probes sent and not answered yet (keepalive_probe records).", 0)
	s.acks = counter("katrace_keepalive_acks_total", "Keepalive probes answered (keepalive_ack records).", 0)
	s.timeouts = counter("katrace_keepalive_timeouts_total", "Connections killed by the keepalive giving up (keepalive_timeout records).", 0)
	s.idleCloses = counter("katrace_idle_closes_total", "FINs after an idle spell of at least --idle-threshold, by the side that closed.", 2, "side")
	s.staleReuses = counter("katrace_stale_reuses_total", "Connections that wrote after the peer's FIN and drew a reset (close.cause stale_reuse).", 0)

	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "katrace_idle_close_idle_seconds",
		Help:    "How long a connection sat idle before an idle close, by the side that closed.",
		Buckets: idleBuckets,
	}, labels("side"))
	s.registry.MustRegister(hist)
	s.idleSeconds = &family{hist: hist, fixed: 1, optional: len(optNames), observed: map[seriesKey]prometheus.Observer{}, maxFixed: 2, fixedSeen: map[[2]string]struct{}{}}

	if len(optNames) == 0 {
		s.initialize()
	}

	s.eventsVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "katrace_events_total",
		Help: "Records katrace wrote, by type (the NDJSON type field).",
	}, []string{"type"})
	s.registry.MustRegister(s.eventsVec)
	for t := record.TypeStart; t <= record.TypeEnd; t++ {
		s.events[t] = s.eventsVec.WithLabelValues(t.String())
	}
	s.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "katrace_events_lost_total",
		Help: "Kernel events dropped because the ring buffer was full (the sum of lost records).",
	})
	s.registry.MustRegister(s.lost)
	s.missed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "katrace_program_runs_missed_total",
		Help: "Kernel program runs skipped because the program was already running on that CPU; their events are missing (the sum of lost records' missed_runs).",
	})
	s.registry.MustRegister(s.missed)
	s.unseen = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "katrace_keepalive_probes_unseen_total",
		Help: "Keepalive probes the kernel counted as sent in timer runs katrace did not see (the sum of keepalive_probe and keepalive_timeout records' unseen_probes).",
	})
	s.registry.MustRegister(s.unseen)
	s.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "katrace_build_info",
		Help: "Always 1: katrace's version, the attach strategy in use and the kernel release.",
	}, []string{"version", "mode", "kernel"})
	s.registry.MustRegister(s.buildInfo)
	s.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return s, nil
}

// knownCauses are the close causes of the contract; exported at zero from
// the start, so that rate() and alerts see a series before the first event.
var knownCauses = []string{
	record.CauseKeepaliveTimeout, record.CauseRetransmitTimeout, record.CauseIdleCloseLocal,
	record.CauseIdleCloseRemote, record.CauseStaleReuse, record.CauseResetAfterIdle,
	record.CauseResetReceived, record.CauseResetSent, record.CauseFinWait2Timeout,
	record.CauseCloseLocal, record.CauseCloseRemote, record.CauseError, record.CauseConnectAbandoned,
}

// initialize creates the series whose label values are known in advance.
// With opt-in labels nothing is: their values come with the records.
func (s *Sink) initialize() {
	for _, cause := range knownCauses {
		s.closes.counter(&s.key, cause, "")
	}
	for _, side := range []string{record.SideLocal, record.SideRemote} {
		s.idleCloses.counter(&s.key, side, "")
		s.idleSeconds.observer(&s.key, side)
	}
	for _, f := range []*family{s.probes, s.acks, s.timeouts, s.staleReuses} {
		f.counter(&s.key, "", "")
	}
}

// Registry is the sink's own registry, for tests and for serving.
func (s *Sink) Registry() *prometheus.Registry { return s.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (s *Sink) Handler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})
}

// Write counts one record.
func (s *Sink) Write(r *record.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(r.Type) < len(s.events) && s.events[r.Type] != nil {
		s.events[r.Type].Inc()
	}
	switch r.Type {
	case record.TypeStart:
		s.buildInfo.Reset()
		s.buildInfo.WithLabelValues(r.Version, r.Mode, r.Kernel).Set(1)
		return nil
	case record.TypeLost:
		s.lost.Add(float64(r.Count))
		s.missed.Add(float64(r.MissedRuns))
		return nil
	}
	if !r.Type.HasSocket() {
		return nil
	}
	s.optionalValues(r)
	switch r.Type {
	case record.TypeKeepaliveProbe:
		s.probes.counter(&s.key, "", "").Inc()
		s.unseen.Add(float64(r.UnseenProbes))
	case record.TypeKeepaliveAck:
		s.acks.counter(&s.key, "", "").Inc()
	case record.TypeKeepaliveTimeout:
		s.timeouts.counter(&s.key, "", "").Inc()
		s.unseen.Add(float64(r.UnseenProbes))
	case record.TypeIdleClose:
		side := orUnknown(r.Side)
		s.idleCloses.counter(&s.key, side, "").Inc()
		if r.IdleMs != record.Absent {
			s.idleSeconds.observer(&s.key, side).Observe(float64(r.IdleMs) / 1000)
		}
	case record.TypeReset:
		s.resets.counter(&s.key, orUnknown(r.Direction), orUnknown(r.Reason)).Inc()
	case record.TypeClose:
		s.closes.counter(&s.key, orUnknown(r.Cause), "").Inc()
		if r.Cause == record.CauseStaleReuse {
			s.staleReuses.counter(&s.key, "", "").Inc()
		}
	}
	return nil
}

// Flush does nothing: Prometheus reads the counters when it scrapes.
func (s *Sink) Flush() error { return nil }

// optionalValues fills the opt-in part of s.key for r.
func (s *Sink) optionalValues(r *record.Record) {
	for i, o := range s.opt {
		s.key.opt[i] = o.value(s.limiters[i], r)
	}
}

// Forget drops every series whose opt-in label name has value, and frees
// the value's place under the label's cap. Call it when what the value
// names went away (a container that stopped), so that the exposition does
// not keep it forever. It reports whether label is one in use.
func (s *Sink) Forget(label, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.opt {
		if o.name == label && value != Other {
			s.forget(i, value)
			return true
		}
	}
	return false
}

// ForgetGone forgets (as Forget does) every container, pod and namespace
// label value all of whose cgroups are gone: alive reports whether a
// cgroup (a path as record.Workload.Cgroup gives it) still exists. It is
// called now and then (katrace trace: every SweepInterval); alive runs
// without the lock held, so records keep being counted meanwhile. It
// returns how many values it forgot.
func (s *Sink) ForgetGone(alive func(cgroup string) bool) int {
	s.mu.Lock()
	var paths []string
	seen := map[string]bool{}
	for i, o := range s.opt {
		if !o.workload {
			continue
		}
		for _, cgs := range s.limiters[i].cgroups {
			for cg := range cgs {
				if !seen[cg] {
					seen[cg] = true
					paths = append(paths, cg)
				}
			}
		}
	}
	s.mu.Unlock()

	gone := map[string]bool{}
	for _, cg := range paths {
		if !alive(cg) {
			gone[cg] = true
		}
	}
	if len(gone) == 0 {
		return 0
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	forgotten := 0
	for i, o := range s.opt {
		if !o.workload {
			continue
		}
		l := s.limiters[i]
		for value, cgs := range l.cgroups {
			for cg := range cgs {
				if gone[cg] {
					delete(cgs, cg)
				}
			}
			// A cgroup seen since the check above keeps the value.
			if len(cgs) == 0 {
				s.forget(i, value)
				forgotten++
			}
		}
	}
	return forgotten
}

// SweepInterval is how often katrace trace calls ForgetGone.
const SweepInterval = 30 * time.Second

// forget drops the series of value of opt-in label idx; s.mu is held.
func (s *Sink) forget(idx int, value string) {
	s.limiters[idx].forget(value)
	match := prometheus.Labels{s.opt[idx].name: value}
	for _, f := range s.families() {
		if f.counters != nil {
			f.counters.DeletePartialMatch(match)
			for k := range f.children {
				if k.opt[idx] == value {
					delete(f.children, k)
				}
			}
		} else {
			f.hist.DeletePartialMatch(match)
			for k := range f.observed {
				if k.opt[idx] == value {
					delete(f.observed, k)
				}
			}
		}
	}
}

func (s *Sink) families() []*family {
	return []*family{s.closes, s.resets, s.probes, s.acks, s.timeouts, s.idleCloses, s.staleReuses, s.idleSeconds}
}

// counter returns the cached child for fixed label values a and b (as
// many as the family has) and the opt-in values already in key.
func (f *family) counter(key *seriesKey, a, b string) prometheus.Counter {
	key.a, key.b = f.capFixed(a, b)
	if c, ok := f.children[*key]; ok {
		return c
	}
	c := f.counters.WithLabelValues(f.values(key)...)
	f.children[*key] = c
	return c
}

func (f *family) observer(key *seriesKey, a string) prometheus.Observer {
	key.a, key.b = f.capFixed(a, "")
	if o, ok := f.observed[*key]; ok {
		return o
	}
	o := f.hist.WithLabelValues(f.values(key)...)
	f.observed[*key] = o
	return o
}

// capFixed keeps the fixed labels bounded even if the kernel or a future
// katrace names more reasons than anyone expected.
func (f *family) capFixed(a, b string) (string, string) {
	if f.fixed == 0 {
		return "", ""
	}
	k := [2]string{a, b}
	if _, ok := f.fixedSeen[k]; ok {
		return a, b
	}
	if len(f.fixedSeen) >= f.maxFixed {
		if f.fixed == 2 {
			return a, Other
		}
		return Other, ""
	}
	f.fixedSeen[k] = struct{}{}
	return a, b
}

// values lists key's label values in the vector's label order; it runs
// only the first time a series is seen.
func (f *family) values(key *seriesKey) []string {
	var v []string
	switch f.fixed {
	case 1:
		v = append(v, key.a)
	case 2:
		v = append(v, key.a, key.b)
	}
	return append(v, key.opt[:f.optional]...)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
