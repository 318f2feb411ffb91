package routing

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	picks       *prometheus.CounterVec
	queued      *prometheus.CounterVec
	dequeued    *prometheus.CounterVec
	left        *prometheus.CounterVec
	wait        *prometheus.HistogramVec
	tasks       *prometheus.CounterVec
	redisErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		picks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Subsystem: "routing", Name: "picks_total",
			Help: "Agent picks by team, strategy and result (picked, none)."}, []string{"team", "strategy", "result"}),
		queued: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Subsystem: "queue", Name: "enqueued_total",
			Help: "Calls offered to a team's queue by result (queued, full)."}, []string{"team", "result"}),
		dequeued: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Subsystem: "queue", Name: "dequeued_total",
			Help: "Queued calls handed to a freed agent, by team."}, []string{"team"}),
		left: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Subsystem: "queue", Name: "left_total",
			Help: "Calls that left a queue without an agent, by team and reason (expired, removed, stale)."}, []string{"team", "reason"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "callgw", Subsystem: "queue", Name: "wait_seconds",
			Help:    "Time calls waited in a team's queue until an agent was free.",
			Buckets: []float64{1, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600}}, []string{"team"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Subsystem: "callback", Name: "task_events_total",
			Help: "Callback task events by team and event (created, updated, claimed, unclaimed, closed)."}, []string{"team", "event"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Subsystem: "routing", Name: "redis_errors_total",
			Help: "Routing operations that failed on Redis, by operation."}, []string{"op"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.picks, err = register(reg, m.picks, err)
	m.queued, err = register(reg, m.queued, err)
	m.dequeued, err = register(reg, m.dequeued, err)
	m.left, err = register(reg, m.left, err)
	m.wait, err = register(reg, m.wait, err)
	m.tasks, err = register(reg, m.tasks, err)
	m.redisErrors, err = register(reg, m.redisErrors, err)
	return m, err
}

// register adds c, or reuses the collector already registered under its
// name (a second Router on one registry shares the series).
func register[T prometheus.Collector](reg prometheus.Registerer, c T, prev error) (T, error) {
	if prev != nil {
		return c, prev
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(T); ok {
				return ex, nil
			}
		}
		return c, err
	}
	return c, nil
}
