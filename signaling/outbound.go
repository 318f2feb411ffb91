package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/phone"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/webhook"
)

// PermissionState returns the permission state of a number (E.164 with or
// without '+').
func (c *Controller) PermissionState(ctx context.Context, to string) (permissions.Decision, error) {
	if c.perms == nil {
		return permissions.Decision{}, agents.Errorf(agents.CodeUnavailable, "permissions are not configured", nil)
	}
	n, err := phone.Parse(to)
	if err != nil {
		return permissions.Decision{}, agents.Errorf(agents.CodeInvalidNumber, "not a valid phone number", err)
	}
	d, err := c.perms.State(ctx, c.pairFor(n))
	if err != nil {
		return d, agents.Errorf(agents.CodeUnavailable, "permission state unavailable", err)
	}
	return d, nil
}

func (c *Controller) pairFor(n phone.Number) permissions.Pair {
	return permissions.Pair{Business: c.cfg.PhoneNumberID, User: n.Digits}
}

// RequestPermission sends WhatsApp's call-permission request to a number, if
// the request limits allow. The decision says what is left and when.
func (c *Controller) RequestPermission(ctx context.Context, to, text string) (permissions.Decision, error) {
	if c.perms == nil || c.dial == nil {
		return permissions.Decision{}, agents.Errorf(agents.CodeUnavailable, "outbound calling is not configured", nil)
	}
	n, err := phone.Parse(to)
	if err != nil {
		return permissions.Decision{}, agents.Errorf(agents.CodeInvalidNumber, "not a valid phone number", err)
	}
	pair := c.pairFor(n)
	reqID := newRequestID()
	d, err := c.perms.RecordRequest(ctx, pair, reqID)
	if err != nil && !d.Allowed {
		if d.Reason != "" && !errors.Is(err, permissions.ErrUnavailable) {
			return d, &agents.CodedError{Code: string(d.Reason), Message: reasonText(string(d.Reason)), Err: err}
		}
		return d, agents.Errorf(agents.CodeUnavailable, "permission state unavailable: try again later", err)
	}
	if !d.Allowed {
		return d, &agents.CodedError{Code: string(d.Reason), Message: reasonText(string(d.Reason))}
	}
	if text == "" {
		text = c.cfg.PermissionText
	}
	msgID, err := c.dial.SendCallPermissionRequest(ctx, n.Digits, text)
	if err != nil {
		_ = c.perms.UndoRequest(context.WithoutCancel(ctx), pair, reqID)
		code := metaCode(err)
		if code == 138009 || code == 138017 {
			d, _ = c.perms.MetaRefused(context.WithoutCancel(ctx), pair, code, time.Time{})
		}
		return d, &agents.CodedError{Code: agents.CodeMetaError, Message: metaMessage(err), MetaCode: code, Err: err}
	}
	c.m.permissionRequests.Inc()
	c.countPermissionOutcome(ctx, "sent")
	c.meterMessage(ctx, msgID, n)
	if st, err := c.perms.State(ctx, pair); err == nil {
		d = st
	}
	return d, nil
}

// Dial places a business-initiated call from agent to a number.
func (c *Controller) Dial(ctx context.Context, agent, to string) (agents.CallInfo, error) {
	if c.dial == nil {
		return agents.CallInfo{}, agents.Errorf(agents.CodeUnavailable, "outbound calling is not configured", nil)
	}
	if c.draining.Load() {
		return agents.CallInfo{}, agents.Errorf(agents.CodeUnavailable, "this instance is shutting down", ErrDraining)
	}
	n, err := phone.Parse(to)
	if err != nil {
		return agents.CallInfo{}, agents.Errorf(agents.CodeInvalidNumber, "not a valid phone number", err)
	}
	pair := c.pairFor(n)
	if c.perms != nil {
		d, err := c.perms.CheckCall(ctx, pair)
		if err != nil && !d.Degraded {
			return agents.CallInfo{}, agents.Errorf(agents.CodeUnavailable, "permission state unavailable: try again later", err)
		}
		if !d.Allowed {
			return agents.CallInfo{}, &agents.CodedError{Code: string(d.Reason), Message: reasonText(string(d.Reason))}
		}
	}
	l := newLiveCall(c, call.Record{Direction: call.BusinessInitiated, PhoneNumberID: c.cfg.PhoneNumberID,
		UserPhone: n.E164, Agent: agent, CreatedAt: c.now(), MetaDuration: -1})
	b, err := c.media.NewBridge("dial-"+newRequestID(), l.events())
	if err != nil {
		return agents.CallInfo{}, agents.Errorf(agents.CodeInternal, "media setup failed", err)
	}
	octx, cancel := c.opCtx(10 * time.Second)
	defer cancel()
	offer, err := b.OfferWhatsApp(octx)
	if err != nil {
		_ = b.Close()
		return agents.CallInfo{}, agents.Errorf(agents.CodeInternal, "media setup failed", err)
	}
	id, err := c.dial.Connect(octx, n.Digits, offer, "")
	if err != nil {
		_ = b.Close()
		code := metaCode(err)
		if c.perms != nil && (code == 138006 || code == 138012) {
			if _, perr := c.perms.MetaRefused(context.WithoutCancel(ctx), pair, code, nextAllowed(err)); perr != nil {
				c.log.Warn("permissions: meta refusal not recorded", "err", perr)
			}
		}
		c.m.dials.WithLabelValues("refused").Inc()
		return agents.CallInfo{}, &agents.CodedError{Code: agents.CodeMetaError, Message: metaMessage(err), MetaCode: code, Err: err}
	}
	c.m.dials.WithLabelValues("placed").Inc()
	l.id = call.ID(id)
	l.rec.ID = l.id
	l.log = c.logCall(l.id)
	l.setBridge(b)
	l.offerSDP = offer
	l.agent.Store(agent)
	l.setState(StateDialing)
	l.log.Info("outbound call placed", "to", phone.Mask(n.E164), "agent", agent)
	ci := c.info(l, StateDialing) // the actor has not started: l is still ours to read
	c.register(l)
	if err := c.own(context.WithoutCancel(ctx), l.id); err != nil {
		l.log.Warn("cannot record ownership: other instances will not route to this call", "err", err)
	}
	c.drainEarly(context.WithoutCancel(ctx), l)
	l.post(func(l *liveCall) {
		l.saveState()
		c.toAgent(agent, agents.CallMsg{Type: agents.TypeCall, Call: ci})
		if err := l.offerAgent(); err != nil {
			l.log.Warn("agent leg", "err", err)
			l.hangupByUs(call.SetupFailed)
		}
	})
	return ci, nil
}

