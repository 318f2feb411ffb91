package lifecycle

import (
	"maps"

	"github.com/callgw/callgw/call"
)

// Transition applies one event to a call and returns the next call, the
// effects to run in order, and, for an agent command the lifecycle refuses,
// an error (one of this package's Err values; nothing changes then). It is
// pure: the same call and event always give the same answer.
func (r Rules) Transition(c Call, ev Event) (Call, []Effect, error) {
	t := &step{r: r, c: c, at: ev}
	err := t.apply(ev)
	if err != nil {
		return c, nil, err
	}
	return t.c, t.fx, nil
}

type step struct {
	r  Rules
	c  Call
	at Event
	fx []Effect
}

func (t *step) do(fx ...Effect) { t.fx = append(t.fx, fx...) }

func (t *step) apply(ev Event) error {
	c := &t.c
	if ok, err := t.applyTransfer(ev); ok { // hold and transfer: transfer.go
		return err
	}
	switch e := ev.(type) {
	case Begin:
		switch {
		case c.State == StateSetup && e.Stale:
			t.end(CauseStale, nil, false)
		case c.State == StateSetup:
			t.do(PrepareInbound{})
		case c.State == StateDialing:
			c.OfferSent, c.AgentAnswered, c.AgentLeg = true, false, LegConnecting
			t.handlerStart(c.Agent)
			t.do(Persist{}, Notify{What: NoticeState}, OfferAgentLeg{},
				StartTimer{Timer: TimerRingCeiling, After: t.r.RingCeiling})
			t.graceIfLegDown()
		}
	case Prepared:
		if c.State != StateSetup {
			return nil
		}
		c.PreAccepted = true
		c.CanWait = e.CanWait
		t.do(UsePermission{Use: UseInboundSeen})
		if e.Wait {
			t.startWait()
			return nil
		}
		if e.Available == 0 {
			cause := CauseNoAgent
			if e.QueueFull {
				cause = CauseQueueFull
			}
			t.hangup(cause)
			return nil
		}
		c.State = StateRinging
		t.do(StartTimer{Timer: TimerRing, After: t.r.RingTimeout}, Persist{}, Notify{What: NoticeOffered})
	case StartWait:
		if c.State != StateRinging {
			return nil
		}
		t.do(StopTimer{Timer: TimerRing})
		t.startWait()
	case RingExhausted:
		if c.State != StateRinging {
			return nil
		}
		t.unanswered(CauseNoAgent)
	case LeaveWait:
		if c.State != StateWaiting {
			return nil
		}
		cause := e.Cause
		if cause == CauseNone {
			cause = CauseQueueTimeout
		}
		t.hangup(cause)
	case PrepareFailed:
		if c.State != StateSetup {
			return nil
		}
		t.setCode(e.Code)
		t.hangup(CauseSetupFailed)

	case AgentAccept:
		switch {
		case !c.State.Live():
			return ErrCallEnded
		case c.State == StateSetup:
			return ErrOutOfTurn
		case c.State == StateWaiting && !c.Accepted:
			return ErrOutOfTurn // callgw's own accept is under way
		case !c.State.Offered() && c.Agent == e.Agent:
			return ErrOutOfTurn
		case !c.State.Offered():
			return ErrCallTaken
		case !e.Available:
			return ErrNotAvailable
		}
		t.do(ClaimCall{Agent: e.Agent})
	case Claimed:
		switch {
		case !e.Won:
			return ErrCallTaken
		case !c.State.Offered() || (c.State == StateWaiting && !c.Accepted):
			return ErrOutOfTurn
		}
		waited := c.State == StateWaiting
		c.Agent, c.Rec.Agent = e.Agent, e.Agent
		t.handlerStart(e.Agent)
		c.State = StateConnecting
		c.OfferSent, c.AgentAnswered, c.AgentLeg = true, false, LegConnecting
		t.do(StopTimer{Timer: TimerRing})
		if waited {
			t.do(EndWait{})
		}
		t.do(Persist{}, Notify{What: NoticeTaken}, OfferAgentLeg{})
		t.graceIfLegDown()
	case AgentDecline:
		if !c.State.Offered() {
			if !c.State.Live() {
				return ErrCallEnded
			}
			return ErrOutOfTurn
		}
		c.Declined = maps.Clone(c.Declined)
		if c.Declined == nil {
			c.Declined = map[string]bool{}
		}
		c.Declined[e.Agent] = true
		t.do(Notify{What: NoticeDeclinedAck, Agent: e.Agent})
		if e.Others == 0 && c.State == StateRinging {
			t.unanswered(CauseAgentsDeclined)
		}
	case AgentAnswer:
		if err := t.own(e.Agent); err != nil {
			return err
		}
		if !c.OfferSent || c.AgentAnswered {
			return ErrOutOfTurn
		}
		t.do(ApplyAgentAnswer{})
	case AgentAnswerApplied:
		if !c.State.Live() {
			return nil
		}
		c.AgentAnswered = true
		switch {
		case c.Rec.Direction != call.UserInitiated || c.State != StateConnecting:
		case !c.Accepted:
			t.do(GraphAccept{})
		default:
			// Answered by callgw while the caller waited: no second accept;
			// the agent replaces the hold audio.
			c.State = StateConnected
			t.do(StopPlayback{}, Persist{}, Notify{What: NoticeState})
		}
	case AcceptDone:
		if c.State == StateWaiting && !c.Accepted {
			c.Accepted = true
			t.pickUp()
			t.do(StartWhatsAppMedia{}, ArmWatchdog{}, Persist{}, UsePermission{Use: UseInboundConnected}, BeginWait{})
			return nil
		}
		if c.State != StateConnecting || c.Accepted {
			return nil
		}
		c.Accepted = true
		c.State = StateConnected
		t.pickUp()
		t.do(StartWhatsAppMedia{}, ArmWatchdog{}, Persist{}, Notify{What: NoticeState},
			UsePermission{Use: UseInboundConnected})
	case AcceptFailed:
		if !c.State.Live() {
			return nil
		}
		t.setCode(e.Code)
		t.hangup(CauseAcceptFailed)
	case LegSetupFailed, MetaAnswerFailed:
		t.hangup(CauseSetupFailed)
	case AgentCommand:
		if err := t.own(e.Agent); err != nil {
			return err
		}
		switch e.Kind {
		case CmdICE:
			if !c.OfferSent {
				return ErrOutOfTurn
			}
			t.do(ForwardCommand{Kind: CmdICE})
		case CmdResume:
			c.OfferSent, c.AgentAnswered, c.AgentLeg = true, false, LegConnecting
			t.do(OfferAgentLeg{})
			t.graceIfLegDown()
		case CmdDTMF:
			if c.State != StateConnected {
				return ErrOutOfTurn
			}
			t.do(ForwardCommand{Kind: CmdDTMF})
		}
	case AgentHangup:
		if err := t.own(e.Agent); err != nil {
			return err
		}
		if t.agentLeaves(e.Agent) {
			return nil
		}
		t.hangup(CauseAgentHangup)

	case MetaConnect:
		if c.Rec.Direction != call.BusinessInitiated || !c.State.Live() || c.MetaAnswer {
			return nil
		}
		c.MetaAnswer = true
		t.do(ApplyMetaAnswer{})
	case MetaStatus:
		t.status(e)
	case MetaTerminate:
		t.terminate(e)

	case AgentLegChanged:
		if e.Leg == c.AgentLeg {
			return nil
		}
		c.AgentLeg = e.Leg
		if !c.State.AgentOwned() {
			return nil
		}
		if e.Leg == LegUp {
			t.transferLegUp()
			c.graceOn = false
			t.do(StopTimer{Timer: TimerAgentGrace}, Notify{What: NoticeState})
			return nil
		}
		t.graceIfLegDown()
	case WhatsAppLegFailed:
		t.hangup(CauseMediaFailed)
	case MediaTimeout:
		t.hangup(CauseMediaTimeout)
	case TimerFired:
		t.timer(e.Timer)
	case Drain:
		t.hangup(CauseDrained)
	case MediaDiagnosed:
		if e.Cause != "" && c.State == StateEnded && c.Rec.MediaFailure == "" {
			c.Rec.MediaFailure = e.Leg + ":" + e.Cause
		}
	}
	return nil
}

