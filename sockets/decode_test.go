package sockets

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/katrace/katrace/filter"
	"github.com/katrace/katrace/record"
)

func rowBytes(t *testing.T, rows ...socketsSocketRow) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rows {
		if err := binary.Write(&b, binary.NativeEndian, r); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestRowLayout(t *testing.T) {
	// bpf/sockets.h: 96 bytes, no implicit padding.
	if rowSize != 96 {
		t.Fatalf("struct socket_row is %d bytes, want 96", rowSize)
	}
	var r socketsSocketRow
	if off := unsafe.Offsetof(r.Saddr); off != 48 {
		t.Errorf("saddr at %d, want 48", off)
	}
	if n := len(rowBytes(t, r)); n != rowSize {
		t.Errorf("binary.Write gives %d bytes, want %d", n, rowSize)
	}
}

func TestDecodeRows(t *testing.T) {
	v4 := socketsSocketRow{
		Cookie: 4242, Ino: 99001, Netns: 4026532000, Uid: 1000,
		KeepaliveIdleMs: 31000, KeepaliveIntvlMs: 75000, TimerInMs: 29500, IdleMs: 1500,
		UserTimeoutMs: 21000, Flags: uint32(rowKeepOpen | rowOwnIdle | rowIdleKnown),
		Sport: 40000, Dport: 443, Family: 4, State: 1, Kind: uint8(kindFull), Timer: 3,
		KeepaliveProbes: 9, ProbesOut: 2, Retransmits: 0,
	}
	copy(v4.Saddr[:], []byte{10, 213, 44, 1})
	copy(v4.Daddr[:], []byte{10, 213, 44, 2})
	tw := socketsSocketRow{Cookie: 7, Netns: 4026532000, Family: 6, State: 6, Kind: uint8(kindTimewait), Timer: 4, TimerInMs: 59000, Sport: 5000, Dport: 80,
		Saddr: netip.MustParseAddr("fd00:213:44::1").As16(), Daddr: netip.MustParseAddr("fd00:213:44::2").As16(),
		// A timewait socket's other fields are not valid: they must be ignored.
		Flags: uint32(rowKeepOpen | rowIdleKnown), KeepaliveIdleMs: 123}
	listen := socketsSocketRow{Cookie: 8, Family: 4, State: 10, Kind: uint8(kindFull), KeepaliveIdleMs: 7200000, KeepaliveIntvlMs: 75000, KeepaliveProbes: 9}
	// A dual-stack server's accepted IPv4 connection, as the kernel
	// reports it: family 4, the IPv4 addresses, and the flag.
	mapped := socketsSocketRow{Cookie: 9, Family: 4, State: 1, Kind: uint8(kindFull), Flags: uint32(rowV4Mapped), Sport: 8080, Dport: 41000}
	copy(mapped.Saddr[:], []byte{127, 0, 0, 1})
	copy(mapped.Daddr[:], []byte{127, 0, 0, 1})
	ss, err := decodeRows(rowBytes(t, v4, tw, listen, mapped))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 4 {
		t.Fatalf("%d sockets, want 4", len(ss))
	}
	if m := ss[3]; !m.V4Mapped || m.IPv6 || m.LAddr != netip.MustParseAddr("127.0.0.1") || m.Family() != "ipv4" {
		t.Errorf("v4-mapped row: %+v", m)
	}
	if ss[0].V4Mapped || ss[1].V4Mapped {
		t.Errorf("v4_mapped set on rows without the flag: %+v %+v", ss[0], ss[1])
	}
	s := ss[0]
	if s.Cookie != 4242 || s.Inode != 99001 || s.NetNS != 4026532000 || s.UID != 1000 || s.IPv6 ||
		s.LAddr != netip.MustParseAddr("10.213.44.1") || s.RAddr != netip.MustParseAddr("10.213.44.2") ||
		s.LPort != 40000 || s.RPort != 443 || s.State != "ESTABLISHED" || s.Kind != KindFull {
		t.Errorf("identity: %+v", s)
	}
	if !s.Keepalive || s.KeepaliveIdleMs != 31000 || s.KeepaliveIntervalMs != 75000 || s.KeepaliveProbes != 9 ||
		s.KeepaliveSource != SourceSocket || strings.Join(s.KeepaliveInherited, ",") != "interval,probes" {
		t.Errorf("keepalive: %+v", s)
	}
	if s.Timer != TimerKeepalive || s.TimerInMs != 29500 || s.IdleMs != 1500 || s.UserTimeoutMs != 21000 || s.ProbesOut != 2 {
		t.Errorf("timer and times: %+v", s)
	}
	s = ss[1]
	if !s.IPv6 || s.State != "TIME_WAIT" || s.Kind != KindTimewait || s.Timer != TimerTimeWait || s.TimerInMs != 59000 ||
		s.Keepalive || s.KeepaliveIdleMs != Absent || s.IdleMs != Absent || s.KeepaliveSource != "" || s.ProbesOut != Absent ||
		s.LAddr != netip.MustParseAddr("fd00:213:44::1") {
		t.Errorf("timewait: %+v", s)
	}
	s = ss[2]
	if s.State != "LISTEN" || s.IdleMs != Absent || s.Timer != TimerNone || s.TimerInMs != Absent || s.UserTimeoutMs != Absent ||
		s.KeepaliveSource != SourceSysctl || s.KeepaliveInherited != nil {
		t.Errorf("listener: %+v", s)
	}
	if _, err := decodeRows(make([]byte, rowSize+1)); err == nil {
		t.Error("a partial row decoded")
	}
}

func TestStateName(t *testing.T) {
	for in, want := range map[uint8]string{1: "ESTABLISHED", 6: "TIME_WAIT", 10: "LISTEN", 12: "SYN_RECV", 3: "SYN_RECV", 99: "STATE_99"} {
		if got := StateName(in); got != want {
			t.Errorf("StateName(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestFilters(t *testing.T) {
	s := Socket{SocketID: record.SocketID{State: "ESTABLISHED", NetNS: 5, LPort: 40000, RPort: 443,
		LAddr: netip.MustParseAddr("10.0.0.1"), RAddr: netip.MustParseAddr("192.0.2.7")}, Keepalive: true,
		Owners: []Owner{{PID: 10, Comm: "nginx"}, {PID: 11, Comm: "nginx"}}}
	l := Socket{SocketID: record.SocketID{State: "LISTEN", NetNS: 5, LPort: 443}}
	for _, c := range []struct {
		name string
		o    Options
		s    *Socket
		want bool
	}{
		{"none", Options{}, &s, true},
		{"listener hidden", Options{}, &l, false},
		{"listener shown", Options{Listening: true}, &l, true},
		{"netns", Options{Filters: filter.Set{NetNS: 6}}, &s, false},
		{"port remote", Options{Filters: filter.Set{Ports: []uint16{80, 443}}}, &s, true},
		{"port miss", Options{Filters: filter.Set{Ports: []uint16{80}}}, &s, false},
		{"addr", Options{Filters: filter.Set{Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}, &s, true},
		{"addr miss", Options{Filters: filter.Set{Addrs: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}}}, &s, false},
		{"second owner", Options{Filters: filter.Set{PID: 11}}, &s, true},
		{"pid and comm of one owner", Options{Filters: filter.Set{PID: 11, Comm: "nginx"}}, &s, true},
		{"pid miss", Options{Filters: filter.Set{PID: 12}}, &s, false},
		{"comm miss", Options{Filters: filter.Set{Comm: "curl"}}, &s, false},
		{"keepalive only", Options{Filters: filter.Set{KeepaliveOnly: true}}, &Socket{SocketID: record.SocketID{State: "ESTABLISHED"}}, false},
	} {
		if got := c.o.selects(c.s); got != c.want {
			t.Errorf("%s: selects = %v, want %v", c.name, got, c.want)
		}
	}
}

func sampleResult() *Result {
	return &Result{
		Time:   time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC),
		Source: FromIterator,
		Sockets: []Socket{
			{SocketID: record.SocketID{Cookie: 4242, LAddr: netip.MustParseAddr("10.213.44.1"), LPort: 40000, RAddr: netip.MustParseAddr("10.213.44.2"), RPort: 7044,
				NetNS: 4026532000, State: "ESTABLISHED"}, Kind: KindFull, Inode: 99001,
				Owners:    []Owner{{PID: 300, Comm: "client"}, {PID: 301, Comm: "holder"}},
				Keepalive: true, KeepaliveIdleMs: 31000, KeepaliveIntervalMs: 75000, KeepaliveProbes: 9,
				KeepaliveSource: SourceSocket, KeepaliveInherited: []string{"interval", "probes"},
				ProbesOut: 0, Retransmits: 0, Timer: TimerKeepalive, TimerInMs: 29500, IdleMs: 1500, UserTimeoutMs: 21000},
			{SocketID: record.SocketID{Cookie: 7, IPv6: true, LAddr: netip.MustParseAddr("fd00:213:44::1"), LPort: 5000, RAddr: netip.MustParseAddr("fd00:213:44::2"), RPort: 80,
				NetNS: 4026532000, State: "TIME_WAIT"}, Kind: KindTimewait,
				KeepaliveIdleMs: Absent, KeepaliveIntervalMs: Absent, KeepaliveProbes: Absent, ProbesOut: Absent, Retransmits: Absent,
				Timer: TimerTimeWait, TimerInMs: 59000, IdleMs: Absent, UserTimeoutMs: Absent},
		},
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b.String())
	}
	want0 := `{"time":"2025-03-01T12:00:00.000000005Z","type":"socket","sock":4242,"family":"ipv4","laddr":"10.213.44.1","lport":40000,` +
		`"raddr":"10.213.44.2","rport":7044,"netns":4026532000,"state":"ESTABLISHED","pid":300,"comm":"client",` +
		`"owners":[{"pid":300,"comm":"client"},{"pid":301,"comm":"holder"}],"kind":"full","inode":99001,"uid":0,` +
		`"keepalive":true,"keepalive_idle_ms":31000,"keepalive_interval_ms":75000,"keepalive_probes":9,"keepalive_source":"socket",` +
		`"keepalive_inherited":["interval","probes"],"probes_out":0,"retransmits":0,"timer":"keepalive","timer_in_ms":29500,` +
		`"idle_ms":1500,"user_timeout_ms":21000,"source":"iterator"}`
	if lines[0] != want0 {
		t.Errorf("line 1:\n got %s\nwant %s", lines[0], want0)
	}
	var tw map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &tw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pid", "comm", "owners", "keepalive_idle_ms", "keepalive_source", "idle_ms", "user_timeout_ms", "probes_out"} {
		if _, ok := tw[k]; ok {
			t.Errorf("timewait record has %q: %s", k, lines[1])
		}
	}
	if tw["timer"] != "time_wait" || tw["timer_in_ms"] != 59000.0 || tw["family"] != "ipv6" || tw["kind"] != "timewait" {
		t.Errorf("timewait record: %s", lines[1])
	}

	// From sock_diag: the keepalive fields are unknown and said to be.
	res := sampleResult()
	res.Source, res.Unknown = FromSockDiag, sockDiagUnknown
	s := &res.Sockets[0]
	s.KeepaliveIdleMs, s.KeepaliveIntervalMs, s.KeepaliveProbes, s.KeepaliveSource, s.KeepaliveInherited, s.UserTimeoutMs = Absent, Absent, Absent, "", nil, Absent
	b.Reset()
	if err := WriteJSON(&b, res); err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(b.String(), "\n", 2)[0]), &d); err != nil {
		t.Fatal(err)
	}
	if _, ok := d["keepalive"]; ok || d["source"] != "sock_diag" || len(d["unknown"].([]any)) != len(sockDiagUnknown) {
		t.Errorf("sock_diag record: %v", d)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"STATE", "LOCAL", "REMOTE", "OWNER", "KEEPALIVE", "IDLE/INTVL/CNT", "SOURCE", "PROBES", "TIMER", "IDLE", "USER_TIMEOUT", "NETNS", "SOCK"},
		{"ESTABLISHED", "10.213.44.1:40000", "10.213.44.2:7044", "300/client,+1", "on", "31.0s/1m15s/9", "socket+sysctl(interval,probes)", "0", "keepalive", "in", "29.5s", "1.5s", "21.0s", "4026532000", "4242"},
		{"TIME_WAIT", "[fd00:213:44::1]:5000", "[fd00:213:44::2]:80", "(timewait)", "-", "-", "-", "-", "time_wait", "in", "59.0s", "-", "-", "4026532000", "7"},
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d:\n got %q\nwant %q", i+1, got, want)
		}
	}
	// Aligned: every row's columns start where the header's do.
	if strings.Index(lines[0], "OWNER") != strings.Index(lines[1], "300/") {
		t.Errorf("columns not aligned:\n%s", b.String())
	}
	res := sampleResult()
	res.Source, res.Unknown = FromSockDiag, sockDiagUnknown
	b.Reset()
	if err := WriteText(&b, res); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "# from sock_diag") || !strings.Contains(b.String(), "unknown: keepalive,") {
		t.Errorf("sock_diag note missing:\n%s", b.String())
	}
}

