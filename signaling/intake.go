package signaling

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
	lc "github.com/callgw/callgw/signaling/lifecycle"
	"github.com/callgw/callgw/signaling/webhook"
)

// Webhook results (metric label values).
const (
	resOK        = "ok"
	resDuplicate = "duplicate"
	resIgnored   = "ignored"
	resError     = "error"
)

// HandleEvent applies one webhook event. It returns nil when the event is
// durably recorded (or safely ignored), and an error wrapping ErrStore or
// ErrDraining when Meta should deliver it again.
func (c *Controller) HandleEvent(ctx context.Context, ev webhook.Event, received time.Time) error {
	if !c.serves(ev.PhoneNumberID) && !c.retiredEvent(ev) {
		c.foreignNumber(ev.PhoneNumberID)
		return nil
	}
	switch {
	case ev.Call != nil && (ev.Call.Event == webhook.CallRecordingAvailable || ev.Call.Event == webhook.CallTranscriptionAvailable):
		err := c.mediaAvailable(ctx, ev) // recording.go
		c.countWebhook("call_"+ev.Call.Event.String(), err)
		if errors.Is(err, errIgnored) {
			return nil
		}
		return err
	case ev.Call != nil:
		name := "call_" + ev.Call.Event.String()
		err := c.handleCall(ctx, ev, received)
		c.countWebhook(name, err)
		return err
	case ev.Status != nil:
		err := c.handleStatus(ctx, ev)
		c.countWebhook("status", err)
		return err
	case ev.Permission != nil:
		err := c.handlePermissionReply(ctx, ev)
		c.countWebhook("permission_reply", err)
		return err
	case ev.UserMessage != nil:
		err := c.handleUserMessage(ctx, ev)
		c.countWebhook("user_message", err)
		return err
	case ev.MessageStatus != nil:
		err := c.handleMessageStatus(ctx, ev)
		c.countWebhook("message_status", err)
		return err
	case ev.IdentityChange != nil:
		err := c.handleIdentityChange(ctx, ev)
		c.countWebhook("identity_change", err)
		return err
	case ev.SettingsUpdate != nil:
		err := c.handleSettingsUpdate(ctx, ev)
		c.countWebhook("settings_update", err)
		return err
	case ev.AccountUpdate != nil:
		au := ev.AccountUpdate
		c.log.Warn("account update from Meta", "event", au.Event, "violation", au.ViolationType,
			"restrictions", len(au.Restrictions))
		c.m.webhooks.WithLabelValues("account_update", resOK).Inc()
		return nil
	default:
		c.m.webhooks.WithLabelValues("unknown", resIgnored).Inc()
		return nil
	}
}

type resultErr struct{ result string }

func (r resultErr) Error() string { return r.result }

var (
	errDuplicate = resultErr{resDuplicate}
	errIgnored   = resultErr{resIgnored}
)

func (c *Controller) countWebhook(name string, err error) {
	var re resultErr
	switch {
	case err == nil:
		c.m.webhooks.WithLabelValues(name, resOK).Inc()
	case errors.As(err, &re):
		c.m.webhooks.WithLabelValues(name, re.result).Inc()
	default:
		c.m.webhooks.WithLabelValues(name, resError).Inc()
	}
}

// IsRetryable reports whether a HandleEvent error asks Meta to retry.
func IsRetryable(err error) bool {
	var re resultErr
	return err != nil && !errors.As(err, &re) && !errors.Is(err, ErrBadEvent)
}

func (c *Controller) handleCall(ctx context.Context, ev webhook.Event, received time.Time) error {
	ce := ev.Call
	id := call.ID(ce.CallID)
	if id == "" {
		return fmt.Errorf("%w: call event without id", ErrBadEvent)
	}
	switch ce.Event {
	case webhook.CallConnect:
		if ce.Direction == call.BusinessInitiated || strings.EqualFold(ce.SDPType, "answer") {
			return c.handleBusinessConnect(ctx, ev)
		}
		return c.handleUserConnect(ctx, ev, received)
	case webhook.CallTerminate:
		return c.handleTerminate(ctx, ev)
	default:
		return errIgnored
	}
}

