// Package permissions owns callgw's view of WhatsApp business-initiated call
// permissions per (business phone-number id, user wa_id) pair: temporary and
// permanent grants and their expiry, the permission-request limits (per 24 h
// and per 7 days, reset by a connected call), the connected-call limit per
// rolling 24 h, the unanswered-call streak (reminder, then automatic
// revocation), callback permission and corrections reported from Meta's
// refusals.
//
// All state lives in Redis. Every decision is one Lua script run in one round
// trip over keys hash-tagged per pair (one Redis Cluster slot), with time
// supplied by an injected Clock, and every event is idempotent on its id so a
// client retry never counts twice. The same scripts run on miniredis for the
// in-process demo store.
package permissions
