package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/katrace/katrace/tracer"
)

// cpuOnlinePath is the switch that takes a CPU offline and back.
func cpuOnlinePath(cpu int) string {
	return fmt.Sprintf("/sys/devices/system/cpu/cpu%d/online", cpu)
}

// setCPUOnline takes cpu offline or brings it back online.
func setCPUOnline(cpu int, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return os.WriteFile(cpuOnlinePath(cpu), []byte(v), 0)
}

// requireOnlineCPU skips the test where cpu cannot be taken offline
// (one CPU, no hotplug) or is offline already (not the test's to bring
// back).
func requireOnlineCPU(t *testing.T, cpu int) {
	t.Helper()
	state, err := os.ReadFile(cpuOnlinePath(cpu))
	if err != nil {
		t.Skipf("CPU %d cannot be taken offline here: %v", cpu, err)
	}
	if string(state) != "1\n" {
		t.Skipf("CPU %d is offline already: not this test's to bring back", cpu)
	}
}

// offlineCPUForTest takes cpu offline and brings it back when the test
// ends, failed or not. It skips the test where the kernel refuses (a
// container's read-only /sys).
func offlineCPUForTest(t *testing.T, cpu int) {
	t.Helper()
	if err := setCPUOnline(cpu, false); err != nil {
		t.Skipf("taking CPU %d offline: %v", cpu, err)
	}
	t.Cleanup(func() {
		if err := setCPUOnline(cpu, true); err != nil {
			t.Errorf("bringing CPU %d back online: %v", cpu, err)
		}
	})
}

// TestStatesAcrossCPUOffline: with --states, the state changes a CPU held
// in its batch when it went offline are delivered: when it comes back
// (the reader empties online CPUs only), or at the end while it is still
// offline (the reader then reads every CPU's batch itself). Every change
// once, nothing lost, against the count the connections produce.
func TestStatesAcrossCPUOffline(t *testing.T) {
	requirePrivileges(t)
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("needs taskset (util-linux)")
	}
	// By its full path: BusyBox's taskset (the vmtest guest) would run
	// BusyBox's own ip, which has no netns command.
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	const cpu = 1
	requireOnlineCPU(t, cpu)
	for _, back := range []bool{true, false} {
		name := "stopped while offline"
		if back {
			name = "back online"
		}
		t.Run(name, func(t *testing.T) {
			p := newPair(t)
			s := startTrace(t, tracer.Config{States: true, Filters: tracer.Filters{NetNS: p.clientIno}})
			startServer(t, p, p.serverAddr, "18195", "echo")
			const conns = 100
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			// The client's syscalls, and the packets it sends with them,
			// run on the CPU about to go offline.
			cmd := exec.Command("taskset", "-c", fmt.Sprint(cpu), ip, "netns", "exec", p.client, exe)
			churn := startHelperCommand(t, cmd, exe, "churn", []string{p.serverAddr, "18195", fmt.Sprint(conns)})
			churn.expect("done", 2*eventTimeout)
			offlineCPUForTest(t, cpu)
			atOffline := len(s.all(typeIs("state")))
			// Several of the reader's rounds with the CPU gone.
			time.Sleep(500 * time.Millisecond)
			whileOffline := len(s.all(typeIs("state")))
			if back {
				if err := setCPUOnline(cpu, true); err != nil {
					t.Fatalf("bringing CPU %d back online: %v", cpu, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
			end := s.stop()

			// Per connection on the client side: CLOSE>SYN_SENT,
			// SYN_SENT>ESTABLISHED, ESTABLISHED>FIN_WAIT1,
			// FIN_WAIT1>FIN_WAIT2, FIN_WAIT2>CLOSE.
			const perConn = 5
			states := len(s.all(typeIs("state")))
			// Whether the CPU still held some when it went (a flush may
			// have just emptied it) is told, not required: the count is.
			t.Logf("state records delivered: %d when CPU %d went offline, %d while it was, %d at the end",
				atOffline, cpu, whileOffline, states)
			if states != conns*perConn || int(end.num("events")) != conns*perConn || end.num("lost") != 0 {
				t.Errorf("%d state records, end %v: want %d records and events, none lost", states, end, conns*perConn)
			}
		})
	}
}
