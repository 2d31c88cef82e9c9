// Command controller assigns external IPs from IPAddressPools to Services of
// type LoadBalancer and writes them to the Services' status.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/controller/ipam"
	"github.com/ironlb/ironlb/internal/daemon"
)

// The controller's permissions, rendered into manifests/rbac/controller by
// `make generate`.
//
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=ironlb.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;communities,verbs=get;list;watch,namespace=ironlb-system
// +kubebuilder:rbac:groups=ironlb.io,resources=ipaddresspools/status,verbs=get;update;patch,namespace=ironlb-system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=ironlb-system

type options struct {
	daemon.Flags
	lbClass     string
	leaderElect bool
	leaseName   string
	workers     int
}

func main() {
	// A flag set of our own: controller-runtime registers --kubeconfig on
	// the global one.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var o options
	o.Register(fs, ":7472", ":7473")
	fs.StringVar(&o.lbClass, "lb-class", "", "serve Services whose spec.loadBalancerClass is this; empty serves Services with no class")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "elect one active replica through a Lease")
	fs.StringVar(&o.leaseName, "leader-election-id", "ironlb-controller", "name of the leader-election Lease")
	fs.IntVar(&o.workers, "workers", 4, "Services reconciled at once")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag

	if err := o.SetupLogging(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	daemon.SetMemoryLimit()
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "controller stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	cfg, err := o.RESTConfig()
	if err != nil {
		return err
	}
	opts, err := o.ManagerOptions()
	if err != nil {
		return err
	}
	opts.LeaderElection = o.leaderElect
	opts.LeaderElectionID = o.leaseName
	opts.LeaderElectionNamespace = o.Namespace
	opts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := daemon.AddHealthChecks(mgr); err != nil {
		return err
	}
	metrics, err := ipam.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	recorder, err := o.EventRecorder(mgr, "ironlb-controller", "controller")
	if err != nil {
		return err
	}
	m := ipam.New(mgr.GetClient(), ipam.Options{
		Namespace: o.Namespace,
		Selection: ipam.Selection{LoadBalancerClass: o.lbClass},
		Recorder:  recorder,
		Metrics:   metrics,
	})
	if err := m.SetupWithManager(mgr, o.workers); err != nil {
		return err
	}
	ctrl.Log.Info("starting controller", "namespace", o.Namespace, "lbClass", o.lbClass)
	return mgr.Start(ctx)
}
