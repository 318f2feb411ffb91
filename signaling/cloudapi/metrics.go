package cloudapi

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values of callgw_graph_requests_total.
const (
	ResultOK           = "ok"            // 2xx with the expected body
	ResultMetaError    = "meta_error"    // 4xx Graph error (not 429)
	ResultRateLimited  = "rate_limited"  // HTTP 429
	ResultServerError  = "server_error"  // HTTP 5xx
	ResultNetworkError = "network_error" // dial, reset, broken connection
	ResultTimeout      = "timeout"       // the per-attempt timeout fired
	ResultCanceled     = "canceled"      // the caller's context ended
	ResultBadResponse  = "bad_response"  // 2xx with a body that is not Meta's
)

// Metrics are the Graph client's series. Labels: action (pre_accept, accept,
// reject, terminate, connect, send_permission_request,
// send_permission_template, create_template, send_call_button,
// call_permissions, get_settings, update_settings, call_analytics,
// pricing_analytics, get_phone_number) and result (Result* constants).
type Metrics struct {
	requests *prometheus.CounterVec   // one per HTTP attempt
	duration *prometheus.HistogramVec // one per HTTP attempt
	retries  *prometheus.CounterVec   // one per retry scheduled
}

// NewMetrics builds the series and registers them on reg (nil: not
// registered). Registering on a registry that already has them (a second
// Client for another number) reuses the registered series.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Subsystem: "graph", Name: "requests_total",
			Help: "Graph API HTTP attempts by action and result.",
		}, []string{"action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "callgw", Subsystem: "graph", Name: "request_duration_seconds",
			Help:    "Duration of one Graph API HTTP attempt, by action.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"action"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Subsystem: "graph", Name: "retries_total",
			Help: "Graph API retries scheduled, by action.",
		}, []string{"action"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