func (t *step) own(agent string) error {
	c := &t.c
	switch {
	case !c.State.Live():
		return ErrCallEnded
	case !c.State.AgentOwned():
		return ErrOutOfTurn
	case c.Agent != agent:
		return ErrNotYourCall
	}
	return nil
}

func (t *step) setCode(code int) {
	if code != 0 && t.c.Rec.ErrorCode == 0 {
		t.c.Rec.ErrorCode = code
	}
}

// pickUp marks the moment the call was answered.
func (t *step) pickUp() {
	c := &t.c
	c.PickedUp = true
	if c.Rec.AnsweredAt.IsZero() {
		c.Rec.AnsweredAt = t.at.at()
	}
}

// graceIfLegDown starts the agent-grace timer while an agent owns the call
// and its leg is not up, so a leg that never comes (back) ends the call.
func (t *step) graceIfLegDown() {
	c := &t.c
	if c.State.AgentOwned() && c.AgentLeg != LegUp && !c.graceOn && !c.Transfer.FromGone {
		c.graceOn = true
		t.do(StartTimer{Timer: TimerAgentGrace, After: t.r.AgentGrace})
	}
}

func (t *step) status(e MetaStatus) {
	c := &t.c
	if c.Rec.Direction != call.BusinessInitiated || c.State == StateFinal {
		return
	}
	switch e.Status {
	case UserRinging:
		if c.User == UserNone {
			c.User = UserRinging
		}
	case UserAccepted:
		if c.User == UserAccepted {
			return
		}
		c.User = UserAccepted
		c.PickedUp = true
		if c.Rec.AnsweredAt.IsZero() {
			c.Rec.AnsweredAt = e.At
			if !e.Stamp.IsZero() {
				c.Rec.AnsweredAt = e.Stamp
			}
		}
		if c.State != StateDialing {
			return // ended meanwhile: Conclude sees PickedUp
		}
		c.State = StateConnected
		c.OutboundHit = true
		t.do(StopTimer{Timer: TimerRingCeiling}, StartWhatsAppMedia{}, ArmWatchdog{}, Persist{},
			Notify{What: NoticeState}, UsePermission{Use: UseOutboundConnected}, OpenServiceWindow{})
	case UserRejected:
		if c.User == UserAccepted || c.User == UserRejected {
			return
		}
		c.User = UserRejected
		if c.State == StateDialing {
			t.end(CauseUserDeclined, nil, true)
		}
	}
}

