package lifecycle

import "time"

// Event is one thing that happened to a call. Every event carries the time
// the runner saw it (from its one clock), so Transition stays pure.
type Event interface{ at() time.Time }

// When is embedded by every event.
type When struct{ At time.Time }

func (w When) at() time.Time { return w.At }

// ---- from the runner's own work (results of effects) ----

type (
	// Begin starts a call: a user-initiated call just recorded from its
	// connect webhook, or a business-initiated call just placed. Stale is set
	// for a connect older than Meta's accept window (recorded, not acted on).
	Begin struct {
		When
		Stale bool
	}
	// Prepared: our answer to Meta's offer is built and pre_accept returned
	// 200. Available counts the agents who may be offered the call. Wait
	// says the caller must wait (nobody free, a queue takes the call; or an
	// IVR runs first): callgw accepts the call itself (StateWaiting).
	Prepared struct {
		When
		Available int
		Wait      bool
		// CanWait: if nobody answers while it rings (ring timeout, every
		// agent declined, RingExhausted), the caller waits in a queue
		// instead of the call being missed.
		CanWait bool
		// QueueFull: nobody is free and the number's queues are full (the
		// call is missed with reason queue_full rather than no_agent).
		QueueFull bool
	}
	// RingExhausted: routing has nobody left to ring (sequential strategies
	// tried every free member of the number's teams).
	RingExhausted struct{ When }
	// StartWait: a ringing call must wait after all (nobody answered and a
	// queue takes it): callgw accepts it itself (StateWaiting).
	StartWait struct{ When }
	// LeaveWait ends a waiting call that no agent will take (max_wait with
	// no overflow: CauseQueueTimeout; no queue: CauseQueueFull).
	LeaveWait struct {
		When
		Cause Cause
	}
	// PrepareFailed: no answer could be built or pre_accept failed.
	PrepareFailed struct {
		When
		Code int // Meta's error code, if any
	}
	// Claimed is the result of the cluster-wide claim of an accept.
	Claimed struct {
		When
		Agent string
		Won   bool
	}
	// AgentAnswerApplied: the agent leg's SDP answer is applied.
	AgentAnswerApplied struct{ When }
	// AcceptDone: Meta answered accept with 200 (or said the call is
	// already accepted: a retried accept whose first attempt went through).
	AcceptDone struct{ When }
	// AcceptFailed: Meta refused accept.
	AcceptFailed struct {
		When
		Code int
	}
	// LegSetupFailed: the agent leg could not be built.
	LegSetupFailed struct{ When }
	// MetaAnswerFailed: Meta's SDP answer could not be applied.
	MetaAnswerFailed struct{ When }
)

// ---- agent commands ----

type (
	// AgentAccept: an agent accepts a ringing call.
	AgentAccept struct {
		When
		Agent     string
		Available bool
	}
	// AgentDecline: an agent declines a ringing call. Others counts the
	// available agents besides the ones who declined already.
	AgentDecline struct {
		When
		Agent  string
		Others int
	}
	// AgentAnswer: the agent sends its SDP answer for the agent leg.
	AgentAnswer struct {
		When
		Agent string
	}
	// AgentCommand is a command that only needs ownership (ice, resume, dtmf).
	AgentCommand struct {
		When
		Agent string
		Kind  CommandKind
	}
	// AgentHangup: the owning agent hangs up.
	AgentHangup struct {
		When
		Agent string
	}
)

// CommandKind names an AgentCommand.
type CommandKind uint8

const (
	CmdICE    CommandKind = iota + 1 // an ICE candidate for the agent leg
	CmdResume                        // a new agent leg after a dropped one
	CmdDTMF                          // send key presses to the user
)

// ---- Meta's webhooks ----

type (
	// MetaConnect is a business-initiated connect webhook: Meta's SDP answer.
	// It does NOT mean the user picked up.
	MetaConnect struct{ When }
	// MetaStatus is a business-initiated call status (RINGING, ACCEPTED,
	// REJECTED). Stamp is Meta's timestamp.
	MetaStatus struct {
		When
		Status UserStatus
		Stamp  time.Time
	}
	// MetaTerminate is Meta's terminate webhook. Start and End are zero and
	// Duration is -1 when the call was not picked up; Errors are the codes of
	// value.errors[] (and any inside the call).
	MetaTerminate struct {
		When
		Status   string // COMPLETED | FAILED, as sent
		Start    time.Time
		End      time.Time
		Duration int64
		Errors   []int
	}
)

// ---- media and timers ----

type (
	// AgentLegChanged: the agent leg's connectivity changed.
	AgentLegChanged struct {
		When
		Leg LegState
	}
	// WhatsAppLegFailed: the WhatsApp leg failed (ICE/DTLS).
	WhatsAppLegFailed struct{ When }
	// MediaTimeout: the armed watchdog saw no media from WhatsApp.
	MediaTimeout struct{ When }
	// TimerFired: a timer the lifecycle started has fired.
	TimerFired struct {
		When
		Timer TimerKind
	}
	// Drain: the instance is shutting down past its grace period.
	Drain struct{ When }
	// MediaDiagnosed: why a leg carried no media (media's bounded cause).
	MediaDiagnosed struct {
		When
		Leg, Cause string
	}
)
