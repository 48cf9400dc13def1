package container

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/katrace/katrace/record"
)

// A /pods answer in the kubelet's shape (trimmed from a real one: a v1
// PodList with full metadata, spec and status).
const podsTemplate = `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[%s]}`

const podTemplate = `{
  "metadata": {
    "name": %q, "generateName": "web-7d9c8b6f5d-", "namespace": %q, "uid": %q,
    "resourceVersion": "48211", "creationTimestamp": "2026-11-20T10:01:02Z",
    "labels": {"app": "web", "pod-template-hash": "7d9c8b6f5d"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c8b6f5d", "uid": "0f6e1d2c-3b4a-4958-8776-a5b4c3d2e1f0", "controller": true, "blockOwnerDeletion": true}]
  },
  "spec": {
    "containers": [{"name": %q, "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {}}],
    "initContainers": [{"name": "init-config", "image": "busybox:1.36"}],
    "restartPolicy": "Always", "nodeName": "node-1", "serviceAccountName": "default"
  },
  "status": {
    "phase": "Running", "qosClass": "Burstable", "podIP": "10.244.1.7", "hostIP": "192.168.1.11",
    "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-20T10:01:09Z"}],
    "initContainerStatuses": [{"name": "init-config", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "ready": true, "restartCount": 0, "image": "docker.io/library/busybox:1.36", "imageID": "docker.io/library/busybox@sha256:aa", "containerID": "containerd://%s"}],
    "containerStatuses": [{"name": %q, "state": {"running": {"startedAt": "2026-11-20T10:01:08Z"}}, "lastState": {}, "ready": true, "restartCount": 0, "image": "docker.io/library/nginx:1.25", "imageID": "docker.io/library/nginx@sha256:bb", "containerID": "containerd://%s", "started": true}]
  }
}`

type fakeKubelet struct {
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	pods     []string
	requests int
	status   int
}