func (t *step) terminate(e MetaTerminate) {
	c := &t.c
	if c.State == StateFinal || c.MetaEnded {
		return
	}
	c.MetaEnded = true
	c.MetaStatus = e.Status
	c.Rec.MetaStart, c.Rec.MetaEnd, c.Rec.MetaDuration = e.Start, e.End, e.Duration
	if len(e.Errors) > 0 {
		t.setCode(e.Errors[0])
	}
	if c.State.Live() {
		t.end(CauseMeta, nil, false)
		return
	}
	if c.State == StateEnded {
		t.do(StopTimer{Timer: TimerMetaWait})
		t.final()
	}
}

func (t *step) timer(k TimerKind) {
	c := &t.c
	switch k {
	case TimerRing:
		if c.State == StateRinging {
			t.unanswered(CauseRingTimeout)
		}
	case TimerRingCeiling:
		if c.State == StateDialing {
			t.hangup(CauseRingCeiling)
		}
	case TimerAgentGrace:
		c.graceOn = false
		if c.State.AgentOwned() && c.AgentLeg != LegUp {
			t.hangup(CauseAgentLost)
		}
	case TimerMetaWait:
		if c.State == StateEnded {
			t.final()
		}
	case TimerTransfer:
		t.transferTimer()
	}
}