// onUserAnswer applies Meta's SDP answer of a business-initiated call.
func (l *liveCall) onUserAnswer(sdp string) {
	if l.state != StateDialing && l.state != StateConnecting {
		return
	}
	if l.waAnswered {
		return
	}
	if err := l.bridge.SetWhatsAppAnswer(sdp); err != nil {
		l.log.Warn("cannot apply Meta's answer", "err", err)
		l.hangupByUs(call.SetupFailed)
		return
	}
	l.waAnswered = true
	if l.rec.AnsweredAt.IsZero() {
		l.rec.AnsweredAt = l.c.now()
	}
	ctx, cancel := l.c.opCtx(2 * time.Second)
	_ = l.c.store.openCustomerWindow(ctx, digits(l.rec.UserPhone)) // the user accepted our call
	cancel()
	if err := l.maybeConnected(); err != nil {
		l.log.Warn("connect", "err", err)
	}
}

func (l *liveCall) onStatus(s webhook.CallStatus) {
	if !l.state.Live() {
		return
	}
	l.userStatus = s.String()
	switch s {
	case webhook.StatusRejected:
		l.end(call.UserDeclined, call.Declined, true)
	case webhook.StatusRinging, webhook.StatusAccepted:
		l.log.Debug("user status", "status", s.String())
	}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func nextAllowed(err error) time.Time {
	var e *cloudapi.Error
	if errors.As(err, &e) && e.Details != "" {
		if t, perr := time.Parse(time.RFC3339, e.Details); perr == nil {
			return t
		}
	}
	return time.Time{}
}

func metaMessage(err error) string {
	var e *cloudapi.Error
	if errors.As(err, &e) {
		return e.Reason()
	}
	return "WhatsApp could not be reached: try again"
}

var reasonTexts = map[string]string{
	"no_permission":        "This person has not allowed calls from you. Send a permission request first.",
	"expired":              "This person's call permission has expired. Send a new permission request.",
	"permission_expired":   "This person's call permission has expired. Send a new permission request.",
	"revoked":              "This person withdrew their call permission.",
	"request_limit_24h":    "You already sent a permission request in the last 24 hours.",
	"request_limit_7d":     "You already sent two permission requests in the last 7 days.",
	"connected_call_limit": "You reached the limit of connected calls with this person for the last 24 hours.",
	"permanent_exists":     "This person already gave permanent permission: just call.",
	"redis_unavailable":    "Permission state is unavailable right now: try again shortly.",
	"country_unavailable":  "WhatsApp does not allow business-initiated calls for this country.",
}

func reasonText(r string) string {
	if t, ok := reasonTexts[r]; ok {
		return t
	}
	if r == "" {
		return "not allowed"
	}
	return "not allowed: " + r
}

// meterMessage runs a message the gateway sent through the conversation
// meter: inside the user's 24 h customer service window (opened by the
// user's calls) it is a service conversation, otherwise a utility one (a
// template, as Meta requires outside the window).
func (c *Controller) meterMessage(ctx context.Context, msgID string, n phone.Number) {
	if c.msgs == nil {
		return
	}
	cat := billing.Utility
	if open, err := c.store.customerWindowOpen(ctx, n.Digits); err == nil && open {
		cat = billing.Service
	}
	ch, err := c.msgs.Conversation(ctx, billing.Message{ID: msgID, Business: c.cfg.PhoneNumberID, User: n.E164,
		Category: cat, At: c.now()})
	if err != nil {
		c.log.Warn("conversation meter", "err", err)
		return
	}
	c.log.Debug("permission request metered", "category", string(cat), "opened", ch.Opened, "cost_micros", ch.CostMicros)
}

// countPermissionOutcome counts permission requests by outcome per month
// (sent, accepted, rejected) for the supervisors' report.
func (c *Controller) countPermissionOutcome(ctx context.Context, outcome string) {
	if err := c.store.countPermission(ctx, c.now().UTC().Format("2006-01"), outcome); err != nil {
		c.m.redisErrors.WithLabelValues("permission_outcomes").Inc()
	}
}

// PermissionOutcomes returns a month's permission-request outcomes.
func (c *Controller) PermissionOutcomes(ctx context.Context, month string) (map[string]int64, error) {
	return c.store.permissionOutcomes(ctx, month)
}
