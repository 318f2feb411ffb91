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
	ClampedDurations       *prometheus.CounterVec // callgw_billing_clamped_durations_total{flag}
	Messages               *prometheus.CounterVec // callgw_billing_messages_total{category,outcome}
	MessageCostUSD         *prometheus.CounterVec // callgw_billing_message_usd_total{category}
	UnpricedMessages       prometheus.Counter     // callgw_billing_unpriced_messages_total
	ReconDifference        *prometheus.GaugeVec   // callgw_billing_reconciliation_difference_micros{kind}
	ReconRuns              *prometheus.CounterVec // callgw_billing_reconciliation_runs_total{status}
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
		ClampedDurations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "billing_clamped_durations_total",
			Help: "Calls whose duration was negative (clamped to 0) or absurd (clamped to the maximum); still recorded."}, []string{"flag"}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "billing_messages_total",
			Help: "Messages settled by their status webhook, by pricing category and outcome (charged, free, failed)."}, []string{"category", "outcome"}),
		MessageCostUSD: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "billing_message_usd_total",
			Help: "Cost of charged messages in the card's currency, by category (the ledger holds exact micros)."}, []string{"category"}),
		UnpricedMessages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "billing_unpriced_messages_total",
			Help: "Billable messages whose category the rate card does not price (charged 0: update the card)."}),
		ReconDifference: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "callgw", Name: "billing_reconciliation_difference_micros",
			Help: "Sum over the last reconciled days and markets of |ours - Meta's| cost in micros, by kind (calls, messages)."}, []string{"kind"}),
		ReconRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "billing_reconciliation_runs_total",
			Help: "Reconciliation runs by status (ok, differences, unavailable)."}, []string{"status"}),
	}
	for _, k := range []string{"calls", "messages"} {
		m.ReconDifference.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.BilledSeconds, m.BilledUSD, m.CallsBilled, m.CallsRecorded, m.LedgerWriteErrors,
			m.DurationDiscrepancies, m.Conversations, m.DuplicateRecords, m.DuplicateConversations, m.ClampedDurations,
			m.Messages, m.MessageCostUSD, m.UnpricedMessages, m.ReconDifference, m.ReconRuns} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
