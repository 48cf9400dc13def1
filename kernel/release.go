package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Release is the running kernel's release, as `uname -r` prints it.
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