// unanswered: nobody took a ringing call: it waits when a queue takes it,
// else it is missed for cause.
func (t *step) unanswered(cause Cause) {
	c := &t.c
	if c.CanWait {
		t.do(StopTimer{Timer: TimerRing})
		t.startWait()
		return
	}
	if cause == CauseNoAgent && len(c.Declined) > 0 {
		cause = CauseAgentsDeclined
	}
	t.hangup(cause)
}

// startWait makes the caller wait: callgw accepts the call itself with the
// answer pre_accept carried (BeginWait follows accept's 200).
func (t *step) startWait() {
	c := &t.c
	c.State = StateWaiting
	c.GatewayAnswered = true
	t.do(Persist{}, GraphAccept{})
}

// hangup ends a call from our side: reject while a user-initiated call was
// never accepted, else terminate ("always terminate calls we end").
func (t *step) hangup(cause Cause) {
	c := &t.c
	if !c.State.Live() {
		return
	}
	var g Effect = GraphTerminate{}
	if c.Rec.Direction == call.UserInitiated && !c.Accepted {
		g = GraphReject{}
	}
	t.end(cause, g, true)
}

// end moves a live call to ended once: timers stopped, media closed, agents
// told, the record saved. With awaitMeta, Meta's terminate (whose figures
// bill) is awaited for MetaWait; otherwise the record is final now.
func (t *step) end(cause Cause, graph Effect, awaitMeta bool) {
	c := &t.c
	if !c.State.Live() {
		return
	}
	c.Cause = cause
	t.transferOnEnd()
	c.State = StateEnded
	c.graceOn = false
	c.Rec.EndedAt = t.at.at()
	if c.PickedUp && !c.Rec.AnsweredAt.IsZero() {
		c.Rec.GatewayMillis = max(0, c.Rec.EndedAt.Sub(c.Rec.AnsweredAt).Milliseconds())
	}
	c.Rec.Outcome, c.Rec.EndReason = Conclude(*c)
	t.do(StopTimer{Timer: TimerRing}, StopTimer{Timer: TimerRingCeiling}, StopTimer{Timer: TimerAgentGrace})
	if c.GatewayAnswered && c.Agent == "" {
		t.do(EndWait{})
	}
	if graph != nil {
		t.do(graph)
	}
	switch cause {
	case CauseMediaTimeout, CauseMediaFailed:
		t.do(DiagnoseMedia{})
	case CauseAgentLost:
		t.do(DiagnoseMedia{Agent: true})
	}
	t.do(CloseMedia{}, Notify{What: NoticeEnded}, SaveEnded{})
	if awaitMeta && !c.MetaEnded && t.r.MetaWait > 0 {
		c.AwaitMeta = true
		t.do(StartTimer{Timer: TimerMetaWait, After: t.r.MetaWait})
		return
	}
	t.final()
}

// final completes the record: the outcome again (Meta's figures may have
// come), the permission use of the end, then Finalize.
func (t *step) final() {
	c := &t.c
	c.AwaitMeta = false
	c.State = StateFinal
	c.Rec.Outcome, c.Rec.EndReason = Conclude(*c)
	if use, ok := endUse(*c, c.Rec.Outcome, c.Rec.EndReason); ok && !c.Counted {
		c.Counted = true
		if use == UseOutboundConnected {
			c.OutboundHit = true
		}
		t.do(UsePermission{Use: use})
	}
	t.do(Finalize{})
}
