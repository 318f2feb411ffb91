package signaling

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/agents"
)

// liveCall is one call's state machine. Everything that touches its fields
// runs in its own goroutine (run), one closure at a time: webhooks, agent
// commands, media events and timers are all posted to inbox.
type liveCall struct {
	c   *Controller
	id  call.ID
	log *slog.Logger

	rec         call.Record
	state       State
	stateAtomic atomic.Uint32                   // mirror of state for other goroutines
	stateSince  atomic.Int64                    // unix nanos of the last state change
	snap        atomic.Pointer[agents.CallInfo] // what agents see, for readers outside the actor
	agent       atomic.Value                    // string: the agent who owns the call

	bridge      Bridge
	bridgeRef   atomic.Value // Bridge, for Stats readers outside the actor
	offerSDP    string       // user-initiated: Meta's offer; business-initiated: our offer
	waAnswer    string       // user-initiated: our answer (pre_accept and accept carry it)
	waAnswered  bool         // business-initiated: Meta's answer applied
	agentAnswer bool         // the agent leg's answer applied
	offerSent   bool         // an agent-leg offer was sent
	agentLeg    media.LegState
	waLeg       media.LegState
	rejected    map[string]bool
	webhookAt   time.Time
	ringExpires time.Time
	userStatus  string // business-initiated: last status webhook (ringing/accepted/rejected)

	ringTimer, graceTimer, metaTimer *time.Timer

	inbox chan func(*liveCall)
	done  chan struct{}
}

func newLiveCall(c *Controller, rec call.Record) *liveCall {
	l := &liveCall{c: c, id: rec.ID, rec: rec, log: c.logCall(rec.ID),
		inbox: make(chan func(*liveCall), 128), done: make(chan struct{}), rejected: map[string]bool{}}
	l.agent.Store("")
	return l
}

func (l *liveCall) setBridge(b Bridge) {
	l.bridge = b
	l.bridgeRef.Store(&b)
}

func (l *liveCall) setState(s State) {
	l.state = s
	l.stateAtomic.Store(uint32(s))
	l.stateSince.Store(l.c.now().UnixNano())
	l.publish()
}

// publish refreshes the snapshot other goroutines read.
func (l *liveCall) publish() {
	ci := l.c.info(l, l.state)
	l.snap.Store(&ci)
}

// post queues f for the actor; false when the call is over.
func (l *liveCall) post(f func(*liveCall)) bool {
	select {
	case l.inbox <- f:
		return true
	case <-l.done:
		return false
	}
}

// ask runs f in the actor and returns its error (agent commands need an
// answer).
func (l *liveCall) ask(f func(*liveCall) error) error {
	res := make(chan error, 1)
	if !l.post(func(l *liveCall) {
		if l.state == StateEnded {
			res <- agents.Errorf(agents.CodeUnknownCall, "the call has ended", nil)
			return
		}
		res <- f(l)
	}) {
		return agents.Errorf(agents.CodeUnknownCall, "the call is over", nil)
	}
	select {
	case err := <-res:
		return err
	case <-l.done:
		select {
		case err := <-res:
			return err
		default:
			return agents.Errorf(agents.CodeUnknownCall, "the call is over", nil)
		}
	}
}

func (l *liveCall) run() {
	defer l.c.wg.Done()
	for {
		select {
		case f := <-l.inbox:
			f(l)
			if l.state == StateEnded && l.metaTimer == nil {
				l.finish()
				return
			}
		case <-l.c.stop:
			if l.state != StateEnded {
				l.hangupByUs(call.Drained)
			}
			l.finish()
			return
		}
	}
}

// events are the media callbacks; they post to the actor.
func (l *liveCall) events() media.Events {
	return media.Events{
		OnAgentCandidate: func(cand webrtc.ICECandidateInit) {
			if a := l.agent.Load().(string); a != "" && l.c.hub != nil {
				l.c.toAgent(a, agents.ICEMsg{Type: agents.TypeICE, CallID: string(l.id), Candidate: cand})
			}
		},
		OnAgentState: func(s media.LegState) {
			l.post(func(l *liveCall) { l.agentLeg = s; l.checkAgentLeg() })
		},
		OnWhatsAppState: func(s media.LegState) {
			l.post(func(l *liveCall) { l.onWhatsAppState(s) })
		},
		OnMediaTimeout: func() {
			l.post(func(l *liveCall) {
				l.log.Warn("no media from WhatsApp: ending call")
				l.hangupByUs(call.MediaTimeout)
			})
		},
		OnDTMF: func(d rune) {
			if a := l.agent.Load().(string); a != "" {
				l.c.toAgent(a, agents.DTMFMsg{Type: agents.TypeDTMF, CallID: string(l.id), Digit: string(d)})
			}
		},
	}
}