func newFakeKubelet(t *testing.T) *fakeKubelet {
	f := &fakeKubelet{token: "s3cr3t", status: http.StatusOK}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		if r.URL.Path != "/pods" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if f.status != http.StatusOK {
			http.Error(w, "Forbidden (user=system:serviceaccount:kube-system:katrace, verb=get, resource=nodes, subresource=proxy)", f.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, podsTemplate, strings.Join(f.pods, ","))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKubelet) set(pods ...string) {
	f.mu.Lock()
	f.pods = pods
	f.mu.Unlock()
}

func (f *fakeKubelet) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func pod(name, ns, uid, container, initID, id string) string {
	return fmt.Sprintf(podTemplate, name, ns, uid, container, initID, container, id)
}

// client writes the token and the server's CA to files, as a service
// account mounts them.
func (f *fakeKubelet) client(t *testing.T, warn *bytes.Buffer) *Kubelet {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(token, []byte(f.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewKubelet(KubeletConfig{URL: f.srv.URL + "/pods", TokenFile: token, CAFile: ca, MinInterval: 50 * time.Millisecond, Warn: warn})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKubeletNamesPodsAndContainers(t *testing.T) {
	f := newFakeKubelet(t)
	f.set(pod("web-7d9c8b6f5d-x2kqp", "shop", uid, "nginx", id64b, id64))
	var warn bytes.Buffer
	k := f.client(t, &warn)
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if name, ns, ok := k.Pod(uid); !ok || name != "web-7d9c8b6f5d-x2kqp" || ns != "shop" {
		t.Errorf("Pod(%s) = %q, %q, %v", uid, name, ns, ok)
	}
	if name, ok := k.ContainerName(id64); !ok || name != "nginx" {
		t.Errorf("ContainerName(main) = %q, %v", name, ok)
	}
	if name, ok := k.ContainerName(id64b); !ok || name != "init-config" {
		t.Errorf("ContainerName(init) = %q, %v", name, ok)
	}
	if warn.Len() != 0 {
		t.Errorf("warned: %s", warn.String())
	}

	if ids := k.ContainerIDs("nginx"); len(ids) != 1 || ids[0] != id64 {
		t.Errorf("ContainerIDs(nginx) = %v", ids)
	}
	if ids := k.ContainerIDs("web-7d9c8b6f5d-x2kqp/nginx"); len(ids) != 1 || ids[0] != id64 {
		t.Errorf("ContainerIDs(pod/nginx) = %v", ids)
	}
	if ids := k.ContainerIDs("other-pod/nginx"); len(ids) != 0 {
		t.Errorf("ContainerIDs(other-pod/nginx) = %v", ids)
	}

	a := &Attribution{Workload: record.Workload{PodUID: uid, ContainerID: id64}}
	k.name(a)
	if a.Pod != "web-7d9c8b6f5d-x2kqp" || a.Namespace != "shop" || a.Container != "nginx" {
		t.Errorf("named %+v", *a)
	}
}

// A pod that goes away drops out of the next answer; one that appears is
// found by a refresh in the background after a miss.
func TestKubeletPodGoesAwayAndNewOneIsFoundOnMiss(t *testing.T) {
	const uid2 = "2c5b4d6e-8f90-4b2c-8d3e-4f5a6b7c8d9e"
	const idNew = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	f := newFakeKubelet(t)
	f.set(pod("old-pod", "default", uid, "app", id64b, id64))
	var warn bytes.Buffer
	k := f.client(t, &warn)
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := &Attribution{Workload: record.Workload{PodUID: uid, ContainerID: id64}}
	k.name(old)

	// The old pod is deleted, a new one starts.
	f.set(pod("new-pod", "batch", uid2, "worker", id64b, idNew))
	fresh := &Attribution{Workload: record.Workload{PodUID: uid2, ContainerID: idNew}}
	deadline := time.Now().Add(5 * time.Second)
	for fresh.Pod == "" && time.Now().Before(deadline) {
		k.name(fresh) // a miss asks again, in the background, rate-limited
		time.Sleep(10 * time.Millisecond)
	}
	if fresh.Pod != "new-pod" || fresh.Namespace != "batch" || fresh.Container != "worker" {
		t.Fatalf("new pod not named after a miss: %+v", *fresh)
	}
	if _, _, ok := k.Pod(uid); ok {
		t.Errorf("the deleted pod is still listed")
	}
	// Names already given stay: the record's socket belonged to that pod.
	k.name(old)
	if old.Pod != "old-pod" || old.Container != "app" {
		t.Errorf("names of a pod that went away were lost: %+v", *old)
	}
	if warn.Len() != 0 {
		t.Errorf("warned: %s", warn.String())
	}
}

func TestKubeletMissesAreRateLimited(t *testing.T) {
	f := newFakeKubelet(t)
	var warn bytes.Buffer
	k := f.client(t, &warn)
	k.cfg.MinInterval = time.Hour
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		k.name(&Attribution{Workload: record.Workload{PodUID: uid}})
	}
	// Let any background request land before counting.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		k.mu.Lock()
		busy := k.inFlight
		k.mu.Unlock()
		if !busy {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d requests for 1000 misses within MinInterval, want 1", n)
	}
}

func TestKubeletRefusingWarnsOnce(t *testing.T) {
	f := newFakeKubelet(t)
	f.status = http.StatusForbidden
	var warn bytes.Buffer
	k := f.client(t, &warn)
	for range 3 {
		if err := k.Refresh(context.Background()); err == nil {
			t.Fatal("Refresh succeeded against a refusing kubelet")
		}
	}
	got := warn.String()
	if strings.Count(got, "\n") != 1 || !strings.Contains(got, "403 Forbidden") || !strings.Contains(got, "tracing goes on") {
		t.Errorf("want one warning line naming the refusal, got %q", got)
	}
	if _, _, ok := k.Pod(uid); ok {
		t.Error("a refusing kubelet named a pod")
	}
}

func TestKubeletUnreachableWarnsOnce(t *testing.T) {
	f := newFakeKubelet(t)
	var warn bytes.Buffer
	k := f.client(t, &warn)
	f.srv.Close()
	k.cfg.Timeout = time.Second
	for range 2 {
		if err := k.Refresh(context.Background()); err == nil {
			t.Fatal("Refresh succeeded against a closed server")
		}
	}
	if got := warn.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "katrace: warning: asking the kubelet at ") {
		t.Errorf("want one warning line, got %q", got)
	}
}

func TestKubeletWrongTokenIsRefused(t *testing.T) {
	f := newFakeKubelet(t)
	f.set(pod("p", "default", uid, "c", id64b, id64))
	var warn bytes.Buffer
	k := f.client(t, &warn)
	f.token = "rotated"
	if err := k.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Refresh with a stale token: %v", err)
	}
}

func TestKubeletFromEnvironmentOutsideKubernetes(t *testing.T) {
	if _, err := os.Stat(ServiceAccountToken); err == nil {
		t.Skip("this machine has a service-account token: it runs in Kubernetes")
	}
	t.Setenv("NODE_NAME", "node-1")
	k, err := KubeletFromEnvironment("", nil)
	if k != nil || err != nil {
		t.Errorf("outside Kubernetes: got %v, %v; want nothing tried", k, err)
	}
}
