package tracer

import (
	"net/netip"
	"time"

	"github.com/katrace/katrace/record"
)

// fillSocket sets the socket fields of the record from the event and what
// is remembered of the socket.
func (c *Correlator) fillSocket(e *katraceEvent, cn *conn) {
	r := &c.rec
	r.Reset()
	r.Time = c.wall(e.TsNs)
	s := &r.Sock
	s.Cookie = e.Cookie
	s.NetNS = e.Netns
	s.State = stateName(e.State)
	s.LPort, s.RPort = e.Sport, e.Dport
	s.V4Mapped = e.Flags&flagV4Mapped != 0
	if e.Family == 6 {
		s.IPv6 = true
		s.LAddr = netip.AddrFrom16(e.Saddr)
		s.RAddr = netip.AddrFrom16(e.Daddr)
	} else {
		s.LAddr = netip.AddrFrom4([4]byte(e.Saddr[:4]))
		s.RAddr = netip.AddrFrom4([4]byte(e.Daddr[:4]))
	}
	proto, requests := uint8(0), uint32(0)
	if e.Proto != 0 && int(e.Proto) < len(protoNames) && protoNames[e.Proto] != "" {
		proto, requests = e.Proto, e.Requests
	}
	if cn != nil {
		// Timer events carry no label: keep the one seen before.
		if proto == 0 {
			proto, requests = cn.proto, cn.requests
		}
		cn.proto, cn.requests = proto, requests
		// By CLOSE the kernel may have cleared the local port of an active
		// closer: keep the tuple seen earlier.
		if s.LPort == 0 && cn.lPort != 0 {
			s.LAddr, s.LPort = cn.localAddr(), cn.lPort
		}
		cn.setLocal(s.LAddr, s.LPort)
	}
	s.Proto = protoNames[proto]
	s.Requests = record.Absent
	if proto == protoHTTP1 {
		s.Requests = int(requests)
	}
	s.ServiceLocal = serviceIsLocal(e.Role, s.LPort, s.RPort)
	c.fillWorkload(e, cn)

	switch {
	case e.Flags&flagOwner != 0 && e.Pid != 0:
		s.PID = e.Pid
		s.Comm = c.commString(e, cn)
		if cn != nil {
			cn.pid, cn.comm = s.PID, s.Comm
		}
	case cn != nil && cn.pid != 0:
		s.PID, s.Comm = cn.pid, cn.comm
	case e.SockIno != 0 && c.cfg.Owner != nil:
		if pid, comm, ok := c.cfg.Owner(e.SockIno); ok {
			s.PID, s.Comm = pid, comm
			if cn != nil {
				cn.pid, cn.comm = pid, comm
			}
		}
	}
}

// fillWorkload names the socket's cgroup, container and pod.
// Timewait sockets carry no cgroup: they keep what was seen before.
func (c *Correlator) fillWorkload(e *katraceEvent, cn *conn) {
	s := &c.rec.Sock
	if e.CgroupId != 0 && c.cfg.Workload != nil {
		if w := c.cfg.Workload(e.CgroupId); w != nil {
			s.Workload = *w
		}
	}
	if cn != nil {
		switch {
		case s.Workload.Cgroup != "":
			if cn.workload == nil || *cn.workload != s.Workload {
				cn.workload = c.internWorkload(&s.Workload)
			}
		case cn.workload != nil:
			s.Workload = *cn.workload
		default:
			s.Workload = record.Workload{}
		}
	}
}

// commString returns the event's comm, reusing the remembered string when
// it has not changed so that the hot path does not allocate.
func (c *Correlator) commString(e *katraceEvent, cn *conn) string {
	n := 0
	for n < len(e.Comm) && e.Comm[n] != 0 {
		n++
	}
	if cn != nil && cn.pid == e.Pid && len(cn.comm) == n {
		same := true
		for i := 0; i < n; i++ {
			if cn.comm[i] != byte(e.Comm[i]) {
				same = false
				break
			}
		}
		if same {
			return cn.comm
		}
	}
	if s, ok := c.comms[e.Comm]; ok {
		return s
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(e.Comm[i])
	}
	s := string(b)
	if len(c.comms) < maxComms {
		c.comms[e.Comm] = s
	}
	return s
}

// maxComms bounds the cache of process names (a host has few).
const maxComms = 4096

// idleMs is how long the connection had gone without data either way, or
// Absent before it was established, when the kernel's stamps mean nothing.
func idleMs(e *katraceEvent) int64 {
	established := e.Flags&flagEstablished != 0 ||
		(e.Flags&flagStartKnown == 0 && e.State != tcpSynSent && e.State != tcpSynRecv && e.OldState != tcpSynSent)
	if !established {
		return record.Absent
	}
	idle := int64(min(e.SinceSendMs, e.SinceRecvMs))
	if e.Flags&flagStartKnown != 0 && e.TsNs >= e.StartNs {
		idle = min(idle, int64((e.TsNs-e.StartNs)/uint64(time.Millisecond)))
	}
	return idle
}

// durationMs is the connection's age at e, Absent when katrace did not
// see it begin.
func durationMs(e *katraceEvent) int64 {
	if e.Flags&flagStartKnown != 0 && e.TsNs >= e.StartNs {
		return int64((e.TsNs - e.StartNs) / uint64(time.Millisecond))
	}
	return record.Absent
}
