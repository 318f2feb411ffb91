package permissions

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the tracker's Prometheus series. Labels are bounded: results,
// reasons, sources and op names, never phone numbers or ids.
type Metrics struct {
	// Requests counts RecordRequest decisions by result
	// (allowed|duplicate|denied|error) and reason.
	Requests *prometheus.CounterVec
	// CallAttempts counts CheckCall decisions by result (allowed|denied|error)
	// and reason.
	CallAttempts *prometheus.CounterVec
	// Grants counts grants that changed the state, by source.
	Grants *prometheus.CounterVec
	// Revocations counts revocations of a valid grant, by source.
	Revocations *prometheus.CounterVec
	// Degraded counts decisions made without Redis (answered by Meta's
	// call_permissions or failed closed).
	Degraded prometheus.Counter
	// Duration observes each operation's latency, Redis round trip included,
	// by op.
	Duration *prometheus.HistogramVec
}

// NewMetrics builds the series and registers them on reg (nil: not
// registered). When reg already holds these series (a second Tracker in the
// same process), the registered ones are shared instead of panicking.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Name: "permission_requests_total",
			Help: "Permission-request decisions by result and reason.",
		}, []string{"result", "reason"}),
		CallAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Name: "call_attempts_total",
			Help: "Business-initiated call checks by result and reason.",
		}, []string{"result", "reason"}),
		Grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Name: "permission_grants_total",
			Help: "Call permissions granted, by source.",
		}, []string{"source"}),
		Revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Name: "permission_revocations_total",
			Help: "Valid call permissions revoked, by source.",
		}, []string{"source"}),
		Degraded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "callgw", Name: "permission_degraded_decisions_total",
			Help: "Permission decisions made without Redis (Meta fallback or fail closed).",
		}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "callgw", Name: "permission_decision_duration_seconds",
			Help:    "Latency of permission operations, Redis round trip included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"op"}),
	}
	if reg != nil {
		m.Requests = register(reg, m.Requests)
		m.CallAttempts = register(reg, m.CallAttempts)
		m.Grants = register(reg, m.Grants)
		m.Revocations = register(reg, m.Revocations)
		m.Degraded = register(reg, m.Degraded)
		m.Duration = register(reg, m.Duration)
	}
	return m
}

// register registers c, or returns the equal collector already registered.
// Any other registration error is a programming error and panics, as
// MustRegister would.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func reasonLabel(r Reason) string {
	if r == ReasonNone {
		return "none"
	}
	return string(r)
}
