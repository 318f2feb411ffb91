// Package cloudapi owns callgw's side of Meta's WhatsApp Cloud API (Graph
// API): the calling actions (pre_accept, accept, reject, terminate, connect)
// addressed to a phone number and/or a business-scoped user id (BSUID), with
// optional recording/transcription; call-permission requests (free-form
// inside the customer service window, template outside it, template
// creation); call buttons; the call_permissions query (with a cached,
// rate-budgeted PermissionsReader); the calling settings; call and pricing
// analytics for billing reconciliation (costs in integer micros); and a
// token/number check. It speaks Meta's wire format exactly, maps every
// Graph error code of the reference to a typed error with a clear reason and
// a retry classification, and retries only what is safe to repeat.
//
// It holds no call state: the call controller in package signaling decides
// what to send and when. Subpackage ratelimit holds the Redis budget shared
// by all instances.
package cloudapi
