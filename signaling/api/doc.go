// Package api owns callgw's REST API under /api/v1: permission state and
// requests, placing business-initiated calls, the call log and usage
// reports (JSON or CSV), live calls and agents for supervisors. It
// authenticates bearer API keys (CALLGW_API_KEYS) and agent tokens (the
// scheme is case-insensitive), maps errors to HTTP status codes with a JSON
// body {"error":{"code","message"}}, and masks phone numbers unless the
// caller's role may see them.
//
// Every query parameter, path value and body field is judged before call
// control or the ledger is used (400). Outages of Redis (the permission
// store, the ledger, call state) are 503 unavailable; Meta's failures 502
// meta_error (409 when Meta names a permission rule); 500 is left for bugs.
// Client-facing messages are fixed texts; the causes are logged. A call
// placed without an agent goes to an agent available on any instance
// (Calls.AvailableAgents, cluster-wide). The handlers are fuzzed
// (fuzz_test.go, corpus in testdata/fuzz).
package api
