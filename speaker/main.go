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

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/internal/daemon"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/bgp/gobgp"
	"github.com/ironlb/ironlb/speaker/cluster"
	"github.com/ironlb/ironlb/speaker/layer2"
	"github.com/ironlb/ironlb/speaker/layer2/interfaces"
	"github.com/ironlb/ironlb/speaker/members"
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
	nodeName         string
	memberlist       bool
	memberlistPort   uint
	memberlistSecret string
}

func main() {
	// A flag set of our own: controller-runtime registers --kubeconfig on
	// the global one.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var o options
	o.Register(fs, ":7472", ":7473")
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "name of the Node this speaker runs on (default $NODE_NAME)")
	fs.BoolVar(&o.memberlist, "memberlist", true, "detect dead speakers by gossip (sub-second failover); off, Node readiness stands in")
	fs.UintVar(&o.memberlistPort, "memberlist-port", members.DefaultPort, "UDP and TCP port of the gossip among speakers")
	fs.StringVar(&o.memberlistSecret, "memberlist-secret", "ironlb-memberlist", "Secret in ironlb's namespace whose \"secretkey\" (16, 24 or 32 bytes) encrypts the gossip; none: unencrypted")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag

	if err := o.SetupLogging(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	daemon.SetMemoryLimit()
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
	for obj, by := range cluster.CacheTransforms() {
		opts.Cache.ByObject[obj] = by
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
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	v4, v6, err := nodeAddresses(ctx, cs, o.nodeName)
	if err != nil {
		return err
	}
	var gossip *members.Members
	var sp *cluster.Speaker
	if o.memberlist && v4.IsValid() {
		key, err := secretKey(ctx, cs, o.Namespace, o.memberlistSecret)
		if err != nil {
			return err
		}
		gossip = members.New(members.Options{
			NodeName: o.nodeName, BindAddr: v4, Port: uint16(o.memberlistPort), SecretKey: key,
			Log: ctrl.Log.WithName("members"),
			Notify: func(live map[string]bool) {
				sp.SetLive(live)
				metrics.Members(len(live))
			},
		})
	} else if o.memberlist {
		ctrl.Log.Info("the Node has no IPv4 InternalIP to gossip on: speaker liveness follows Node readiness")
	}
	recorder, err := o.EventRecorder(mgr, "ironlb-speaker", "speaker")
	if err != nil {
		return err
	}
	router := gobgp.New(gobgp.Options{IPv4: v4, IPv6: v6, Logger: slog.New(logr.ToSlogHandler(ctrl.Log.WithName("bgp")))})
	spOpts := cluster.Options{
		Node: o.nodeName, Namespace: o.Namespace, Announcer: announcer,
		BGP:      cluster.Sessions{Reconciler: bgp.NewReconciler(router), Router: router},
		Recorder: recorder, Metrics: metrics,
	}
	if gossip != nil {
		spOpts.Peers = func(addrs []netip.Addr) {
			peers := make([]netip.AddrPort, 0, len(addrs))
			for _, a := range addrs {
				if a.Is4() {
					peers = append(peers, netip.AddrPortFrom(a, uint16(o.memberlistPort)))
				}
			}
			gossip.SetPeers(peers)
		}
	}
	sp = cluster.New(mgr.GetClient(), spOpts)
	if err := sp.SetupWithManager(mgr); err != nil {
		return err
	}
	links := interfaces.NewWatcher(sp.SetLinks)
	sessions := func(ctx context.Context) error { return sp.WriteSessions(ctx, 2*time.Second) }
	for _, r := range []manager.RunnableFunc{links.Run, router.Run, sessions} {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("add runnable: %w", err)
		}
	}

	// On SIGTERM the speaker first leaves the gossip membership, so that the
	// next owners take its addresses over, and only then stops answering
	// ARP and NDP: the announcer and the membership outlive the manager.
	annCtx, stopAnnouncer := context.WithCancel(context.Background())
	annDone := make(chan error, 1)
	go func() { annDone <- announcer.Run(annCtx) }()
	memCtx, leave := context.WithCancel(context.Background())
	memDone := make(chan error, 1)
	if gossip != nil {
		go func() { memDone <- gossip.Run(memCtx) }()
	} else {
		memDone <- nil
	}
	go func() {
		<-ctx.Done()
		leave()
	}()
	ctrl.Log.Info("starting speaker", "node", o.nodeName, "namespace", o.Namespace, "gossip", gossip != nil)
	err = mgr.Start(ctx)
	leave()
	if merr := <-memDone; merr != nil {
		ctrl.Log.Error(merr, "gossip membership failed: speaker liveness followed Node readiness")
	}
	stopAnnouncer()
	<-annDone
	return err
}

// secretKey reads the gossip encryption key from the Secret named name,
// key "secretkey"; no Secret means no encryption.
func secretKey(ctx context.Context, cs kubernetes.Interface, namespace, name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	sec, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ctrl.Log.Info("no gossip key Secret: speakers gossip unencrypted", "secret", namespace+"/"+name)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", namespace, name, err)
	}
	key, ok := sec.Data["secretkey"]
	if !ok {
		return nil, fmt.Errorf("Secret %s/%s has no \"secretkey\" key", namespace, name)
	}
	return key, nil
}

// nodeAddresses reads the node's IPv4 and IPv6 addresses from its Node
// object: the next hops of the routes advertised over BGP.
func nodeAddresses(ctx context.Context, c kubernetes.Interface, name string) (v4, v6 netip.Addr, err error) {
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