func (c *Controller) handleUserConnect(ctx context.Context, ev webhook.Event, received time.Time) error {
	ce := ev.Call
	id := call.ID(ce.CallID)
	if !strings.EqualFold(ce.SDPType, "offer") || ce.SDP == "" {
		return fmt.Errorf("%w: user-initiated connect without an SDP offer", ErrBadEvent)
	}
	if c.lookup(id) != nil {
		return errDuplicate
	}
	ended, err := c.store.ended(ctx, id)
	if err != nil {
		c.m.redisErrors.WithLabelValues("tombstone").Inc()
		return err
	}
	if ended {
		return errDuplicate // replayed after terminate: acknowledged, nothing to do
	}
	if c.draining.Load() {
		return ErrDraining
	}
	first, err := c.store.firstDelivery(ctx, id, "connect", "")
	if err != nil {
		c.m.redisErrors.WithLabelValues("dedup").Inc()
		return err
	}
	if !first {
		return errDuplicate
	}
	rec := call.Record{
		ID: id, Direction: call.UserInitiated, PhoneNumberID: ev.PhoneNumberID,
		BusinessPhone: e164(ev.DisplayPhoneNumber), UserPhone: e164(ce.From), UserID: ce.FromUserID,
		UserName: ev.ContactName, CreatedAt: received, MetaDuration: -1, Opaque: ce.BizOpaque,
		Payload: firstNonEmpty(ce.DeeplinkPayload, ce.CTAPayload),
	}
	if rec.PhoneNumberID == "" {
		rec.PhoneNumberID = c.cfg.PhoneNumberID
	}
	stale := !ce.Timestamp.IsZero() && received.Sub(ce.Timestamp) > c.cfg.AcceptWindow
	c.seeUser(ctx, userOf(ce.From, ce.FromUserID, ce.FromParentUserID, ev))
	if err := c.store.save(ctx, rec, StateSetup, c.cfg.InstanceID, nil); err != nil {
		c.store.forgetDelivery(ctx, id, "connect", "")
		c.m.redisErrors.WithLabelValues("save_call").Inc()
		return err
	}
	if err := c.own(ctx, id); err != nil {
		c.store.forgetDelivery(ctx, id, "connect", "")
		return err
	}
	l := newLiveCall(c, rec)
	l.offerSDP = ce.SDP
	l.webhookAt = received
	log := c.logCall(id)
	if stale {
		log.Warn("stale connect: recorded, not acted on", "age", received.Sub(ce.Timestamp).String())
	} else {
		log.Info("incoming call", "from", phone.Mask(rec.UserPhone), "name_set", rec.UserName != "")
	}
	if err := c.store.openWindow(ctx, rec.PhoneNumberID, recUser(rec)); err != nil {
		c.m.redisErrors.WithLabelValues("customer_window").Inc()
	}
	c.register(l)
	l.fire(lc.Begin{When: lc.When{At: received}, Stale: stale})
	return nil
}

func (c *Controller) handleBusinessConnect(ctx context.Context, ev webhook.Event) error {
	ce := ev.Call
	id := call.ID(ce.CallID)
	if ce.SDP == "" {
		return fmt.Errorf("%w: business-initiated connect without an SDP answer", ErrBadEvent)
	}
	return c.applyOnce(ctx, id, "connect", "", func() error { return c.route(ctx, ev, time.Time{}, true) })
}

// applyOnce runs apply for the first delivery of (id, event, detail) only.
// When apply fails the delivery is forgotten, so that Meta's retry applies.
func (c *Controller) applyOnce(ctx context.Context, id call.ID, event, detail string, apply func() error) error {
	first, err := c.store.firstDelivery(ctx, id, event, detail)
	if err != nil {
		c.m.redisErrors.WithLabelValues("dedup").Inc()
		return err
	}
	if !first {
		return errDuplicate
	}
	if err := apply(); err != nil {
		c.store.forgetDelivery(ctx, id, event, detail)
		return err
	}
	return nil
}

// applier turns a webhook event about a live call into what the call's
// actor does with it.
func applier(ev webhook.Event, at time.Time) func(*liveCall) {
	w := lc.When{At: at}
	var e lc.Event
	var sdp, opaque string
	switch {
	case ev.Call != nil && ev.Call.Event == webhook.CallConnect:
		e, sdp = lc.MetaConnect{When: w}, ev.Call.SDP
	case ev.Call != nil && ev.Call.Event == webhook.CallTerminate:
		e, opaque = terminateOf(ev.Call, at), ev.Call.BizOpaque
	case ev.Status != nil:
		e, opaque = lc.MetaStatus{When: w, Status: userStatus(ev.Status.Status), Stamp: ev.Status.Timestamp}, ev.Status.BizOpaque
	default:
		return func(*liveCall) {}
	}
	return func(l *liveCall) {
		if sdp != "" && l.metaSDP == "" && !l.lc.MetaAnswer {
			l.metaSDP = sdp
		}
		if opaque != "" && l.lc.Rec.Opaque != "" && opaque != l.lc.Rec.Opaque {
			// Meta echoes biz_opaque_callback_data: ours carries the dial
			// id and agent. A different echo is logged and counted, not
			// acted on (Meta's call id is what routes the event).
			l.c.m.opaqueMismatch.Inc()
			l.log.Warn("biz_opaque_callback_data echoed differently from what we sent")
		}
		if err := l.step(e); err != nil {
			l.log.Debug("webhook event refused", "err", err)
		}
	}
}

