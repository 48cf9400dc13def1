package sockets

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/katrace/katrace/output"
)

// jsonSocket is the NDJSON record of one socket: the socket fields of the
// event contract (DESIGN.md) and the keepalive fields of `katrace sockets`.
// Unknown or not applicable values are left out.
type jsonSocket struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	Sock   uint64 `json:"sock"`
	Family string `json:"family"`
	// V4Mapped: a dual-stack IPv6 socket talking IPv4, reported as IPv4.
	V4Mapped bool    `json:"v4_mapped,omitempty"`
	LAddr    string  `json:"laddr"`
	LPort    uint16  `json:"lport"`
	RAddr    string  `json:"raddr"`
	RPort    uint16  `json:"rport"`
	NetNS    uint32  `json:"netns"`
	State    string  `json:"state"`
	PID      uint32  `json:"pid,omitempty"`
	Comm     string  `json:"comm,omitempty"`
	Owners   []Owner `json:"owners,omitempty"`

	// The first owner's cgroup, container and pod, as on trace's records.
	Cgroup      string `json:"cgroup,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	Pod         string `json:"pod,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Container   string `json:"container,omitempty"`

	Kind  string `json:"kind"`
	Inode uint64 `json:"inode,omitempty"`
	UID   uint32 `json:"uid"`
	// Orphan: closed by its process, still in the kernel.
	Orphan bool `json:"orphan,omitempty"`

	Keepalive           *bool    `json:"keepalive,omitempty"`
	KeepaliveIdleMs     *int64   `json:"keepalive_idle_ms,omitempty"`
	KeepaliveIntervalMs *int64   `json:"keepalive_interval_ms,omitempty"`
	KeepaliveProbes     *int     `json:"keepalive_probes,omitempty"`
	KeepaliveSource     string   `json:"keepalive_source,omitempty"`
	KeepaliveInherited  []string `json:"keepalive_inherited,omitempty"`
	ProbesOut           *int     `json:"probes_out,omitempty"`
	Retransmits         *int     `json:"retransmits,omitempty"`
	Timer               string   `json:"timer"`
	TimerInMs           *int64   `json:"timer_in_ms,omitempty"`
	IdleMs              *int64   `json:"idle_ms,omitempty"`
	UserTimeoutMs       *int64   `json:"user_timeout_ms,omitempty"`

	// Source and Unknown say where the record came from and, for
	// sock_diag, which fields it cannot give.
	Source  string   `json:"source"`
	Unknown []string `json:"unknown,omitempty"`
}

func known64(v int64) *int64 {
	if v < 0 {
		return nil
	}
	return &v
}

func knownInt(v int) *int {
	if v < 0 {
		return nil
	}
	return &v
}

func toJSON(t time.Time, s *Socket, res *Result) jsonSocket {
	j := jsonSocket{
		Time:                t.UTC().Format(time.RFC3339Nano),
		Type:                "socket",
		Sock:                s.Cookie,
		Family:              s.Family(),
		V4Mapped:            s.V4Mapped,
		LAddr:               s.LAddr.String(),
		LPort:               s.LPort,
		RAddr:               s.RAddr.String(),
		RPort:               s.RPort,
		NetNS:               s.NetNS,
		State:               s.State,
		Kind:                s.Kind,
		Inode:               s.Inode,
		UID:                 s.UID,
		Orphan:              s.Orphan,
		Owners:              s.Owners,
		Cgroup:              s.Workload.Cgroup,
		ContainerID:         s.Workload.ContainerID,
		PodUID:              s.Workload.PodUID,
		Pod:                 s.Workload.Pod,
		Namespace:           s.Workload.Namespace,
		Container:           s.Workload.Container,
		KeepaliveIdleMs:     known64(s.KeepaliveIdleMs),
		KeepaliveIntervalMs: known64(s.KeepaliveIntervalMs),
		KeepaliveProbes:     knownInt(s.KeepaliveProbes),
		KeepaliveSource:     s.KeepaliveSource,
		KeepaliveInherited:  s.KeepaliveInherited,
		ProbesOut:           knownInt(s.ProbesOut),
		Retransmits:         knownInt(s.Retransmits),
		Timer:               s.Timer,
		TimerInMs:           known64(s.TimerInMs),
		IdleMs:              known64(s.IdleMs),
		UserTimeoutMs:       known64(s.UserTimeoutMs),
		Source:              res.Source,
		Unknown:             res.Unknown,
	}
	if len(s.Owners) > 0 {
		j.PID, j.Comm = s.Owners[0].PID, s.Owners[0].Comm
	}
	if !slices.Contains(res.Unknown, "keepalive") {
		ka := s.Keepalive
		j.Keepalive = &ka
	}
	return j
}