// ---- user-initiated setup ----

// setupInbound answers Meta's offer, sends pre_accept and rings agents.
func (l *liveCall) setupInbound() {
	c := l.c
	b, err := c.media.NewBridge(string(l.id), l.events())
	if err != nil {
		l.log.Error("media bridge", "err", err)
		l.rejectByUs(call.SetupFailed, call.Failed)
		return
	}
	l.setBridge(b)
	ctx, cancel := c.opCtx(10 * time.Second)
	defer cancel()
	answer, err := b.AnswerWhatsApp(ctx, l.offerSDP)
	if err != nil {
		l.log.Warn("cannot answer Meta's offer", "err", err)
		l.rejectByUs(call.SetupFailed, call.Failed)
		return
	}
	l.waAnswer = answer
	if err := c.graph.PreAccept(ctx, string(l.id), answer); err != nil {
		l.log.Warn("pre_accept failed", "err", err)
		l.rejectByUs(call.SetupFailed, call.Failed)
		return
	}
	c.m.setup.Observe(c.now().Sub(l.webhookAt).Seconds())
	if c.perms != nil && l.rec.UserPhone != "" {
		pctx, pcancel := c.opCtx(2 * time.Second)
		if _, err := c.perms.RecordInbound(pctx, l.pair(), string(l.id), false); err != nil {
			l.log.Warn("permissions: record inbound", "err", err)
		}
		pcancel()
	}
	l.ring()
}

func (l *liveCall) ring() {
	c := l.c
	avail := c.availableAgents()
	if len(avail) == 0 {
		l.log.Info("no agent available: rejecting")
		l.rejectByUs(call.NoAgent, call.Missed)
		return
	}
	l.setState(StateRinging)
	l.ringExpires = c.now().Add(c.cfg.RingTimeout)
	l.saveState()
	l.ringTimer = time.AfterFunc(c.cfg.RingTimeout, func() {
		l.post(func(l *liveCall) {
			if l.state == StateRinging {
				l.log.Info("ring timeout: rejecting")
				l.rejectByUs(call.RingTimeout, call.Missed)
			}
		})
	})
	info := c.info(l, StateRinging)
	c.tell(audience{AvailableOnly: true}, agents.CallMsg{Type: agents.TypeCallOffered, Call: info})
}

// offerTo rings one session that became available while the call rings.
func (l *liveCall) offerTo(s agentRef) {
	if l.state == StateRinging && !l.rejected[s.Agent] {
		l.c.tell(audience{Session: s.Session}, agents.CallMsg{Type: agents.TypeCallOffered, Call: l.c.info(l, StateRinging)})
	}
}

// ---- agent commands (run in the actor) ----

func (l *liveCall) accept(s agentRef) error {
	c := l.c
	switch {
	case l.state == StateSetup:
		return agents.Errorf(agents.CodeOutOfTurn, "the call is not ringing yet", nil)
	case l.state != StateRinging:
		if l.rec.Agent == s.Agent {
			return agents.Errorf(agents.CodeOutOfTurn, "you already have this call", nil)
		}
		return agents.Errorf(agents.CodeCallTaken, "another agent took the call", nil)
	case !s.Available:
		return agents.Errorf(agents.CodeNotAvailable, "set yourself available to take calls", nil)
	}
	ctx, cancel := c.opCtx(3 * time.Second)
	defer cancel()
	won, holder, err := c.store.claim(ctx, l.id, s.Agent)
	if err != nil {
		c.m.redisErrors.WithLabelValues("claim").Inc()
		return &agents.CodedError{Code: agents.CodeUnavailable, Message: "state store unavailable, try again", Err: err}
	}
	if !won {
		return agents.Errorf(agents.CodeCallTaken, "another agent took the call", errors.New(holder))
	}
	stopTimer(&l.ringTimer)
	c.m.ring.Observe(c.now().Sub(l.ringExpires.Add(-c.cfg.RingTimeout)).Seconds())
	l.rec.Agent = s.Agent
	l.agent.Store(s.Agent)
	l.setState(StateConnecting)
	l.saveState()
	c.tell(audience{NotAgent: s.Agent}, agents.CallTaken{Type: agents.TypeCallTaken, CallID: string(l.id), Agent: s.Agent})
	c.toAgent(s.Agent, agents.CallMsg{Type: agents.TypeCall, Call: c.info(l, StateConnecting)})
	if err := l.offerAgent(); err != nil {
		l.hangupByUs(call.SetupFailed)
		return agents.Errorf(agents.CodeInternal, "media setup failed", err)
	}
	return nil
}

