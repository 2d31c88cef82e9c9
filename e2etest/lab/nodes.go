package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node is one node of the lab: a network namespace on the segment with a
// Node object in the API.
type Node struct {
	// Name is the Node object's name, node1 to nodeN.
	Name string
	// Namespace is its network namespace.
	Namespace string
	// IPv4 and IPv6 are its addresses on the segment (link eth0), also
	// the Node object's InternalIP addresses.
	IPv4, IPv6 netip.Addr
	// MgmtAddr is its address on the management network (link mgmt0),
	// from which it reaches the API server.
	MgmtAddr netip.Addr

	lab     *Lab
	index   int
	speaker *Process
}

// SegmentLink and MgmtLink are the names of a node's links: to the
// segment (where ARP, NDP and BGP happen) and to the management network
// (the API server only).
const (
	SegmentLink = segmentLink
	MgmtLink    = mgmtLink
)

// Speaker health, metrics and profile ports inside a node's namespace.
const (
	SpeakerMetricsPort = 7472
	SpeakerHealthPort  = 7473
	SpeakerPprofPort   = 7474
)

// registerNodes creates a Ready Node object for every node.
func (l *Lab) registerNodes(ctx context.Context) error {
	for _, n := range l.Nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: n.Name,
				Labels: map[string]string{
					"kubernetes.io/hostname": n.Name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"lab.ironlb.io/node":     n.Name,
				},
			},
			Spec: corev1.NodeSpec{PodCIDRs: []string{podPrefixV4(n.index).String(), podPrefixV6(n.index).String()}},
		}
		node.Spec.PodCIDR = node.Spec.PodCIDRs[0]
		created, err := l.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create Node %s: %w", n.Name, err)
		}
		created.Status = corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
				{Type: corev1.NodeInternalIP, Address: n.IPv6.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
			Conditions: []corev1.NodeCondition{readyCondition(true)},
		}
		if _, err := l.Clientset.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set status of Node %s: %w", n.Name, err)
		}
	}
	return nil
}

func readyCondition(ready bool) corev1.NodeCondition {
	c := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "lab node",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}
	if !ready {
		c.Status, c.Reason = corev1.ConditionFalse, "KubeletNotReady"
	}
	return c
}

// SetReady sets the Ready condition of the node's Node object, as a
// kubelet (or the node lifecycle controller, for a dead node) would.
func (n *Node) SetReady(ctx context.Context, ready bool) error {
	node, err := n.lab.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Node %s: %w", n.Name, err)
	}
	conds := []corev1.NodeCondition{readyCondition(ready)}
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			conds = append(conds, c)
		}
	}
	node.Status.Conditions = conds
	if _, err := n.lab.Clientset.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of Node %s: %w", n.Name, err)
	}
	return nil
}

// Label sets (or, with an empty value, removes) a label of the node's
// Node object.
func (n *Node) Label(ctx context.Context, key, value string) error {
	for {
		node, err := n.lab.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get Node %s: %w", n.Name, err)
		}
		if value == "" {
			delete(node.Labels, key)
		} else {
			node.Labels[key] = value
		}
		_, err = n.lab.Clientset.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("label Node %s: %w", n.Name, err)
		}
		return nil
	}
}

// Exec runs a command inside the node's namespace and returns its output.
func (n *Node) Exec(ctx context.Context, args ...string) ([]byte, error) {
	return nsExec(ctx, n.Namespace, args...)
}

// StartSpeaker starts the speaker on the node, with the speaker's
// service-account kubeconfig, its node name, debug logging, and args
// added. It waits until the speaker answers on /healthz.
func (n *Node) StartSpeaker(ctx context.Context, args ...string) (*Process, error) {
	n.lab.mu.Lock()
	running := n.speaker != nil && !n.speaker.Exited()
	n.lab.mu.Unlock()
	if running {
		return nil, fmt.Errorf("start speaker on %s: already running", n.Name)
	}
	args = append([]string{
		n.lab.cfg.Speaker,
		"--kubeconfig=" + n.lab.KubeconfigFor(Speaker),
		"--node-name=" + n.Name,
		"--log-level=debug",
		fmt.Sprintf("--metrics-bind-address=:%d", SpeakerMetricsPort),
		fmt.Sprintf("--health-probe-bind-address=:%d", SpeakerHealthPort),
		fmt.Sprintf("--pprof-bind-address=:%d", SpeakerPprofPort),
	}, args...)
	p, err := n.lab.startProcess("speaker-"+n.Name, n.Namespace, []string{"NODE_NAME=" + n.Name}, args...)
	if err != nil {
		return nil, err
	}
	n.lab.mu.Lock()
	n.speaker = p
	n.lab.mu.Unlock()
	if err := waitHealthy(ctx, p, n.SpeakerHealthURL()); err != nil {
		return p, err
	}
	return p, nil
}

// Speaker returns the node's speaker process, or nil if none was started.
func (n *Node) Speaker() *Process {
	n.lab.mu.Lock()
	defer n.lab.mu.Unlock()
	return n.speaker
}

// SpeakerHealthURL is the speaker's /healthz, reached through the
// management network.
func (n *Node) SpeakerHealthURL() string {
	return fmt.Sprintf("http://%s/healthz", net.JoinHostPort(n.MgmtAddr.String(), fmt.Sprint(SpeakerHealthPort)))
}

