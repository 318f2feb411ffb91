// Package webhook owns the intake format of Meta's WhatsApp Cloud API webhooks:
// it verifies the X-Hub-Signature-256 HMAC over the raw body, answers the
// subscription challenge, and parses a delivery into a flat, typed Batch:
// call events (connect, terminate, recording/transcription available), call
// statuses, call-permission replies, message statuses with pricing, inbound
// user messages, identity changes (BSUIDs), settings and account updates.
//
// It has no side effects: no I/O, no logging, no state. Everything it does
// not understand is returned as an UnknownEvent so the caller can acknowledge
// it; an item with a known field of an impossible type is listed in
// Batch.Skipped without costing its siblings. Parse never panics, whatever
// the input; it is fuzzed.
package webhook
