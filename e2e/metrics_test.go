package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// prometheusServer is Debian's prometheus scraping one target every second.
type prometheusServer struct {
	addr string
}

func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	err := os.WriteFile(config, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: katrace
    static_configs:
      - targets: [%q]
`, target)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ps := &prometheusServer{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cmd := exec.Command("prometheus",
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+ps.addr,
		"--log.level=warn")
	cmd.Stderr = &testLogWriter{t: t, prefix: "prometheus: "}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	eventually(t, "prometheus to be ready", 30*time.Second, nil, func() (bool, string) {
		_, err := httpGet("http://" + ps.addr + "/-/ready")
		return err == nil, fmt.Sprint(err)
	})
	return ps
}

// query returns the value of the single series an instant query gives,
// or -1 when it gives none.
func (ps *prometheusServer) query(q string) (float64, error) {
	body, err := httpGet("http://" + ps.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	var resp struct {
		Status string
		Data   struct {
			Result []struct {
				Value []any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return 0, fmt.Errorf("%q: %w", body, err)
	}
	if resp.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", q, body)
	}
	if len(resp.Data.Result) == 0 {
		return -1, nil
	}
	if len(resp.Data.Result) > 1 || len(resp.Data.Result[0].Value) != 2 {
		return 0, fmt.Errorf("query %s: want one series: %s", q, body)
	}
	s, _ := resp.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// TestMetricsPrometheus: katrace as a metrics-only daemon (-o none), a
// real Prometheus scraping it, a keepalive timeout; Prometheus then holds
// the timeout and the close with its cause, and promtool finds nothing to
// say about katrace's exposition.
func TestMetricsPrometheus(t *testing.T) {
	requirePrivileges(t)
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("metrics end-to-end test: needs Debian's prometheus package (prometheus and promtool)")
	}
	p := newPair(t)
	bin := buildKatrace(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startKatrace(t, []string{bin}, "trace", "-o", "none", "--metrics-addr", metricsAddr,
		"--netns", strconv.Itoa(int(p.clientIno)))
	metricsURL := "http://" + metricsAddr + "/metrics"
	eventually(t, "katrace_build_info (every program attached)", 30*time.Second, d, func() (bool, string) {
		text, err := httpGet(metricsURL)
		return err == nil && strings.Contains(text, "katrace_build_info{"), fmt.Sprint(err)
	})
	if out := d.stdoutRecords(func(rec) bool { return true }); len(out) != 0 {
		t.Errorf("-o none wrote %d records to stdout", len(out))
	}
	ps := startPrometheus(t, metricsAddr)
	eventually(t, "the first scrape", 30*time.Second, d, func() (bool, string) {
		v, err := ps.query(`up{job="katrace"}`)
		return err == nil && v == 1, fmt.Sprintf("up=%v err=%v", v, err)
	})

	_, _ = keepaliveTimeout(t, p, "18291")

	for _, q := range []string{
		`katrace_keepalive_timeouts_total`,
		`katrace_connection_closes_total{cause="keepalive_timeout"}`,
		`katrace_keepalive_probes_total`,
		`katrace_build_info{mode!="",kernel!="",version!=""}`,
	} {
		eventually(t, q+" ≥ 1 in Prometheus", 30*time.Second, d, func() (bool, string) {
			v, err := ps.query(q)
			return err == nil && v >= 1, fmt.Sprintf("%v (err %v)", v, err)
		})
	}
	if v, err := ps.query(`katrace_keepalive_probes_total`); err != nil || v != 3 {
		t.Errorf("katrace_keepalive_probes_total = %v (%v), want the 3 unanswered probes", v, err)
	}

	text, err := httpGet(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command("promtool", "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, banned := range []string{p.clientAddr, p.serverAddr, "18291", "pid=", "port=", "sock="} {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "katrace_") && strings.Contains(line, banned) {
				t.Errorf("a label carries %q: %s", banned, line)
			}
		}
	}
	if code := d.stop(); code != 0 {
		t.Errorf("katrace exited %d", code)
	}
}

// TestMetricsMatchStream: with the same filters, the metrics count what
// the NDJSON stream shows, record for record; --metrics-labels endpoint
// names the service the client connected to.
func TestMetricsMatchStream(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	bin := buildKatrace(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	out := filepath.Join(t.TempDir(), "katrace.json")
	d := startKatrace(t, []string{bin}, "trace", "-o", "json", "-w", out, "--all", "--states",
		"--netns", strconv.Itoa(int(p.clientIno)),
		"--metrics-addr", metricsAddr, "--metrics-labels", "endpoint")
	metricsURL := "http://" + metricsAddr + "/metrics"
	eventually(t, "katrace to start", 30*time.Second, d, func() (bool, string) {
		text, err := httpGet(metricsURL)
		return err == nil && strings.Contains(text, "katrace_build_info{"), fmt.Sprint(err)
	})

	_, lp := keepaliveTimeout(t, p, "18292")
	witnessKeepalive(t, p, lp)

	// The files and the counters catch up with each other once the
	// printer flushed; then every type must agree.
	var counts map[string]int
	var series map[string]float64
	eventually(t, "metrics equal to the records written", 30*time.Second, d, func() (bool, string) {
		counts = countTypes(readRecords(t, out, true))
		text, err := httpGet(metricsURL)
		if err != nil {
			return false, err.Error()
		}
		series = exposition(text)
		if counts["close"] == 0 {
			return false, fmt.Sprintf("records %v", counts)
		}
		for _, typ := range []string{"start", "state", "keepalive_probe", "keepalive_ack", "keepalive_timeout", "idle_close", "reset", "close", "lost"} {
			if got := series[`katrace_events_total{type="`+typ+`"}`]; int(got) != counts[typ] {
				return false, fmt.Sprintf("katrace_events_total{type=%q} = %v, %d records", typ, got, counts[typ])
			}
		}
		return true, ""
	})
	endpoint := p.serverAddr + ":18292"
	for name, want := range map[string]float64{
		`katrace_keepalive_timeouts_total{endpoint="` + endpoint + `"}`:                          1,
		`katrace_connection_closes_total{cause="keepalive_timeout",endpoint="` + endpoint + `"}`: 1,
	} {
		if series[name] != want {
			t.Errorf("%s = %v, want %v", name, series[name], want)
		}
	}
	if counts["keepalive_timeout"] != 1 {
		t.Errorf("records %v: want 1 timeout", counts)
	}
	recs := readRecords(t, out, true)
	checkProbesAccounted(t, recs, 3)
	unseen := 0
	for _, r := range recs {
		unseen += int(r.num("unseen_probes"))
	}
	if got := series["katrace_keepalive_probes_unseen_total"]; int(got) != unseen {
		t.Errorf("katrace_keepalive_probes_unseen_total = %v, the records name %d", got, unseen)
	}
	if got := series[`katrace_keepalive_probes_total{endpoint="`+endpoint+`"}`]; int(got) != counts["keepalive_probe"] {
		t.Errorf("katrace_keepalive_probes_total = %v, %d keepalive_probe records", got, counts["keepalive_probe"])
	}
	for s := range series {
		if strings.HasPrefix(s, "katrace_") && strings.Contains(s, "endpoint=") && !strings.Contains(s, `endpoint="`+endpoint+`"`) {
			t.Errorf("a series for another endpoint: %s", s)
		}
	}
	if code := d.stop(); code != 0 {
		t.Errorf("katrace exited %d", code)
	}
}
