// Package lifecycle owns the rules of one call's life, and nothing else: its
// states, the events that move it (webhooks, agent commands, media and timer
// events, all typed), and the effects each move asks for (tell agents, a
// Graph action, a media action, persist, a permission use, write the final
// record). Transition is pure: it takes the call and one event and returns
// the next call and its effects, so every row of Meta's lifecycle is a table
// test. Conclude is the one place that decides a finished call's outcome and
// end reason. The runner that executes effects lives in signaling.
//
// The lifecycle follows ../shared/reference/cloud-api-calling.md:
//
//	user-initiated:     connect(offer) → pre_accept → ringing → agent accepts → accept 200 → connected
//	business-initiated: connect sent → connect webhook (Meta's answer; NOT answered) → RINGING →
//	                    ACCEPTED (= picked up: connected) | REJECTED | no answer → terminate
//
// Events may arrive in any order and more than once; every transition is
// idempotent and monotonic (a call never goes back, an ended call only takes
// Meta's figures).
package lifecycle