// SpeakerMetricsURL is the speaker's /metrics, reached through the
// management network.
func (n *Node) SpeakerMetricsURL() string {
	return fmt.Sprintf("http://%s/metrics", net.JoinHostPort(n.MgmtAddr.String(), fmt.Sprint(SpeakerMetricsPort)))
}

// SpeakerPprofURL is the speaker's /debug/pprof/, reached through the
// management network: go tool pprof SpeakerPprofURL()+"heap".
func (n *Node) SpeakerPprofURL() string {
	return fmt.Sprintf("http://%s/debug/pprof/", net.JoinHostPort(n.MgmtAddr.String(), fmt.Sprint(SpeakerPprofPort)))
}

// StopSpeaker stops the node's speaker gracefully (SIGTERM, then SIGKILL
// after grace).
func (n *Node) StopSpeaker(grace time.Duration) error {
	if p := n.Speaker(); p != nil {
		return p.Stop(grace)
	}
	return nil
}

// RestartSpeaker stops the speaker gracefully and starts it again with
// the same extra args.
func (n *Node) RestartSpeaker(ctx context.Context, args ...string) (*Process, error) {
	if err := n.StopSpeaker(5 * time.Second); err != nil {
		return nil, err
	}
	return n.StartSpeaker(ctx, args...)
}

// Kill simulates a node dying: SIGKILL to its speaker, then its segment
// link goes down. It returns the time the link went down.
func (n *Node) Kill(ctx context.Context) (time.Time, error) {
	if p := n.Speaker(); p != nil {
		if err := p.Kill(); err != nil {
			return time.Time{}, err
		}
	}
	return n.LinkDown(ctx)
}

// Freeze stops the node's speaker with SIGSTOP: it holds its sockets and
// answers nothing, like a hung node. It returns once every thread of the
// speaker has stopped. Thaw resumes it.
func (n *Node) Freeze() error {
	p := n.Speaker()
	if p == nil {
		return fmt.Errorf("freeze %s: no speaker", n.Name)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); !p.stopped(); {
		if time.Now().After(deadline) {
			return fmt.Errorf("freeze %s: the speaker did not stop", n.Name)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Thaw resumes a frozen speaker with SIGCONT.
func (n *Node) Thaw() error {
	p := n.Speaker()
	if p == nil {
		return fmt.Errorf("thaw %s: no speaker", n.Name)
	}
	return p.Signal(syscall.SIGCONT)
}

// LinkDown takes the node's segment link down and returns when it did.
func (n *Node) LinkDown(ctx context.Context) (time.Time, error) {
	t := time.Now()
	if _, err := run(ctx, "ip", "-n", n.Namespace, "link", "set", segmentLink, "down"); err != nil {
		return t, err
	}
	return t, nil
}

// LinkUp brings the node's segment link back up.
func (n *Node) LinkUp(ctx context.Context) error {
	_, err := run(ctx, "ip", "-n", n.Namespace, "link", "set", segmentLink, "up")
	return err
}

// StartController starts the controller in the root namespace with the
// controller's service-account kubeconfig, debug logging, health and
// metrics on free loopback ports, and args added; it waits until the
// controller answers on /healthz.
func (l *Lab) StartController(ctx context.Context, args ...string) (*Process, error) {
	l.mu.Lock()
	running := l.controller != nil && !l.controller.Exited()
	l.mu.Unlock()
	if running {
		return nil, fmt.Errorf("start controller: already running")
	}
	health, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	metrics, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	args = append([]string{
		l.cfg.Controller,
		"--kubeconfig=" + l.KubeconfigFor(Controller),
		"--log-level=debug",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", health),
	}, args...)
	p, err := l.startProcess("controller", "", nil, args...)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.controller = p
	l.mu.Unlock()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", health)
	if err := os.WriteFile(filepath.Join(l.Dir, "controller-health"), []byte(url), 0o600); err != nil {
		return p, fmt.Errorf("record the controller's health URL: %w", err)
	}
	if err := waitHealthy(ctx, p, url); err != nil {
		return p, err
	}
	return p, nil
}

// ControllerHealthURL returns the /healthz URL of the controller last
// started, also from a lab attached to; "" if none was started.
func (l *Lab) ControllerHealthURL() string {
	b, err := os.ReadFile(filepath.Join(l.Dir, "controller-health"))
	if err != nil {
		return ""
	}
	return string(b)
}

// Healthy reports whether url answers 200 within a second.
func Healthy(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// ControllerProcess returns the controller process, or nil.
func (l *Lab) ControllerProcess() *Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.controller
}

// RestartController stops the controller gracefully and starts it again
// with args.
func (l *Lab) RestartController(ctx context.Context, args ...string) (*Process, error) {
	if p := l.ControllerProcess(); p != nil {
		if err := p.Stop(5 * time.Second); err != nil {
			return nil, err
		}
	}
	return l.StartController(ctx, args...)
}

// waitHealthy waits until url answers 200, failing early if p exits.
func waitHealthy(ctx context.Context, p *Process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	hc := &http.Client{Timeout: time.Second}
	if err := waitHTTP(ctx, hc, url, ""); err != nil {
		if p.Exited() {
			return fmt.Errorf("%s exited before it was healthy: %v\n%s", p.Name, p.err, tail(p.Log(), 15))
		}
		return fmt.Errorf("%s is not healthy: %w", p.Name, err)
	}
	return nil
}
