package daemon

import (
	"flag"
	"fmt"
	"math"
	"os"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ironlbv1beta1 "github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/eventlimit"
)

// DefaultNamespace is the namespace the install manifest puts ironlb in.
const DefaultNamespace = "ironlb-system"

// Flags are the command-line settings both programs take.
type Flags struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the
	// in-cluster configuration.
	Kubeconfig string
	// Namespace is ironlb's own namespace, where its configuration lives.
	Namespace string
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// MetricsAddr is where /metrics is served; "0" turns it off.
	MetricsAddr string
	// HealthAddr is where /healthz and /readyz are served; "0" turns it
	// off.
	HealthAddr string
	// PprofAddr is where Go's /debug/pprof profiles are served; empty or
	// "0" turns them off.
	PprofAddr string
	// QPS and Burst limit the requests sent to the API server.
	QPS   float64
	Burst int
	// EventQPS and EventBurst limit the events recorded; more are
	// dropped and counted.
	EventQPS   float64
	EventBurst int
}

// Register adds the common flags to fs, with the given default ports.
func (f *Flags) Register(fs *flag.FlagSet, metricsAddr, healthAddr string) {
	fs.StringVar(&f.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "path of a kubeconfig file; empty means the in-cluster configuration")
	fs.StringVar(&f.Namespace, "namespace", envOr("IRONLB_NAMESPACE", DefaultNamespace), "ironlb's namespace, where its configuration lives")
	fs.StringVar(&f.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.MetricsAddr, "metrics-bind-address", metricsAddr, "address of the /metrics endpoint; 0 turns it off")
	fs.StringVar(&f.HealthAddr, "health-probe-bind-address", healthAddr, "address of the /healthz and /readyz endpoints; 0 turns them off")
	fs.StringVar(&f.PprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof profiles (heap, CPU, goroutines); empty turns them off")
	fs.Float64Var(&f.QPS, "kube-api-qps", 200, "requests per second sent to the API server, sustained")
	fs.IntVar(&f.Burst, "kube-api-burst", 400, "requests sent to the API server in a burst")
	fs.Float64Var(&f.EventQPS, "event-qps", 20, "Kubernetes events recorded per second, sustained; more are dropped and counted in ironlb_*_events_dropped_total")
	fs.IntVar(&f.EventBurst, "event-burst", 200, "Kubernetes events recorded in a burst")
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// SetupLogging makes the controller-runtime logger log JSON at the level the
// flags ask for. Errors carry no stack trace: each names what failed, and
// a failure that repeats for many objects would fill the log with them.
func (f *Flags) SetupLogging() error {
	level, err := zapcore.ParseLevel(f.LogLevel)
	if err != nil {
		return fmt.Errorf("parse --log-level %q: %w", f.LogLevel, err)
	}
	ctrl.SetLogger(zap.New(zap.Level(level), zap.StacktraceLevel(zapcore.DPanicLevel)))
	return nil
}

// SetMemoryLimit sets the Go runtime's soft memory limit to 90% of the
// container's memory limit (its cgroup's), so that the garbage collector
// works harder as the process nears the limit instead of being killed
// for it. GOMEMLIMIT, when set, wins; AUTOMEMLIMIT sets another ratio, or
// "off". Without a limit it changes nothing. A limit resized in place
// takes effect at the next start.
func SetMemoryLimit() {
	log := ctrl.Log.WithName("memlimit")
	limit, err := memlimit.Set(
		memlimit.WithRatio(0.9),
		memlimit.WithProvider(memlimit.FromCgroup),
	)
	switch {
	case err != nil:
		log.Info("no container memory limit found; the Go runtime runs without a soft limit", "reason", err.Error())
	case limit < math.MaxInt64:
		log.Info("Go runtime soft memory limit set", "bytes", limit)
	}
}

// RESTConfig returns the connection to the API server the flags describe.
func (f *Flags) RESTConfig() (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if f.Kubeconfig == "" {
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("load in-cluster configuration (or pass --kubeconfig): %w", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", f.Kubeconfig); err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", f.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = float32(f.QPS), f.Burst
	cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	return cfg, nil
}

// Scheme returns a scheme that knows the Kubernetes built-in types and
// ironlb's own.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register built-in types: %w", err)
	}
	if err := ironlbv1beta1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register ironlb types: %w", err)
	}
	return s, nil
}

// ManagerOptions returns the manager options common to both programs: the
// scheme, the metrics and health endpoints, and a cache that reads ironlb's
// configuration and Secrets from its own namespace only.
func (f *Flags) ManagerOptions() (ctrl.Options, error) {
	scheme, err := Scheme()
	if err != nil {
		return ctrl.Options{}, err
	}
	own := map[string]cache.Config{f.Namespace: {}}
	return ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: f.MetricsAddr},
		HealthProbeBindAddress: f.HealthAddr,
		PprofBindAddress:       f.PprofAddr,
		Cache: cache.Options{
			// Nothing reads managedFields; dropping them roughly halves
			// the memory a cached Service takes.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&ironlbv1beta1.IPAddressPool{}:    {Namespaces: own},
				&ironlbv1beta1.L2Advertisement{}:  {Namespaces: own},
				&ironlbv1beta1.BGPPeer{}:          {Namespaces: own},
				&ironlbv1beta1.BGPAdvertisement{}: {Namespaces: own},
				&ironlbv1beta1.Community{}:        {Namespaces: own},
				&ironlbv1beta1.ServiceL2Status{}:  {Namespaces: own},
				&corev1.Secret{}:                  {Namespaces: own},
			},
		},
	}, nil
}

// EventRecorder returns mgr's event recorder named name, limited to the
// flags' event rate; subsystem names its dropped-events metric
// (ironlb_<subsystem>_events_dropped_total).
func (f *Flags) EventRecorder(mgr ctrl.Manager, name, subsystem string) (events.EventRecorder, error) {
	r, err := eventlimit.New(mgr.GetEventRecorder(name), f.EventQPS, f.EventBurst, ctrlmetrics.Registry, subsystem, ctrl.Log.WithName("events"))
	if err != nil {
		return nil, fmt.Errorf("register the dropped-events metric: %w", err)
	}
	return r, nil
}

// AddHealthChecks serves /healthz and /readyz from mgr.
func AddHealthChecks(mgr ctrl.Manager) error {
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	return nil
}
