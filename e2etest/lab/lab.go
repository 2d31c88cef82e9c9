package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/daemon"
)

// NamePrefix starts the name of every namespace, root link and directory
// a lab makes: ilb-<ID>-<role>.
const NamePrefix = "ilb-"

// dirPrefix starts the name of a lab's directory under os.TempDir().
const dirPrefix = "ironlb-lab-"

// KubernetesVersion is the version of the control-plane binaries the lab
// runs; the Makefile builds the same one into bin/k8s/<version>.
const KubernetesVersion = "v1.37.2"

// Config says what lab to build. The zero value is a lab of three nodes
// with FRR and BIRD.
type Config struct {
	// Nodes is the number of nodes, 1 to MaxNodes; 0 means 3.
	Nodes int
	// Assets is the folder holding kube-apiserver, etcd and kubectl;
	// empty means $KUBEBUILDER_ASSETS, else bin/k8s/<version> in the
	// source tree.
	Assets string
	// Speaker and Controller are the paths of ironlb's programs; empty
	// means bin/speaker and bin/controller in the source tree.
	Speaker, Controller string
	// FRR and BIRD configure the routers; nil means the defaults (see
	// RouterConfig).
	FRR, BIRD *RouterConfig
	// NoRouters leaves FRR and BIRD out (their namespaces still exist).
	NoRouters bool
}

// Lab is a running lab. Its fields are read-only.
type Lab struct {
	// ID makes the lab's names unique: namespaces ilb-<ID>-<role>.
	ID string
	// Dir is the lab's private directory: certificates, kubeconfigs, logs.
	Dir string
	// APIServerAddr is the management address the API server listens on
	// (port APIServerPort); the root namespace and every node reach it.
	APIServerAddr netip.Addr
	// Kubeconfig is the path of an administrator's kubeconfig.
	Kubeconfig string
	// KubectlPath is the path of the kubectl that matches the API server.
	KubectlPath string
	// Config is the administrator's connection to the API server.
	Config *rest.Config
	// Client is an administrator's controller-runtime client with
	// ironlb's types registered; Clientset a typed one.
	Client    client.Client
	Clientset kubernetes.Interface

	// Nodes are the cluster's nodes, node1 to nodeN.
	Nodes []*Node
	// L2Client is the host on the node segment; RoutedClient the host
	// behind FRR.
	L2Client, RoutedClient *Client
	// FRR and BIRD are the routers on the segment.
	FRR  *FRR
	BIRD *BIRD

	cfg          Config
	repo         string
	mgmtSubnet   int
	procs        processes
	namespaces   []string
	rootLinkMade bool
	owned        bool // this process built the lab and tears it down

	// apiserverArgs is the API server's command line, kept to restart it.
	apiserverArgs  []string
	apiserverProbe *http.Client
	apiserverToken string

	mu         sync.Mutex
	controller *Process
	apiserver  *Process
	pods       *podSet
	proxyStop  context.CancelFunc
	proxyDone  chan struct{}
	proxyRules map[string]string
	// proxyBusy is set while the kube-proxy stand-in has work, and
	// proxyIdleSince is when it last had none.
	proxyBusy      bool
	proxyIdleSince time.Time
	closeOnce      sync.Once
	closeErr       error
}

// Client is a host that sends traffic to Services: the layer-2 client on
// the node segment, or the routed client behind FRR.
type Client struct {
	lab *Lab
	// Name is "client" or "rclient"; Namespace its network namespace.
	Name, Namespace string
	// IPv4 and IPv6 are its addresses.
	IPv4, IPv6 netip.Addr
}

// repoRoot returns the root of the ironlb source tree this package was
// built from.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// defaults fills in cfg's empty fields.
func (cfg Config) defaults() (Config, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return cfg, fmt.Errorf("lab: %d nodes: want 1 to %d", cfg.Nodes, MaxNodes)
	}
	repo := repoRoot()
	if cfg.Assets == "" {
		cfg.Assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if cfg.Assets == "" {
		cfg.Assets = filepath.Join(repo, "bin", "k8s", KubernetesVersion)
	}
	if cfg.Speaker == "" {
		cfg.Speaker = filepath.Join(repo, "bin", "speaker")
	}
	if cfg.Controller == "" {
		cfg.Controller = filepath.Join(repo, "bin", "controller")
	}
	if cfg.FRR == nil {
		cfg.FRR = &RouterConfig{}
	}
	if cfg.BIRD == nil {
		cfg.BIRD = &RouterConfig{}
	}
	return cfg, nil
}

