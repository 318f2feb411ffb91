package lifecycle

import (
	"errors"
	"slices"
	"strings"

	"github.com/callgw/callgw/call"
)

// Hold, resume and transfer of a connected call (issue 14). The caller's
// audio is switched in media (hold music, side legs); the WhatsApp leg is
// never renegotiated. Every agent who handled the call is kept in
// Rec.Handlers.

// TransferMode is how a call is transferred.
type TransferMode uint8

const (
	TransferBlind TransferMode = iota + 1 // the caller holds while the target rings; the target gets the caller
	TransferWarm                          // the first agent talks to the target first, then completes or cancels
)

func (m TransferMode) String() string {
	switch m {
	case TransferBlind:
		return "blind"
	case TransferWarm:
		return "warm"
	}
	return "none"
}

// ParseTransferMode reads "blind" or "warm" (0 for anything else).
func ParseTransferMode(s string) TransferMode {
	switch s {
	case "blind":
		return TransferBlind
	case "warm":
		return TransferWarm
	}
	return 0
}

// TransferPhase is where a transfer is.
type TransferPhase uint8

const (
	TransferNone       TransferPhase = iota
	TransferRinging                  // the target(s) are offered the call
	TransferConsulting               // warm: the first agent and the target talk on a side leg
	TransferConnecting               // blind: the target took it; its agent leg comes up
)

var transferPhaseNames = [...]string{"none", "ringing", "consulting", "connecting"}

func (p TransferPhase) String() string {
	if int(p) < len(transferPhaseNames) {
		return transferPhaseNames[p]
	}
	return "none"
}

// Transfer is a transfer under way (zero: none).
type Transfer struct {
	Phase    TransferPhase
	Mode     TransferMode
	From     string   // the agent who transfers
	Team     string   // the team asked for, if any
	Targets  []string // who is offered the call (one agent, or a team's available agents)
	To       string   // the target who took it
	WasHeld  bool     // the caller was on hold before the transfer (cancel keeps the hold)
	FromGone bool     // blind: the first agent left while the target rang
}

// Active reports whether a transfer is under way.
func (x Transfer) Active() bool { return x.Phase != TransferNone }

// Offered reports whether agent is offered the call by a ringing transfer.
func (x Transfer) Offered(agent string) bool {
	return x.Phase == TransferRinging && slices.Contains(x.Targets, agent)
}

// ErrNoTarget: a transfer names nobody who could take the call.
var ErrNoTarget = errors.New("nobody to transfer the call to")

// TimerTransfer bounds how long a transfer's target may ring (the ring
// timeout). Numbered apart from the core timers.
const TimerTransfer TimerKind = 32

// ---- events ----

type (
	// HoldRequest: the owning agent puts the caller on hold (On) or back.
	HoldRequest struct {
		When
		Agent string
		On    bool
	}
	// TransferRequest: the owning agent transfers the call to Targets (one
	// agent, or the available agents of Team, resolved by the runner).
	TransferRequest struct {
		When
		Agent   string
		Mode    TransferMode
		Team    string
		Targets []string
	}
	// TransferAccept: a target takes the transferred call.
	TransferAccept struct {
		When
		Agent string
	}
	// TransferDecline: a target declines.
	TransferDecline struct {
		When
		Agent string
	}
	// TransferComplete: warm, the first agent hands the caller to the
	// target. SideUp: the consult leg is connected.
	TransferComplete struct {
		When
		Agent  string
		SideUp bool
	}
	// TransferCancel: the first agent takes the transfer back.
	TransferCancel struct {
		When
		Agent string
	}
	// ConsultCommand: the target of a warm transfer sends its consult leg's
	// SDP answer (Answer) or an ICE candidate.
	ConsultCommand struct {
		When
		Agent  string
		Answer bool
	}
	// ConsultLegChanged: the consult side leg's connectivity changed.
	ConsultLegChanged struct {
		When
		Leg LegState
	}
)

// ---- effects ----

type (
	// SetHold puts the caller on hold (hold music toward WhatsApp, nothing
	// to the agent) or takes it off.
	SetHold struct{ On bool }
	// OfferConsult opens the consult side leg to Transfer.To and sends its offer.
	OfferConsult struct{}
	// ApplyConsultAnswer applies the target's SDP answer to the consult leg.
	ApplyConsultAnswer struct{}
	// ForwardConsultICE adds the target's candidate to the consult leg.
	ForwardConsultICE struct{}
	// PromoteConsult makes the consult leg the agent leg.
	PromoteConsult struct{}
	// CloseConsult closes the consult leg.
	CloseConsult struct{}
	// TellTransfer tells the agents concerned about the transfer (as it
	// was when the event came: From, To, Targets comma-separated).
	TellTransfer struct {
		What     TransferNotice
		Mode     TransferMode
		From, To string
		Targets  string
	}
)

