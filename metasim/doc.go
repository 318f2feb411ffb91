// Package metasim owns an independent simulation of Meta's side of WhatsApp
// Business calling: a Graph API handler (calls, messages, call_permissions,
// settings) that validates requests like Meta and answers in Meta's formats,
// a sender of signed webhooks, Meta-side permission enforcement (request
// limits, connected-call limits, unanswered-call revocation, callback
// permission) and WhatsApp-user WebRTC peers (Pion, ICE-lite) that play Opus
// audio, record what the business sends and exchange RFC 4733 DTMF.
//
// It deliberately imports nothing from callgw's signaling or media packages:
// it is written from the wire format alone, so that tests using it catch
// misreadings of Meta's format instead of sharing them.
package metasim