func (l *liveCall) offerAgent() error {
	ctx, cancel := l.c.opCtx(5 * time.Second)
	defer cancel()
	offer, err := l.bridge.OfferAgent(ctx)
	if err != nil {
		return fmt.Errorf("agent offer: %w", err)
	}
	l.agentAnswer = false
	l.offerSent = true
	l.agentLeg = media.LegNew
	l.checkAgentLeg()
	l.c.toAgent(l.rec.Agent, agents.SDPMsg{Type: agents.TypeOffer, CallID: string(l.id), SDP: offer})
	return nil
}

func (l *liveCall) own(s agentRef) error {
	if !l.state.agentOwned() {
		if l.state == StateRinging || l.state == StateSetup {
			return agents.Errorf(agents.CodeOutOfTurn, "the call is not yours yet: accept it first", nil)
		}
		return agents.Errorf(agents.CodeOutOfTurn, "the call is "+l.state.String(), nil)
	}
	if l.rec.Agent != s.Agent {
		return agents.Errorf(agents.CodeNotYourCall, "the call belongs to another agent", nil)
	}
	return nil
}

func (l *liveCall) answer(s agentRef, sdp string) error {
	if err := l.own(s); err != nil {
		return err
	}
	if !l.offerSent || l.agentAnswer {
		return agents.Errorf(agents.CodeOutOfTurn, "no offer is waiting for an answer", nil)
	}
	if err := l.bridge.SetAgentAnswer(sdp); err != nil {
		return agents.Errorf(agents.CodeInvalidSDP, "the answer could not be applied", err)
	}
	l.agentAnswer = true
	return l.maybeConnected()
}

// maybeConnected moves to connected once both legs are negotiated; for a
// user-initiated call that is when Meta gets accept.
func (l *liveCall) maybeConnected() error {
	c := l.c
	if l.state != StateConnecting && l.state != StateDialing {
		return nil
	}
	if !l.agentAnswer {
		return nil
	}
	if l.rec.Direction == call.UserInitiated {
		ctx, cancel := c.opCtx(10 * time.Second)
		err := c.graph.Accept(ctx, string(l.id), l.waAnswer, l.rec.Opaque)
		cancel()
		if err != nil {
			l.log.Warn("accept failed", "err", err)
			l.rec.ErrorCode = metaCode(err)
			l.hangupByUs(call.MetaError)
			return &agents.CodedError{Code: agents.CodeMetaError, Message: "WhatsApp refused to connect the call", MetaCode: l.rec.ErrorCode, Err: err}
		}
	} else if !l.waAnswered {
		return nil // the user has not answered yet
	}
	l.setState(StateConnected)
	if l.rec.AnsweredAt.IsZero() {
		l.rec.AnsweredAt = c.now()
	}
	l.rec.Outcome = call.Answered
	l.saveState()
	c.toAgent(l.rec.Agent, agents.CallMsg{Type: agents.TypeCall, Call: c.info(l, StateConnected)})
	if c.perms != nil && l.rec.UserPhone != "" {
		ctx, cancel := c.opCtx(2 * time.Second)
		var err error
		if l.rec.Direction == call.BusinessInitiated {
			_, err = c.perms.RecordCall(ctx, l.pair(), string(l.id), permissions.CallConnected)
		} else {
			_, err = c.perms.RecordInbound(ctx, l.pair(), string(l.id), true)
		}
		cancel()
		if err != nil {
			l.log.Warn("permissions: record connected call", "err", err)
		}
	}
	return nil
}

func (l *liveCall) addCandidate(s agentRef, cand webrtc.ICECandidateInit) error {
	if err := l.own(s); err != nil {
		return err
	}
	if !l.offerSent {
		return agents.Errorf(agents.CodeOutOfTurn, "no agent leg yet", nil)
	}
	if cand.Candidate == "" {
		return nil // end of candidates
	}
	if err := l.bridge.AddAgentCandidate(cand); err != nil {
		return agents.Errorf(agents.CodeBadMessage, "the candidate could not be added", err)
	}
	return nil
}

func (l *liveCall) resume(s agentRef) error {
	if err := l.own(s); err != nil {
		return err
	}
	if err := l.offerAgent(); err != nil {
		return agents.Errorf(agents.CodeInternal, "media setup failed", err)
	}
	return nil
}

