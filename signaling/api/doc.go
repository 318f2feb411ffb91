// Package api owns callgw's REST API under /api/v1: permission state and
// requests, placing business-initiated calls, the call log and usage
// reports (JSON or CSV), live calls and agents for supervisors. It
// authenticates bearer API keys (CALLGW_API_KEYS) and agent tokens, maps
// errors to HTTP status codes with a JSON body {"error":{"code","message"}},
// and masks phone numbers unless the caller's role may see them.
package api
