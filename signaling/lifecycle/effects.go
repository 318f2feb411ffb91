package lifecycle

import "time"

// Effect is something Transition asks the runner to do. Effects run in
// order, in the call's goroutine; an effect with a result feeds it back as
// an event.
type Effect interface{ effect() }

type (
	// PrepareInbound answers Meta's offer and sends pre_accept → Prepared or
	// PrepareFailed.
	PrepareInbound struct{}
	// ClaimCall claims the call for Agent across instances → Claimed.
	ClaimCall struct{ Agent string }
	// OfferAgentLeg builds the agent leg's offer and sends it to the owning
	// agent (→ LegSetupFailed on failure).
	OfferAgentLeg struct{}
	// ApplyAgentAnswer applies the agent's SDP (an error goes back to the
	// agent) → AgentAnswerApplied.
	ApplyAgentAnswer struct{}
	// ApplyMetaAnswer applies Meta's SDP answer to the WhatsApp leg
	// (→ MetaAnswerFailed on failure).
	ApplyMetaAnswer struct{}
	// ForwardCommand runs an agent command that needs no decision (ice,
	// resume, dtmf).
	ForwardCommand struct{ Kind CommandKind }
	// GraphAccept sends accept with our answer → AcceptDone or AcceptFailed.
	GraphAccept struct{}
	// GraphReject declines a user-initiated call at Meta.
	GraphReject struct{}
	// GraphTerminate ends a call at Meta ("always terminate calls we end").
	GraphTerminate struct{}
	// StartWhatsAppMedia lets RTP flow toward WhatsApp (after accept 200, or
	// at pickup of a business-initiated call).
	StartWhatsAppMedia struct{}
	// ArmWatchdog starts the no-media watchdog.
	ArmWatchdog struct{}
	// DiagnoseMedia asks media why a leg carries no media (before it is
	// closed) → MediaDiagnosed.
	DiagnoseMedia struct{ Agent bool }
	// CloseMedia closes both legs.
	CloseMedia struct{}
	// StartTimer starts (or restarts) a timer.
	StartTimer struct {
		Timer TimerKind
		After time.Duration
	}
	// StopTimer stops a timer if it runs.
	StopTimer struct{ Timer TimerKind }
	// Notify tells agents something.
	Notify struct {
		What  Notice
		Agent string // for NoticeDeclinedAck: who declined
	}
	// Persist saves the live call (state and what agents see).
	Persist struct{}
	// UsePermission records a permission-relevant use of the pair.
	UsePermission struct{ Use PermissionUse }
	// OpenServiceWindow opens the user's 24 h customer service window.
	OpenServiceWindow struct{}
	// SaveEnded writes the tombstone and the record as it is (the final
	// record follows when Meta's figures arrive or the wait ends).
	SaveEnded struct{}
	// Finalize writes the final record (ledger) and ends the runner.
	Finalize struct{}
	// BeginWait: callgw answered the call to make the caller wait: queue it
	// (or run the IVR) and play the hold audio.
	BeginWait struct{}
	// EndWait: an agent took the waiting call: it leaves the queue (the
	// hold audio plays on until the agent is connected).
	EndWait struct{}
	// StopPlayback stops prompts toward the caller (the agent is connected).
	StopPlayback struct{}
	// ReleaseClaim frees the cluster-wide accept claim: the call waits
	// again (a lost transfer) and the next agent must be able to take it.
	ReleaseClaim struct{}
)

func (PrepareInbound) effect()     {}
func (ClaimCall) effect()          {}
func (OfferAgentLeg) effect()      {}
func (ApplyAgentAnswer) effect()   {}
func (ApplyMetaAnswer) effect()    {}
func (ForwardCommand) effect()     {}
func (GraphAccept) effect()        {}
func (GraphReject) effect()        {}
func (GraphTerminate) effect()     {}
func (StartWhatsAppMedia) effect() {}
func (ArmWatchdog) effect()        {}
func (CloseMedia) effect()         {}
func (DiagnoseMedia) effect()      {}
func (StartTimer) effect()         {}
func (StopTimer) effect()          {}
func (Notify) effect()             {}
func (Persist) effect()            {}
func (UsePermission) effect()      {}
func (OpenServiceWindow) effect()  {}
func (SaveEnded) effect()          {}
func (Finalize) effect()           {}
func (BeginWait) effect()          {}
func (EndWait) effect()            {}
func (StopPlayback) effect()       {}
func (ReleaseClaim) effect()       {}

// TimerKind names the lifecycle's timers.
type TimerKind uint8

const (
	TimerRing        TimerKind = iota + 1 // user-initiated: agents must accept
	TimerRingCeiling                      // business-initiated: the user must pick up
	TimerAgentGrace                       // the agent leg must come (back)
	TimerMetaWait                         // Meta's terminate should arrive
)

var timerNames = [...]string{"none", "ring", "ring_ceiling", "agent_grace", "meta_wait"}

func (t TimerKind) String() string {
	if int(t) < len(timerNames) {
		return timerNames[t]
	}
	return "none"
}

// Notice is what Notify tells.
type Notice uint8

const (
	NoticeOffered     Notice = iota + 1 // the call rings: to every available agent
	NoticeTaken                         // an agent took it: to the others; the call to the owner
	NoticeDeclinedAck                   // to the agent who declined
	NoticeState                         // the call's new state: to the owning agent
	NoticeEnded                         // the call ended: to everybody
)

var noticeNames = [...]string{"none", "offered", "taken", "declined_ack", "state", "ended"}

func (n Notice) String() string {
	if int(n) < len(noticeNames) {
		return noticeNames[n]
	}
	return "none"
}

// PermissionUse is what a call did that WhatsApp's permission rules count.
type PermissionUse uint8

const (
	UseInboundSeen        PermissionUse = iota + 1 // the user called us
	UseInboundConnected                            // the user's call connected (resets request limits)
	UseOutboundConnected                           // our call was picked up (connected-call limit, resets request limits)
	UseOutboundUnanswered                          // our call was not picked up (unanswered streak)
	UseOutboundDeclined                            // our call was declined (unanswered streak)
)

var useNames = [...]string{"none", "inbound_seen", "inbound_connected", "outbound_connected",
	"outbound_unanswered", "outbound_declined"}

func (u PermissionUse) String() string {
	if int(u) < len(useNames) {
		return useNames[u]
	}
	return "none"
}
