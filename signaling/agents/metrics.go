package agents

import "github.com/prometheus/client_golang/prometheus"

func newMetrics(reg prometheus.Registerer, h *Hub) {
	reg.MustRegister(h.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "agents_connected",
			Help: "Distinct agents with at least one open websocket session on this instance."},
			func() float64 {
				m := map[string]bool{}
				for _, s := range h.Sessions(nil) {
					m[s.Agent] = true
				}
				return float64(len(m))
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "agents_available",
			Help: "Distinct agents with an available session on this instance."},
			func() float64 { return float64(len(h.AvailableAgents())) }),
	)
}
