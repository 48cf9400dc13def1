package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// KallsymsPath is where the kernel lists its symbols.
const KallsymsPath = "/proc/kallsyms"

var (
	// ErrSymbolHidden: the symbol exists but its address reads as zero
	// (kernel.kptr_restrict, without CAP_SYSLOG).
	ErrSymbolHidden = errors.New("kernel symbol address hidden")
	// ErrNoSymbol: the kernel has no such symbol.
	ErrNoSymbol = errors.New("no such kernel symbol")
)

// Symbol is a kernel symbol's address from /proc/kallsyms.
func Symbol(name string) (uint64, error) {
	return SymbolIn(KallsymsPath, name)
}

// SymbolIn is Symbol reading a kallsyms file at path.
func SymbolIn(path, name string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	return findSymbol(f, path, name)
}

func findSymbol(r io.Reader, path, name string) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// "ffffffff8202df70 t tcp_keepalive_timer" (a module name may follow)
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[2] != name {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s line %q: %w", path, line, err)
		}
		if addr == 0 {
			return 0, fmt.Errorf("%w: %s shows %s at 0 (kernel.kptr_restrict; reading addresses needs CAP_SYSLOG)", ErrSymbolHidden, path, name)
		}
		return addr, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fmt.Errorf("%w: %s is not in %s", ErrNoSymbol, name, path)
}
