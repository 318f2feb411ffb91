package signaling

import (
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	lc "github.com/callgw/callgw/signaling/lifecycle"
)

// liveCall runs one call: it keeps the call's lifecycle.Call, feeds it
// events one at a time in its own goroutine (run), and executes the effects
// lifecycle.Transition returns. Decisions live in signaling/lifecycle; this
// file only does what they ask.
type liveCall struct {
	c   *Controller
	id  call.ID
	log *slog.Logger

	lc          lc.Call
	stateAtomic atomic.Uint32                   // mirror of lc.State for other goroutines
	stateSince  atomic.Int64                    // unix nanos of the last state change
	snap        atomic.Pointer[agents.CallInfo] // what agents see, for readers outside the actor
	agent       atomic.Value                    // string: the agent who owns the call

	bridge    Bridge
	bridgeRef atomic.Value // *Bridge, for Stats readers outside the actor

	offerSDP    string // user-initiated: Meta's offer
	waAnswer    string // user-initiated: our answer (pre_accept and accept carry it)
	metaSDP     string // business-initiated: Meta's answer, until applied
	agentSDP    string // the agent's answer, until applied
	candidate   webrtc.ICECandidateInit
	digits      string
	ref         string // the ref of the agent command being applied (multi-tab matching)
	webhookAt   time.Time
	ringExpires time.Time
	price       *agents.Price // business-initiated, once picked up
	recStarted  bool          // Recordings.Answered was called (recording.go)

	route  callRoute     // routing state (route.go)
	xfer   transferState // hold, transfer, monitor (transfer.go)
	ivr    ivrCall       // IVR menus (ivrrun.go)
	timers map[lc.TimerKind]clock.Timer
	queue  []lc.Event // results of effects, applied after the current step

	inbox chan func(*liveCall)
	done  chan struct{}
}

func newLiveCall(c *Controller, rec call.Record) *liveCall {
	l := &liveCall{c: c, id: rec.ID, lc: lc.New(rec), log: c.logCall(rec.ID),
		timers: map[lc.TimerKind]clock.Timer{},
		inbox:  make(chan func(*liveCall), 128), done: make(chan struct{})}
	l.agent.Store(rec.Agent)
	l.mirror()
	return l
}

func (l *liveCall) setBridge(b Bridge) {
	l.bridge = b
	l.bridgeRef.Store(&b)
}

