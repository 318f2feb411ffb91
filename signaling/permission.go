package signaling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/internal/phone"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/signaling/cloudapi"
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
