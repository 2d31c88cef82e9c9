// Package manifests_test checks the install manifests: that they are what
// `make generate` produces from the code, and that a real API server accepts
// them.
package manifests_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/testenv"
)

// TestGeneratedFilesUpToDate regenerates the CRDs, RBAC, deepcopy functions
// and install.yaml into a temporary folder and fails on any difference from
// the committed files.
func TestGeneratedFilesUpToDate(t *testing.T) {
	root := testenv.RepoRoot(t)
	gen := os.Getenv("CONTROLLER_GEN")
	if gen == "" {
		gen = filepath.Join(root, "bin", "controller-gen")
	}
	if _, err := os.Stat(gen); err != nil {
		testenv.Missing(t, "controller-gen is not built (%s): run `make tools`", gen)
	}
	kubectl := filepath.Join(testenv.Assets(t), "kubectl")

	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "hack", "generate.sh"), out)
	cmd.Env = append(os.Environ(), "CONTROLLER_GEN="+gen, "KUBECTL="+kubectl)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/generate.sh: %v\n%s", err, b)
	}

	want := filepath.Join(root, "api", "v1beta1", "zz_generated.deepcopy.go")
	compare(t, want, filepath.Join(out, "zz_generated.deepcopy.go"))
	for _, dir := range []string{"crd/bases", "rbac/controller", "rbac/speaker"} {
		generated := files(t, filepath.Join(out, dir))
		committed := files(t, filepath.Join(root, "manifests", dir))
		if diff := cmp.Diff(committed, generated); diff != "" {
			t.Errorf("files in manifests/%s differ from the generated ones (-committed +generated):\n%s\nrun `make generate`", dir, diff)
		}
		for _, name := range generated {
			compare(t, filepath.Join(root, "manifests", dir, name), filepath.Join(out, dir, name))
		}
	}
	compare(t, filepath.Join(root, "manifests", "install.yaml"), filepath.Join(out, "install.yaml"))
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		names = append(names, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func compare(t *testing.T, committed, generated string) {
	t.Helper()
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Errorf("read committed file: %v (run `make generate`)", err)
		return
	}
	got, err := os.ReadFile(generated)
	if err != nil {
		t.Errorf("read generated file: %v", err)
		return
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s is stale: run `make generate` (-committed +generated):\n%s", committed, cmp.Diff(string(want), string(got)))
	}
}

// TestInstall applies install.yaml to a real API server, first as a
// server-side dry run and then for real, and then the samples a user would
// apply next.
func TestInstall(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	root := testenv.RepoRoot(t)
	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return string(out)
	}

	// A server-side dry run does not create the namespace, so the objects
	// inside it would be refused for want of it; create it first.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ironlb-system"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	install := filepath.Join(root, "manifests", "install.yaml")
	out := kubectl("apply", "--server-side", "--dry-run=server", "-f", install)
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/ipaddresspools.ironlb.io serverside-applied (server dry run)",
		"deployment.apps/ironlb-controller serverside-applied (server dry run)",
		"daemonset.apps/ironlb-speaker serverside-applied (server dry run)",
		"clusterrole.rbac.authorization.k8s.io/ironlb-speaker serverside-applied (server dry run)",
		"role.rbac.authorization.k8s.io/ironlb-controller serverside-applied (server dry run)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("server-side dry run of install.yaml did not report %q:\n%s", want, out)
		}
	}

	kubectl("apply", "--server-side", "-f", install)
	kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	kubectl("apply", "--server-side", "-k", filepath.Join(root, "manifests", "samples"))
	pools := kubectl("get", "ipaddresspools", "-n", "ironlb-system")
	for _, want := range []string{"ADDRESSES", "AUTO ASSIGN", "ASSIGNED IPV4", "AVAILABLE IPV6", "lan", "routed"} {
		if !strings.Contains(pools, want) {
			t.Errorf("kubectl get ipaddresspools does not show %q:\n%s", want, pools)
		}
	}
	peers := kubectl("get", "bgppeers", "-n", "ironlb-system")
	for _, want := range []string{"ADDRESS", "PEER ASN", "MY ASN", "198.51.100.1", "64500", "64512"} {
		if !strings.Contains(peers, want) {
			t.Errorf("kubectl get bgppeers does not show %q:\n%s", want, peers)
		}
	}
}
