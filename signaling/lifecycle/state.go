package lifecycle

import (
	"time"

	"github.com/callgw/callgw/call"
)

// State is where a call is in its life.
type State uint8

const (
	StateUnknown    State = iota
	StateSetup            // user-initiated: answering Meta's offer, sending pre_accept
	StateRinging          // user-initiated: offered to agents
	StateDialing          // business-initiated: connect sent; the user's phone rings
	StateConnecting       // user-initiated: an agent took it; agent leg and accept under way
	StateConnected        // answered: talk time runs
	StateEnded            // over; waiting for Meta's terminate to complete the record
	StateFinal            // the record is complete: the runner writes it and stops
	// StateWaiting: user-initiated, answered by callgw itself (accept sent
	// with our pre_accept answer) because the caller must wait (queue, IVR):
	// no agent yet, the caller hears prompts, talk time runs, the call is
	// still offered to agents. An agent who takes it gets an agent leg
	// without a second accept.
	StateWaiting
)

var stateNames = [...]string{"unknown", "setup", "ringing", "dialing", "connecting", "connected", "ended", "final", "waiting"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// ParseState reads a name written by String ("unknown" for anything else).
func ParseState(s string) State {
	for i, n := range stateNames {
		if n == s {
			return State(i)
		}
	}
	return StateUnknown
}

// Live reports whether the call still has media or signaling to do.
func (s State) Live() bool { return (s >= StateSetup && s <= StateConnected) || s == StateWaiting }

// Offered reports whether agents may take the call in this state (ringing,
// or waiting once callgw has answered it).
func (s State) Offered() bool { return s == StateRinging || s == StateWaiting }

// AgentOwned reports whether an agent owns the call in this state.
func (s State) AgentOwned() bool {
	return s == StateDialing || s == StateConnecting || s == StateConnected
}

// UserStatus is what Meta's call statuses said of a business-initiated call.
type UserStatus uint8

const (
	UserNone     UserStatus = iota // no status yet
	UserRinging                    // RINGING: the callee's device rings
	UserAccepted                   // ACCEPTED: picked up
	UserRejected                   // REJECTED: declined
)

var userStatusNames = [...]string{"none", "ringing", "accepted", "rejected"}

func (u UserStatus) String() string {
	if int(u) < len(userStatusNames) {
		return userStatusNames[u]
	}
	return "none"
}

// LegState is the agent leg's connectivity as media reports it.
type LegState uint8

const (
	LegNone       LegState = iota // no agent leg
	LegConnecting                 // offered, not connected (or reconnecting)
	LegUp                         // connected
	LegDown                       // failed or closed
)

// Call is everything the lifecycle knows of one call. The runner keeps it;
// only Transition changes it.
type Call struct {
	Rec   call.Record // the record being built (times, outcome, Meta's figures)
	State State

	Agent         string          // the owning agent ("" until one takes the call)
	Declined      map[string]bool // agents who declined while it rang
	OfferSent     bool            // an agent-leg offer was sent
	AgentAnswered bool            // the agent leg's SDP answer is applied
	AgentLeg      LegState

	PreAccepted bool       // user-initiated: pre_accept returned 200
	Accepted    bool       // user-initiated: accept returned 200
	MetaAnswer  bool       // business-initiated: Meta's SDP answer applied
	User        UserStatus // business-initiated: the latest call status
	PickedUp    bool       // answered (UIC accept 200, BIC ACCEPTED, or a terminate with start_time)
	// GatewayAnswered: user-initiated, callgw accepted the call itself to
	// make the caller wait (StateWaiting); Accepted is then set at that
	// accept, and an agent taking the call needs no second accept.
	GatewayAnswered bool
	// CanWait: a queue takes the call if nobody answers while it rings.
	CanWait bool

	Cause       Cause // why it ended (set when it ends)
	MetaEnded   bool  // Meta's terminate has been applied
	MetaStatus  string
	AwaitMeta   bool // ended by us: waiting for Meta's terminate
	Counted     bool // the permission use of this call's end is recorded
	OutboundHit bool // business-initiated: the connected-call use is recorded

	OnHold   bool     // the caller is on hold (transfer.go)
	Transfer Transfer // a transfer under way (transfer.go)

	graceOn bool // the agent-grace timer runs
}

// New starts a call record's lifecycle.
func New(rec call.Record) Call {
	st := StateSetup
	if rec.Direction == call.BusinessInitiated {
		st = StateDialing
	}
	return Call{Rec: rec, State: st, Agent: rec.Agent, Declined: map[string]bool{}}
}

// Cause is who or what ended a call, before Conclude turns it into an
// outcome and an end reason.
type Cause uint8

const (
	CauseNone           Cause = iota
	CauseAgentHangup          // the agent hung up
	CauseMeta                 // Meta's terminate (the user hung up, or Meta ended it; see its errors)
	CauseRingTimeout          // no agent accepted in time (user-initiated)
	CauseNoAgent              // no agent available (user-initiated)
	CauseAgentsDeclined       // every agent declined (user-initiated)
	CauseUserDeclined         // REJECTED (business-initiated)
	CauseRingCeiling          // our ring ceiling passed without pickup (business-initiated)
	CauseMediaTimeout         // our watchdog: no media from WhatsApp
	CauseMediaFailed          // the WhatsApp leg failed
	CauseAgentLost            // the agent leg did not come back in time
	CauseSetupFailed          // media or Graph setup failed
	CauseAcceptFailed         // Meta refused accept
	CauseDrained              // the instance shut down
	CauseOwnerLost            // the owning instance died; another ended the call
	CauseStale                // the connect was older than Meta's accept window
	CauseQueueTimeout         // a waiting caller reached max_wait with nowhere to overflow
	CauseQueueFull            // the caller could not wait (queue full, or nobody to wait for)
	CauseIVRHangup            // the IVR ended the call (a hangup or callback node, or no key in time)
)

var causeNames = [...]string{"none", "agent_hangup", "meta", "ring_timeout", "no_agent", "agents_declined",
	"user_declined", "ring_ceiling", "media_timeout", "media_failed", "agent_lost", "setup_failed",
	"accept_failed", "drained", "owner_lost", "stale", "queue_timeout", "queue_full", "ivr_hangup"}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "none"
}

// Rules are the lifecycle's settings.
type Rules struct {
	RingTimeout time.Duration // user-initiated: agents must accept within this
	RingCeiling time.Duration // business-initiated: our own ceiling for an unanswered call (Meta's is undocumented)
	AgentGrace  time.Duration // an agent leg may be down this long
	MetaWait    time.Duration // after we end a call, wait this long for Meta's terminate
}
