package container

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// In-cluster defaults: the pod's service account, and the node name the
// DaemonSet passes from spec.nodeName.
const (
	ServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	ServiceAccountCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	kubeletPort         = "10250"
)

// KubeletConfig says how to reach the node's kubelet.
type KubeletConfig struct {
	// URL of the kubelet's pod list, e.g. https://node-1:10250/pods.
	URL string
	// TokenFile holds the bearer token; read again on every request, since
	// projected service-account tokens rotate.
	TokenFile string
	// CAFile verifies the kubelet's certificate; empty uses the system pool.
	CAFile string
	// MinInterval rate-limits requests (a miss asks again at most this
	// often); Timeout bounds one request.
	MinInterval time.Duration
	Timeout     time.Duration
	// Warn receives the one warning line when the kubelet cannot be asked.
	Warn io.Writer
}

// KubeletFromEnvironment returns the kubelet client of a katrace running in
// Kubernetes: a service-account token is mounted and $NODE_NAME is set.
// Anywhere else it returns nil and tries nothing. url overrides the
// kubelet's address (--kubelet-url).
func KubeletFromEnvironment(url string, warn io.Writer) (*Kubelet, error) {
	node := os.Getenv("NODE_NAME")
	if _, err := os.Stat(ServiceAccountToken); err != nil || node == "" {
		return nil, nil
	}
	if url == "" {
		url = "https://" + hostPort(node, kubeletPort) + "/pods"
	}
	return NewKubelet(KubeletConfig{URL: url, TokenFile: ServiceAccountToken, CAFile: ServiceAccountCA, Warn: warn})
}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// Kubelet knows the pods of this node by asking the kubelet's /pods. Lookups
// read the last answer and never wait on the network; a miss asks again in
// the background, at most once per MinInterval. Safe for concurrent use.
type Kubelet struct {
	cfg    KubeletConfig
	client *http.Client

	snap atomic.Pointer[podSnapshot]

	mu         sync.Mutex
	lastAsk    time.Time
	inFlight   bool
	warnedOnce bool
}

// podSnapshot is one answer of the kubelet.
type podSnapshot struct {
	gen        uint64
	pods       map[string]podName       // by uid
	containers map[string]containerName // by 64-hex id
}

type containerName struct{ name, podUID string }

type podName struct{ name, namespace string }

// NewKubelet returns a client for the kubelet cfg names. It asks nothing
// yet: call Refresh.
func NewKubelet(cfg KubeletConfig) (*Kubelet, error) {
	if _, err := url.Parse(cfg.URL); err != nil || cfg.URL == "" {
		return nil, fmt.Errorf("kubelet URL %q: want https://HOST:10250/pods", cfg.URL)
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = 5 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the kubelet's CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading the kubelet's CA: no certificate in %s", cfg.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	k := &Kubelet{
		cfg: cfg,
		client: &http.Client{
			Timeout:   cfg.Timeout,
			Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: nil},
		},
	}
	// Generation 1, so that attributions (generation 0) look it up once.
	k.snap.Store(&podSnapshot{gen: 1})
	return k, nil
}

// Refresh asks the kubelet now and waits for the answer. On failure it
// warns once (one line) and keeps the last answer.
func (k *Kubelet) Refresh(ctx context.Context) error {
	k.mu.Lock()
	k.lastAsk = time.Now()
	k.mu.Unlock()
	err := k.fetch(ctx)
	if err != nil {
		k.warn(err)
	}
	return err
}

// Pod returns the name and namespace of the pod with uid.
func (k *Kubelet) Pod(uid string) (name, namespace string, ok bool) {
	p, ok := k.snap.Load().pods[uid]
	return p.name, p.namespace, ok
}

// ContainerName returns the name of the container with the full 64-hex id.
func (k *Kubelet) ContainerName(id string) (string, bool) {
	n, ok := k.snap.Load().containers[id]
	return n.name, ok
}

