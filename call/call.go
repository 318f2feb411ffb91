// Package call is callgw's shared vocabulary for a call: its id, direction,
// outcome, end reason and the final record that signaling hands to billing.
// It owns no behaviour; every other package may import it.
package call

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ID is Meta's call id ("wacid....").
type ID string

// Direction says who placed the call.
type Direction uint8

const (
	DirectionUnknown  Direction = iota
	UserInitiated               // the WhatsApp user called the business (free)
	BusinessInitiated           // the business called the user (billed)
)

var directionNames = [...]string{"unknown", "user_initiated", "business_initiated"}

func (d Direction) String() string {
	if int(d) < len(directionNames) {
		return directionNames[d]
	}
	return "unknown"
}

// ParseDirection accepts Meta's "USER_INITIATED"/"BUSINESS_INITIATED" and
// callgw's lower-case names.
func ParseDirection(s string) Direction {
	for i, n := range directionNames {
		if strings.EqualFold(s, n) {
			return Direction(i)
		}
	}
	return DirectionUnknown
}

// MarshalText writes the lower-case name.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads any name ParseDirection accepts.
func (d *Direction) UnmarshalText(b []byte) error { *d = ParseDirection(string(b)); return nil }

// Outcome is how a call ended, from the business' point of view.
type Outcome uint8

const (
	OutcomeUnknown Outcome = iota
	Answered               // media connected between the user and an agent
	Missed                 // user-initiated, no agent answered
	Declined               // business-initiated, the user declined
	Unanswered             // business-initiated, the user did not answer
	Failed                 // ended by an error before connecting
)

var outcomeNames = [...]string{"unknown", "answered", "missed", "declined", "unanswered", "failed"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// ParseOutcome reads a name written by String.
func ParseOutcome(s string) Outcome {
	for i, n := range outcomeNames {
		if strings.EqualFold(s, n) {
			return Outcome(i)
		}
	}
	return OutcomeUnknown
}

func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }
func (o *Outcome) UnmarshalText(b []byte) error {
	*o = ParseOutcome(string(b))
	return nil
}

// EndReason says why a call ended.
type EndReason uint8

const (
	ReasonUnknown  EndReason = iota
	AgentHangup              // the agent hung up
	UserHangup               // the WhatsApp user hung up (terminate webhook)
	RingTimeout              // no agent accepted in time
	NoAgent                  // no agent was available
	AgentRejected            // every ringing agent declined
	MediaTimeout             // no media for too long (watchdog or Meta 138021)
	AgentLost                // the agent's tab/leg died and did not come back
	UserDeclined             // business-initiated: the user declined
	UserNoAnswer             // business-initiated: the user did not answer
	MetaError                // Meta reported an error (see Record.ErrorCode)
	Drained                  // the instance shut down past its grace period
	OwnerLost                // the owning instance died; another ended the call
	SetupFailed              // media or signaling could not be set up
	Stale                    // Meta's connect was older than its accept window: recorded, not acted on
	QueueAbandoned           // the caller hung up while waiting in a queue (answered by callgw, no agent)
	QueueTimeout             // the caller waited max_wait and no team was left to try
	QueueFull                // nobody free and the queue could take no more
	IVRHangup                // the IVR ended the call (hangup or callback node, no key in time)
)

var reasonNames = [...]string{"unknown", "agent_hangup", "user_hangup", "ring_timeout", "no_agent",
	"agent_rejected", "media_timeout", "agent_lost", "user_declined", "user_no_answer", "meta_error",
	"drained", "owner_lost", "setup_failed", "stale", "queue_abandoned", "queue_timeout", "queue_full", "ivr_hangup"}

