package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Kubectl runs kubectl against the lab as its administrator and returns
// its output.
func (l *Lab) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	return l.KubectlInput(ctx, nil, args...)
}

// KubectlInput is Kubectl with stdin.
func (l *Lab) KubectlInput(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	out, err := runInput(ctx, stdin, l.KubectlPath, append([]string{"--kubeconfig=" + l.Kubeconfig}, args...)...)
	if err != nil {
		return out, fmt.Errorf("kubectl: %w", err)
	}
	return out, nil
}

// Apply applies YAML documents (server-side, as the lab's administrator).
func (l *Lab) Apply(ctx context.Context, yamlDocs string) error {
	_, err := l.KubectlInput(ctx, []byte(yamlDocs), "apply", "--server-side", "--force-conflicts", "-f", "-")
	return err
}

// ApplyFiles applies files, folders or kustomizations (a folder holding
// kustomization.yaml is applied with -k).
func (l *Lab) ApplyFiles(ctx context.Context, paths ...string) error {
	for _, p := range paths {
		flag := "-f"
		if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err == nil {
			flag = "-k"
		}
		if _, err := l.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", flag, p); err != nil {
			return err
		}
	}
	return nil
}

// InstallIronLB applies manifests/install.yaml without its Deployment and
// DaemonSet: the namespace, the CRDs, the service accounts and RBAC. The
// programs run as processes (StartController, Node.StartSpeaker), not as
// Pods: no kubelet runs in the lab. It waits until the CRDs are served.
func (l *Lab) InstallIronLB(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(l.repo, "manifests", "install.yaml"))
	if err != nil {
		return fmt.Errorf("read install manifest: %w", err)
	}
	docs, err := withoutWorkloads(b)
	if err != nil {
		return err
	}
	if err := l.Apply(ctx, docs); err != nil {
		return fmt.Errorf("install ironlb: %w", err)
	}
	if _, err := l.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s",
		"crd", "-l", "app.kubernetes.io/part-of=ironlb"); err != nil {
		// Older manifests may not label their CRDs: wait for all.
		if _, err := l.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"); err != nil {
			return fmt.Errorf("wait for ironlb's CRDs: %w", err)
		}
	}
	return nil
}

// withoutWorkloads drops the Deployments and DaemonSets of a multi-document
// YAML manifest.
func withoutWorkloads(manifest []byte) (string, error) {
	var kept []string
	for _, doc := range splitYAML(string(manifest)) {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return "", fmt.Errorf("parse install manifest: %w", err)
		}
		if meta.Kind == "" || meta.Kind == "Deployment" || meta.Kind == "DaemonSet" {
			continue
		}
		kept = append(kept, doc)
	}
	return strings.Join(kept, "\n---\n"), nil
}

// splitYAML splits a multi-document YAML stream on its "---" lines.
func splitYAML(s string) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimRight(line, " \r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	docs = append(docs, cur.String())
	var out []string
	for _, d := range docs {
		if strings.TrimSpace(d) != "" {
			out = append(out, d)
		}
	}
	return out
}

// ServiceIPs returns the IPs in a Service's status.loadBalancer.ingress.
func (l *Lab) ServiceIPs(ctx context.Context, namespace, name string) ([]netip.Addr, error) {
	svc, err := l.Clientset.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Service %s/%s: %w", namespace, name, err)
	}
	var ips []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			ips = append(ips, a)
		}
	}
	return ips, nil
}

// WaitServiceIP waits until a Service has at least want IPs in its status
// (1 if want is 0) and returns them.
func (l *Lab) WaitServiceIP(ctx context.Context, namespace, name string, want int) ([]netip.Addr, error) {
	if want < 1 {
		want = 1
	}
	for {
		ips, err := l.ServiceIPs(ctx, namespace, name)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if len(ips) >= want {
			return ips, nil
		}
		select {
		case <-ctx.Done():
			return ips, fmt.Errorf("wait for an IP of Service %s/%s (has %v): %w", namespace, name, ips, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// SetServiceIngress writes a Service's status.loadBalancer.ingress, as
// the controller would: for tests of the lab itself, or of a speaker
// without the controller.
func (l *Lab) SetServiceIngress(ctx context.Context, namespace, name string, ips ...netip.Addr) error {
	svcs := l.Clientset.CoreV1().Services(namespace)
	for {
		svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get Service %s/%s: %w", namespace, name, err)
		}
		svc.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress,
				corev1.LoadBalancerIngress{IP: ip.String(), IPMode: ptrTo(corev1.LoadBalancerIPModeVIP)})
		}
		_, err = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set ingress of Service %s/%s: %w", namespace, name, err)
		}
		return nil
	}
}

func ptrTo[T any](v T) *T { return &v }

// logf records a message of the lab itself in logs/lab.log.
func (l *Lab) logf(format string, args ...any) {
	f, err := os.OpenFile(filepath.Join(l.Dir, "logs", "lab.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s ", time.Now().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, format, args...)
	b.WriteByte('\n')
	_, _ = f.Write(b.Bytes())
}