func userStatus(s webhook.CallStatus) lc.UserStatus {
	switch s {
	case webhook.StatusRinging:
		return lc.UserRinging
	case webhook.StatusAccepted:
		return lc.UserAccepted
	case webhook.StatusRejected:
		return lc.UserRejected
	}
	return lc.UserNone
}

// terminateOf reads Meta's terminate: its figures and every error code
// (value.errors[] and any inside the call).
func terminateOf(ce *webhook.CallEvent, at time.Time) lc.MetaTerminate {
	t := lc.MetaTerminate{When: lc.When{At: at}, Status: ce.Status, Start: ce.StartTime, End: ce.EndTime, Duration: ce.Duration}
	for _, e := range ce.Errors {
		if e.Code != 0 {
			t.Errors = append(t.Errors, e.Code)
		}
	}
	return t
}

func eventCallID(ev webhook.Event) call.ID {
	if ev.Call != nil {
		return call.ID(ev.Call.CallID)
	}
	if ev.Status != nil {
		return call.ID(ev.Status.CallID)
	}
	return ""
}

// route delivers an event (already de-duplicated) to its live call: here,
// on the owning instance, or, when nobody owns the call yet and early is
// set, into the call's early list, which the instance that is placing the
// call drains when Connect's response arrives (Meta's webhooks may beat it);
// events nobody claims are swept by sweepEarly. It returns errNotLive when
// no instance holds the call.
func (c *Controller) route(ctx context.Context, ev webhook.Event, received time.Time, early bool) error {
	id := eventCallID(ev)
	if received.IsZero() {
		received = c.now()
	}
	apply := applier(ev, received)
	if l := c.lookup(id); l != nil {
		l.post(apply)
		return nil
	}
	owner, err := c.ownerOf(ctx, id)
	if err != nil {
		return err
	}
	if owner != "" && owner != c.cl.id {
		return c.forwardEvent(ctx, owner, ev, received)
	}
	if !early {
		return errNotLive
	}
	if err := c.store.pushEarly(ctx, id, ev, c.now()); err != nil {
		return err
	}
	// The call may have registered meanwhile: deliver now as well (every
	// transition is idempotent).
	if l := c.lookup(id); l != nil {
		l.post(apply)
		return nil
	}
	if owner, err := c.ownerOf(ctx, id); err == nil && owner != "" && owner != c.cl.id {
		return c.forwardEvent(ctx, owner, ev, received)
	}
	return nil
}

var errNotLive = errors.New("signaling: call not live on any instance")

// applyForwarded applies an event another instance forwarded to us (it did
// the de-duplication).
func (c *Controller) applyForwarded(ctx context.Context, ev webhook.Event, received time.Time) {
	if received.IsZero() {
		received = c.now()
	}
	if l := c.lookup(eventCallID(ev)); l != nil {
		l.post(applier(ev, received))
		return
	}
	if ev.Call != nil && ev.Call.Event == webhook.CallTerminate {
		if err := c.terminateNotLive(ctx, ev); err != nil {
			c.log.Warn("forwarded terminate", "err", err)
		}
	}
}

// drainEarly applies the events that arrived before l was registered.
func (c *Controller) drainEarly(ctx context.Context, l *liveCall) {
	evs, err := c.store.popEarly(ctx, l.id)
	if err != nil {
		c.m.redisErrors.WithLabelValues("early").Inc()
		return
	}
	for _, ev := range evs {
		l.post(applier(ev, c.now()))
	}
	_ = c.store.earlyDone(ctx, l.id)
}

// sweepEarly handles early events nobody claimed within EarlyWait: the
// call was never placed from here (or its placer died). A terminate among
// them still completes the call's record with Meta's figures.
func (c *Controller) sweepEarly(ctx context.Context) {
	ids, err := c.store.earlyDue(ctx, c.now().Add(-c.cfg.EarlyWait))
	if err != nil {
		c.m.redisErrors.WithLabelValues("early").Inc()
		return
	}
	for _, id := range ids {
		if c.lookup(id) != nil {
			_ = c.store.earlyDone(ctx, id)
			continue // drainEarly takes them
		}
		evs, err := c.store.popEarly(ctx, id)
		if err != nil {
			continue
		}
		for _, ev := range evs {
			if ev.Call != nil && ev.Call.Event == webhook.CallTerminate {
				if err := c.terminateNotLive(ctx, ev); err != nil {
					c.logCall(id).Warn("early terminate", "err", err)
				}
			}
		}
		_ = c.store.earlyDone(ctx, id)
	}
}

