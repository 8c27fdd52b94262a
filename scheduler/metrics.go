package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's Prometheus metrics.
type Metrics struct {
	ActivationLag prometheus.Histogram
	ExpiryLag     prometheus.Histogram
	EngineErrors  *prometheus.CounterVec
	DriftRepaired *prometheus.CounterVec
	// Tampered counts the requests found edited in the store without the key (each once).
	Tampered prometheus.Counter
}

// NewMetrics creates the scheduler's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		ActivationLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "timebox_activation_lag_seconds", Buckets: buckets,
			Help: "Time from a request's start (or approval, when later) to the database confirming the access.",
		}),
		ExpiryLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "timebox_expiry_lag_seconds", Buckets: buckets,
			Help: "Time from a window's end (or its unused_after deadline) to the database confirming the access was removed and sessions ended.",
		}),
		EngineErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timebox_engine_errors_total",
			Help: "Failed database steps, by server and operation (activate, revoke, extend).",
		}, []string{"server", "op"}),
		DriftRepaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timebox_drift_repaired_total",
			Help: "Differences between the databases and the store that the reconciler repaired, by server and kind (orphan_removed, grant_restored).",
		}, []string{"server", "kind"}),
		Tampered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "timebox_store_tampered_total",
			Help: "Requests found edited in the store without the key (what they gave was removed, nothing applied).",
		}),
	}
	reg.MustRegister(m.ActivationLag, m.ExpiryLag, m.EngineErrors, m.DriftRepaired, m.Tampered)
	return m
}

func (m *Metrics) observeActivation(d time.Duration) { m.ActivationLag.Observe(max(d, 0).Seconds()) }
func (m *Metrics) observeExpiry(d time.Duration)     { m.ExpiryLag.Observe(max(d, 0).Seconds()) }
