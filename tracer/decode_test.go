package tracer

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
	"unsafe"
)

// encodeEvent is decodeEvent's inverse, by reflection-free binary.Write of
// the generated struct: it is what the kernel's struct event looks like.
func encodeEvent(t testing.TB, e *katraceEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encodeStateEvent is e's state change as the kernel sends it, a struct
// state_event.
func encodeStateEvent(t testing.TB, e *katraceEvent) []byte {
	t.Helper()
	s := katraceStateEvent{
		TsNs: e.TsNs, Cookie: e.Cookie, CgroupId: e.CgroupId, Pid: e.Pid, Netns: e.Netns,
		SockIno: e.SockIno, Requests: e.Requests, Saddr: e.Saddr, Daddr: e.Daddr,
		Sport: e.Sport, Dport: e.Dport, Flags: e.Flags, Family: e.Family, State: e.State,
		OldState: e.OldState, Role: e.Role, Proto: e.Proto, InFilteredCgroup: e.InFilteredCgroup,
		Comm: e.Comm,
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// patternedEvent is a struct event whose every byte is distinct and
// non-zero: a field decodeEvent forgets, or reads at another field's
// offset, shows.
func patternedEvent() []byte { return patterned(eventSize) }

func patterned(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i%255 + 1)
	}
	return b
}

// checkStateEvent says whether e is what decodeEvent should make of the
// struct state_event raw: its fields under their struct event names, kind
// EV_STATE, every other field zero.
func checkStateEvent(t *testing.T, raw []byte, e *katraceEvent) {
	t.Helper()
	var s katraceStateEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &s); err != nil {
		t.Fatal(err)
	}
	want := katraceEvent{Kind: evState}
	sv, wv := reflect.ValueOf(s), reflect.ValueOf(&want).Elem()
	for i := range sv.NumField() {
		name := sv.Type().Field(i).Name
		if name == "_" || name == "Pad" {
			continue
		}
		f := wv.FieldByName(name)
		if !f.IsValid() {
			t.Fatalf("struct state_event's %s is not a struct event field", name)
		}
		f.Set(sv.Field(i))
	}
	if *e != want {
		t.Fatalf("decoded\n%+v\nwant\n%+v", *e, want)
	}
}

func TestEventLayout(t *testing.T) {
	// struct event in bpf/katrace.h: no implicit padding (bpf2go would
	// turn it into _ fields that binary.Write fills with zeros).
	raw := patternedEvent()
	var e katraceEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &e); err != nil {
		t.Fatal(err)
	}
	if got := encodeEvent(t, &e); !bytes.Equal(got, raw) {
		t.Fatalf("struct event has bytes no field covers:\n%v\nwant\n%v", got, raw)
	}
}

func TestStateEventLayout(t *testing.T) {
	raw := patterned(stateEventSize)
	var s katraceStateEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &s); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Fatal("struct state_event has bytes no field covers")
	}
	if stateEventSize >= eventSize {
		t.Fatalf("struct state_event (%d bytes) is no smaller than struct event (%d)", stateEventSize, eventSize)
	}
}

// TestDecodeStateEvent: a sample of struct state_event's size is a state
// change, every field under its struct event name.
func TestDecodeStateEvent(t *testing.T) {
	raw := patterned(stateEventSize)
	e := katraceEvent{BytesSent: 99, Kind: evClose}
	if err := decodeEvent(raw, &e); err != nil {
		t.Fatal(err)
	}
	checkStateEvent(t, raw, &e)
	if e.Cookie == 0 || e.Sport == 0 || e.Comm[0] == 0 || e.CgroupId == 0 {
		t.Fatalf("fields decoded as zero from non-zero bytes: %+v", e)
	}
	if n := testing.AllocsPerRun(100, func() { _ = decodeEvent(raw, &e) }); n != 0 {
		t.Fatalf("decoding a state event allocates %v times", n)
	}
}