// WriteJSON writes one NDJSON record per socket.
func WriteJSON(w io.Writer, res *Result) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range res.Sockets {
		if err := enc.Encode(toJSON(res.Time, &res.Sockets[i], res)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// endpoint is addr:port, with brackets around IPv6 addresses.
func endpoint(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return "*:" + strconv.Itoa(int(port))
	}
	return netip.AddrPortFrom(a, port).String()
}

func durText(ms int64) string {
	if ms < 0 {
		return "?"
	}
	return output.FormatDuration(ms)
}

// keepaliveText is "2h00m/1m15s/9": idle, interval, probes.
func keepaliveText(s *Socket) string {
	if s.KeepaliveIdleMs < 0 && s.KeepaliveIntervalMs < 0 && s.KeepaliveProbes < 0 {
		return "-"
	}
	p := "?"
	if s.KeepaliveProbes >= 0 {
		p = strconv.Itoa(s.KeepaliveProbes)
	}
	return durText(s.KeepaliveIdleMs) + "/" + durText(s.KeepaliveIntervalMs) + "/" + p
}

func sourceText(s *Socket) string {
	switch {
	case s.KeepaliveSource == "":
		return "-"
	case len(s.KeepaliveInherited) > 0:
		return "socket+sysctl(" + strings.Join(s.KeepaliveInherited, ",") + ")"
	}
	return s.KeepaliveSource
}

func timerText(s *Socket) string {
	if s.Timer == TimerNone || s.Timer == "" {
		return "none"
	}
	return s.Timer + " in " + durText(s.TimerInMs)
}

func optDur(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return durText(ms)
}

func optInt(v int) string {
	if v < 0 {
		return "-"
	}
	return strconv.Itoa(v)
}

// WriteText writes an aligned table, one row per socket, and a note on
// what is unknown when the snapshot came from sock_diag.
func WriteText(w io.Writer, res *Result) error {
	bw := bufio.NewWriter(w)
	if res.Source == FromSockDiag {
		why := ""
		if res.Fallback != nil {
			why = " (" + res.Fallback.Error() + ")"
		}
		fmt.Fprintf(bw, "# from sock_diag, not the BPF socket iterator%s; unknown: %s\n",
			why, strings.Join(res.Unknown, ", "))
	}
	tw := tabwriter.NewWriter(bw, 0, 8, 2, ' ', 0)
	// The CONTAINER column only when some socket belongs to a container.
	containers := slices.ContainsFunc(res.Sockets, func(s Socket) bool { return s.Workload.Known() })
	containerHead := ""
	if containers {
		containerHead = "CONTAINER\t"
	}
	fmt.Fprintln(tw, "STATE\tLOCAL\tREMOTE\tOWNER\t"+containerHead+"KEEPALIVE\tIDLE/INTVL/CNT\tSOURCE\tPROBES\tTIMER\tIDLE\tUSER_TIMEOUT\tNETNS\tSOCK")
	unknownKA := slices.Contains(res.Unknown, "keepalive")
	for i := range res.Sockets {
		s := &res.Sockets[i]
		ka := "off"
		switch {
		case s.Kind != KindFull && s.Kind != "":
			ka = "-"
		case unknownKA:
			ka = "?"
		case s.Keepalive:
			ka = "on"
		}
		owner := ownersText(s.Owners)
		if s.Kind == KindTimewait || s.Kind == KindRequest {
			owner = "(" + s.Kind + ")"
		} else if s.Orphan && len(s.Owners) == 0 {
			owner = "(orphan)"
		}
		if containers {
			owner += "\t" + output.WorkloadLabel(&s.Workload)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n",
			s.State, endpoint(s.LAddr, s.LPort), endpoint(s.RAddr, s.RPort), owner,
			ka, keepaliveText(s), sourceText(s), optInt(s.ProbesOut), timerText(s),
			optDur(s.IdleMs), optDur(s.UserTimeoutMs), s.NetNS, s.Cookie)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}
