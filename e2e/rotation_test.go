package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// outputFiles lists PATH.N ... PATH.1, PATH: oldest first.
func outputFiles(t *testing.T, path string) []string {
	t.Helper()
	var files []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	}
	return files
}

func recordsOf(t *testing.T, files []string) []rec {
	t.Helper()
	var all []rec
	for _, f := range files {
		all = append(all, readRecords(t, f, false)...)
	}
	return all
}

// churnConnections opens and closes n connections one after the other and
// waits until the kernel is done with every client socket, so that each
// event katrace will report has happened.
func churnConnections(t *testing.T, p *pair, port string, n int) {
	t.Helper()
	c := startHelper(t, p.client, "", "churn", p.serverAddr, port, strconv.Itoa(n))
	c.expect("done", 4*eventTimeout)
	eventually(t, "the client sockets to close", eventTimeout, nil, func() (bool, string) {
		open := strings.TrimSpace(run(t, "ip", "netns", "exec", p.client, "ss", "-tanH",
			"state", "fin-wait-1", "state", "fin-wait-2", "state", "syn-sent", "state", "established"))
		return open == "", open
	})
}

// Per connection the client's netns shows five state changes
// (CLOSE>SYN_SENT, SYN_SENT>ESTABLISHED, ESTABLISHED>FIN_WAIT1,
// FIN_WAIT1>FIN_WAIT2, FIN_WAIT2>CLOSE) and one close.
const statesPerConn = 5

// TestRotationUnderChurn: every state change of a churn written to a file
// rotated at 16 KiB: every line of every file is a whole JSON record, no
// file is over the size, and no record is missing.
func TestRotationUnderChurn(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	bin := buildKatrace(t)
	path := filepath.Join(t.TempDir(), "katrace.json")
	const maxSize = 16 << 10
	d := startKatrace(t, []string{bin}, "trace", "-o", "json", "-w", path, "--all", "--states",
		"--netns", strconv.Itoa(int(p.clientIno)),
		"--file-max-size", "16K", "--file-max-backups", "10000")
	eventually(t, "the start record", 30*time.Second, d, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), `"type":"start"`), fmt.Sprintf("%d bytes", len(b))
	})
	startServer(t, p, p.serverAddr, "18293", "echo")
	const conns = 300
	churnConnections(t, p, "18293", conns)
	// katrace drains what the kernel reported before it exits.
	if code := d.stop(); code != 0 {
		t.Fatalf("katrace exited %d", code)
	}

	files := outputFiles(t, path)
	if len(files) < 10 {
		t.Fatalf("%d files: the churn did not rotate the output", len(files))
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxSize {
			t.Errorf("%s: %d bytes, over --file-max-size %d", f, fi.Size(), maxSize)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	recs := recordsOf(t, files)
	n := countTypes(recs)
	if recs[0].str("type") != "start" || recs[len(recs)-1].str("type") != "end" {
		t.Errorf("first %v, last %v: want start and end", recs[0], recs[len(recs)-1])
	}
	if n["lost"] != 0 {
		t.Fatalf("the kernel lost events, the counts cannot be checked: %v", n)
	}
	if n["close"] != conns || n["state"] != statesPerConn*conns {
		t.Errorf("records %v; want %d closes and %d state changes", n, conns, statesPerConn*conns)
	}
	// A close event is also the change to CLOSE: one kernel event each.
	if end := recs[len(recs)-1]; int(end.num("events")) != statesPerConn*conns {
		t.Errorf("end record %v; want events %d", end, statesPerConn*conns)
	}
	t.Logf("%d records in %d files", len(recs), len(files))
}

// TestRotationReopenOnHangup is logrotate's create mode: the file is
// renamed while katrace writes, katrace gets SIGHUP and writes on in a new
// file at the same path; no record is lost or split.
func TestRotationReopenOnHangup(t *testing.T) {
	requirePrivileges(t)
	p := newPair(t)
	bin := buildKatrace(t)
	path := filepath.Join(t.TempDir(), "katrace.json")
	rotated := path + ".1"
	d := startKatrace(t, []string{bin}, "trace", "-o", "json", "-w", path, "--all", "--states",
		"--netns", strconv.Itoa(int(p.clientIno)))
	eventually(t, "the start record", 30*time.Second, d, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), `"type":"start"`), fmt.Sprintf("%d bytes", len(b))
	})
	startServer(t, p, p.serverAddr, "18294", "echo")
	const batch = 100
	closesIn := func(file string, atLeast int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d closes in %s", atLeast, file), 30*time.Second, d, func() (bool, string) {
			n := countTypes(readRecords(t, file, true))
			return n["close"] >= atLeast, fmt.Sprint(n)
		})
	}
	churnConnections(t, p, "18294", batch)
	closesIn(path, batch)
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	// Written after the rename, before the signal: into the renamed file.
	churnConnections(t, p, "18294", batch)
	closesIn(rotated, 2*batch)
	d.signal(syscall.SIGHUP)
	eventually(t, "katrace to create the file again", 10*time.Second, d, func() (bool, string) {
		_, err := os.Stat(path)
		return err == nil, fmt.Sprint(err)
	})
	churnConnections(t, p, "18294", batch)
	closesIn(path, batch)
	if code := d.stop(); code != 0 {
		t.Fatalf("katrace exited %d after SIGHUP (stderr %q)", code, d.stderrText())
	}

	before, after := readRecords(t, rotated, false), readRecords(t, path, false)
	nb, na := countTypes(before), countTypes(after)
	if nb["start"] != 1 || nb["close"] != 2*batch {
		t.Errorf("renamed file %v: want the start and the first %d closes", nb, 2*batch)
	}
	if na["close"] != batch || na["end"] != 1 {
		t.Errorf("new file %v: want the last %d closes and the end", na, batch)
	}
	if nb["close"]+na["close"] != 3*batch || nb["state"]+na["state"] != 3*batch*statesPerConn || nb["lost"]+na["lost"] != 0 {
		t.Errorf("renamed file %v + new file %v: want %d closes, %d state changes, nothing lost", nb, na, 3*batch, 3*batch*statesPerConn)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the new file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	if s := d.stderrText(); s != "" {
		t.Errorf("katrace said on stderr: %q", s)
	}
}
