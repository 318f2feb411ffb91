package signaling

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/phone"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/webhook"
)

// Webhook results (metric label values).
const (
	resOK        = "ok"
	resDuplicate = "duplicate"
	resIgnored   = "ignored"
	resError     = "error"
)

type terminateInfo struct {
	start, end time.Time
	duration   int64
	errorCode  int
}

// HandleEvent applies one webhook event. It returns nil when the event is
// durably recorded (or safely ignored), and an error wrapping ErrStore or
// ErrDraining when Meta should deliver it again.
func (c *Controller) HandleEvent(ctx context.Context, ev webhook.Event, received time.Time) error {
	switch {
	case ev.Call != nil:
		name := "call_" + ev.Call.Event.String()
		err := c.handleCall(ctx, ev, received)
		c.countWebhook(name, err)
		return err
	case ev.Status != nil:
		err := c.handleStatus(ctx, ev.Status)
		c.countWebhook("status", err)
		return err
	case ev.Permission != nil:
		err := c.handlePermissionReply(ctx, ev.Permission)
		c.countWebhook("permission_reply", err)
		return err
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
			return c.handleBusinessConnect(ctx, ce)
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
	if err := c.store.save(ctx, rec, StateSetup, c.cfg.InstanceID); err != nil {
		c.store.forgetDelivery(ctx, id, "connect", "")
		c.m.redisErrors.WithLabelValues("save_call").Inc()
		return err
	}
	l := newLiveCall(c, rec)
	l.offerSDP = ce.SDP
	l.webhookAt = received
	l.setState(StateSetup)
	c.logCall(id).Info("incoming call", "from", phone.Mask(rec.UserPhone), "name_set", rec.UserName != "")
	c.register(l)
	l.post(func(l *liveCall) { l.setupInbound() })
	return nil
}

func (c *Controller) handleBusinessConnect(ctx context.Context, ce *webhook.CallEvent) error {
	id := call.ID(ce.CallID)
	if ce.SDP == "" {
		return fmt.Errorf("%w: business-initiated connect without an SDP answer", ErrBadEvent)
	}
	first, err := c.store.firstDelivery(ctx, id, "connect", "")
	if err != nil {
		c.m.redisErrors.WithLabelValues("dedup").Inc()
		return err
	}
	if !first {
		return errDuplicate
	}
	sdp := ce.SDP
	apply := func(l *liveCall) { l.onUserAnswer(sdp) }
	if !c.stash(id, apply) {
		c.store.forgetDelivery(ctx, id, "connect", "")
		return fmt.Errorf("%w: too many early events", ErrStore)
	}
	return nil
}

func (c *Controller) handleTerminate(ctx context.Context, ev webhook.Event) error {
	ce := ev.Call
	id := call.ID(ce.CallID)
	first, err := c.store.firstDelivery(ctx, id, "terminate", "")
	if err != nil {
		c.m.redisErrors.WithLabelValues("dedup").Inc()
		return err
	}
	if !first {
		return errDuplicate
	}
	ti := &terminateInfo{start: ce.StartTime, end: ce.EndTime, duration: ce.Duration}
	if len(ce.Errors) > 0 {
		ti.errorCode = ce.Errors[0].Code
	}
	if ce.DurationMismatch {
		c.logCall(id).Warn("terminate duration disagrees with end-start: both kept", "duration", ce.Duration)
	}
	if l := c.lookup(id); l != nil {
		l.post(func(l *liveCall) { l.onTerminate(ti) })
		return nil
	}
	// Not live here: a terminate before its connect, or for a call this
	// instance never saw. Leave a tombstone so a late connect is ignored, and
	// record what we know, once.
	ended, err := c.store.ended(ctx, id)
	if err != nil {
		c.store.forgetDelivery(ctx, id, "terminate", "")
		return err
	}
	if ended {
		// We ended it already and its record is written: add Meta's figures
		// if the record is still waiting for the ledger.
		return nil
	}
	if ce.Direction == call.BusinessInitiated {
		// Maybe Connect's response has not come back yet.
		if c.stash(id, func(l *liveCall) { l.onTerminate(ti) }) {
			return nil
		}
	}
	now := c.now()
	rec := call.Record{ID: id, Direction: ce.Direction, PhoneNumberID: ev.PhoneNumberID,
		BusinessPhone: e164(ev.DisplayPhoneNumber), UserPhone: e164(ce.UserNumber()), UserID: ce.UserID(),
		UserName: ev.ContactName, CreatedAt: now, EndedAt: now, MetaStart: ti.start, MetaEnd: ti.end,
		MetaDuration: ti.duration, Outcome: call.Missed, EndReason: call.UserHangup, ErrorCode: ti.errorCode}
	if rec.Direction == call.DirectionUnknown {
		rec.Direction = call.UserInitiated
	}
	if rec.Direction == call.BusinessInitiated {
		rec.Outcome, rec.EndReason = call.Unanswered, call.UserNoAnswer
	}
	if err := c.store.markEnded(ctx, rec, c.cfg.InstanceID); err != nil {
		c.store.forgetDelivery(ctx, id, "terminate", "")
		return err
	}
	c.m.calls.WithLabelValues(rec.Direction.String(), rec.Outcome.String()).Inc()
	if c.rec != nil {
		if err := c.rec.Record(ctx, rec); err == nil {
			_ = c.store.recorded(ctx, id)
		}
	}
	return nil
}

func (c *Controller) handleStatus(ctx context.Context, st *webhook.StatusEvent) error {
	id := call.ID(st.CallID)
	if id == "" {
		return fmt.Errorf("%w: status without id", ErrBadEvent)
	}
	first, err := c.store.firstDelivery(ctx, id, "status:", st.Status.String())
	if err != nil {
		c.m.redisErrors.WithLabelValues("dedup").Inc()
		return err
	}
	if !first {
		return errDuplicate
	}
	status := st.Status
	if status == webhook.StatusUnknown {
		return errIgnored
	}
	c.stash(id, func(l *liveCall) { l.onStatus(status) })
	return nil
}

func (c *Controller) handlePermissionReply(ctx context.Context, pr *webhook.PermissionReply) error {
	if c.perms == nil {
		return errIgnored
	}
	user := pr.From
	if user == "" {
		return fmt.Errorf("%w: permission reply without from", ErrBadEvent)
	}
	pair := permissions.Pair{Business: c.cfg.PhoneNumberID, User: user}
	if err := pair.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	id := pr.MessageID
	if id == "" {
		id = fmt.Sprintf("reply-%d", pr.Timestamp.Unix())
	}
	src := permissions.ParseSource(pr.Source)
	if src == permissions.SourceUnknown {
		src = permissions.UserAction
	}
	var (
		d   permissions.Decision
		err error
	)
	if pr.Accepted {
		if strings.HasPrefix(pr.ContextID, "wacid.") && src == permissions.Automatic {
			src = permissions.Callback
		}
		d, err = c.perms.Grant(ctx, pair, permissions.Grant{Permanent: pr.Permanent, ExpiresAt: pr.ExpiresAt, Source: src, ID: id})
	} else {
		d, err = c.perms.Revoke(ctx, pair, src, id)
	}
	if err != nil {
		c.m.redisErrors.WithLabelValues("permissions").Inc()
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	if c.hub != nil {
		c.hub.Broadcast(nil, agents.PermissionMsg{Type: agents.TypePermission, To: "+" + user, Permission: permissionView(d)})
	}
	return nil
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

func metaCode(err error) int {
	var e *cloudapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func metaReason(code int) string { return cloudapi.ReasonForCode(code) }
