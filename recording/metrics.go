package recording

import "github.com/prometheus/client_golang/prometheus"

type fetchMetrics struct {
	downloads *prometheus.CounterVec
	pending   prometheus.Gauge
	bytes     prometheus.Counter
}

func newFetchMetrics(reg prometheus.Registerer) *fetchMetrics {
	m := &fetchMetrics{
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "recording_downloads_total",
			Help: "Downloads of Meta's recordings and transcripts by kind and result (ok, duplicate, bad_sha, link_expired, too_large, gone, error, given_up)."},
			[]string{"kind", "result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "callgw", Name: "recording_pending_downloads",
			Help: "Recordings and transcripts announced by Meta and not stored yet (all instances; alert when it stays above 0)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "recording_stored_bytes_total",
			Help: "Bytes of Meta media verified and stored."}),
	}
	if reg != nil {
		reg.MustRegister(m.downloads, m.pending, m.bytes)
	}
	return m
}

type retentionMetrics struct {
	deletions *prometheus.CounterVec
	runs      *prometheus.CounterVec
}

func newRetentionMetrics(reg prometheus.Registerer) *retentionMetrics {
	m := &retentionMetrics{
		deletions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "recording_retention_deletions_total",
			Help: "Objects and index entries removed by the retention job, by kind and result (ok, error)."}, []string{"kind", "result"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "recording_retention_runs_total",
			Help: "Retention job passes by result (ok, lease_held, error)."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.deletions, m.runs)
	}
	return m
}
