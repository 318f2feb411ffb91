package signaling

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	n, err := phone.Parse(to)
	if err != nil {
		return permissions.Decision{}, fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	if c.perms == nil {
		return permissions.Decision{}, fmt.Errorf("%w: permissions", ErrNotConfigured)
	}
	d, err := c.perms.State(ctx, c.pairFor(n))
	if err != nil {
		return d, fmt.Errorf("%w: permission state: %w", ErrStore, err)
	}
	return d, nil
}

func (c *Controller) pairFor(n phone.Number) permissions.Pair {
	return permissions.Pair{Business: c.cfg.PhoneNumberID, User: n.Digits}
}

// RequestPermission sends WhatsApp's call-permission request to a number, if
// the request limits allow. The decision says what is left and when; after a
// failure it is the state once the local count was undone.
func (c *Controller) RequestPermission(ctx context.Context, to, text string) (permissions.Decision, error) {
	n, err := phone.Parse(to)
	if err != nil {
		return permissions.Decision{}, fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	if c.perms == nil || c.dial == nil {
		return permissions.Decision{}, fmt.Errorf("%w: outbound calling", ErrNotConfigured)
	}
	pair := c.pairFor(n)
	reqID := newRequestID()
	d, err := c.perms.RecordRequest(ctx, pair, reqID)
	if err != nil && !d.Allowed {
		if d.Reason != "" && !errors.Is(err, permissions.ErrUnavailable) {
			return d, permissionError(d)
		}
		return d, fmt.Errorf("%w: permission state: %w", ErrStore, err)
	}
	if !d.Allowed {
		return d, permissionError(d)
	}
	if text == "" {
		text = c.cfg.PermissionText
	}
	msgID, err := c.dial.SendCallPermissionRequest(ctx, n.Digits, text)
	if err != nil {
		bg := context.WithoutCancel(ctx)
		_ = c.perms.UndoRequest(bg, pair, reqID)
		code := metaCode(err)
		if code == cloudapi.CodeRequestLimit || code == cloudapi.CodePermanentExists {
			_, _ = c.perms.MetaRefused(bg, pair, code, time.Time{})
		}
		if st, serr := c.perms.State(bg, pair); serr == nil {
			d = st
		}
		return d, &MetaError{Code: code, Err: err}
	}
	c.m.permissionRequests.Inc()
	c.countPermissionOutcome(ctx, "sent")
	if err := c.store.trackMessage(ctx, msgID, sentMessage{Kind: msgPermissionRequest, Business: pair.Business,
		User: pair.User, RequestID: reqID}); err != nil {
		c.m.redisErrors.WithLabelValues("track_message").Inc()
	}
	c.meterMessage(ctx, msgID, n)
	if st, err := c.perms.State(ctx, pair); err == nil {
		d = st
	}
	return d, nil
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
	if open, err := c.store.windowOpen(ctx, c.cfg.PhoneNumberID, phone.User{Phone: n}); err == nil && open {
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

// handlePermissionReply applies the user's answer to a permission request,
// an automatic callback grant or an automatic revoke. The user may be known
// only by a BSUID (no `from`).
func (c *Controller) handlePermissionReply(ctx context.Context, ev webhook.Event) error {
	pr := ev.Permission
	if c.perms == nil {
		return errIgnored
	}
	u := c.seeUser(ctx, userOf(pr.From, pr.FromUserID, pr.FromParentUserID, ev))
	if !u.Known() {
		return fmt.Errorf("%w: permission reply names no user (no from, no from_user_id)", ErrBadEvent)
	}
	pair := permissions.Pair{Business: c.businessOf(ev), User: u.Key()}
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
	if !pr.CallbackGrant && !pr.AutomaticRevoke && pr.ContextID != "" && !strings.HasPrefix(pr.ContextID, "wacid.") {
		outcome := "rejected"
		if pr.Accepted {
			outcome = "accepted"
		}
		c.countPermissionOutcome(ctx, outcome)
	}
	var (
		d   permissions.Decision
		err error
	)
	if pr.Accepted {
		if pr.CallbackGrant || (strings.HasPrefix(pr.ContextID, "wacid.") && src == permissions.Automatic) {
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
	c.tellWatchers(ctx, u, func(to string) any {
		return agents.PermissionMsg{Type: agents.TypePermission, To: to, Permission: d}
	})
	return nil
}

// tellWatchers pushes a message about a user's permission to the agents who
// asked about that user, in the form they know (full or masked), not to
// everybody.
func (c *Controller) tellWatchers(ctx context.Context, u phone.User, msg func(to string) any) {
	watchers, err := c.store.permissionWatchers(ctx, u.Key())
	if err != nil {
		c.m.redisErrors.WithLabelValues("permission_watch").Inc()
	}
	for _, w := range watchers {
		to := u.Phone.E164
		if to == "" {
			to = u.BSUID
		}
		if w.Masked {
			to = u.Masked()
		}
		c.toAgent(w.Agent, msg(to))
	}
}

// businessOf is the business number an event is about.
func (c *Controller) businessOf(ev webhook.Event) string {
	if ev.PhoneNumberID != "" {
		return ev.PhoneNumberID
	}
	return c.cfg.PhoneNumberID
}

// handleUserMessage opens the user's customer service window with that
// business number: inside it, permission requests may be free-form.
func (c *Controller) handleUserMessage(ctx context.Context, ev webhook.Event) error {
	m := ev.UserMessage
	u := c.seeUser(ctx, userOf(m.From, m.FromUserID, m.FromParentUserID, ev))
	if !u.Known() {
		return fmt.Errorf("%w: message names no user", ErrBadEvent)
	}
	if err := c.store.openWindow(ctx, c.businessOf(ev), u); err != nil {
		c.m.redisErrors.WithLabelValues("customer_window").Inc()
		return err
	}
	return nil
}

// handleIdentityChange links a user's new ids: Meta sends
// user_changed_number / user_changed_user_id as system messages.
func (c *Controller) handleIdentityChange(ctx context.Context, ev webhook.Event) error {
	ic := ev.IdentityChange
	newPhone := firstNonEmpty(ic.NewWaID, ic.From)
	newID := firstNonEmpty(ic.NewUserID, ic.FromUserID)
	u := userOf(newPhone, newID, ic.NewParentUserID, ev)
	c.seeUser(ctx, u)
	c.log.Info("a user's identity changed: new ids linked", "kind", ic.KindName, "user", u.Masked(),
		"had_previous_user_id", ic.PreviousUserID != "")
	return nil
}

// handleSettingsUpdate keeps the calling settings Meta reports for a number
// (they fire for our own changes too).
func (c *Controller) handleSettingsUpdate(ctx context.Context, ev webhook.Event) error {
	su := ev.SettingsUpdate
	pnid := firstNonEmpty(su.PhoneNumberID, ev.PhoneNumberID, c.cfg.PhoneNumberID)
	if !c.serves(pnid) {
		c.foreignNumber(pnid)
		return nil
	}
	if err := c.store.saveSettings(ctx, pnid, su.Calling); err != nil {
		c.m.redisErrors.WithLabelValues("settings").Inc()
		return err
	}
	c.log.Info("calling settings updated by Meta", "phone_number_id", pnid, "status", su.Status,
		"callback_permission", su.CallbackPermissionStatus, "call_icons", su.CallIconVisibility)
	return nil
}

// handleMessageStatus follows what Meta says of a message we sent: a
// permission request that failed is undone (it must not count against the
// user's 1/24 h and 2/7 d) and the agents who asked are told why.
func (c *Controller) handleMessageStatus(ctx context.Context, ev webhook.Event) error {
	ms := ev.MessageStatus
	if ms.MessageID == "" {
		return fmt.Errorf("%w: message status without id", ErrBadEvent)
	}
	if ms.Status != webhook.DeliveryFailed {
		return nil
	}
	sm, err := c.store.trackedMessage(ctx, ms.MessageID)
	if err != nil || sm == nil {
		return err // not ours, or already settled
	}
	return c.applyOnce(ctx, call.ID(ms.MessageID), "status:", "failed", func() error {
		if sm.Kind != msgPermissionRequest || c.perms == nil {
			return nil
		}
		pair := permissions.Pair{Business: sm.Business, User: sm.User}
		if err := c.perms.UndoRequest(ctx, pair, sm.RequestID); err != nil {
			return fmt.Errorf("%w: undo request: %w", ErrStore, err)
		}
		c.countPermissionOutcome(ctx, "failed")
		code, why := 0, "WhatsApp could not deliver the permission request"
		if len(ms.Errors) > 0 {
			code = ms.Errors[0].Code
			why = firstNonEmpty(ms.Errors[0].Message, ms.Errors[0].Title, metaReason(code))
		}
		c.log.Warn("permission request failed at Meta: undone", "code", code)
		u, _ := phone.ParseUser(sm.User)
		c.tellWatchers(ctx, u, func(to string) any {
			return agents.ErrorMsg{Type: agents.TypeError, Code: agents.CodeMetaError, Message: why, MetaCode: code}
		})
		return nil
	})
}
