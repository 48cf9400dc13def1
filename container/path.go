// Package container names the workload behind a socket: its cgroup v2 path,
// the container and Kubernetes pod that path belongs to, and, inside a
// cluster, the pod's and container's names as the node's kubelet knows them.
//
// The kernel gives katrace a cgroup id (the cgroup's kernfs node id, which
// is also the inode number of its directory in the cgroup2 mount); Resolver
// turns it into a path, ParsePath turns the path into ids, and Kubelet turns
// ids into names.
package container

import "strings"

// Identity is what a cgroup path says about its workload. Either field may
// be empty.
type Identity struct {
	// ContainerID is the runtime's full 64-hex container id.
	ContainerID string
	// PodUID is the Kubernetes pod's uid, with dashes.
	PodUID string
}

// Runtimes name a container's cgroup <prefix><64 hex>, with ".scope" under
// the systemd driver (docker-<id>.scope) and without under cgroupfs
// (libpod-<id>). Their helpers (crio-conmon-<id>, libpod-conmon-<id>) share
// the prefix but not the shape, so they never match.
var containerPrefixes = []string{"docker-", "cri-containerd-", "crio-", "libpod-"}

// ParsePath reads the container id and pod uid from a cgroup v2 path as the
// "0::" line of /proc/PID/cgroup shows it. The innermost container wins, so a
// process in a nested runtime's container (or in a "container" leaf that
// podman makes below its scope) is named after its own container.
func ParsePath(path string) Identity {
	var id Identity
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(segs) - 1; i >= 0 && id.ContainerID == ""; i-- {
		parent := ""
		if i > 0 {
			parent = segs[i-1]
		}
		id.ContainerID = containerSegment(segs[i], parent, segs[:i])
	}
	for i, seg := range segs {
		if uid := podSegment(seg, segs[:i]); uid != "" {
			id.PodUID = uid
			break
		}
	}
	return id
}

// containerSegment returns the container id a path segment names, if any.
// ancestors are the segments above it, parent the nearest.
func containerSegment(seg, parent string, ancestors []string) string {
	name := strings.TrimSuffix(seg, ".scope")
	for _, p := range containerPrefixes {
		if rest, ok := strings.CutPrefix(name, p); ok && isHex(rest, 64) {
			return rest
		}
	}
	// A bare id is a container only where runtimes put one: docker's
	// cgroupfs driver (/docker/<id>) and the kubelet's cgroupfs driver
	// (/kubepods/<class>/pod<uid>/<id>).
	if seg != name || !isHex(seg, 64) {
		return ""
	}
	if parent == "docker" || podSegment(parent, ancestors[:max(len(ancestors)-1, 0)]) != "" {
		return seg
	}
	return ""
}

// podSegment returns the pod uid a path segment names, if any; above are the
// segments above it.
//
// systemd driver:  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice
// (guaranteed pods sit right under kubepods.slice: kubepods-pod<uid>.slice;
// a kubelet --cgroup-root adds its own prefix: kubelet-kubepods-pod<uid>.slice)
// cgroupfs driver: kubepods/burstable/pod<uid>, kubepods/pod<uid>
func podSegment(seg string, above []string) string {
	if name, ok := strings.CutSuffix(seg, ".slice"); ok {
		i := strings.LastIndex(name, "-pod")
		if i < 0 {
			return ""
		}
		if !isKubepodsClass(name[:i]) {
			return ""
		}
		return podUID(strings.ReplaceAll(name[i+len("-pod"):], "_", "-"))
	}
	rest, ok := strings.CutPrefix(seg, "pod")
	if !ok || len(above) == 0 {
		return ""
	}
	parent := above[len(above)-1]
	switch {
	case parent == "kubepods":
	case (parent == "burstable" || parent == "besteffort") && len(above) >= 2 && above[len(above)-2] == "kubepods":
	default:
		return ""
	}
	return podUID(rest)
}

// isKubepodsClass: the slice name before "-pod<uid>" is a QoS class slice,
// possibly behind the kubelet's --cgroup-root ("kubelet-kubepods-…").
func isKubepodsClass(class string) bool {
	for _, c := range []string{"kubepods", "kubepods-burstable", "kubepods-besteffort"} {
		if class == c || strings.HasSuffix(class, "-"+c) {
			return true
		}
	}
	return false
}

// podUID accepts what the kubelet uses as a pod uid: an API pod's UUID, or a
// static pod's 32-hex hash of its manifest.
func podUID(s string) string {
	if isHex(s, 32) {
		return s
	}
	if len(s) != 36 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return ""
			}
		} else if !isHexDigit(c) {
			return ""
		}
	}
	return s
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// isHexDigit is lower-case only: runtimes and the kubelet write lower case,
// and cgroup names are case-sensitive.
func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
