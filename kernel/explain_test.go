package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestExplain(t *testing.T) {
	if Explain(nil) != nil {
		t.Error("Explain(nil) is not nil")
	}
	other := errors.New("reading the spec: short file")
	if Explain(other) != other {
		t.Error("an unrelated error was reworded")
	}
	for _, e := range []error{unix.EOPNOTSUPP, unix.EINVAL, os.ErrNotExist} {
		got := Explain(fmt.Errorf("attach: %w", e))
		if !errors.Is(got, e) || !strings.HasPrefix(got.Error(), "not supported by this kernel: ") {
			t.Errorf("Explain(%v) = %v", e, got)
		}
	}
	eperm := fmt.Errorf("load program: %w"+memlockHint, unix.EPERM)
	got := Explain(eperm)
	if !CanLoadBPF() {
		if got != ErrPrivileges {
			t.Errorf("EPERM without privileges: %v, want ErrPrivileges", got)
		}
		return
	}
	if !errors.Is(got, unix.EPERM) || strings.Contains(got.Error(), "MEMLOCK") || !strings.Contains(got.Error(), "lockdown") {
		t.Errorf("EPERM with privileges: %q", got)
	}
}