// newID returns a random lab ID of four hex digits.
func newID() (string, error) {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate lab ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Start builds a lab and returns it running: network, control plane,
// Nodes, routers and the kube-proxy stand-in. ironlb itself is not
// installed (see InstallIronLB) and its programs are not started (see
// StartController and Node.StartSpeaker). On error, what was built is torn
// down. The caller must Close the lab.
func Start(ctx context.Context, cfg Config) (_ *Lab, err error) {
	cfg, err = cfg.defaults()
	if err != nil {
		return nil, err
	}
	if missing := Prerequisites(cfg); len(missing) > 0 {
		return nil, fmt.Errorf("lab: cannot start: %v", missing)
	}
	// What crashed labs left behind (an owner killed with SIGKILL leaves
	// FRR's daemons, which drop privileges and so the parent-death
	// signal, and the namespaces) goes first.
	if _, err := Clean(ctx); err != nil {
		return nil, fmt.Errorf("lab: clean up after crashed labs: %w", err)
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(os.TempDir(), dirPrefix+id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create lab directory: %w", err)
	}
	l := &Lab{ID: id, Dir: dir, cfg: cfg, repo: repoRoot(), owned: true, KubectlPath: filepath.Join(cfg.Assets, "kubectl")}
	l.procs.pidFile = filepath.Join(dir, "pids")
	if err := writeOwner(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer func() {
		if err != nil {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	// Labs starting at the same time must not pick the same management
	// subnet: pick it and claim it (the root link's address) under a lock.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "ironlb-labs.lock"))
	if err != nil {
		return nil, err
	}
	if l.mgmtSubnet, err = pickMgmtSubnet(ctx, id); err != nil {
		unlock()
		return nil, err
	}
	l.APIServerAddr = rootMgmt(l.mgmtSubnet)
	l.populate(cfg.Nodes, cfg.FRR.defaults(64500), cfg.BIRD.defaults(64501))

	err = l.buildNetwork(ctx)
	unlock()
	if err != nil {
		return nil, err
	}
	// The routers start while the API server does.
	routersDone := make(chan error, 1)
	go func() {
		if cfg.NoRouters {
			routersDone <- nil
			return
		}
		routersDone <- errors.Join(l.FRR.start(ctx), l.BIRD.start(ctx))
	}()
	err = startControlPlane(ctx, l, cfg.Assets, l.APIServerAddr)
	if rerr := <-routersDone; rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return nil, err
	}
	l.Kubeconfig = l.KubeconfigFor(Admin)
	if err := l.connect(); err != nil {
		return nil, err
	}
	if err := l.registerNodes(ctx); err != nil {
		return nil, err
	}
	l.pods = newPodSet()
	if err := l.startProxy(ctx); err != nil {
		return nil, err
	}
	if err := l.saveInfo(); err != nil {
		return nil, err
	}
	return l, nil
}

// lockFile takes an exclusive lock on path (made if need be) and returns
// its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// connect makes the lab's API clients.
func (l *Lab) connect() error {
	var err error
	if l.Config, err = l.RESTConfigFor(Admin); err != nil {
		return err
	}
	scheme, err := daemon.Scheme()
	if err != nil {
		return err
	}
	if l.Client, err = client.New(l.Config, client.Options{Scheme: scheme}); err != nil {
		return fmt.Errorf("create API client: %w", err)
	}
	if l.Clientset, err = kubernetes.NewForConfig(l.Config); err != nil {
		return fmt.Errorf("create API clientset: %w", err)
	}
	return nil
}

// track records a namespace the lab made, for teardown.
func (l *Lab) track(ns string) { l.namespaces = append(l.namespaces, ns) }

// startProcess starts a program the lab owns; its log is
// logs/<name>.log in the lab's directory.
func (l *Lab) startProcess(name, ns string, env []string, args ...string) (*Process, error) {
	p, err := startProcess(name, ns, filepath.Join(l.Dir, "logs", name+".log"), env, args...)
	if err != nil {
		return nil, err
	}
	l.procs.add(p)
	return p, nil
}

// KubeconfigFor returns the path of a kubeconfig for an identity.
func (l *Lab) KubeconfigFor(id Identity) string {
	if id == Admin {
		return filepath.Join(l.Dir, "kubeconfig")
	}
	return filepath.Join(l.Dir, "kubeconfig-"+string(id))
}

// RESTConfigFor returns a client configuration for an identity.
func (l *Lab) RESTConfigFor(id Identity) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.KubeconfigFor(id))
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig of %s: %w", id, err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg, nil
}

// Node returns the node with the given name, or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Logs returns the last lines of every log the lab's processes wrote, to
// explain a failure.
func (l *Lab) Logs(lines int) string { return l.procs.logTails(lines) }

// Close tears the lab down: processes, pods, namespaces, links, the FRR
// run directory and the lab's directory. It is safe to call more than
// once; a lab that was attached to (see Attach) is left running.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		if !l.owned {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var errs []error
		if l.proxyStop != nil {
			l.proxyStop()
			<-l.proxyDone
		}
		if l.pods != nil {
			l.pods.closeAll()
		}
		if err := l.procs.stopAll(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
		if err := l.deleteNetwork(ctx); err != nil {
			errs = append(errs, err)
		}
		for _, r := range []*router{l.frrRouter(), l.birdRouter()} {
			if r != nil && r.runDir != "" {
				if err := os.RemoveAll(r.runDir); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", l.Dir, err))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

func (l *Lab) frrRouter() *router {
	if l.FRR == nil {
		return nil
	}
	return &l.FRR.router
}

func (l *Lab) birdRouter() *router {
	if l.BIRD == nil {
		return nil
	}
	return &l.BIRD.router
}