func TestDecodeDiagMsg(t *testing.T) {
	ne := binary.NativeEndian
	msg := make([]byte, inetDiagMsgSize)
	msg[0], msg[1], msg[2], msg[3] = 2, 1, 2, 0 // AF_INET, ESTABLISHED, keepalive timer
	binary.BigEndian.PutUint16(msg[4:], 40000)
	binary.BigEndian.PutUint16(msg[6:], 443)
	copy(msg[8:], []byte{10, 0, 0, 1})
	copy(msg[24:], []byte{192, 0, 2, 7})
	ne.PutUint32(msg[44:], 0x1002)
	ne.PutUint32(msg[48:], 0x1)
	ne.PutUint32(msg[52:], 29500) // expires
	ne.PutUint32(msg[64:], 1000)  // uid
	ne.PutUint32(msg[68:], 99001) // inode
	info := make([]byte, 232)
	info[tcpiProbes] = 1
	ne.PutUint32(info[tcpiLastDataSent:], 4000)
	ne.PutUint32(info[tcpiLastDataRecv:], 2500)
	attr := make([]byte, 4+len(info))
	ne.PutUint16(attr[0:], uint16(len(attr)))
	ne.PutUint16(attr[2:], inetDiagInfo)
	copy(attr[4:], info)
	s, ok := decodeDiagMsg(append(msg, attr...), 77)
	if !ok {
		t.Fatal("not decoded")
	}
	if s.Cookie != 0x1_0000_1002 || s.LPort != 40000 || s.RPort != 443 || s.LAddr != netip.MustParseAddr("10.0.0.1") ||
		s.RAddr != netip.MustParseAddr("192.0.2.7") || s.NetNS != 77 || s.UID != 1000 || s.Inode != 99001 || s.State != "ESTABLISHED" {
		t.Errorf("identity: %+v", s)
	}
	if s.Timer != TimerKeepalive || s.TimerInMs != 29500 || s.ProbesOut != 1 || s.IdleMs != 2500 ||
		s.KeepaliveIdleMs != Absent || s.KeepaliveSource != "" || s.UserTimeoutMs != Absent {
		t.Errorf("fields: %+v", s)
	}
}