// TestDecodeEveryField compares decodeEvent with binary.Read of the
// generated struct, field by field, on an event with no zero byte.
func TestDecodeEveryField(t *testing.T) {
	raw := patternedEvent()
	var want, got katraceEvent
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &want); err != nil {
		t.Fatal(err)
	}
	if err := decodeEvent(raw, &got); err != nil {
		t.Fatal(err)
	}
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	for i := range wv.NumField() {
		f := wv.Type().Field(i)
		if f.Name == "_" {
			continue
		}
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("field %s: decoded %v, want %v", f.Name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
		if gv.Field(i).IsZero() {
			t.Errorf("field %s decoded as zero from non-zero bytes", f.Name)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	in := katraceEvent{
		TsNs: 1, Cookie: 2, BytesSent: 3, BytesReceived: 4, StartNs: 5, FinNs: 6,
		Pid: 7, Netns: 8, KeepaliveIdleMs: 9, KeepaliveIntvlMs: 10, SinceSendMs: 11,
		SinceRecvMs: 12, SinceAckMs: 13, FinIdleMs: 14, Reason: 15, SkErr: -16,
		Unacked: 17, ProbeRttMs: 18, WrittenAfterFin: 19, SockIno: 20,
		Sport: 21, Dport: 22, Flags: 23, Kind: 24, Family: 25, State: 26, OldState: 27,
		ProbesBefore: 28, ProbesAfter: 29, KeepaliveProbes: 30, FinSide: 31,
		AckedProbes: 32, StateBeforeTimer: 33, Unread: 34, Role: 35, Proto: 36, InFilteredCgroup: 37, Pad: 38, Requests: 39, Pad2: 40, CgroupId: 41,
	}
	for i := range in.Saddr {
		in.Saddr[i] = byte(100 + i)
		in.Daddr[i] = byte(200 + i)
	}
	copy(in.Comm[:], []int8{'c', 'u', 'r', 'l'})
	var out katraceEvent
	if err := decodeEvent(encodeEvent(t, &in), &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("decoded\n%+v\nwant\n%+v", out, in)
	}
}

func TestDecodeShort(t *testing.T) {
	var e katraceEvent
	if err := decodeEvent(make([]byte, eventSize-1), &e); err == nil {
		t.Fatal("a short sample decoded")
	}
}

func TestDecodeAllocs(t *testing.T) {
	b := encodeEvent(t, &katraceEvent{Kind: evClose})
	var e katraceEvent
	if n := testing.AllocsPerRun(100, func() { _ = decodeEvent(b, &e) }); n != 0 {
		t.Fatalf("decodeEvent allocates %v times", n)
	}
}

// FuzzDecode: any bytes decode or are refused, and what decodes re-encodes
// to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, eventSize))
	f.Add(patternedEvent())
	for _, kind := range []uint8{evState, evIdleFin, evClose, evResetSent, evResetReceived, evError, evKeepalive} {
		raw := patternedEvent()
		raw[unsafe.Offsetof(katraceEvent{}.Kind)] = kind
		f.Add(raw)
	}
	f.Add(encodeEvent(f, &katraceEvent{Kind: evKeepalive, ProbesAfter: 1, Family: 6}))
	f.Add(patterned(stateEventSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e katraceEvent
		if len(b) == stateEventSize {
			if err := decodeEvent(b, &e); err != nil {
				t.Fatalf("refused a state event: %v", err)
			}
			checkStateEvent(t, b, &e)
			c := NewCorrelator(CorrelatorConfig{AllCloses: true, States: true}, &memSink{})
			_ = c.Handle(&e)
			return
		}
		if err := decodeEvent(b, &e); err != nil {
			if len(b) >= eventSize {
				t.Fatalf("refused %d bytes: %v", len(b), err)
			}
			return
		}
		if got := encodeEvent(t, &e); !bytes.Equal(got, b[:eventSize]) {
			t.Fatalf("round trip differs")
		}
		// The correlator takes any decoded event without panicking.
		c := NewCorrelator(CorrelatorConfig{AllCloses: true, States: true}, &memSink{})
		_ = c.Handle(&e)
		_ = c.SettlePendingCloses()
	})
}

func BenchmarkDecode(b *testing.B) {
	raw := encodeEvent(b, &katraceEvent{Kind: evClose, Family: 4})
	var e katraceEvent
	b.ReportAllocs()
	for b.Loop() {
		_ = decodeEvent(raw, &e)
	}
}
