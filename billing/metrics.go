package billing

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the billing series. Labels are bounded: country is an ISO
// alpha-2 code known to libphonenumber or "ZZ"; category is one of four.
type Metrics struct {
	BilledSeconds          *prometheus.CounterVec // callgw_billed_seconds_total{country}
	BilledUSD              *prometheus.CounterVec // callgw_billed_usd_total{country}
	CallsBilled            *prometheus.CounterVec // callgw_calls_billed_total{country}
	CallsRecorded          *prometheus.CounterVec // callgw_calls_recorded_total{direction,outcome}
	LedgerWriteErrors      prometheus.Counter     // callgw_ledger_write_errors_total
	DurationDiscrepancies  prometheus.Counter     // callgw_billing_duration_discrepancies_total
	Conversations          *prometheus.CounterVec // callgw_conversations_total{category,charged}
	DuplicateRecords       prometheus.Counter     // callgw_ledger_duplicate_records_total
	DuplicateConversations prometheus.Counter     // callgw_conversation_duplicate_messages_total
}

// NewMetrics builds the billing metrics and registers them with reg (nil:
// not registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		BilledSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "billed_seconds_total",
			Help: "Billed seconds of business-initiated calls (after rounding to the increment), by callee country."}, []string{"country"}),
		BilledUSD: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "billed_usd_total",
			Help: "Cost of business-initiated calls in USD, by callee country (the ledger holds exact micro-USD)."}, []string{"country"}),
		CallsBilled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "calls_billed_total",
			Help: "Connected business-initiated calls written to the ledger, by callee country."}, []string{"country"}),
		CallsRecorded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "calls_recorded_total",
			Help: "Ended calls written to the ledger (call log), by direction and outcome."}, []string{"direction", "outcome"}),
		LedgerWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "ledger_write_errors_total",
			Help: "Ledger writes (calls or conversations) that failed in Redis."}),
		DurationDiscrepancies: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "billing_duration_discrepancies_total",
			Help: "Calls whose Meta duration and gateway-measured duration differ by more than 2 s."}),
		Conversations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "conversations_total",
			Help: "Conversations opened, by category and whether they were charged."}, []string{"category", "charged"}),
		DuplicateRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "ledger_duplicate_records_total",
			Help: "Record calls for a call id already in the ledger (ignored, idempotent)."}),
		DuplicateConversations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "conversation_duplicate_messages_total",
			Help: "Conversation calls for a message id already metered (ignored, idempotent)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.BilledSeconds, m.BilledUSD, m.CallsBilled, m.CallsRecorded, m.LedgerWriteErrors,
			m.DurationDiscrepancies, m.Conversations, m.DuplicateRecords, m.DuplicateConversations} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
