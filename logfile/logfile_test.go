package logfile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream makes n lines of varied length, like NDJSON records.
func stream(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", rng.IntN(300)))
	}
	return b.Bytes()
}

// writeChunks writes data in pieces that end anywhere, as a bufio.Writer
// whose buffer filled does.
func writeChunks(t *testing.T, f *File, data []byte, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(700))
		if w, err := f.Write(data[:n]); err != nil || w != n {
			t.Fatalf("Write = %d, %v; want %d", w, err, n)
		}
		data = data[n:]
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRotationKeepsWholeRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "katrace.json")
	const maxSize = 2000
	f, err := Open(path, Options{MaxSize: maxSize, MaxBackups: 1000})
	if err != nil {
		t.Fatal(err)
	}
	data := stream(2000, 7)
	writeChunks(t, f, data, 7)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Oldest first: PATH.N ... PATH.1, then PATH.
	var files []string
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	files = append(files, path)
	if len(files) < 100 {
		t.Fatalf("%d files from %d bytes rotated at %d", len(files), len(data), maxSize)
	}
	var all []byte
	for _, p := range files {
		b := read(t, p)
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("%s does not end with a whole record", p)
		}
		if len(b) > maxSize {
			t.Errorf("%s has %d bytes, over %d", p, len(b), maxSize)
		}
		if !bytes.HasPrefix(b, []byte(`{"n":`)) {
			t.Errorf("%s does not begin with a record", p)
		}
		all = append(all, b...)
	}
	if !bytes.Equal(all, data) {
		t.Fatal("the files together are not the stream written")
	}
}

func TestBackupsLimitedAndLongRecordAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Open(path, Options{MaxSize: 100, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("L", 250) + "\n"
	for _, s := range []string{"a\n", long, "b\n", "c\n", strings.Repeat("d", 60) + "\n", strings.Repeat("e", 60) + "\n"} {
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files, want PATH and 2 backups", len(entries))
	}
	// "a" rotated out; the long record got a file of its own.
	if got := string(read(t, path+".2")); got != long {
		t.Errorf("PATH.2 = %q, want the long record alone", got)
	}
	if got := string(read(t, path+".1")); got != "b\nc\n"+strings.Repeat("d", 60)+"\n" {
		t.Errorf("PATH.1 = %q", got)
	}
	if got := string(read(t, path)); got != strings.Repeat("e", 60)+"\n" {
		t.Errorf("PATH = %q", got)
	}
}

func TestAppendsAndCreatesPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	for i := 0; i < 2; i++ {
		f, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "run %d\n", i)
		f.Close()
	}
	if got := string(read(t, path)); got != "run 0\nrun 1\n" {
		t.Errorf("after two runs: %q", got)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != Perm {
		t.Errorf("created with mode %v, want %v", fi.Mode().Perm(), os.FileMode(Perm))
	}
	// An existing file keeps the mode its owner gave it.
	os.Chmod(path, 0o640)
	f, _ := Open(path, Options{})
	f.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("reopening changed the mode to %v", fi.Mode().Perm())
	}
}

func TestOversizedExistingFileRotatesFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	os.WriteFile(path, []byte(strings.Repeat("old\n", 100)), 0o600)
	f, err := Open(path, Options{MaxSize: 100, MaxBackups: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new\n"))
	f.Close()
	if got := string(read(t, path)); got != "new\n" {
		t.Errorf("PATH = %q", got)
	}
	if got := read(t, path+".1"); len(got) != 400 {
		t.Errorf("PATH.1 has %d bytes, want the 400 old ones", len(got))
	}
}

// TestReopenAfterRename is logrotate's create mode: the file is renamed,
// then katrace told to reopen. Records written before go to the renamed
// file, after to the new one; none is lost or split.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("one\ntwo\nthr"))
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("ee\nfo")) // still to the renamed file, until reopened
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("ur\nfive\n"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, path+".old")); got != "one\ntwo\nthree\n" {
		t.Errorf("renamed file = %q", got)
	}
	if got := string(read(t, path)); got != "four\nfive\n" {
		t.Errorf("new file = %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != Perm {
		t.Errorf("reopened file created with mode %v", fi.Mode().Perm())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "out"), Options{MaxSize: 10}); err == nil {
		t.Error("rotation without backups accepted")
	}
	if _, err := Open(filepath.Join(dir, "missing", "out"), Options{}); err == nil {
		t.Error("a file in a missing directory opened")
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "out"), Options{MaxSize: 1 << 20, MaxBackups: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := []byte("{\"a\":1}\n{\"b\":2}\n{\"c\":")
	rest := []byte("3}\n")
	f.Write(chunk)
	f.Write(rest)
	if n := testing.AllocsPerRun(100, func() { f.Write(chunk); f.Write(rest) }); n != 0 {
		t.Errorf("%v allocations per write pair", n)
	}
}

// TestBackupsKeepTheNewest: after many rotations with 3 backups, PATH.3,
// PATH.2, PATH.1 and PATH hold the last records, in order, without a gap.
func TestBackupsKeepTheNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := Open(path, Options{MaxSize: 20, MaxBackups: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(f, "record %03d\n", i) // 11 bytes: one per file
	}
	f.Close()
	var got []string
	for _, p := range []string{path + ".3", path + ".2", path + ".1", path} {
		got = append(got, strings.TrimSpace(string(read(t, p))))
	}
	if want := "[record 096 record 097 record 098 record 099]"; fmt.Sprint(got) != want {
		t.Errorf("files hold %v, want %s", got, want)
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Error("PATH.4 kept with 3 backups")
	}
}
