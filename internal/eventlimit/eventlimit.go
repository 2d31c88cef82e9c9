// Package eventlimit bounds the rate at which a program records
// Kubernetes events.
//
// client-go's events broadcaster starts a goroutine for every event and
// keeps it until the API server has taken the event. A change that touches
// ten thousand Services at once — a pool advertised, a node's speaker
// restarted — would start ten thousand of them, each waiting its turn at
// the client's rate limit: hundreds of megabytes, a slow shutdown, and an
// API server flooded by every node at the same moment. A Recorder records
// events at a sustained rate with a burst, as the kubelet does
// (eventRecordQPS, eventBurst), and drops the rest, counting them: what
// an event would have said the program also logs, and the objects'
// status also shows.
package eventlimit

import (
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// logEvery is how often, at most, a Recorder logs that it dropped events.
const logEvery = time.Minute

// Recorder is an events.EventRecorder that passes events to another at a
// bounded rate and drops the rest.
type Recorder struct {
	next    events.EventRecorder
	limiter *rate.Limiter
	dropped *prometheus.CounterVec
	log     logr.Logger

	mu       sync.Mutex
	unlogged int       // dropped since the last log line
	logged   time.Time // when that was
}

// New returns a Recorder that passes events to next, qps a second
// sustained and burst at once, and counts the ones it drops in
// ironlb_<subsystem>_events_dropped_total (by reason), registered in reg.
func New(next events.EventRecorder, qps float64, burst int, reg prometheus.Registerer, subsystem string, log logr.Logger) (*Recorder, error) {
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ironlb", Subsystem: subsystem, Name: "events_dropped_total",
		Help: "Kubernetes events not recorded because more were asked for than --event-qps and --event-burst allow, by reason.",
	}, []string{"reason"})
	if err := reg.Register(dropped); err != nil {
		return nil, err
	}
	return &Recorder{next: next, limiter: rate.NewLimiter(rate.Limit(qps), burst), dropped: dropped, log: log}, nil
}

// Eventf records an event if the rate allows, and otherwise counts it.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if r.limiter.Allow() {
		r.next.Eventf(regarding, related, eventtype, reason, action, note, args...)
		return
	}
	r.dropped.WithLabelValues(reason).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unlogged++
	if now := time.Now(); now.Sub(r.logged) >= logEvery {
		r.log.Info("too many events at once: some are not recorded (their news is in this log and in the objects' status)",
			"dropped", r.unlogged, "limit", float64(r.limiter.Limit()), "burst", r.limiter.Burst())
		r.unlogged, r.logged = 0, now
	}
}