// ContainerIDs returns the ids of the containers called name, or, for
// "POD/CONTAINER", of that pod's container of that name, as the text
// output's CONTAINER column shows them.
func (k *Kubelet) ContainerIDs(name string) []string {
	s := k.snap.Load()
	pod, ctr, inPod := strings.Cut(name, "/")
	if !inPod {
		ctr = name
	}
	var ids []string
	for id, c := range s.containers {
		if c.name != ctr {
			continue
		}
		if inPod && s.pods[c.podUID].name != pod {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// name fills a's names from the last answer; when the pod is missing from
// it, asks the kubelet again in the background. Names once found are kept:
// a record about a pod that has gone away still belonged to it.
func (k *Kubelet) name(a *Attribution) {
	s := k.snap.Load()
	if a.kubeGen != s.gen {
		a.kubeGen = s.gen
		if a.Pod == "" {
			if p, ok := s.pods[a.PodUID]; ok {
				a.Pod, a.Namespace = p.name, p.namespace
			}
		}
		if a.Container == "" && a.ContainerID != "" {
			a.Container = s.containers[a.ContainerID].name
		}
	}
	if a.Pod == "" || (a.ContainerID != "" && a.Container == "") {
		k.refreshLater()
	}
}

// refreshLater starts a background refresh unless one ran recently.
func (k *Kubelet) refreshLater() {
	k.mu.Lock()
	if k.inFlight || time.Since(k.lastAsk) < k.cfg.MinInterval {
		k.mu.Unlock()
		return
	}
	k.inFlight = true
	k.lastAsk = time.Now()
	k.mu.Unlock()
	go func() {
		if err := k.fetch(context.Background()); err != nil {
			k.warn(err)
		}
		k.mu.Lock()
		k.inFlight = false
		k.mu.Unlock()
	}()
}

func (k *Kubelet) warn(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.warnedOnce || k.cfg.Warn == nil {
		return
	}
	k.warnedOnce = true
	fmt.Fprintf(k.cfg.Warn, "katrace: warning: %v; tracing goes on without pod and container names\n", err)
}

// podList is the part of the kubelet's /pods answer (a v1 PodList) katrace
// reads.
type podList struct {
	Kind  string `json:"kind"`
	Items []struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
		} `json:"metadata"`
		Status struct {
			ContainerStatuses          []containerStatus `json:"containerStatuses"`
			InitContainerStatuses      []containerStatus `json:"initContainerStatuses"`
			EphemeralContainerStatuses []containerStatus `json:"ephemeralContainerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

type containerStatus struct {
	Name string `json:"name"`
	// ContainerID is "<runtime>://<id>", e.g. containerd://<64 hex>.
	ContainerID string `json:"containerID"`
}

func (k *Kubelet) fetch(ctx context.Context) error {
	token, err := os.ReadFile(k.cfg.TokenFile)
	if err != nil {
		return fmt.Errorf("asking the kubelet for pods: reading the service-account token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("asking the kubelet for pods: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("asking the kubelet at %s for pods: %w", k.cfg.URL, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking the kubelet at %s for pods: %s", k.cfg.URL, resp.Status)
	}
	var list podList
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&list); err != nil {
		return fmt.Errorf("reading the kubelet's pod list from %s: %w", k.cfg.URL, err)
	}
	if list.Kind != "" && list.Kind != "PodList" {
		return fmt.Errorf("reading the kubelet's pod list from %s: got a %s", k.cfg.URL, list.Kind)
	}
	next := &podSnapshot{
		gen:        k.snap.Load().gen + 1,
		pods:       make(map[string]podName, len(list.Items)),
		containers: map[string]containerName{},
	}
	for _, p := range list.Items {
		next.pods[p.Metadata.UID] = podName{p.Metadata.Name, p.Metadata.Namespace}
		for _, group := range [][]containerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses, p.Status.EphemeralContainerStatuses} {
			for _, c := range group {
				if _, id, ok := strings.Cut(c.ContainerID, "://"); ok && id != "" {
					next.containers[id] = containerName{c.Name, p.Metadata.UID}
				}
			}
		}
	}
	k.snap.Store(next)
	return nil
}