func (c *Controller) handleTerminate(ctx context.Context, ev webhook.Event) error {
	ce := ev.Call
	id := call.ID(ce.CallID)
	if ce.DurationMismatch {
		c.logCall(id).Warn("terminate duration disagrees with end-start: both kept", "duration", ce.Duration)
	}
	return c.applyOnce(ctx, id, "terminate", "", func() error {
		err := c.route(ctx, ev, time.Time{}, false)
		if !errors.Is(err, errNotLive) {
			return err
		}
		// Nobody holds the call. A stored call (ended by a reaper, or whose
		// instance stopped) takes Meta's figures now; an unknown
		// business-initiated call may still be in the placer's hands (Meta's
		// webhook beat the connect response): park it, sweepEarly settles it.
		if _, lerr := c.store.load(ctx, id); errors.Is(lerr, ErrUnknownCall) && ce.Direction == call.BusinessInitiated {
			return c.route(ctx, ev, time.Time{}, true)
		}
		return c.terminateNotLive(ctx, ev)
	})
}

// terminateNotLive applies Meta's terminate to a call no instance holds: a
// terminate before its connect, a call whose owner died (its record waits
// for Meta's figures), or a call this gateway never saw. The lifecycle
// decides the outcome as for a live call; a tombstone makes a late connect
// harmless; the record is written once.
func (c *Controller) terminateNotLive(ctx context.Context, ev webhook.Event) error {
	ce := ev.Call
	id := call.ID(ce.CallID)
	now := c.now()
	sc, err := c.store.load(ctx, id)
	if err != nil && !errors.Is(err, ErrUnknownCall) {
		return err
	}
	var cl lc.Call
	switch {
	case sc != nil && sc.State == StateEnded.String() && sc.Await.IsZero():
		return nil // ended and final already
	case sc != nil && sc.State == StateEnded.String():
		// Reaped: complete it with Meta's figures.
		cl = lc.Call{Rec: sc.Record, State: lc.StateEnded, Cause: lc.CauseOwnerLost, AwaitMeta: true,
			PickedUp: !sc.Record.AnsweredAt.IsZero(), GatewayAnswered: lc.GatewayOnly(sc.Record)}
	case sc != nil:
		// Set up but not live (its instance stopped before a reaper came).
		cl = lc.New(sc.Record)
		cl.State, cl.PickedUp = lc.ParseState(sc.State), !sc.Record.AnsweredAt.IsZero()
		cl.GatewayAnswered = lc.GatewayOnly(sc.Record)
		if !cl.State.Live() {
			cl.State = lc.New(sc.Record).State
		}
		cl.Cause = lc.CauseOwnerLost
	default:
		dir := ce.Direction
		if dir == call.DirectionUnknown {
			dir = call.UserInitiated
		}
		cl = lc.New(call.Record{ID: id, Direction: dir, PhoneNumberID: ev.PhoneNumberID,
			BusinessPhone: e164(ev.DisplayPhoneNumber), UserPhone: e164(ce.UserNumber()), UserID: ce.UserID(),
			UserName: ev.ContactName, CreatedAt: now, MetaDuration: -1, Opaque: ce.BizOpaque,
			Payload: firstNonEmpty(ce.DeeplinkPayload, ce.CTAPayload)})
	}
	var fx []lc.Effect
	if cl.State.Live() {
		// A call that was live elsewhere ends here: Meta's terminate is the
		// cause unless an owner was lost.
		next, f, _ := c.rules.Transition(cl, terminateOf(ce, now))
		cl, fx = next, f
		if sc != nil {
			cl.Rec.EndReason = call.OwnerLost
		}
	} else {
		next, f, _ := c.rules.Transition(cl, terminateOf(ce, now))
		cl, fx = next, f
	}
	for _, f := range fx {
		if u, ok := f.(lc.UsePermission); ok {
			usePermission(c, c.logCall(id), cl.Rec, u.Use)
		}
	}
	if err := c.store.markEnded(ctx, cl.Rec, c.cl.id); err != nil {
		return err
	}
	c.m.calls.WithLabelValues(cl.Rec.Direction.String(), cl.Rec.Outcome.String()).Inc()
	c.recordNow(ctx, cl.Rec)
	return nil
}

func (c *Controller) recordNow(ctx context.Context, rec call.Record) {
	if c.rec == nil {
		return
	}
	if err := c.rec.Record(ctx, rec); err == nil {
		_ = c.store.recorded(ctx, rec.ID)
	}
}

func (c *Controller) handleStatus(ctx context.Context, ev webhook.Event) error {
	st := ev.Status
	id := call.ID(st.CallID)
	if id == "" {
		return fmt.Errorf("%w: status without id", ErrBadEvent)
	}
	if st.Status == webhook.StatusUnknown {
		return errIgnored
	}
	return c.applyOnce(ctx, id, "status:", st.Status.String(), func() error { return c.route(ctx, ev, time.Time{}, true) })
}

func e164(digits string) string {
	if digits == "" {
		return ""
	}
	if n, err := phone.Parse(digits); err == nil {
		return n.E164
	}
	if digits[0] == '+' {
		return digits
	}
	return "+" + digits
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