func (l *liveCall) reject(s agentRef) error {
	c := l.c
	if l.state != StateRinging {
		return agents.Errorf(agents.CodeOutOfTurn, "the call is not ringing", nil)
	}
	l.rejected[s.Agent] = true
	c.toAgent(s.Agent, agents.CallTaken{Type: agents.TypeCallTaken, CallID: string(l.id)})
	for a := range c.availableAgents() {
		if !l.rejected[a] {
			return nil
		}
	}
	l.log.Info("every available agent declined: rejecting")
	l.rejectByUs(call.AgentRejected, call.Missed)
	return nil
}

func (l *liveCall) dtmf(s agentRef, digits string) error {
	if err := l.own(s); err != nil {
		return err
	}
	if l.state != StateConnected {
		return agents.Errorf(agents.CodeOutOfTurn, "the call is not connected", nil)
	}
	if err := l.bridge.SendDTMF(digits); err != nil {
		return agents.Errorf(agents.CodeBadMessage, "dtmf failed", err)
	}
	return nil
}

func (l *liveCall) hangup(s agentRef) error {
	if err := l.own(s); err != nil {
		return err
	}
	l.hangupByUs(call.AgentHangup)
	return nil
}

// ---- media and agent-leg health ----

// checkAgentLeg keeps a grace timer running while an agent owns the call but
// its leg is not connected: if the leg does not come (back) in time, the
// call ends (agent_lost) instead of being left an orphan.
func (l *liveCall) checkAgentLeg() {
	if !l.state.agentOwned() {
		stopTimer(&l.graceTimer)
		return
	}
	if l.agentLeg == media.LegConnected {
		stopTimer(&l.graceTimer)
		return
	}
	if l.graceTimer != nil {
		return
	}
	l.graceTimer = time.AfterFunc(l.c.cfg.AgentGrace, func() {
		l.post(func(l *liveCall) {
			l.graceTimer = nil
			if l.state.agentOwned() && l.agentLeg != media.LegConnected {
				l.log.Info("agent leg lost: ending call", "leg", l.agentLeg.String())
				l.hangupByUs(call.AgentLost)
			}
		})
	})
}

func (l *liveCall) onWhatsAppState(s media.LegState) {
	l.waLeg = s
	if !l.state.Live() {
		return
	}
	if s == media.LegFailed {
		l.log.Warn("WhatsApp leg failed: ending call")
		l.hangupByUs(call.MediaTimeout)
	}
}

// ---- ending ----

// rejectByUs declines a call that was never answered (user-initiated).
func (l *liveCall) rejectByUs(reason call.EndReason, outcome call.Outcome) {
	if l.state == StateEnded {
		return
	}
	ctx, cancel := l.c.opCtx(10 * time.Second)
	if err := l.c.graph.Reject(ctx, string(l.id)); err != nil {
		l.log.Warn("reject failed", "err", err)
	}
	cancel()
	l.end(reason, outcome, true)
}

// hangupByUs ends a call from our side: reject if it was never answered,
// else terminate ("always terminate calls we end").
func (l *liveCall) hangupByUs(reason call.EndReason) {
	if l.state == StateEnded {
		return
	}
	if l.rec.Direction == call.UserInitiated && (l.state == StateSetup || l.state == StateRinging) {
		l.rejectByUs(reason, call.Missed)
		return
	}
	ctx, cancel := l.c.opCtx(10 * time.Second)
	if err := l.c.graph.Terminate(ctx, string(l.id)); err != nil {
		l.log.Warn("terminate failed", "err", err)
	}
	cancel()
	outcome := call.Answered
	if l.state != StateConnected && l.rec.AnsweredAt.IsZero() {
		outcome = call.Missed
		if l.rec.Direction == call.BusinessInitiated {
			outcome = call.Unanswered
		}
		if reason == call.SetupFailed || reason == call.MetaError {
			outcome = call.Failed
		}
	}
	l.end(reason, outcome, true)
}

