package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ironlb/ironlb/internal/daemon"
)

// KubernetesVersion is the version of the control-plane binaries the tests
// run against; the Makefile builds the same one.
const KubernetesVersion = "v1.37.2"

// RequireEnv is the environment variable that turns a missing control plane
// from a skip into a failure.
const RequireEnv = "IRONLB_REQUIRE_ENVTEST"

// Env is a running control plane.
type Env struct {
	// Config connects to the API server as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client with ironlb's types registered.
	Client client.Client
	// Kubectl is the path of the kubectl binary matching the API server.
	Kubectl string
	// Kubeconfig is the path of a kubeconfig file for Config.
	Kubeconfig string
}

// Options say what to install in a new control plane.
type Options struct {
	// CRDs installs ironlb's CustomResourceDefinitions from
	// manifests/crd/bases.
	CRDs bool
}

// ServiceCIDRs are the cluster-IP ranges of every test control plane: dual
// stack, so that Services can ask for both families, and large enough for
// tens of thousands of Services. Cluster IPs are only numbers in the API:
// nothing routes them.
const ServiceCIDRs = "10.0.0.0/16,2001:db8:ffff::/108"

// RepoRoot returns the root of the ironlb source tree.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the source tree")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Assets returns the folder holding kube-apiserver, etcd and kubectl, or
// skips (or fails, see RequireEnv) the test when they are missing.
func Assets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "bin", "k8s", KubernetesVersion)
	}
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			Missing(t, "the control plane is not built (%s missing in %s): run `make controlplane`", name, dir)
		}
	}
	return dir
}

// Missing skips the test for a missing prerequisite, or fails it when
// RequireEnv is set.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf("SKIP: "+format, args...)
}

// Start starts a control plane for the test and stops it when the test
// ends. Tests run with -short skip it.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP: integration test; -short runs unit tests only")
	}
	assets := Assets(t)
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		ErrorIfCRDPathMissing: true,
	}
	te.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", ServiceCIDRs)
	// The data is thrown away with the test: no need to wait for the disk.
	te.ControlPlane.Etcd = &envtest.Etcd{}
	te.ControlPlane.Etcd.Configure().Set("unsafe-no-fsync", "true")
	if o.CRDs {
		te.CRDDirectoryPaths = []string{filepath.Join(RepoRoot(t), "manifests", "crd", "bases")}
	}
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("testenv: start control plane from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Errorf("testenv: stop control plane: %v", err)
		}
	})
	scheme, err := daemon.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("testenv: create client: %v", err)
	}
	user, err := te.ControlPlane.AddUser(envtest.User{Name: "ironlb-test-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatalf("testenv: add admin user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("testenv: render kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return &Env{
		Config:     cfg,
		Client:     c,
		Kubectl:    filepath.Join(assets, "kubectl"),
		Kubeconfig: path,
	}
}
