// Command speaker runs on every node and makes the external IPs of Services
// reachable: it answers ARP and NDP for them in layer-2 mode, or advertises
// them over BGP to the routers above the cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/internal/daemon"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/bgp/gobgp"
	"github.com/ironlb/ironlb/speaker/cluster"
	"github.com/ironlb/ironlb/speaker/layer2"
	"github.com/ironlb/ironlb/speaker/layer2/interfaces"
)

// The speaker's permissions, rendered into manifests/rbac/speaker by
// `make generate`.
//
// +kubebuilder:rbac:groups="",resources=services;endpoints;nodes;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=ironlb.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;communities,verbs=get;list;watch,namespace=ironlb-system
// +kubebuilder:rbac:groups=ironlb.io,resources=servicel2statuses,verbs=get;list;watch;create;update;patch;delete,namespace=ironlb-system
// +kubebuilder:rbac:groups=ironlb.io,resources=servicel2statuses/status;bgppeers/status,verbs=get;update;patch,namespace=ironlb-system
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch,namespace=ironlb-system

type options struct {
	daemon.Flags
	nodeName string
}

func main() {
	// A flag set of our own: controller-runtime registers --kubeconfig on
	// the global one.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var o options
	o.Register(fs, ":7472", ":7473")
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "name of the Node this speaker runs on (default $NODE_NAME)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag

	if err := o.SetupLogging(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "speaker stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.nodeName == "" {
		return errors.New("the node name is unknown: pass --node-name or set NODE_NAME")
	}
	cfg, err := o.RESTConfig()
	if err != nil {
		return err
	}
	opts, err := o.ManagerOptions()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := daemon.AddHealthChecks(mgr); err != nil {
		return err
	}
	metrics, err := cluster.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	announcer := layer2.NewAnnouncer(layer2.Listener{ARP: metrics.Protocol("arp"), NDP: metrics.Protocol("ndp")})
	announcer.Log = ctrl.Log.WithName("layer2")
	v4, v6, err := nodeAddresses(ctx, cfg, o.nodeName)
	if err != nil {
		return err
	}
	router := gobgp.New(gobgp.Options{IPv4: v4, IPv6: v6, Logger: slog.New(logr.ToSlogHandler(ctrl.Log.WithName("bgp")))})
	sp := cluster.New(mgr.GetClient(), cluster.Options{
		Node: o.nodeName, Namespace: o.Namespace, Announcer: announcer,
		BGP:      cluster.Sessions{Reconciler: bgp.NewReconciler(router), Router: router},
		Recorder: mgr.GetEventRecorder("ironlb-speaker"), Metrics: metrics,
	})
	if err := sp.SetupWithManager(mgr); err != nil {
		return err
	}
	links := interfaces.NewWatcher(sp.SetLinks)
	sessions := func(ctx context.Context) error { return sp.WriteSessions(ctx, 2*time.Second) }
	for _, r := range []manager.RunnableFunc{announcer.Run, links.Run, router.Run, sessions} {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("add runnable: %w", err)
		}
	}
	ctrl.Log.Info("starting speaker", "node", o.nodeName, "namespace", o.Namespace)
	return mgr.Start(ctx)
}

// nodeAddresses reads the node's IPv4 and IPv6 addresses from its Node
// object: the next hops of the routes advertised over BGP.
func nodeAddresses(ctx context.Context, cfg *rest.Config, name string) (v4, v6 netip.Addr, err error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return v4, v6, fmt.Errorf("create client: %w", err)
	}
	node, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ctrl.Log.Info("no Node object of this name: BGP next hops fall back to the sessions' own addresses", "node", name)
		return v4, v6, nil
	}
	if err != nil {
		return v4, v6, fmt.Errorf("read Node %s: %w", name, err)
	}
	for _, a := range node.Status.Addresses {
		ip, err := netip.ParseAddr(a.Address)
		if err != nil || a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip.Is4() && !v4.IsValid() {
			v4 = ip
		} else if ip.Is6() && !v6.IsValid() {
			v6 = ip
		}
	}
	return v4, v6, nil
}
