package signaling

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	webhooks           *prometheus.CounterVec
	calls              *prometheus.CounterVec
	setup              prometheus.Histogram
	ring               prometheus.Histogram
	redisErrors        *prometheus.CounterVec
	dials              *prometheus.CounterVec
	permissionRequests prometheus.Counter
	liveChecks         *prometheus.CounterVec
	opaqueMismatch     prometheus.Counter
	disagreements      *prometheus.CounterVec
	transfers          *prometheus.CounterVec // transfer.go
	monitors           *prometheus.CounterVec // transfer.go
	holds              prometheus.Counter     // transfer.go
	ivrNodes           *prometheus.CounterVec // ivrrun.go
}

func newMetrics(reg prometheus.Registerer, c *Controller) *metrics {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "webhooks_total",
			Help: "Webhook events by event and result (ok, duplicate, ignored, error, bad_signature, malformed, too_large)."},
			[]string{"event", "result"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "calls_total",
			Help: "Ended calls by direction and outcome."}, []string{"direction", "outcome"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "callgw", Name: "call_setup_duration_seconds",
			Help:    "Time from a user-initiated connect webhook to pre_accept sent.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		ring: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "callgw", Name: "call_ring_duration_seconds",
			Help:    "Time calls rang before an agent accepted.",
			Buckets: []float64{.5, 1, 2, 3, 5, 8, 12, 17, 25, 30}}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "redis_errors_total",
			Help: "Redis operations of call control that failed, by operation."}, []string{"op"}),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "outbound_calls_total",
			Help: "Business-initiated call attempts by result (placed, refused)."}, []string{"result"}),
		permissionRequests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "permission_requests_sent_total",
			Help: "Call permission requests sent to WhatsApp users."}),
	}
	m.liveChecks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "permission_live_checks_total",
		Help: "Reads of Meta's live call_permissions before a call or request, by result (ok, unavailable: rate limited or failed)."}, []string{"result"})
	m.disagreements = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "permission_disagreements_total",
		Help: "Times Meta's live permission state disagreed with the local model (Meta wins), by operation (call, request)."}, []string{"op"})
	for _, r := range []string{"placed", "refused"} {
		m.dials.WithLabelValues(r)
	}
	m.opaqueMismatch = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "opaque_mismatches_total",
		Help: "Webhooks whose biz_opaque_callback_data echo differs from what callgw sent for the call."})
	m.transferMetrics()
	m.ivrMetrics()
	reg.MustRegister(m.transfers, m.monitors, m.holds, m.ivrNodes)
	reg.MustRegister(m.opaqueMismatch, m.liveChecks, m.disagreements, m.webhooks, m.calls, m.setup, m.ring, m.redisErrors, m.dials, m.permissionRequests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "calls_active",
			Help: "Calls owned by this instance that are dialing, connecting or connected."},
			func() float64 { _, a := c.ActiveCalls(); return float64(a) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "calls_ringing",
			Help: "Calls owned by this instance waiting for an agent."},
			func() float64 { r, _ := c.ActiveCalls(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "records_pending",
			Help: "Final call records kept in memory because Redis could not take them yet."},
			func() float64 { return float64(c.PendingRecords()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "callgw", Name: "calls_stuck",
			Help: "Calls that stayed in one state longer than that state allows (a bug or a dead dependency)."},
			func() float64 { return float64(c.stuckCalls()) }),
	)
	return m
}

// stuckCalls counts calls whose state is older than it may be.
func (c *Controller) stuckCalls() int {
	now := c.now()
	limit := map[State]time.Duration{
		StateSetup:      30 * time.Second,
		StateRinging:    c.cfg.RingTimeout + 10*time.Second,
		StateConnecting: c.cfg.AgentGrace + 30*time.Second,
		StateEnded:      c.cfg.MetaTerminateWait + 30*time.Second,
		StateDialing:    c.cfg.RingCeiling + time.Minute,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.calls {
		st := State(l.stateAtomic.Load())
		if d, ok := limit[st]; ok && now.Sub(time.Unix(0, l.stateSince.Load())) > d {
			n++
		}
	}
	return n
}
