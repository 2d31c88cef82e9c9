package lab

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Identity is who a kubeconfig authenticates as.
type Identity string

// The identities the lab's API server knows. Controller and Speaker are
// the service accounts of manifests/install.yaml, so the programs run with
// exactly the permissions the install manifest grants them.
const (
	Admin      Identity = "admin"
	Controller Identity = "controller"
	Speaker    Identity = "speaker"
)

// ironlbNamespace is where install.yaml puts ironlb and its service
// accounts.
const ironlbNamespace = "ironlb-system"

// user returns the user name and groups of an identity.
func (id Identity) user() (string, []string) {
	switch id {
	case Controller, Speaker:
		return "system:serviceaccount:" + ironlbNamespace + ":ironlb-" + string(id),
			[]string{"system:serviceaccounts", "system:serviceaccounts:" + ironlbNamespace, "system:authenticated"}
	default:
		return "lab-admin", []string{"system:masters", "system:authenticated"}
	}
}

// controlPlane is what clients need to reach the API server.
type controlPlane struct {
	url    string
	caPEM  []byte
	tokens map[Identity]string
}

// freeLoopbackPort returns a TCP port nothing listens on at the moment on
// 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startControlPlane writes the certificates, tokens and kubeconfigs into
// dir and starts etcd and kube-apiserver; the API server listens on
// addr:APIServerPort only.
func startControlPlane(ctx context.Context, l *Lab, assets string, addr netip.Addr) error {
	pki := filepath.Join(l.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return fmt.Errorf("create pki directory: %w", err)
	}
	// Serving certificate (and the CA that signed it) for the API server.
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey("kubernetes", []net.IP{net.IP(addr.AsSlice())},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"})
	if err != nil {
		return fmt.Errorf("generate serving certificate: %w", err)
	}
	caPEM, err := lastPEM(certPEM)
	if err != nil {
		return err
	}
	saKey, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	files := map[string][]byte{"serving.crt": certPEM, "serving.key": keyPEM, "ca.crt": caPEM, "sa.key": saKey}
	cp := &controlPlane{
		url:    "https://" + net.JoinHostPort(addr.String(), strconv.Itoa(APIServerPort)),
		caPEM:  caPEM,
		tokens: map[Identity]string{},
	}
	var tokens strings.Builder
	for _, id := range []Identity{Admin, Controller, Speaker} {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generate token: %w", err)
		}
		cp.tokens[id] = hex.EncodeToString(b)
		name, groups := id.user()
		fmt.Fprintf(&tokens, "%s,%s,%s,\"%s\"\n", cp.tokens[id], name, name, strings.Join(groups, ","))
	}
	files["tokens.csv"] = []byte(tokens.String())
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	for _, id := range []Identity{Admin, Controller, Speaker} {
		if err := cp.writeKubeconfig(l.KubeconfigFor(id), id); err != nil {
			return err
		}
	}

	clientPort, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	peerPort, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := l.startProcess("etcd", "", nil,
		filepath.Join(assets, "etcd"),
		"--name=lab",
		"--data-dir="+filepath.Join(l.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=lab="+peerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := waitProcessHTTP(ctx, etcd, http.DefaultClient, etcdURL+"/health", ""); err != nil {
		return fmt.Errorf("wait for etcd: %w", err)
	}
	l.apiserverArgs = []string{
		filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + addr.String(),
		"--advertise-address=" + addr.String(),
		"--secure-port=" + strconv.Itoa(APIServerPort),
		"--tls-cert-file=" + filepath.Join(pki, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "serving.key"),
		"--token-auth-file=" + filepath.Join(pki, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDRV4.String() + "," + ServiceCIDRV6.String(),
		"--enable-priority-and-fairness=false",
		// The advertise address is link-local, which the endpoint
		// reconciler refuses; nothing here uses the kubernetes Service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--cert-dir=" + filepath.Join(l.Dir, "apiserver-certs"),
		"--v=1",
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	l.apiserverProbe = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 2 * time.Second}
	l.apiserverToken = cp.tokens[Admin]
	return l.StartAPIServer(ctx)
}

// StartAPIServer starts the lab's kube-apiserver, with the arguments and
// the etcd it first ran with, and returns once it is ready. The lab starts
// it; tests call it after StopAPIServer.
func (l *Lab) StartAPIServer(ctx context.Context) error {
	p, err := l.startProcess("kube-apiserver", "", nil, l.apiserverArgs...)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.apiserver = p
	l.mu.Unlock()
	url := "https://" + net.JoinHostPort(l.APIServerAddr.String(), strconv.Itoa(APIServerPort)) + "/readyz"
	if err := waitProcessHTTP(ctx, p, l.apiserverProbe, url, l.apiserverToken); err != nil {
		return fmt.Errorf("wait for kube-apiserver: %w", err)
	}
	return nil
}

// StopAPIServer stops the lab's kube-apiserver (SIGTERM, SIGKILL after
// grace), leaving etcd and everything else running: clients get
// connection refused until StartAPIServer.
func (l *Lab) StopAPIServer(grace time.Duration) error {
	l.mu.Lock()
	p := l.apiserver
	l.mu.Unlock()
	if p == nil {
		return fmt.Errorf("stop kube-apiserver: not running")
	}
	return p.Stop(grace)
}

func (cp *controlPlane) writeKubeconfig(path string, id Identity) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: cp.url, CertificateAuthorityData: cp.caPEM}
	cfg.AuthInfos[string(id)] = &clientcmdapi.AuthInfo{Token: cp.tokens[id]}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: string(id), Namespace: "default"}
	cfg.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// lastPEM returns the last PEM block of data: the CA that
// GenerateSelfSignedCertKey appends after the serving certificate.
func lastPEM(data []byte) ([]byte, error) {
	var last *pem.Block
	for {
		b, rest := pem.Decode(data)
		if b == nil {
			break
		}
		last, data = b, rest
	}
	if last == nil {
		return nil, fmt.Errorf("parse generated certificate: no PEM block")
	}
	return pem.EncodeToMemory(last), nil
}

// waitProcessHTTP is waitHTTP that gives up when p exits, with the end
// of p's log in the error.
func waitProcessHTTP(ctx context.Context, p *Process, hc *http.Client, url, token string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := waitHTTP(ctx, hc, url, token); err != nil {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, tail(p.Log(), 15))
		}
		return err
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200 OK or ctx ends.
func waitHTTP(ctx context.Context, hc *http.Client, url, token string) error {
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
