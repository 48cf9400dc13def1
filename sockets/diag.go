package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/katrace/katrace/record"
)

// sockDiagUnknown are the fields sock_diag cannot give: inet_diag and
// tcp_info carry neither SO_KEEPALIVE nor the socket's keepalive settings
// (nor TCP_USER_TIMEOUT). A keepalive timer that is armed shows in `timer`.
var sockDiagUnknown = []string{"keepalive", "keepalive_idle_ms", "keepalive_interval_ms",
	"keepalive_probes", "keepalive_source", "user_timeout_ms"}

// Sizes and offsets of the inet_diag structures (linux/inet_diag.h).
const (
	inetDiagReqV2Size = 56
	inetDiagMsgSize   = 72
	inetDiagInfo      = 2 // INET_DIAG_INFO: struct tcp_info
	sockDiagByFamily  = 20

	// struct tcp_info offsets.
	tcpiRetransmits  = 2
	tcpiProbes       = 3
	tcpiLastDataSent = 44
	tcpiLastDataRecv = 52
)

// sockDiag lists the TCP sockets of the caller's network namespace over
// NETLINK_SOCK_DIAG: what ss reads. The namespace is the calling
// thread's (its inode from /proc/thread-self).
func sockDiag() ([]Socket, error) {
	netns := currentNetns()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening a sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("binding the sock_diag socket: %w", err)
	}
	var out []Socket
	for seq, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := sendDiagRequest(fd, uint32(seq+1), family); err != nil {
			return nil, err
		}
		if err := readDiag(fd, uint32(seq+1), netns, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sendDiagRequest(fd int, seq uint32, family uint8) error {
	b := make([]byte, unix.NLMSG_HDRLEN+inetDiagReqV2Size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], sockDiagByFamily)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	req := b[unix.NLMSG_HDRLEN:]
	req[0] = family
	req[1] = unix.IPPROTO_TCP
	req[2] = 1 << (inetDiagInfo - 1)
	ne.PutUint32(req[4:], 0xffffffff) // every state
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending the sock_diag request: %w", err)
	}
	return nil
}

func readDiag(fd int, seq, netns uint32, out *[]Socket) error {
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("reading sock_diag: %w", err)
		}
		msgs, err := parseNetlink(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.seq != seq {
				continue
			}
			switch m.typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
					}
				}
				return nil
			case sockDiagByFamily:
				s, ok := decodeDiagMsg(m.data, netns)
				if ok {
					*out = append(*out, s)
				}
			}
		}
	}
}

type netlinkMsg struct {
	typ  uint16
	seq  uint32
	data []byte
}

func parseNetlink(b []byte) ([]netlinkMsg, error) {
	var out []netlinkMsg
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, errors.New("sock_diag: malformed netlink message")
		}
		out = append(out, netlinkMsg{typ: ne.Uint16(b[4:]), seq: ne.Uint32(b[8:]), data: b[unix.NLMSG_HDRLEN:l]})
		l = (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out, nil
}

// diagTimers maps inet_diag's idiag_timer to the timer names.
var diagTimers = [...]string{0: TimerNone, 1: TimerRetransmit, 2: TimerKeepalive, 3: TimerTimeWait, 4: TimerZeroWindowProbe}

// decodeDiagMsg reads one struct inet_diag_msg and its attributes.
func decodeDiagMsg(b []byte, netns uint32) (Socket, bool) {
	if len(b) < inetDiagMsgSize {
		return Socket{}, false
	}
	ne := binary.NativeEndian
	family, state, timer, retrans := b[0], b[1], b[2], b[3]
	id := b[4:52]
	v6 := family == unix.AF_INET6
	addr := func(p []byte) netip.Addr {
		if v6 {
			return netip.AddrFrom16([16]byte(p[:16]))
		}
		return netip.AddrFrom4([4]byte(p[:4]))
	}
	s := newSocket(record.SocketID{
		Cookie: uint64(ne.Uint32(id[40:])) | uint64(ne.Uint32(id[44:]))<<32,
		IPv6:   v6,
		LPort:  binary.BigEndian.Uint16(id[0:]),
		RPort:  binary.BigEndian.Uint16(id[2:]),
		LAddr:  addr(id[4:20]),
		RAddr:  addr(id[20:36]),
		NetNS:  netns,
		State:  StateName(state),
	})
	if s.IPv6 && s.LAddr.Is4In6() && s.RAddr.Is4In6() {
		// A dual-stack socket talking IPv4: reported as IPv4, as the
		// iterator and the trace report it.
		s.IPv6, s.V4Mapped = false, true
		s.LAddr, s.RAddr = s.LAddr.Unmap(), s.RAddr.Unmap()
	}
	s.Kind = KindFull
	s.UID, s.Inode = ne.Uint32(b[64:]), uint64(ne.Uint32(b[68:]))
	switch {
	case timer == 3 || state == stateTimeWait:
		// A timewait socket: its state is the substate (TIME_WAIT, or
		// FIN_WAIT2 for an orphan's linger).
		s.Kind = KindTimewait
	case state == 3: // SYN_RECV: sock_diag reports request sockets so
		s.Kind = KindRequest
	}
	if int(timer) < len(diagTimers) {
		s.Timer = diagTimers[timer]
	}
	if s.Timer != TimerNone {
		s.TimerInMs = int64(ne.Uint32(b[52:]))
	}
	if s.Timer == TimerKeepalive {
		if state == 5 { // FIN_WAIT2: the orphan linger runs on the same timer
			s.Timer = TimerFinWait2
		}
	}
	if s.Kind == KindFull {
		s.Retransmits = int(retrans)
	}
	// Attributes.
	for a := b[inetDiagMsgSize:]; len(a) >= 4; {
		l := int(ne.Uint16(a[0:]))
		typ := ne.Uint16(a[2:])
		if l < 4 || l > len(a) {
			break
		}
		if typ == inetDiagInfo && s.Kind == KindFull {
			info := a[4:l]
			if len(info) > tcpiLastDataRecv+4 {
				s.ProbesOut = int(info[tcpiProbes])
				s.Retransmits = int(info[tcpiRetransmits])
				if state != stateListen {
					sent := int64(ne.Uint32(info[tcpiLastDataSent:]))
					recv := int64(ne.Uint32(info[tcpiLastDataRecv:]))
					s.IdleMs = min(sent, recv)
				}
			}
		}
		l = (l + 3) &^ 3
		if l > len(a) {
			break
		}
		a = a[l:]
	}
	return s, true
}