func (r EndReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// ParseEndReason reads a name written by String.
func ParseEndReason(s string) EndReason {
	for i, n := range reasonNames {
		if strings.EqualFold(s, n) {
			return EndReason(i)
		}
	}
	return ReasonUnknown
}

func (r EndReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
func (r *EndReason) UnmarshalText(b []byte) error {
	*r = ParseEndReason(string(b))
	return nil
}

// Record is the final account of one call, written once when it ends. Phone
// numbers are E.164 with a leading '+', or empty when Meta gave only a user id.
type Record struct {
	ID            ID        `json:"id"`
	Direction     Direction `json:"direction"`
	PhoneNumberID string    `json:"phone_number_id"`      // the business number's Graph id
	BusinessPhone string    `json:"business_phone"`       // E.164 of the business number
	UserPhone     string    `json:"user_phone"`           // E.164 of the WhatsApp user
	UserID        string    `json:"user_id,omitempty"`    // Meta's user id when there is no number
	UserName      string    `json:"user_name,omitempty"`  // WhatsApp profile name
	Agent         string    `json:"agent,omitempty"`      // the agent who took the call
	CreatedAt     time.Time `json:"created_at"`           // connect webhook received / connect sent
	AnsweredAt    time.Time `json:"answered_at,omitzero"` // agent accepted / user accepted
	EndedAt       time.Time `json:"ended_at"`             // the gateway saw the end
	MetaStart     time.Time `json:"meta_start,omitzero"`  // terminate webhook start_time
	MetaEnd       time.Time `json:"meta_end,omitzero"`    // terminate webhook end_time
	MetaDuration  int64     `json:"meta_duration"`        // terminate webhook duration in seconds, -1 if none
	GatewayMillis int64     `json:"gateway_duration_ms"`  // connected time measured by the gateway
	Outcome       Outcome   `json:"outcome"`              //
	EndReason     EndReason `json:"end_reason"`           //
	ErrorCode     int       `json:"error_code,omitempty"` // Meta error code, if any
	Payload       string    `json:"payload,omitempty"`    // deeplink/cta payload that brought the user
	Opaque        string    `json:"biz_opaque,omitempty"` // biz_opaque_callback_data
	// RecordingConsent is the consent to recording obtained from the
	// user: "notice" (a prompt, or Meta's notice), "explicit_given" (the
	// user pressed 1), "explicit_refused" (no key in time), "none" (the
	// call ended before consent was asked or answered); "" = not recorded
	// by policy.
	RecordingConsent string `json:"recording_consent,omitempty"`
	// MediaFailure says why a leg carried no media when that ended the
	// call: "<leg>:<cause>", leg whatsapp|agent, cause one of media's
	// bounded diagnoses (e.g. "agent:nothing_from_peer").
	MediaFailure string `json:"media_failure,omitempty"`
	// Handlers are the agents who handled the call, in order, with when
	// each had it (a transfer hands it on). Absent in older records.
	Handlers []Handler `json:"handlers,omitempty"`
	// IVRPath is the IVR nodes the caller went through, in order (at
	// most 32). Absent without an IVR.
	IVRPath []string `json:"ivr_path,omitempty"`
}

// Handler is one agent's stretch of a call.
type Handler struct {
	Agent string    `json:"agent"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to,omitzero"`
}

// Seconds is how long the agent had the call (0 while open).
func (h Handler) Seconds() int64 {
	if h.To.IsZero() {
		return 0
	}
	return int64(h.To.Sub(h.From) / time.Second)
}

// Connected reports whether media connected (the only calls that can cost).
func (r Record) Connected() bool { return r.Outcome == Answered }

// Validate checks the fields every consumer relies on.
func (r Record) Validate() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("call: record without id")
	case r.Direction == DirectionUnknown:
		return fmt.Errorf("call: record %s without direction", r.ID)
	case r.EndedAt.IsZero():
		return fmt.Errorf("call: record %s without end time", r.ID)
	}
	return nil
}

// MarshalBinary lets go-redis store a Record as JSON.
func (r Record) MarshalBinary() ([]byte, error) { return json.Marshal(r) }
