// Package billing owns what calls and conversations cost and the durable
// record of every ended call.
//
//   - RateCard: per-country call rates (micro-USD per minute, per-second or
//     6 s pulse increments, monthly volume tiers) and conversation rates by
//     category, loaded from JSON and validated (see README.md).
//   - Ledger: an idempotent Redis ledger. Record writes each ended call once
//     (entry, stream record, monthly aggregates and call-log indexes in one
//     Lua script), Usage reports a month, Calls pages through the call log,
//     Conversation meters the seed's conversation-based message pricing.
//   - FormatUSD, WriteUsageCSV, WriteUsageTable, WriteCallsCSV: display.
//
// Money is integer micro-USD (int64) everywhere; there is no float money
// except the Prometheus counter callgw_billed_usd_total.
package billing
