// Package metasim owns an independent simulation of Meta's side of WhatsApp
// Business calling: a Graph API handler (calls, messages, message templates,
// call_permissions, settings, analytics, media) that validates requests like
// Meta and answers in Meta's formats, a sender of signed webhooks (faithful by
// default, adversarial on request: batches, reordering, duplicates, retries,
// BSUID-only users, type drift), Meta-side rules (permission limits, the 24 h
// customer service window, connected-call limits, unanswered-call
// revocation, callback permission, pricing) and WhatsApp-user WebRTC peers
// (Pion, ICE-lite) that play Opus audio after pickup, record what the
// business sends and exchange RFC 4733 DTMF.
//
// It deliberately imports nothing from callgw's signaling, media or billing
// packages: it is written from the wire format alone, so that tests using it
// catch misreadings of Meta's format instead of sharing them.
package metasim