// A dual-stack IPv6 socket talking IPv4, from sock_diag: reported as IPv4
// like the iterator does, a listener on [::] stays IPv6.
func TestDecodeDiagMsgV4Mapped(t *testing.T) {
	msg := func(laddr, raddr string, state byte) []byte {
		b := make([]byte, inetDiagMsgSize)
		b[0], b[1] = 10, state // AF_INET6
		binary.BigEndian.PutUint16(b[4:], 8080)
		binary.BigEndian.PutUint16(b[6:], 41000)
		l, r := netip.MustParseAddr(laddr).As16(), netip.MustParseAddr(raddr).As16()
		copy(b[8:], l[:])
		copy(b[24:], r[:])
		return b
	}
	s, ok := decodeDiagMsg(msg("::ffff:10.213.9.2", "::ffff:10.213.9.1", 1), 5)
	if !ok {
		t.Fatal("not decoded")
	}
	if s.IPv6 || !s.V4Mapped || s.LAddr != netip.MustParseAddr("10.213.9.2") || s.RAddr != netip.MustParseAddr("10.213.9.1") {
		t.Errorf("mapped: %+v", s)
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, &Result{Sockets: []Socket{s}, Source: FromSockDiag}); err != nil {
		t.Fatal(err)
	}
	if line := b.String(); !strings.Contains(line, `"family":"ipv4","v4_mapped":true,"laddr":"10.213.9.2"`) {
		t.Errorf("JSON of a mapped socket: %s", line)
	}
	s, _ = decodeDiagMsg(msg("::", "::", 10), 5)
	if !s.IPv6 || s.V4Mapped {
		t.Errorf("listener on [::]: %+v", s)
	}
}
