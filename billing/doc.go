// Package billing owns what calls and messages cost, the durable record of
// every ended call and the reconciliation with Meta's analytics.
//
//   - RateCard: versions (Card) by effective month; each prices markets
//     (a country or a group): call tiers per minute with Meta's 6 s pulses,
//     per-message rates by category with graduated tiers, and the legacy
//     conversation rates. Loaded from JSON and validated with errors that
//     name the field (see README.md and ratecards/ratecard.schema.json).
//   - Ledger: an idempotent Redis ledger. Record writes each ended call once
//     (entry, stream record, month and day aggregates, call-log indexes in
//     one Lua script; the volume tier reached at the call's end, per
//     market); Sent and Status meter per-message pricing from the status
//     webhooks; Usage reports a month; Calls pages through the call log;
//     LiveQuote prices a live call pulse by pulse; Conversation (deprecated)
//     meters the legacy conversation model.
//   - Reconciler: a daily job under a Redis lease comparing the ledger per
//     day × market with Meta's call_analytics and pricing_analytics.
//   - FormatUSD, WriteUsageCSV, WriteUsageTable, WriteCallsCSV: display.
//
// Money is integer micro-units (int64) everywhere; there is no float money
// except the dashboard counters callgw_billed_usd_total and
// callgw_billing_message_usd_total.
package billing