func (SetHold) effect()            {}
func (OfferConsult) effect()       {}
func (ApplyConsultAnswer) effect() {}
func (ForwardConsultICE) effect()  {}
func (PromoteConsult) effect()     {}
func (CloseConsult) effect()       {}
func (TellTransfer) effect()       {}

// TransferNotice is what TellTransfer tells.
type TransferNotice uint8

const (
	TransferOffered   TransferNotice = iota + 1 // to the targets: the call is offered to you
	TransferTaken                               // to the other targets: stop ringing; to the first agent: taken
	TransferEnded                               // to the targets and the first agent: cancelled / no answer
	TransferHandedOff                           // to the first agent: the call is no longer yours
	TransferConsult                             // to the first agent: consulting
)

var transferNoticeNames = [...]string{"none", "offered", "taken", "ended", "handed_off", "consulting"}

func (n TransferNotice) String() string {
	if int(n) < len(transferNoticeNames) {
		return transferNoticeNames[n]
	}
	return "none"
}

// tell is TellTransfer about the transfer as it is now.
func (t *step) tell(n TransferNotice) TellTransfer {
	x := t.c.Transfer
	return TellTransfer{What: n, Mode: x.Mode, From: x.From, To: x.To, Targets: strings.Join(x.Targets, ",")}
}

// handlerStart opens a handler entry for agent at now.
func (t *step) handlerStart(agent string) {
	c := &t.c
	if agent == "" {
		return
	}
	if n := len(c.Rec.Handlers); n > 0 && c.Rec.Handlers[n-1].Agent == agent && c.Rec.Handlers[n-1].To.IsZero() {
		return
	}
	t.handlerStop()
	c.Rec.Handlers = append(slices.Clone(c.Rec.Handlers), call.Handler{Agent: agent, From: t.at.at()})
}

// handlerStop closes the open handler entry.
func (t *step) handlerStop() {
	c := &t.c
	if n := len(c.Rec.Handlers); n > 0 && c.Rec.Handlers[n-1].To.IsZero() {
		c.Rec.Handlers = slices.Clone(c.Rec.Handlers)
		c.Rec.Handlers[n-1].To = t.at.at()
	}
}

// applyTransfer handles the events of this file; false when ev is not one.
func (t *step) applyTransfer(ev Event) (bool, error) {
	c := &t.c
	switch e := ev.(type) {
	case HoldRequest:
		if err := t.own(e.Agent); err != nil {
			return true, err
		}
		if c.State != StateConnected || c.Transfer.Active() {
			return true, ErrOutOfTurn
		}
		if c.OnHold == e.On {
			return true, nil
		}
		c.OnHold = e.On
		t.do(SetHold{On: e.On}, Persist{}, Notify{What: NoticeState})
	case TransferRequest:
		if err := t.own(e.Agent); err != nil {
			return true, err
		}
		switch {
		case c.State != StateConnected || c.Transfer.Active():
			return true, ErrOutOfTurn
		case e.Mode != TransferBlind && e.Mode != TransferWarm:
			return true, ErrOutOfTurn
		}
		targets := slices.DeleteFunc(slices.Clone(e.Targets), func(a string) bool { return a == e.Agent || a == "" })
		if len(targets) == 0 {
			return true, ErrNoTarget
		}
		if e.Mode == TransferWarm && len(targets) > 1 && e.Team == "" {
			targets = targets[:1]
		}
		c.Transfer = Transfer{Phase: TransferRinging, Mode: e.Mode, From: e.Agent, Team: e.Team,
			Targets: targets, WasHeld: c.OnHold}
		if !c.OnHold {
			c.OnHold = true
			t.do(SetHold{On: true})
		}
		t.do(StartTimer{Timer: TimerTransfer, After: t.r.RingTimeout}, Persist{},
			t.tell(TransferOffered), Notify{What: NoticeState})
	case TransferAccept:
		switch {
		case !c.State.Live():
			return true, ErrCallEnded
		case !c.Transfer.Offered(e.Agent):
			return true, ErrCallTaken
		}
		x := &c.Transfer
		x.To = e.Agent
		t.do(StopTimer{Timer: TimerTransfer}, t.tell(TransferTaken))
		if x.Mode == TransferWarm {
			x.Phase = TransferConsulting
			t.do(t.tell(TransferConsult), OfferConsult{}, Persist{}, Notify{What: NoticeState})
			return true, nil
		}
		t.handOff(e.Agent)
		x.Phase = TransferConnecting
		c.OfferSent, c.AgentAnswered, c.AgentLeg = true, false, LegConnecting
		t.do(OfferAgentLeg{}, Persist{}, Notify{What: NoticeState})
		t.graceIfLegDown()
	case TransferDecline:
		if !c.Transfer.Offered(e.Agent) {
			return true, ErrOutOfTurn
		}
		c.Transfer.Targets = slices.DeleteFunc(slices.Clone(c.Transfer.Targets), func(a string) bool { return a == e.Agent })
		if len(c.Transfer.Targets) == 0 {
			t.transferBack()
		} else {
			t.do(Persist{})
		}
	case TransferComplete:
		if err := t.own(e.Agent); err != nil {
			return true, err
		}
		if c.Transfer.Phase != TransferConsulting || !e.SideUp {
			return true, ErrOutOfTurn
		}
		to := c.Transfer.To
		t.do(PromoteConsult{})
		t.handOff(to)
		c.Transfer = Transfer{}
		c.OfferSent, c.AgentAnswered, c.AgentLeg = true, true, LegUp
		c.OnHold = false
		t.do(SetHold{On: false}, Persist{}, Notify{What: NoticeState})
	case TransferCancel:
		if err := t.own(e.Agent); err != nil {
			return true, err
		}
		if c.Transfer.Phase != TransferRinging && c.Transfer.Phase != TransferConsulting {
			return true, ErrOutOfTurn
		}
		t.transferBack()
	case ConsultCommand:
		if !c.State.Live() {
			return true, ErrCallEnded
		}
		if c.Transfer.Phase != TransferConsulting || c.Transfer.To != e.Agent {
			return true, ErrNotYourCall
		}
		if e.Answer {
			t.do(ApplyConsultAnswer{})
		} else {
			t.do(ForwardConsultICE{})
		}
	case ConsultLegChanged:
		if c.Transfer.Phase == TransferConsulting && (e.Leg == LegDown) {
			t.transferBack()
		}
	default:
		return t.applyIVR(ev) // ivr.go
	}
	return true, nil
}

