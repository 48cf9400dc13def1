package kernel

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const sampleConfig = `#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_NO_HZ=y
# CONFIG_HZ_100 is not set
CONFIG_HZ_250=y
CONFIG_HZ=250
CONFIG_HZ_PERIODIC_NOT=1000
`

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseConfigHZ(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		want    uint32
		wantErr string
	}{
		{"plain", []byte(sampleConfig), 250, ""},
		{"gzip", gzipped(t, strings.ReplaceAll(sampleConfig, "CONFIG_HZ=250", "CONFIG_HZ=1000")), 1000, ""},
		{"only the choice symbol", []byte("CONFIG_HZ_300=y\n"), 0, "no CONFIG_HZ line"},
		{"empty (hidden with /dev/null)", nil, 0, "no CONFIG_HZ line"},
		{"not a number", []byte("CONFIG_HZ=fast\n"), 0, "not a tick rate"},
		{"zero", []byte("CONFIG_HZ=0\n"), 0, "not a tick rate"},
		{"corrupt gzip", []byte{0x1f, 0x8b, 0, 1, 2}, 0, "gunzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfigHZ(bytes.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %d, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestConfigHZFallsThroughFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "config.gz")
	empty := filepath.Join(dir, "empty")
	boot := filepath.Join(dir, "config-6.1.0")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(boot, []byte("CONFIG_HZ=300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hz, from, err := configHZ([]string{missing, empty, boot})
	if err != nil || hz != 300 || from != boot {
		t.Fatalf("got %d from %q, %v; want 300 from %s", hz, from, err, boot)
	}
	_, _, err = configHZ([]string{missing, empty})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "no CONFIG_HZ line") {
		t.Fatalf("want an error naming both files' problems, got %v", err)
	}
}

func TestHZFromPrefersConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, gzipped(t, sampleConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	measured := false
	measure := func() (uint32, error) { measured = true; return 1000, nil }
	hz, src, err := hzFrom([]string{cfg}, measure)
	if err != nil || hz != 250 || src != HZFromConfig || measured {
		t.Fatalf("got %d %q %v (measured %v); want 250 from config without measuring", hz, src, err, measured)
	}
	hz, src, err = hzFrom([]string{filepath.Join(dir, "none")}, measure)
	if err != nil || hz != 1000 || src != HZFromMeasured {
		t.Fatalf("got %d %q %v; want 1000 measured", hz, src, err)
	}
	_, _, err = hzFrom([]string{filepath.Join(dir, "none")}, func() (uint32, error) { return 0, errors.New("no CAP_BPF") })
	if err == nil || !strings.Contains(err.Error(), "no CAP_BPF") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("want both reasons, got %v", err)
	}
}

// fakeKernel simulates jiffies at a given rate against a fake clock
// that advances by step per clock read. Stalls add time at chosen clock
// reads, as a preempted thread would see; slice stalls the thread every
// slice of time for away (as long again when zero), as the scheduler does
// on a CPU shared with busy tasks. lateTicks delays the update of chosen jiffies values, as a
// timer interrupt held off would.
type fakeKernel struct {
	hz        float64
	now       time.Duration
	step      time.Duration
	reads     int
	stalls    map[int]time.Duration
	slice     time.Duration
	away      time.Duration
	nextSlice time.Duration
	lateTicks map[int64]time.Duration
}

func (k *fakeKernel) clock() time.Duration {
	k.reads++
	k.now += k.step + k.stalls[k.reads]
	if k.slice > 0 && k.now >= k.nextSlice {
		if k.nextSlice > 0 && k.away > 0 {
			k.now += k.away
		} else if k.nextSlice > 0 {
			k.now += k.slice
		}
		k.nextSlice = k.now + k.slice
	}
	return k.now
}

func (k *fakeKernel) jiffies() (uint32, error) {
	n := int64(k.now.Seconds() * k.hz)
	if late, ok := k.lateTicks[n]; ok {
		tickAt := time.Duration(float64(n) / k.hz * float64(time.Second))
		if k.now < tickAt+late {
			n--
		}
	}
	return uint32(4_294_967_000 + n), nil // wraps during the test
}

func TestMeasureFromEdges(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		name string
		k    fakeKernel
		want uint32 // 0: refused
	}{
		{"100", fakeKernel{hz: 100, step: 2 * us}, 100},
		{"250", fakeKernel{hz: 250, step: 2 * us}, 250},
		{"300", fakeKernel{hz: 300, step: 2 * us}, 300},
		{"1000", fakeKernel{hz: 1000, step: 2 * us}, 1000},
		{"250 preempted once for 2ms", fakeKernel{hz: 250, step: 2 * us, stalls: map[int]time.Duration{2500: 2 * time.Millisecond}}, 250},
		{"1000 preempted twice", fakeKernel{hz: 1000, step: 2 * us, stalls: map[int]time.Duration{700: 700 * us, 3000: 1500 * us}}, 1000},
		{"250 sharing the CPU in 3ms slices", fakeKernel{hz: 250, step: 2 * us, slice: 3 * time.Millisecond}, 250},
		{"300 sharing the CPU in 1.3ms slices", fakeKernel{hz: 300, step: 2 * us, slice: 1300 * us}, 300},
		{"250 with a quarter of a CPU", fakeKernel{hz: 250, step: 2 * us, slice: 1500 * us, away: 4500 * us}, 250},
		{"250 running one tick in three", fakeKernel{hz: 250, step: 2 * us, slice: 4 * time.Millisecond, away: 8 * time.Millisecond}, 250},
		{"1000 with a fifth of a CPU", fakeKernel{hz: 1000, step: 2 * us, slice: 1100 * us, away: 4400 * us}, 1000},
		{"100 one tick 3ms late", fakeKernel{hz: 100, step: 2 * us, lateTicks: map[int64]time.Duration{2: 3 * time.Millisecond}}, 100},
		{"300 slow polls (emulated CPU)", fakeKernel{hz: 300, step: 40 * us}, 300},
		{"1000 slow polls (emulated CPU)", fakeKernel{hz: 1000, step: 60 * us}, 1000},
		{"275 is no kernel's HZ", fakeKernel{hz: 275, step: 2 * us}, 0},
		{"10 is too slow to see in time", fakeKernel{hz: 10, step: 2 * us}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.k
			got, err := measureJiffies(k.jiffies, k.clock)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("got %d, want a refusal", got)
				}
				t.Log(err)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
			if limit := 100 * time.Millisecond; k.away == 0 && k.now > limit {
				t.Errorf("took %v of fake time, want at most %v", k.now, limit)
			}
			if tc.want == 100 && tc.k.lateTicks == nil && k.now > 50*time.Millisecond {
				t.Errorf("took %v at HZ=100, want at most 50ms", k.now)
			}
		})
	}
}

// TestMeasuredHZMatchesKernel loads the jiffies program for real and
// compares the measured rate with CONFIG_HZ, and with the resolution of
// CLOCK_MONOTONIC_COARSE, which the kernel defines as one tick.
func TestMeasuredHZMatchesKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF) to load the jiffies program")
	}
	start := time.Now()
	got, err := measureHZ()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured HZ=%d in %v", got, took)
	var res unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &res); err != nil {
		t.Fatal(err)
	}
	if tick := uint32((time.Second + time.Duration(res.Nano())/2) / time.Duration(res.Nano())); tick != got {
		t.Errorf("measured HZ=%d, CLOCK_MONOTONIC_COARSE resolution %dns says %d", got, res.Nano(), tick)
	}
	if cfg, from, err := configHZ(configPaths()); err == nil {
		if cfg != got {
			t.Errorf("measured HZ=%d, %s says CONFIG_HZ=%d", got, from, cfg)
		}
	} else {
		t.Logf("no config to compare with: %v", err)
	}
	if took > 200*time.Millisecond {
		t.Errorf("measuring took %v, want well under 200ms", took)
	}
}
