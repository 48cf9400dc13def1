package check

import (
	"fmt"
	"strings"

	"github.com/katrace/katrace/output"
)

// Idle timeouts of common middleboxes, in seconds: a flow idle longer than
// this is forgotten, silently.
var middleboxes = []struct {
	name    string
	seconds int64
}{
	{"Azure Load Balancer (4 min by default)", 240},
	{"AWS NLB (350 s)", 350},
	{"GCP VPC connection tracking (10 min)", 600},
}

// RetriesTimeoutMs is how long the kernel retransmits unacknowledged data
// before it gives up with ETIMEDOUT, for tcp_retries2 = retries, at the
// minimum RTO of 200 ms (net/ipv4/tcp_timer.c: tcp_model_timeout). A
// larger RTO (a slower path) makes it longer.
func RetriesTimeoutMs(retries int64) int64 {
	const rtoMin, rtoMax = 200, 120_000
	thresh := int64(9) // ilog2(rtoMax / rtoMin)
	if retries <= thresh {
		return ((2 << retries) - 1) * rtoMin
	}
	return ((2<<thresh)-1)*rtoMin + (retries-thresh)*rtoMax
}

func sysctlValue(ss []Sysctl, name string) int64 {
	for _, s := range ss {
		if s.Name == name {
			return s.Value
		}
	}
	return -1
}

func secs(s int64) string { return output.FormatDuration(s * 1000) }

// Advise turns this namespace's sysctls into advice, from the facts of the
// field.
func Advise(ss []Sysctl) []string {
	var out []string
	kaTime := sysctlValue(ss, "net.ipv4.tcp_keepalive_time")
	kaIntvl := sysctlValue(ss, "net.ipv4.tcp_keepalive_intvl")
	kaProbes := sysctlValue(ss, "net.ipv4.tcp_keepalive_probes")
	finTimeout := sysctlValue(ss, "net.ipv4.tcp_fin_timeout")
	retries2 := sysctlValue(ss, "net.ipv4.tcp_retries2")

	if kaTime >= 0 {
		var longer []string
		for _, m := range middleboxes {
			if kaTime >= m.seconds {
				longer = append(longer, m.name)
			}
		}
		if len(longer) > 0 {
			out = append(out, fmt.Sprintf("tcp_keepalive_time is %s (%d s): longer than the idle timeout of %s. "+
				"A connection idle through one of them is forgotten by it before the first keepalive probe is sent; "+
				"the next write draws a RST or hangs. Have such sockets set TCP_KEEPIDLE below the shortest idle "+
				"timeout on their path (e.g. 60 s), or lower this sysctl in their namespace.",
				secs(kaTime), kaTime, strings.Join(longer, ", ")))
		} else {
			out = append(out, fmt.Sprintf("tcp_keepalive_time is %s (%d s): shorter than the idle timeouts of common "+
				"load balancers and NATs (Azure 4 min, AWS NLB 350 s, GCP 10 min), so keepalive sockets that inherit it keep such flows alive.",
				secs(kaTime), kaTime))
		}
	}
	if kaTime >= 0 && kaIntvl >= 0 && kaProbes >= 0 {
		out = append(out, fmt.Sprintf("A dead peer of an idle keepalive socket that inherits these sysctls is found after "+
			"tcp_keepalive_time + tcp_keepalive_intvl × tcp_keepalive_probes = %d + %d × %d s = %s.",
			kaTime, kaIntvl, kaProbes, secs(kaTime+kaIntvl*kaProbes)))
	}
	out = append(out, "These sysctls are only defaults, and per network namespace (a container has its own): "+
		"a socket that sets TCP_KEEPIDLE, TCP_KEEPINTVL or TCP_KEEPCNT uses its own value, and a socket without "+
		"SO_KEEPALIVE sends no probes at all. `katrace sockets` shows each socket's effective values and where they come from.")
	out = append(out, "Idle HTTP keep-alive connections are usually closed by the server long before TCP keepalive "+
		"matters: nginx's keepalive_timeout is 75 s by default, gunicorn's keepalive 2 s. A client pool that keeps "+
		"connections idle longer than the server's timeout reuses connections the server has closed "+
		"(`katrace trace` reports stale_reuse): keep the pool's idle timeout below the server's.")
	if retries2 >= 0 {
		out = append(out, fmt.Sprintf("Keepalive never probes a socket with unacknowledged data: when the peer vanishes "+
			"mid-write (a half-open socket) the kernel retransmits tcp_retries2 = %d times, about %s at the minimum "+
			"RTO of 200 ms (longer on slow paths), before the write fails with ETIMEDOUT. TCP_USER_TIMEOUT on the "+
			"socket bounds that time (and, when set, also how long unanswered keepalive probes may go on).",
			retries2, output.FormatDuration(RetriesTimeoutMs(retries2))))
	}
	if finTimeout >= 0 {
		out = append(out, fmt.Sprintf("tcp_fin_timeout is %s: an orphaned socket in FIN_WAIT2 (closed by its process, "+
			"waiting for the peer's FIN) lingers that long before the kernel drops it.", secs(finTimeout)))
	}
	return out
}
