package main

import (
	"net"
	"strings"
	"testing"
)

func TestAgentUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"trace", "-o", "none"}, "--metrics-addr"},
		{[]string{"trace", "-o", "none", "--metrics-addr", "127.0.0.1:9431", "-w", "/tmp/x"}, "--file"},
		{[]string{"trace", "--metrics-addr", "9431"}, "HOST:PORT"},
		{[]string{"trace", "--metrics-labels", "endpoint"}, "needs --metrics-addr"},
		{[]string{"trace", "--metrics-addr", ":9431", "--metrics-labels", "pid"}, "unknown label"},
		{[]string{"trace", "--metrics-addr", ":9431", "--metrics-labels", "port"}, "unknown label"},
		{[]string{"trace", "--metrics-addr", ":9431", "--metrics-max-series", "0"}, "at least 1"},
		{[]string{"trace", "--file-max-size", "10M"}, "give --file"},
		{[]string{"trace", "-w", "/tmp/x", "--file-max-size", "ten"}, "want a size"},
		{[]string{"trace", "-w", "/tmp/x", "--file-max-size", "10M", "--file-max-backups", "0"}, "at least 1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runArgs(t, tc.args...)
			if code != exitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.says) {
				t.Errorf("exit %d, stderr %q; want exit %d and one line mentioning %q", code, stderr, exitUsage, tc.says)
			}
		})
	}
}

func TestParseFileSize(t *testing.T) {
	for in, want := range map[string]int64{"100M": 100 << 20, "512K": 512 << 10, "1G": 1 << 30, "4096": 4096, "10MiB": 10 << 20, "0": 0, "2kb": 2048} {
		if got, err := parseFileSize(in); err != nil || got != want {
			t.Errorf("parseFileSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1T", "lots", "1.5M"} {
		if _, err := parseFileSize(in); err == nil {
			t.Errorf("parseFileSize(%q) accepted", in)
		}
	}
}

func TestAgentFlagsInHelp(t *testing.T) {
	code, out, _ := runArgs(t, "trace", "--help")
	if code != 0 {
		t.Fatalf("trace --help: exit %d", code)
	}
	for _, flag := range []string{"--metrics-addr", "--metrics-labels", "--metrics-max-series", "--file-max-size", "--file-max-backups", "none"} {
		if !strings.Contains(out, flag) {
			t.Errorf("trace --help does not mention %s", flag)
		}
	}
}

// A metrics port already taken fails at once, before any tracing, in one
// line and with exit 1 (a runtime failure, not a usage error).
func TestMetricsPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stdout, stderr := runArgs(t, "trace", "-o", "none", "--metrics-addr", ln.Addr().String())
	if code != exitFailure || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "listening for metrics") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and one line about listening", code, stdout, stderr)
	}
}
