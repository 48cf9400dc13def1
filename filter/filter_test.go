package filter

import (
	"net/netip"
	"testing"
)

func TestMatch(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	other := netip.MustParseAddr("fd00::1")
	net24 := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

	var all Set
	if all.ByOwner() || !all.MatchOwner(1, "x") || !all.MatchNetNS(5) || !all.MatchPorts(1, 2) || !all.MatchAddrs(v4, other) {
		t.Error("the zero Set must pass everything and select by nothing")
	}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"pid", (&Set{PID: 11}).MatchOwner(11, "nginx"), true},
		{"pid miss", (&Set{PID: 11}).MatchOwner(12, "nginx"), false},
		{"pid and comm", (&Set{PID: 11, Comm: "nginx"}).MatchOwner(11, "nginx"), true},
		{"comm miss", (&Set{PID: 11, Comm: "curl"}).MatchOwner(11, "nginx"), false},
		{"by owner", (&Set{Comm: "curl"}).ByOwner(), true},
		{"netns", (&Set{NetNS: 5}).MatchNetNS(5), true},
		{"netns miss", (&Set{NetNS: 5}).MatchNetNS(6), false},
		{"port at the remote end", (&Set{Ports: []uint16{80, 443}}).MatchPorts(40000, 443), true},
		{"port miss", (&Set{Ports: []uint16{80}}).MatchPorts(40000, 443), false},
		{"addr", (&Set{Addrs: net24}).MatchAddrs(other, v4), true},
		{"mapped addr", (&Set{Addrs: net24}).MatchAddrs(mapped, other), true},
		{"addr miss", (&Set{Addrs: net24}).MatchAddrs(other, other), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