// mirror publishes the state for readers outside the actor.
func (l *liveCall) mirror() {
	if State(l.stateAtomic.Load()) != l.lc.State || l.stateSince.Load() == 0 {
		l.stateAtomic.Store(uint32(l.lc.State))
		l.stateSince.Store(l.c.now().UnixNano())
	}
	l.agent.Store(l.lc.Agent)
	ci := l.c.info(l)
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

// offerTo rings one session that became available while the call rings.
func (l *liveCall) offerTo(s agentRef) {
	if l.route.routed && l.lc.State == StateRinging && !l.lc.Declined[s.Agent] && !slices.Contains(l.route.targets, s.Agent) {
		// A routed call rings an agent who becomes available only when the
		// team ringing is ring_all and they are a member.
		if t, ok := l.c.routingConfig().Team(l.route.team); !ok || t.Strategy.Sequential() || !t.Has(config.AgentID(s.Agent)) ||
			(!t.Any() && l.c.busyAgents()[s.Agent]) {
			return
		}
		l.route.targets = append(l.route.targets, s.Agent)
		l.mirror()
	}
	if l.lc.State == StateRinging && !l.lc.Declined[s.Agent] {
		l.c.tell(audience{Session: s.Session}, agents.CallMsg{Type: agents.TypeCallOffered, Call: l.c.info(l)})
	}
}

// fire feeds an event from outside (media callbacks, timers, webhooks).
func (l *liveCall) fire(ev lc.Event) bool {
	return l.post(func(l *liveCall) {
		if err := l.step(ev); err != nil {
			l.log.Debug("event refused", "event", fmt.Sprintf("%T", ev), "err", err)
		}
	})
}

// ask applies an agent command in the actor and returns its error; build
// makes the command's event from the call's current state.
func (l *liveCall) ask(ref string, build func(*liveCall) lc.Event) error {
	return l.act(ref, func(l *liveCall) error { return l.step(build(l)) })
}

// step applies one event and everything its effects lead to. The first
// error (a refused command, or an effect that failed for the asker) is
// returned.
func (l *liveCall) step(ev lc.Event) error {
	next, fx, err := l.c.rules.Transition(l.lc, ev)
	if err != nil {
		return err
	}
	prev := l.lc
	l.lc = next
	l.mirror()
	l.afterStep(prev)
	var first error
	for _, f := range fx {
		if err := l.exec(f); err != nil && first == nil {
			first = err
		}
	}
	for len(l.queue) > 0 {
		ev := l.queue[0]
		l.queue = l.queue[1:]
		if err := l.step(ev); err != nil && first == nil {
			first = err
		}
	}
	if d, ok := ev.(lc.AgentDecline); ok {
		l.declined(d.Agent)
	}
	return first
}

func (l *liveCall) then(ev lc.Event) { l.queue = append(l.queue, ev) }

func (l *liveCall) when() lc.When { return lc.When{At: l.c.now()} }

func (l *liveCall) run() {
	defer l.c.wg.Done()
	for {
		select {
		case f := <-l.inbox:
			f(l)
			l.recordingAnswered() // once connected with media both ways (recording.go)
			if l.lc.State == lc.StateFinal {
				l.finish()
				return
			}
		case <-l.c.stop:
			if l.lc.State.Live() {
				_ = l.step(lc.Drain{When: l.when()})
			}
			l.finish()
			return
		}
	}
}

// events are the media callbacks; they feed the actor.
func (l *liveCall) events() media.Events {
	return media.Events{
		OnAgentCandidate: func(cand webrtc.ICECandidateInit) {
			if a := l.agent.Load().(string); a != "" && l.c.hub != nil {
				l.c.toAgent(a, agents.ICEMsg{Type: agents.TypeICE, CallID: string(l.id), Candidate: cand})
			}
		},
		OnAgentState: func(s media.LegState) {
			l.fire(lc.AgentLegChanged{When: l.when(), Leg: legOf(s)})
		},
		OnWhatsAppState: func(s media.LegState) {
			if s == media.LegFailed {
				l.fire(lc.WhatsAppLegFailed{When: l.when()})
			}
		},
		OnMediaTimeout: func() {
			l.log.Warn("no media from WhatsApp: ending call")
			l.fire(lc.MediaTimeout{When: l.when()})
		},
		OnSideCandidate: l.onSideCandidate, // transfer.go
		OnSideState:     l.onSideState,
		OnDTMF: func(d rune) {
			if l.ivrDigit(d) { // the IVR reads the key (ivrrun.go)
				return
			}
			if a := l.agent.Load().(string); a != "" {
				l.c.toAgent(a, agents.DTMFMsg{Type: agents.TypeDTMF, CallID: string(l.id), Digit: string(d)})
			}
			l.recordingDTMF(d) // explicit consent (recording.go)
		},
	}
}

func legOf(s media.LegState) lc.LegState {
	switch s {
	case media.LegConnected:
		return lc.LegUp
	case media.LegFailed, media.LegClosed:
		return lc.LegDown
	}
	return lc.LegConnecting
}

// exec runs one effect.
func (l *liveCall) exec(f lc.Effect) error {
	c := l.c
	switch e := f.(type) {
	case lc.PrepareInbound:
		l.prepareInbound()
	case lc.ClaimCall:
		ctx, cancel := c.opCtx(3 * time.Second)
		won, _, err := c.store.claim(ctx, l.id, e.Agent)
		cancel()
		if err != nil {
			c.m.redisErrors.WithLabelValues("claim").Inc()
			return err
		}
		l.then(lc.Claimed{When: l.when(), Agent: e.Agent, Won: won})
	case lc.OfferAgentLeg:
		if err := l.offerAgent(); err != nil {
			l.log.Warn("agent leg", "err", err)
			l.then(lc.LegSetupFailed{When: l.when()})
			return fmt.Errorf("%w: %w", ErrMediaSetup, err)
		}
	case lc.ApplyAgentAnswer:
		sdp := l.agentSDP
		l.agentSDP = ""
		if err := l.bridge.SetAgentAnswer(sdp); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
		l.then(lc.AgentAnswerApplied{When: l.when()})
	case lc.ApplyMetaAnswer:
		sdp := l.metaSDP
		l.metaSDP = ""
		if err := l.bridge.SetWhatsAppAnswer(sdp); err != nil {
			l.log.Warn("cannot apply Meta's answer", "err", err)
			l.then(lc.MetaAnswerFailed{When: l.when()})
		}
	case lc.ForwardCommand:
		return l.forward(e.Kind)
	case lc.GraphAccept:
		ctx, cancel := c.opCtx(10 * time.Second)
		err := l.accept(ctx) // with Meta's recording objects when the policy asks (recording.go)
		cancel()
		if err != nil {
			l.log.Warn("accept failed", "err", err)
			l.then(lc.AcceptFailed{When: l.when(), Code: metaCode(err)})
			return &MetaError{Code: metaCode(err), Err: err}
		}
		l.then(lc.AcceptDone{When: l.when()})
	case lc.GraphReject:
		ctx, cancel := c.opCtx(10 * time.Second)
		if err := c.graphFor(l.lc.Rec.PhoneNumberID).Reject(ctx, string(l.id)); err != nil {
			l.log.Warn("reject failed", "err", err)
		}
		cancel()
	case lc.GraphTerminate:
		ctx, cancel := c.opCtx(10 * time.Second)
		if err := c.graphFor(l.lc.Rec.PhoneNumberID).Terminate(ctx, string(l.id)); err != nil {
			l.log.Warn("terminate failed", "err", err)
		}
		cancel()
	case lc.StartWhatsAppMedia:
		if l.bridge != nil {
			if err := l.bridge.StartWhatsAppMedia(); err != nil {
				l.log.Warn("start media toward WhatsApp", "err", err)
			}
		}
	case lc.ArmWatchdog:
		if l.bridge != nil {
			if err := l.bridge.ArmWatchdog(); err != nil {
				l.log.Warn("arm the media watchdog", "err", err)
			}
		}
	case lc.DiagnoseMedia:
		if l.bridge != nil {
			leg := "whatsapp"
			if e.Agent {
				leg = "agent"
			}
			l.then(lc.MediaDiagnosed{When: l.when(), Leg: leg, Cause: l.bridge.Diagnose(e.Agent)})
		}
	case lc.CloseMedia:
		l.recordingEnding()
		if l.bridge != nil {
			_ = l.bridge.Close()
		}
	case lc.StartTimer:
		l.startTimer(e.Timer, e.After)
	case lc.StopTimer:
		if t := l.timers[e.Timer]; t != nil {
			t.Stop()
			delete(l.timers, e.Timer)
		}
	case lc.Notify:
		l.notify(e)
	case lc.Persist:
		l.saveState()
	case lc.UsePermission:
		l.usePermission(e.Use)
	case lc.OpenServiceWindow:
		ctx, cancel := c.opCtx(2 * time.Second)
		if err := c.store.openWindow(ctx, l.lc.Rec.PhoneNumberID, recUser(l.lc.Rec)); err != nil {
			c.m.redisErrors.WithLabelValues("customer_window").Inc()
		}
		cancel()
	case lc.SaveEnded:
		r := l.lc.Rec
		l.log.Info("call ended", "reason", r.EndReason.String(), "outcome", r.Outcome.String(), "cause", l.lc.Cause.String())
		ctx, cancel := c.opCtx(3 * time.Second)
		if err := c.store.markEnded(ctx, r, c.cfg.InstanceID); err != nil {
			c.m.redisErrors.WithLabelValues("mark_ended").Inc()
			l.log.Error("cannot save ended call", "err", err)
		}
		cancel()
	case lc.Finalize:
		// run() sees StateFinal and writes the record (finish).
	case lc.BeginWait:
		l.beginWait()
	case lc.EndWait:
		l.endWait()
	case lc.StopPlayback:
		l.stopPlayback()
	case lc.ReleaseClaim:
		ctx, cancel := c.opCtx(3 * time.Second)
		err := c.store.unclaim(ctx, l.id)
		cancel()
		if err != nil {
			c.m.redisErrors.WithLabelValues("unclaim").Inc()
			return err
		}
	default:
		if ok, err := l.execTransfer(f); ok { // transfer.go
			return err
		}
	}
	return nil
}

// prepareInbound answers Meta's offer and sends pre_accept.
func (l *liveCall) prepareInbound() {
	c := l.c
	fail := func(what string, err error) {
		l.log.Warn(what, "err", err)
		l.then(lc.PrepareFailed{When: l.when(), Code: metaCode(err)})
	}
	b, err := c.media.NewBridge(string(l.id), l.events())
	if err != nil {
		fail("media bridge", err)
		return
	}
	l.setBridge(b)
	ctx, cancel := c.opCtx(10 * time.Second)
	defer cancel()
	answer, err := b.AnswerWhatsApp(ctx, l.offerSDP)
	if err != nil {
		fail("cannot answer Meta's offer", err)
		return
	}
	l.waAnswer = answer
	if err := c.graphFor(l.lc.Rec.PhoneNumberID).PreAccept(ctx, string(l.id), answer); err != nil {
		fail("pre_accept failed", err)
		return
	}
	c.m.setup.Observe(c.now().Sub(l.webhookAt).Seconds())
	l.then(l.planInbound())
}

func (l *liveCall) offerAgent() error {
	ctx, cancel := l.c.opCtx(5 * time.Second)
	defer cancel()
	offer, err := l.bridge.OfferAgent(ctx)
	if err != nil {
		return fmt.Errorf("agent offer: %w", err)
	}
	l.c.toAgent(l.lc.Agent, agents.SDPMsg{Type: agents.TypeOffer, Ref: l.ref, CallID: string(l.id), SDP: offer})
	return nil
}

func (l *liveCall) forward(k lc.CommandKind) error {
	switch k {
	case lc.CmdICE:
		if l.candidate.Candidate == "" {
			return nil // end of candidates
		}
		if err := l.bridge.AddAgentCandidate(l.candidate); err != nil {
			return fmt.Errorf("%w: the candidate could not be added: %w", ErrBadCommand, err)
		}
	case lc.CmdDTMF:
		if err := l.bridge.SendDTMF(l.digits); err != nil {
			return fmt.Errorf("%w: dtmf: %w", ErrBadCommand, err)
		}
	}
	return nil
}

func (l *liveCall) startTimer(k lc.TimerKind, d time.Duration) {
	if t := l.timers[k]; t != nil {
		t.Stop()
	}
	if k == lc.TimerRing {
		l.ringExpires = l.c.now().Add(d)
		l.mirror()
	}
	if k == lc.TimerTransfer {
		l.xfer.expires = l.c.now().Add(d)
		l.mirror()
	}
	l.timers[k] = l.c.clock.AfterFunc(d, func() {
		l.fire(lc.TimerFired{When: l.when(), Timer: k})
	})
}

func (l *liveCall) notify(n lc.Notify) {
	c := l.c
	switch n.What {
	case lc.NoticeOffered:
		if l.route.routed {
			l.offerTargets()
			return
		}
		c.tell(audience{AvailableOnly: true}, agents.CallMsg{Type: agents.TypeCallOffered, Call: c.info(l)})
	case lc.NoticeTaken:
		agent := l.lc.Agent
		if !l.ringExpires.IsZero() && !l.lc.GatewayAnswered { // a waiting caller's wait is routing's queue_wait metric
			c.m.ring.Observe(c.now().Sub(l.ringExpires.Add(-c.cfg.RingTimeout)).Seconds())
		}
		c.tell(audience{NotAgent: agent}, agents.CallTaken{Type: agents.TypeCallTaken, CallID: string(l.id), Agent: agent})
		c.toAgent(agent, agents.CallMsg{Type: agents.TypeCall, Ref: l.ref, Call: c.info(l)})
	case lc.NoticeDeclinedAck:
		c.toAgent(n.Agent, agents.CallTaken{Type: agents.TypeCallTaken, CallID: string(l.id)})
	case lc.NoticeState:
		l.quote()
		if l.lc.Agent != "" {
			c.toAgent(l.lc.Agent, agents.CallMsg{Type: agents.TypeCall, Ref: l.ref, Call: c.info(l)})
		}
	case lc.NoticeEnded:
		r := l.lc.Rec
		msg := agents.CallEnded{Type: agents.TypeCallEnded, CallID: string(l.id), Reason: r.EndReason.String(),
			Outcome: r.Outcome.String(), DurationS: r.GatewayMillis / 1000, ErrorCode: r.ErrorCode}
		if r.ErrorCode != 0 {
			msg.Message = metaReason(r.ErrorCode)
		}
		c.tell(audience{}, msg)
	}
}

func (l *liveCall) usePermission(u lc.PermissionUse) {
	usePermission(l.c, l.log, l.lc.Rec, u)
}

// usePermission records a call's permission-relevant use (also used for
// calls no instance holds any more).
func usePermission(c *Controller, log *slog.Logger, r call.Record, use lc.PermissionUse) {
	u := recUser(r)
	if c.perms == nil || !u.Known() {
		return
	}
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	p := permissions.Pair{Business: r.PhoneNumberID, User: u.Key()}
	if p.Business == "" {
		p.Business = c.cfg.PhoneNumberID
	}
	var err error
	switch use {
	case lc.UseInboundSeen:
		_, err = c.perms.RecordInbound(ctx, p, string(r.ID), false)
	case lc.UseInboundConnected:
		_, err = c.perms.RecordInbound(ctx, p, string(r.ID), true)
	case lc.UseOutboundConnected:
		_, err = c.perms.RecordCall(ctx, p, string(r.ID), permissions.CallConnected)
	case lc.UseOutboundUnanswered:
		_, err = c.perms.RecordCall(ctx, p, string(r.ID), permissions.CallUnanswered)
	case lc.UseOutboundDeclined:
		_, err = c.perms.RecordCall(ctx, p, string(r.ID), permissions.CallDeclined)
	}
	if err != nil {
		log.Warn("permissions: record call use", "use", use.String(), "err", err)
	}
}

// finish writes the final record and leaves.
func (l *liveCall) finish() {
	c := l.c
	for k, t := range l.timers {
		t.Stop()
		delete(l.timers, k)
	}
	close(l.done)
	c.unregister(l)
	c.disown(l.id)
	r := l.lc.Rec
	c.m.calls.WithLabelValues(r.Direction.String(), r.Outcome.String()).Inc()
	ctx, cancel := c.opCtx(5 * time.Second)
	defer cancel()
	c.persistRecord(ctx, r)
}

func (l *liveCall) saveState() {
	ctx, cancel := l.c.opCtx(2 * time.Second)
	defer cancel()
	if err := l.c.store.save(ctx, l.lc.Rec, l.lc.State, l.c.cfg.InstanceID, l.snap.Load()); err != nil {
		l.c.m.redisErrors.WithLabelValues("save_call").Inc()
		l.log.Warn("cannot save call state", "err", err)
	}
}

// recUser is the user of a call record.
func recUser(r call.Record) phone.User {
	u := phone.User{BSUID: r.UserID, Name: r.UserName}
	if n, err := phone.Parse(r.UserPhone); r.UserPhone != "" && err == nil {
		u.Phone = n
	}
	return u
}

// quote prices a business-initiated call once it is picked up, for the
// agent's running cost (one Redis read).
func (l *liveCall) quote() {
	r := l.lc.Rec
	if l.price != nil || l.c.quotes == nil || r.Direction != call.BusinessInitiated || !l.lc.PickedUp {
		return
	}
	ctx, cancel := l.c.opCtx(2 * time.Second)
	defer cancel()
	q, err := l.c.quotes.LiveQuote(ctx, r.UserPhone, r.UserID, r.AnsweredAt)
	if err != nil {
		l.log.Warn("no running cost for the agent", "err", err)
		return
	}
	p := &agents.Price{IncrementS: q.IncrementSeconds, UsedSeconds: q.UsedSeconds, Market: q.Market}
	for _, t := range q.Tiers {
		p.Tiers = append(p.Tiers, agents.PriceTier{FromMinutes: t.FromMinutes, RateMicros: t.RateMicrosPerMinute})
	}
	l.price = p
	l.mirror()
}
