// Package webhook owns the intake format of Meta's WhatsApp Cloud API webhooks:
// it verifies the X-Hub-Signature-256 HMAC over the raw body, answers the
// subscription challenge, and parses a delivery into a flat, typed Batch of
// call events, call statuses and call-permission replies.
//
// It has no side effects: no I/O, no logging, no state. Everything it does
// not understand is returned as an UnknownEvent so the caller can acknowledge
// it. Parse never panics, whatever the input; it is fuzzed.
package webhook
