package metrics

import (
	"net/netip"

	"github.com/katrace/katrace/record"
)

// limiter caps the distinct values of one opt-in label: the first max
// values seen keep their own series, later ones are counted under Other
// until Forget frees a place.
type limiter struct {
	max      int
	admitted map[string]struct{}
	// endpoints caches the formatted endpoint of an address and port, so
	// that a known endpoint costs no allocation per record.
	endpoints map[netip.AddrPort]string
	// cgroups holds, for a workload label (container, pod, namespace), the
	// cgroups each admitted value was seen in: a value whose cgroups are
	// all gone names a workload that went away (ForgetGone).
	cgroups map[string]map[string]struct{}
}

// maxCgroupsPerValue bounds the cgroups remembered for one label value (a
// namespace of many pods). A value with more may be forgotten while one of
// the cgroups not remembered lives on: its series then start again from
// zero at its next record, which rate() tolerates.
const maxCgroupsPerValue = 256

func newLimiter(max int) *limiter {
	return &limiter{max: max, admitted: map[string]struct{}{}, endpoints: map[netip.AddrPort]string{},
		cgroups: map[string]map[string]struct{}{}}
}

// admit returns value if it has, or can get, a place under the cap, else
// Other.
func (l *limiter) admit(value string) string {
	if _, ok := l.admitted[value]; ok {
		return value
	}
	if len(l.admitted) >= l.max {
		return Other
	}
	l.admitted[value] = struct{}{}
	return value
}

func (l *limiter) forget(value string) {
	delete(l.admitted, value)
	delete(l.cgroups, value)
	for k, v := range l.endpoints {
		if v == value {
			delete(l.endpoints, k)
		}
	}
}

// endpointValue labels a connection with its service end, address:port:
// the local end of a connection this host accepted, the remote end of one
// it opened, as the kernel saw it open (record.Socket.ServiceLocal).
func endpointValue(l *limiter, r *record.Record) string {
	ap := serviceEnd(&r.Sock)
	if v, ok := l.endpoints[ap]; ok {
		return v
	}
	if len(l.admitted) >= l.max {
		// Not formatted, not cached: a flood of new endpoints beyond the
		// cap costs nothing per record.
		return Other
	}
	v := "unknown"
	if ap.Addr().IsValid() {
		v = ap.String()
	}
	v = l.admit(v)
	if v != Other {
		l.endpoints[ap] = v
	}
	return v
}

func serviceEnd(s *record.Socket) netip.AddrPort {
	if s.ServiceLocal {
		return netip.AddrPortFrom(s.LAddr, s.LPort)
	}
	return netip.AddrPortFrom(s.RAddr, s.RPort)
}

// containerValue is the container's name when the kubelet gave it, else
// the 12-digit id docker and podman show; "" outside containers.
func containerValue(l *limiter, r *record.Record) string {
	w := &r.Sock.Workload
	v := w.Container
	if v == "" {
		v = w.ContainerID[:min(12, len(w.ContainerID))]
	}
	return l.admitWorkload(v, w.Cgroup)
}

// podValue is the pod's name when the kubelet gave it, else its uid.
func podValue(l *limiter, r *record.Record) string {
	w := &r.Sock.Workload
	v := w.Pod
	if v == "" {
		v = w.PodUID
	}
	return l.admitWorkload(v, w.Cgroup)
}

// namespaceValue is the pod's Kubernetes namespace, known from the kubelet.
func namespaceValue(l *limiter, r *record.Record) string {
	w := &r.Sock.Workload
	return l.admitWorkload(w.Namespace, w.Cgroup)
}

// admitWorkload admits a workload label's value and remembers the cgroup
// it was seen in. The empty value (a host process, or a name not known)
// is the one series outside every workload: it takes no place under the
// cap and is never forgotten.
func (l *limiter) admitWorkload(value, cgroup string) string {
	if value == "" {
		return ""
	}
	if value = l.admit(value); value == Other || cgroup == "" {
		return value
	}
	seen := l.cgroups[value]
	if _, ok := seen[cgroup]; ok {
		return value
	}
	if seen == nil {
		seen = map[string]struct{}{}
		l.cgroups[value] = seen
	}
	if len(seen) < maxCgroupsPerValue {
		seen[cgroup] = struct{}{}
	}
	return value
}