// end moves to ended once: media closed, agents told, tombstone written. When
// we ended the call, Meta's terminate webhook (with the duration that bills)
// is awaited for MetaTerminateWait before the record is final.
func (l *liveCall) end(reason call.EndReason, outcome call.Outcome, awaitMeta bool) {
	c := l.c
	if l.state == StateEnded {
		return
	}
	prev := l.state
	stopTimer(&l.ringTimer)
	stopTimer(&l.graceTimer)
	l.setState(StateEnded)
	now := c.now()
	l.rec.EndedAt = now
	l.rec.EndReason = reason
	l.rec.Outcome = outcome
	if !l.rec.AnsweredAt.IsZero() && outcome == call.Answered {
		l.rec.GatewayMillis = now.Sub(l.rec.AnsweredAt).Milliseconds()
	}
	if l.bridge != nil {
		_ = l.bridge.Close()
	}
	l.log.Info("call ended", "reason", reason.String(), "outcome", outcome.String(), "was", prev.String())
	c.m.calls.WithLabelValues(l.rec.Direction.String(), outcome.String()).Inc()
	msg := agents.CallEnded{Type: agents.TypeCallEnded, CallID: string(l.id), Reason: reason.String(),
		Outcome: outcome.String(), DurationS: l.rec.GatewayMillis / 1000, ErrorCode: l.rec.ErrorCode}
	if l.rec.ErrorCode != 0 {
		msg.Message = metaReason(l.rec.ErrorCode)
	}
	c.tell(audience{}, msg)
	ctx, cancel := c.opCtx(3 * time.Second)
	if err := c.store.markEnded(ctx, l.rec, c.cfg.InstanceID); err != nil {
		c.m.redisErrors.WithLabelValues("mark_ended").Inc()
		l.log.Error("cannot save ended call", "err", err)
	}
	cancel()
	// Only the user's own no-answer or decline counts toward WhatsApp's
	// unanswered-call rules; a call our side failed must not count against them.
	if c.perms != nil && l.rec.Direction == call.BusinessInitiated && l.rec.UserPhone != "" &&
		(reason == call.UserNoAnswer || reason == call.UserDeclined) {
		res := permissions.CallUnanswered
		if reason == call.UserDeclined {
			res = permissions.CallDeclined
		}
		{
			pctx, pcancel := c.opCtx(2 * time.Second)
			if _, err := c.perms.RecordCall(pctx, l.pair(), string(l.id), res); err != nil {
				l.log.Warn("permissions: record unanswered call", "err", err)
			}
			pcancel()
		}
	}
	if awaitMeta && c.cfg.MetaTerminateWait > 0 {
		l.metaTimer = time.AfterFunc(c.cfg.MetaTerminateWait, func() {
			l.post(func(l *liveCall) { l.metaTimer = nil })
		})
	}
}

// onTerminate applies Meta's terminate webhook.
func (l *liveCall) onTerminate(ev *terminateInfo) {
	l.rec.MetaStart, l.rec.MetaEnd, l.rec.MetaDuration = ev.start, ev.end, ev.duration
	if ev.errorCode != 0 && l.rec.ErrorCode == 0 {
		l.rec.ErrorCode = ev.errorCode
	}
	if l.state == StateEnded {
		stopTimer(&l.metaTimer) // the record can be finished now
		return
	}
	reason, outcome := call.UserHangup, call.Answered
	switch {
	case ev.errorCode == 138021:
		reason = call.MediaTimeout
	case ev.errorCode != 0:
		reason = call.MetaError
	}
	if l.state != StateConnected && l.rec.AnsweredAt.IsZero() {
		switch {
		case l.rec.Direction == call.UserInitiated:
			outcome = call.Missed
		case l.userStatus == "rejected":
			outcome, reason = call.Declined, call.UserDeclined
		case ev.errorCode != 0:
			outcome = call.Failed
		default:
			outcome, reason = call.Unanswered, call.UserNoAnswer
		}
	}
	l.end(reason, outcome, false)
}

// finish writes the final record and leaves.
func (l *liveCall) finish() {
	c := l.c
	stopTimer(&l.metaTimer)
	close(l.done)
	c.unregister(l)
	c.disown(l.id)
	ctx, cancel := c.opCtx(5 * time.Second)
	defer cancel()
	c.persistRecord(ctx, l.rec)
}

func (l *liveCall) saveState() {
	l.publish()
	ctx, cancel := l.c.opCtx(2 * time.Second)
	defer cancel()
	if err := l.c.store.save(ctx, l.rec, l.state, l.c.cfg.InstanceID, l.snap.Load()); err != nil {
		l.c.m.redisErrors.WithLabelValues("save_call").Inc()
		l.log.Warn("cannot save call state", "err", err)
	}
}

func (l *liveCall) pair() permissions.Pair {
	return permissions.Pair{Business: l.c.cfg.PhoneNumberID, User: digits(l.rec.UserPhone)}
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

func digits(e164 string) string {
	if len(e164) > 0 && e164[0] == '+' {
		return e164[1:]
	}
	return e164
}
