package tracer

import (
	"net/netip"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

// A dual-stack server's accepted IPv4 connection arrives as family 4 with
// EVF_V4_MAPPED: its records say v4_mapped, carry the IPv4 addresses its
// client's records carry, and the summary keeps one endpoint for both.
func TestV4MappedServerAndClientShareOneEndpoint(t *testing.T) {
	sink := &memSink{}
	c := NewCorrelator(defaults, sink)
	server := sock{cookie: 1, start: 1e12}.ev(evIdleFin, 2000, 4)
	server.Flags |= flagV4Mapped
	server.Role, server.FinSide, server.FinIdleMs = rolePassive, finLocal, 2000
	server.Sport, server.Dport = 8080, 41000
	copy(server.Saddr[:], []byte{10, 213, 0, 2})
	copy(server.Daddr[:], []byte{10, 213, 0, 1})
	client := sock{cookie: 2, start: 1e12}.ev(evIdleFin, 2000, 8)
	client.Role, client.FinSide, client.FinIdleMs = roleActive, finRemote, 2000
	client.Sport, client.Dport = 41000, 8080
	for _, e := range []*katraceEvent{&server, &client} {
		if err := c.Handle(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WriteSummary(time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	var summaries []string
	for _, r := range sink.recs {
		switch {
		case r.Type == record.TypeSummary:
			summaries = append(summaries, r.Endpoint)
		case r.Sock.Cookie == 1:
			if !r.Sock.V4Mapped || r.Sock.IPv6 || r.Sock.LAddr != netip.MustParseAddr("10.213.0.2") || !r.Sock.ServiceLocal {
				t.Errorf("server side: %+v", r.Sock)
			}
		case r.Sock.Cookie == 2:
			if r.Sock.V4Mapped || r.Sock.RAddr != netip.MustParseAddr("10.213.0.2") || r.Sock.ServiceLocal {
				t.Errorf("client side: %+v", r.Sock)
			}
		}
	}
	if len(summaries) != 1 || summaries[0] != "10.213.0.2:8080" {
		t.Errorf("summary endpoints %q, want one, 10.213.0.2:8080", summaries)
	}
}

// The kernel's role decides which end is the service, whatever the ports;
// the lower port only when the role is unknown.
func TestServiceIsLocal(t *testing.T) {
	for _, c := range []struct {
		role         uint8
		lport, rport uint16
		want         bool
	}{
		{rolePassive, 50000, 443, true}, // a service on a high port, its client on a low one
		{roleActive, 80, 50000, false},  // a client bound to a low port
		{0, 443, 50000, true},
		{0, 50000, 443, false},
		{0, 0, 443, false},
	} {
		if got := serviceIsLocal(c.role, c.lport, c.rport); got != c.want {
			t.Errorf("serviceIsLocal(role %d, %d, %d) = %v, want %v", c.role, c.lport, c.rport, got, c.want)
		}
	}
}
