package tracer

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/katrace/katrace/record"
)

// summary learns, from the idle closes it sees, the idle timeout each
// service uses: a service is the local end of an accepted connection or the
// remote end of one this host opened.
type summary struct {
	endpoints map[string]*endpointStats
}

type endpointStats struct {
	endpoint string
	// Idle closes made by this host's end, and by the other end.
	local, remote int
	// Idle times of the closes the service itself made (its timeout), or
	// of all closes when it made none; bounded.
	byService, all []int64
	staleReuses    int
	// Flows forgotten after idle, the shortest such idle, and the
	// keepalive their sockets had.
	forgotten, forgottenKeepaliveOff         int
	forgottenIdleMin, forgottenKeepaliveIdle int64
	// workload serves the endpoint, when it runs on this host.
	workload record.Workload
}

const (
	maxEndpoints       = 4096
	maxSamplesEndpoint = 8192
)

// service names the service end of the event's connection.
func service(e *katraceEvent) (addr netip.Addr, port uint16, local bool) {
	l, r := eventAddrs(e)
	if serviceIsLocal(e.Role, e.Sport, e.Dport) {
		return l, e.Sport, true
	}
	return r, e.Dport, false
}

// serviceIsLocal says whether the local end of a connection is the
// service: it is when the socket was accepted (rolePassive), it is not when
// this host opened it (roleActive). For a socket not seen opening, the
// lower port is the likelier service (clients use high ephemeral ports).
func serviceIsLocal(role uint8, lport, rport uint16) bool {
	switch role {
	case rolePassive:
		return true
	case roleActive:
		return false
	}
	return lport != 0 && lport < rport
}

func eventAddrs(e *katraceEvent) (local, remote netip.Addr) {
	if e.Family == 6 {
		return netip.AddrFrom16(e.Saddr).Unmap(), netip.AddrFrom16(e.Daddr).Unmap()
	}
	return netip.AddrFrom4([4]byte(e.Saddr[:4])), netip.AddrFrom4([4]byte(e.Daddr[:4]))
}

func (s *summary) stats(e *katraceEvent) (*endpointStats, bool) {
	addr, port, local := service(e)
	key := netip.AddrPortFrom(addr, port).String()
	st := s.endpoints[key]
	if st == nil {
		if s.endpoints == nil {
			s.endpoints = map[string]*endpointStats{}
		}
		if len(s.endpoints) >= maxEndpoints {
			return nil, local
		}
		st = &endpointStats{endpoint: key}
		s.endpoints[key] = st
	}
	return st, local
}

func (s *summary) idleClose(e *katraceEvent) {
	st, serviceIsLocal := s.stats(e)
	if st == nil {
		return
	}
	byLocal := e.FinSide == finLocal
	if byLocal {
		st.local++
	} else {
		st.remote++
	}
	idle := int64(e.FinIdleMs)
	if len(st.all) < maxSamplesEndpoint {
		st.all = append(st.all, idle)
	}
	if byLocal == serviceIsLocal && len(st.byService) < maxSamplesEndpoint {
		st.byService = append(st.byService, idle)
	}
}

// forgotten counts a flow to the event's service that was forgotten after
// idleMs of silence, with the keepalive its socket had.
func (s *summary) forgotten(e *katraceEvent, idleMs int64) {
	st, _ := s.stats(e)
	if st == nil {
		return
	}
	if st.forgotten == 0 || idleMs < st.forgottenIdleMin {
		st.forgottenIdleMin = idleMs
	}
	st.forgotten++
	if e.Flags&flagKeepOpen == 0 {
		st.forgottenKeepaliveOff++
	} else {
		st.forgottenKeepaliveIdle = max(st.forgottenKeepaliveIdle, int64(e.KeepaliveIdleMs))
	}
}

func (s *summary) staleReuse(e *katraceEvent) {
	if st, _ := s.stats(e); st != nil {
		st.staleReuses++
	}
}

// serviceWorkload remembers the container or pod behind the endpoint when
// the event's socket is the service's own end.
func (s *summary) serviceWorkload(e *katraceEvent, w *record.Workload) {
	if !w.Known() {
		return
	}
	if st, local := s.stats(e); st != nil && local && !st.workload.Known() {
		st.workload = *w
	}
}

// percentile of sorted samples (nearest rank).
func percentile(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return record.Absent
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i, 1)-1]
}

// write writes one summary record per service seen closing idle
// connections, the busiest first; r is reused for each.
func (s *summary) write(sink record.Sink, now time.Time, r *record.Record) error {
	list := make([]*endpointStats, 0, len(s.endpoints))
	for _, st := range s.endpoints {
		if st.local+st.remote > 0 || st.staleReuses > 0 || st.forgotten > 0 {
			list = append(list, st)
		}
	}
	slices.SortFunc(list, func(a, b *endpointStats) int {
		if d := (b.local + b.remote) - (a.local + a.remote); d != 0 {
			return d
		}
		return strings.Compare(a.endpoint, b.endpoint)
	})
	for _, st := range list {
		samples := st.byService
		if len(samples) == 0 {
			samples = st.all
		}
		slices.Sort(samples)
		r.Reset()
		r.Time = now
		r.Type = record.TypeSummary
		r.Endpoint = st.endpoint
		r.IdleClosesLocal = st.local
		r.IdleClosesRemote = st.remote
		r.IdleMsP50 = percentile(samples, 50)
		r.IdleMsP90 = percentile(samples, 90)
		r.StaleReuses = st.staleReuses
		r.ForgottenFlows = st.forgotten
		r.ForgottenIdleMsMin = st.forgottenIdleMin
		r.ForgottenKeepaliveOff = st.forgottenKeepaliveOff
		if st.forgottenKeepaliveIdle > 0 {
			r.ForgottenKeepaliveIdleMs = st.forgottenKeepaliveIdle
		}
		r.EndpointWorkload = st.workload
		if err := sink.Write(r); err != nil {
			return err
		}
	}
	return nil
}
