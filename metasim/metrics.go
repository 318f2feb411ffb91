package metasim

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the simulator's Prometheus series. Labels are bounded: the
// Graph edge, Meta's error code (a small fixed set) and the webhook field.
type Metrics struct {
	GraphRequests *prometheus.CounterVec // callgw_metasim_graph_requests_total{edge,code}
	Webhooks      *prometheus.CounterVec // callgw_metasim_webhooks_total{field,result}
	Calls         *prometheus.CounterVec // callgw_metasim_calls_total{direction}
	ActiveCalls   prometheus.Gauge       // callgw_metasim_active_calls
	Adversary     *prometheus.CounterVec // callgw_metasim_adversary_actions_total{action}
}

// NewMetrics builds the metrics and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		GraphRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Subsystem: "metasim", Name: "graph_requests_total",
			Help: "Graph API requests received by the simulator, by edge and Meta error code (0 = success).",
		}, []string{"edge", "code"}),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Subsystem: "metasim", Name: "webhooks_total",
			Help: "Webhook delivery attempts by field and result (ok, status, error).",
		}, []string{"field", "result"}),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Subsystem: "metasim", Name: "calls_total",
			Help: "Simulated calls created, by direction.",
		}, []string{"direction"}),
		ActiveCalls: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "callgw", Subsystem: "metasim", Name: "active_calls",
			Help: "Simulated calls not yet ended.",
		}),
		Adversary: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "callgw", Subsystem: "metasim", Name: "adversary_actions_total",
			Help: "Adversarial delivery actions taken: batched, held, duplicated, retried_after_200.",
		}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.GraphRequests, m.Webhooks, m.Calls, m.ActiveCalls, m.Adversary)
	}
	return m
}
