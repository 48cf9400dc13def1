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
}

func newLimiter(max int) *limiter {
	return &limiter{max: max, admitted: map[string]struct{}{}, endpoints: map[netip.AddrPort]string{}}
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
	for k, v := range l.endpoints {
		if v == value {
			delete(l.endpoints, k)
		}
	}
}

// endpointValue labels a connection with its service end, address:port:
// the local end of a connection this host accepted, the remote end of one
// it opened. Records do not say which end opened, so, like the summary
// for connections it did not see open, it takes the lower port as the
// service (clients use high ephemeral ports).
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
	if s.LPort != 0 && s.LPort < s.RPort {
		return netip.AddrPortFrom(s.LAddr, s.LPort)
	}
	return netip.AddrPortFrom(s.RAddr, s.RPort)
}