// handOff gives the call to agent: the first agent is told, the handler
// list moves on.
func (t *step) handOff(agent string) {
	c := &t.c
	t.do(t.tell(TransferHandedOff))
	c.Agent, c.Rec.Agent = agent, agent
	t.handlerStart(agent)
}

// transferBack ends a transfer that did not happen: the targets stop
// ringing (or the consult leg closes) and the caller goes back to the first
// agent, off hold unless held before. A first agent who left (blind) cannot
// take it back: the call ends (agent lost).
func (t *step) transferBack() {
	c := &t.c
	x := c.Transfer
	t.do(StopTimer{Timer: TimerTransfer}, t.tell(TransferEnded))
	if x.Phase == TransferConsulting {
		t.do(CloseConsult{})
	}
	c.Transfer = Transfer{}
	if x.FromGone {
		t.requeue()
		return
	}
	if !x.WasHeld {
		c.OnHold = false
		t.do(SetHold{On: false})
	}
	t.do(Persist{}, Notify{What: NoticeState})
}

// transferLegUp: the blind target's agent leg is up: the caller comes off hold.
func (t *step) transferLegUp() {
	c := &t.c
	if c.Transfer.Phase != TransferConnecting {
		return
	}
	c.Transfer = Transfer{}
	c.OnHold = false
	t.do(SetHold{On: false}, Persist{})
}

// transferOnEnd: the call ends during a transfer: the targets stop ringing.
func (t *step) transferOnEnd() {
	c := &t.c
	if c.Transfer.Phase == TransferRinging || c.Transfer.Phase == TransferConsulting {
		t.do(StopTimer{Timer: TimerTransfer}, t.tell(TransferEnded))
	}
	if c.Transfer.Phase == TransferConsulting {
		t.do(CloseConsult{})
	}
	c.Transfer = Transfer{}
	t.handlerStop()
}

// requeue: a blind transfer nobody took after the first agent left. A
// user-initiated call waits again in its number's queue (callgw answered
// it: no second accept; BeginWait queues it with the hold audio); a
// business-initiated one ends (agent lost).
func (t *step) requeue() {
	c := &t.c
	if c.Rec.Direction != call.UserInitiated || !c.Accepted {
		t.hangup(CauseAgentLost)
		return
	}
	c.State = StateWaiting
	c.GatewayAnswered = true
	c.Agent = ""
	c.OnHold = false
	c.OfferSent, c.AgentAnswered, c.AgentLeg = false, false, LegNone
	c.graceOn = false
	t.do(StopTimer{Timer: TimerAgentGrace}, SetHold{On: false}, ReleaseClaim{}, Persist{}, BeginWait{})
}

// transferTimer: the target(s) did not answer in time.
func (t *step) transferTimer() {
	if t.c.Transfer.Phase == TransferRinging {
		t.transferBack()
	}
}

// agentLeaves: the first agent hangs up while a blind transfer rings; the
// call stays, on hold, for the target.
func (t *step) agentLeaves(agent string) bool {
	c := &t.c
	if c.Transfer.Phase != TransferRinging || c.Transfer.Mode != TransferBlind || c.Transfer.From != agent {
		return false
	}
	c.Transfer.FromGone = true
	t.handlerStop()
	t.do(t.tell(TransferHandedOff), CloseAgentLeg{}, Persist{})
	return true
}

// CloseAgentLeg closes the agent leg only (the first agent left during a
// blind transfer; the caller keeps hold music).
type CloseAgentLeg struct{}

func (CloseAgentLeg) effect() {}
