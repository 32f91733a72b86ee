package felix

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	reconcileDuration prometheus.Histogram
	routesProgrammed  prometheus.Gauge
	applyErrors       prometheus.Counter
}

// newMetrics registers on reg; a nil reg makes working, unregistered metrics.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		reconcileDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "tabby_felix_reconcile_duration_seconds",
			Help: "Time taken by one apply of the desired state to the kernel (route dump, diff, writes, sysctls).",
			// 0.5 ms .. ~16 s: a no-op resync of a few pods is well under a
			// millisecond, a node's first apply of thousands of routes seconds.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		routesProgrammed: f.NewGauge(prometheus.GaugeOpts{
			Name: "tabby_felix_routes_programmed",
			Help: "Routes Felix has in the kernel after its last apply.",
		}),
		applyErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "tabby_felix_apply_errors_total",
			Help: "Applies that failed, completely or for some routes or interfaces; each is retried with backoff.",
		}),
	}
}
