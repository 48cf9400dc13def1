package container

import "testing"

const (
	id64  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id64b = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	uid   = "1b4a3c5d-7e8f-4a1b-9c2d-3e4f5a6b7c8d"
	uidU  = "1b4a3c5d_7e8f_4a1b_9c2d_3e4f5a6b7c8d" // the systemd driver's spelling
	// A static pod's uid is a hash of its manifest, not a UUID.
	staticUID = "5d8e4f8e7a0b1c2d3e4f5a6b7c8d9e0f"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		container  string
		pod        string
	}{
		// docker
		{"docker systemd", "/system.slice/docker-" + id64 + ".scope", id64, ""},
		{"docker cgroupfs", "/docker/" + id64, id64, ""},
		{"docker in docker", "/docker/" + id64b + "/docker/" + id64, id64, ""},
		// containerd under the kubelet, systemd driver, all three classes
		{"containerd burstable systemd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id64 + ".scope",
			id64, uid},
		{"containerd besteffort systemd",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id64 + ".scope",
			id64, uid},
		{"containerd guaranteed systemd",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id64 + ".scope",
			id64, uid},
		{"static pod systemd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + staticUID + ".slice/cri-containerd-" + id64 + ".scope",
			id64, staticUID},
		{"kubelet cgroup-root systemd",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id64 + ".scope",
			id64, uid},
		// kubelet cgroupfs driver: the runtime names the leaf by bare id
		{"containerd burstable cgroupfs", "/kubepods/burstable/pod" + uid + "/" + id64, id64, uid},
		{"containerd besteffort cgroupfs", "/kubepods/besteffort/pod" + uid + "/" + id64, id64, uid},
		{"containerd guaranteed cgroupfs", "/kubepods/pod" + uid + "/" + id64, id64, uid},
		{"pod cgroup itself", "/kubepods/burstable/pod" + uid, "", uid},
		{"pod slice itself", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice", "", uid},
		// CRI-O
		{"crio systemd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + id64 + ".scope",
			id64, uid},
		{"crio cgroupfs", "/kubepods/burstable/pod" + uid + "/crio-" + id64, id64, uid},
		{"crio conmon is not the container",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-conmon-" + id64 + ".scope",
			"", uid},
		// podman
		{"podman systemd", "/machine.slice/libpod-" + id64 + ".scope", id64, ""},
		{"podman systemd container leaf", "/machine.slice/libpod-" + id64 + ".scope/container", id64, ""},
		{"podman rootless",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id64 + ".scope/container",
			id64, ""},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id64, id64, ""},
		{"podman conmon is not the container", "/libpod_parent/libpod-conmon-" + id64, "", ""},
		{"podman conmon systemd", "/machine.slice/libpod-conmon-" + id64 + ".scope", "", ""},

		// Look-alikes that must not match.
		{"root", "/", "", ""},
		{"empty", "", "", ""},
		{"host service", "/system.slice/docker.service", "", ""},
		{"containerd daemon", "/system.slice/containerd.service", "", ""},
		{"short id", "/system.slice/docker-" + id64[:63] + ".scope", "", ""},
		{"long id", "/system.slice/docker-" + id64 + "0.scope", "", ""},
		{"upper-case id", "/system.slice/docker-" + "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF" + ".scope", "", ""},
		{"not hex", "/system.slice/docker-" + "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + ".scope", "", ""},
		{"other unit type", "/system.slice/docker-" + id64 + ".service", "", ""},
		{"unknown runtime prefix", "/system.slice/rkt-" + id64 + ".scope", "", ""},
		{"bare id anywhere", "/system.slice/" + id64, "", ""},
		{"bare id with scope", "/docker/" + id64 + ".scope", "", ""},
		{"pod outside kubepods", "/burstable/pod" + uid + "/" + id64, "", ""},
		{"pod under another tree", "/mykube/burstable/pod" + uid, "", ""},
		{"pod uid malformed", "/kubepods/burstable/pod" + uid[:35], "", ""},
		{"pod slice malformed", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU[:30] + ".slice", "", ""},
		{"pod slice wrong class", "/kubepods.slice/kubepods-gold.slice/kubepods-gold-pod" + uidU + ".slice", "", ""},
		{"pod slice look-alike", "/system.slice/notkubepods-pod" + uidU + ".slice", "", ""},
		{"user slice", "/user.slice/user-1000.slice/session-3.scope", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParsePath(tc.path)
			if got.ContainerID != tc.container || got.PodUID != tc.pod {
				t.Errorf("ParsePath(%q) = {container %q, pod %q}, want {%q, %q}",
					tc.path, got.ContainerID, got.PodUID, tc.container, tc.pod)
			}
		})
	}
}
