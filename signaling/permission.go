package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callgw/callgw/billing"
	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/webhook"
)

// resolveUser reads a user named by a client (a phone number or a BSUID)
// and completes it from the links webhooks made.
func (c *Controller) resolveUser(ctx context.Context, s string) (phone.User, error) {
	u, err := phone.ParseUser(s)
	if err != nil {
		return u, fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	full, err := c.store.completeUser(ctx, u)
	if err != nil {
		return u, nil // links are a convenience: the id given still works
	}
	return full, nil
}

// resolveUserStrict is resolveUser for work that needs Redis anyway: a
// store that cannot answer the link fails now (503) instead of after the
// next read times out too.
func (c *Controller) resolveUserStrict(ctx context.Context, s string) (phone.User, error) {
	u, err := phone.ParseUser(s)
	if err != nil {
		return u, fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	return c.store.completeUser(ctx, u)
}

func metaUser(u phone.User) cloudapi.User {
	return cloudapi.User{Phone: u.Phone.Digits, BSUID: u.BSUID}
}

func (c *Controller) pairOf(u phone.User) permissions.Pair {
	return permissions.Pair{Business: c.cfg.PhoneNumberID, User: u.Key()}
}

// PermissionState returns the permission state of a user (a phone number,
// E.164 with or without '+', or a BSUID).
func (c *Controller) PermissionState(ctx context.Context, to string) (permissions.Decision, error) {
	u, err := c.resolveUser(ctx, to)
	if err != nil {
		return permissions.Decision{}, err
	}
	if c.perms == nil {
		return permissions.Decision{}, fmt.Errorf("%w: permissions", ErrNotConfigured)
	}
	d, err := c.perms.State(ctx, c.pairOf(u))
	if err != nil {
		return d, fmt.Errorf("%w: permission state: %w", ErrStore, err)
	}
	return d, nil
}

// permissionStateFrom is PermissionState for the pair of business number
// pnid and the user (an agent's permission_query), with Meta's live state
// read through that number's own client: when Meta says otherwise about
// calling now, Meta's answer is shown (the dial would follow it).
func (c *Controller) permissionStateFrom(ctx context.Context, to, pnid string) (permissions.Decision, error) {
	u, err := c.resolveUser(ctx, to)
	if err != nil {
		return permissions.Decision{}, err
	}
	if c.perms == nil {
		return permissions.Decision{}, fmt.Errorf("%w: permissions", ErrNotConfigured)
	}
	if pnid == "" {
		pnid = c.cfg.PhoneNumberID
	}
	pair := c.pairOf(u)
	pair.Business = pnid
	d, err := c.perms.State(ctx, pair)
	if err != nil {
		return d, fmt.Errorf("%w: permission state: %w", ErrStore, err)
	}
	c.liveOverlay(ctx, pnid, u, &d)
	return d, nil
}

// liveOverlay shows Meta's live verdict on calling now where it differs
// from the local model's (counted as a "query" disagreement; the local
// model is corrected by the dial, not by a query).
func (c *Controller) liveOverlay(ctx context.Context, pnid string, u phone.User, d *permissions.Decision) {
	p, ok := c.livePermission(ctx, pnid, u)
	if !ok {
		return
	}
	allowed, reason, frees := metaCallVerdict(p)
	switch {
	case allowed && !d.CanCall:
		c.disagree("query", u, false, "allowed")
		d.Allowed, d.CanCall, d.Reason, d.NextCallAt = true, true, "", time.Time{}
		if d.Status == permissions.NoPermission {
			d.Status, d.ExpiresAt = permissions.Temporary, p.ExpiresAt
			if p.Status == cloudapi.PermissionPermanent {
				d.Status, d.ExpiresAt = permissions.Permanent, time.Time{}
			}
		}
	case !allowed && d.CanCall:
		c.disagree("query", u, true, string(reason))
		d.Allowed, d.CanCall, d.Reason = false, false, reason
		if reason == permissions.ReasonConnectedCallLimit {
			d.NextCallAt = frees
		} else {
			d.Status, d.ExpiresAt = permissions.NoPermission, time.Time{}
		}
	}
}

// livePermission asks Meta's live call_permissions (cached, within Meta's
// 5 requests/s shared by every instance). ok is false when Meta's view is
// not available now; the local model decides then.
func (c *Controller) livePermission(ctx context.Context, pnid string, u phone.User) (p *cloudapi.Permission, ok bool) {
	live := c.liveFor(pnid)
	if live == nil {
		return nil, false
	}
	p, err := live.Get(ctx, metaUser(u))
	if err != nil {
		if !errors.Is(err, cloudapi.ErrRateLimitedLocally) {
			c.log.Warn("Meta's live permission state unavailable: local state decides", "user", u.Masked(), "err", err)
		}
		c.m.liveChecks.WithLabelValues("unavailable").Inc()
		return nil, false
	}
	c.m.liveChecks.WithLabelValues("ok").Inc()
	return p, true
}

// liveFor is Meta's live permission state of business number pnid, read
// through that number's own client (nil: none; the local model decides).
func (c *Controller) liveFor(pnid string) LivePermissions {
	if pnid == "" || pnid == c.cfg.PhoneNumberID {
		if c.live == nil {
			return nil // a typed nil must not hide in the interface
		}
		return c.live
	}
	if c.lives == nil {
		return nil
	}
	return c.lives(pnid)
}

// invalidateLive drops the cached live state of (pnid, u).
func (c *Controller) invalidateLive(pnid string, u phone.User) {
	if l := c.liveFor(pnid); l != nil {
		l.Invalidate(metaUser(u))
	}
}

// disagree logs and counts a disagreement between Meta and the local model;
// Meta wins.
func (c *Controller) disagree(op string, u phone.User, local bool, meta string) {
	c.m.disagreements.WithLabelValues(op).Inc()
	c.log.Warn("Meta's live permission state disagrees with ours: Meta wins", "op", op, "user", u.Masked(),
		"local_allowed", local, "meta", meta)
}

// metaCallVerdict reads whether Meta lets the business call the user now,
// and, when not, the rule and when it frees.
func metaCallVerdict(p *cloudapi.Permission) (allowed bool, reason permissions.Reason, frees time.Time) {
	if p.Status == cloudapi.PermissionNone {
		return false, permissions.ReasonNoPermission, time.Time{}
	}
	if a, ok := p.Action(cloudapi.ActionNameStartCall); ok && !a.CanPerform {
		return false, permissions.ReasonConnectedCallLimit, freesAt(a)
	}
	return true, "", time.Time{}
}

// freesAt is when the last used-up limit of an action frees (zero if Meta
// did not say).
func freesAt(a cloudapi.Action) (t time.Time) {
	for _, l := range a.Limits {
		if l.ExpiresAt.After(t) {
			t = l.ExpiresAt
		}
	}
	return t
}

// metaRequestVerdict reads whether Meta lets the business send a
// permission request now.
func metaRequestVerdict(p *cloudapi.Permission) (allowed bool, reason permissions.Reason, frees time.Time) {
	if p.Status == cloudapi.PermissionPermanent {
		return false, permissions.ReasonPermanentExists, time.Time{}
	}
	if a, ok := p.Action(cloudapi.ActionNameSendPermissionRequest); ok && !a.CanPerform {
		return false, permissions.ReasonRequestLimitMeta, freesAt(a)
	}
	return true, "", time.Time{}
}

// RequestPermission sends WhatsApp's call-permission request to a user, if
// the request limits allow: free-form inside the user's 24 h customer
// service window, the configured template outside it. The decision says
// what is left and when; after a failure it is the state once the local
// count was undone.
func (c *Controller) RequestPermission(ctx context.Context, to, text string) (permissions.Decision, error) {
	return c.requestPermissionFrom(ctx, to, text, c.cfg.PhoneNumberID)
}

// requestPermissionFrom is RequestPermission from business number pnid
// (its Dialer, its permission template, the pair pnid–user).
func (c *Controller) requestPermissionFrom(ctx context.Context, to, text, pnid string) (permissions.Decision, error) {
	u, err := c.resolveUserStrict(ctx, to)
	if errors.Is(err, ErrStore) {
		// Fails closed, as the permission tracker does without Redis.
		return permissions.Decision{Reason: permissions.ReasonRedisUnavailable}, err
	} else if err != nil {
		return permissions.Decision{}, err
	}
	dialer := c.dialerFor(pnid)
	if c.perms == nil || dialer == nil {
		return permissions.Decision{}, fmt.Errorf("%w: outbound calling", ErrNotConfigured)
	}
	main := pnid == c.cfg.PhoneNumberID
	pair := permissions.Pair{Business: pnid, User: u.Key()}
	template := c.cfg.PermissionTemplate
	if cfg := c.routingConfig(); cfg != nil && !main {
		if n, ok := cfg.Number(pnid); ok {
			template = n.PermissionTemplate
		}
	}
	open, err := c.store.windowOpen(ctx, pair.Business, u)
	if err != nil {
		// Fails closed, as the permission tracker does without Redis.
		return permissions.Decision{Reason: permissions.ReasonRedisUnavailable}, err
	}
	var tmpl cloudapi.TemplateRef
	if !open {
		if template == "" {
			d, _ := c.perms.State(ctx, pair)
			return d, ErrTemplateRequired
		}
		tmpl, _ = cloudapi.ParseTemplateRef(template)
	}
	metaAllows, metaSaid := true, false
	var (
		p  *cloudapi.Permission
		ok bool
	)
	p, ok = c.livePermission(ctx, pnid, u) // through the number's own client
	if ok {
		metaSaid = true
		allowed, reason, frees := metaRequestVerdict(p)
		metaAllows = allowed
		if !allowed {
			d, _ := c.perms.State(ctx, pair)
			if r := localRequestReason(d); r != "" {
				d.Allowed, d.Reason = false, r
				return d, permissionError(d) // both say no: ours names the rule
			}
			c.disagree("request", u, true, string(reason))
			d.Allowed, d.CanRequest, d.Reason = false, false, reason
			if !frees.IsZero() {
				d.NextRequestAt = frees
			}
			return d, permissionError(d)
		}
	}
	reqID := newRequestID()
	d, err := c.perms.RecordRequest(ctx, pair, reqID)
	recorded := err == nil && d.Allowed
	switch {
	case err != nil && !d.Allowed && (d.Reason == "" || errors.Is(err, permissions.ErrUnavailable)):
		return d, fmt.Errorf("%w: permission state: %w", ErrStore, err)
	case !d.Allowed && metaSaid && metaAllows:
		// Meta says a request may go now: trust it over our count.
		c.disagree("request", u, false, "allowed")
	case !d.Allowed:
		return d, permissionError(d)
	}
	if text == "" {
		text = c.cfg.PermissionText
	}
	var msgID string
	if open {
		msgID, err = dialer.SendPermissionRequest(ctx, metaUser(u), text)
	} else {
		msgID, err = dialer.SendPermissionTemplate(ctx, metaUser(u), tmpl, nil)
	}
	if err != nil {
		bg := context.WithoutCancel(ctx)
		if recorded {
			_ = c.perms.UndoRequest(bg, pair, reqID)
		}
		code := metaCode(err)
		if code == cloudapi.CodeRequestLimit || code == cloudapi.CodePermanentExists {
			_, _ = c.perms.MetaRefused(bg, pair, code, time.Time{})
		}
		c.invalidateLive(pnid, u)
		if st, serr := c.perms.State(bg, pair); serr == nil {
			d = st
		}
		return d, &MetaError{Code: code, Err: err}
	}
	c.invalidateLive(pnid, u)
	c.m.permissionRequests.Inc()
	c.countPermissionOutcome(ctx, "sent")
	if err := c.store.trackMessage(ctx, msgID, sentMessage{Kind: msgPermissionRequest, Business: pair.Business,
		User: pair.User, RequestID: reqID}); err != nil {
		c.m.redisErrors.WithLabelValues("track_message").Inc()
	}
	c.meterMessage(ctx, msgID, u, billing.KindPermissionRequest)
	c.applyParkedStatuses(ctx, msgID)
	if st, err := c.perms.State(ctx, pair); err == nil {
		d = st
	}
	return d, nil
}

// localRequestReason is the rule of the local model that forbids a
// permission request now ("" when it allows one).
func localRequestReason(d permissions.Decision) permissions.Reason {
	switch {
	case d.CanRequest:
		return ""
	case d.Status == permissions.Permanent:
		return permissions.ReasonPermanentExists
	case d.RequestsLeft24h == 0:
		return permissions.ReasonRequestLimit24h
	case d.RequestsLeft7d == 0:
		return permissions.ReasonRequestLimit7d
	}
	return d.Reason
}

func nextAllowed(err error) time.Time {
	t, _ := cloudapi.NextAllowed(err)
	return t
}

var reasonTexts = map[string]string{
	"no_permission":        "This person has not allowed calls from you. Send a permission request first.",
	"expired":              "This person's call permission has expired. Send a new permission request.",
	"permission_expired":   "This person's call permission has expired. Send a new permission request.",
	"revoked":              "This person withdrew their call permission.",
	"request_limit_24h":    "You already sent a permission request in the last 24 hours.",
	"request_limit_7d":     "You already sent two permission requests in the last 7 days.",
	"request_limit_meta":   "WhatsApp does not allow another permission request to this person yet.",
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

// meterMessage hands a message the gateway sent to the per-message meter;
// what it costs comes with Meta's status webhooks (pricing), pending until
// then.
func (c *Controller) meterMessage(ctx context.Context, msgID string, u phone.User, kind billing.MessageKind) {
	if c.msgs == nil || msgID == "" {
		return
	}
	_, err := c.msgs.Sent(ctx, billing.MessageSent{ID: msgID, Business: c.cfg.PhoneNumberID,
		User: firstNonEmpty(u.Phone.E164, u.BSUID), Country: u.Country(), At: c.now(), Kind: kind})
	if err != nil {
		c.log.Warn("message meter", "err", err)
	}
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
	sm, err := c.store.trackedMessage(ctx, ms.MessageID)
	if err != nil {
		return err
	}
	if sm == nil {
		// Not ours, or Meta's status beat the answer to our own request:
		// keep it a while; the sender applies it once it knows the id.
		return c.store.parkMessageStatus(ctx, ev)
	}
	if err := c.meterStatus(ctx, ms); err != nil {
		return err
	}
	if ms.Status != webhook.DeliveryFailed {
		return nil
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

// meterStatus gives the meter what Meta says a message cost (its pricing
// object); a failed message is never charged.
func (c *Controller) meterStatus(ctx context.Context, ms *webhook.MessageStatus) error {
	if c.msgs == nil {
		return nil
	}
	var kind billing.StatusKind
	switch ms.Status {
	case webhook.DeliverySent:
		kind = billing.StatusSent
	case webhook.DeliveryDelivered:
		kind = billing.StatusDelivered
	case webhook.DeliveryRead:
		kind = billing.StatusRead
	case webhook.DeliveryFailed:
		kind = billing.StatusFailed
	default:
		return nil
	}
	st := billing.MessageStatus{ID: ms.MessageID, Status: kind, At: ms.Timestamp}
	if st.At.IsZero() {
		st.At = c.now()
	}
	if p := ms.Pricing; p != nil {
		st.Billable, st.PricingModel, st.Type, st.Category = p.Billable, p.Model, p.Type, p.Category
	}
	if _, err := c.msgs.Status(ctx, st); err != nil {
		if errors.Is(err, billing.ErrInvalidMessage) {
			c.log.Warn("message status not metered", "err", err)
			return nil
		}
		return fmt.Errorf("%w: message meter: %w", ErrStore, err)
	}
	return nil
}

// applyParkedStatuses applies the statuses of a message we sent that
// arrived before we knew its id.
func (c *Controller) applyParkedStatuses(ctx context.Context, wamid string) {
	evs, err := c.store.parkedMessageStatuses(ctx, wamid)
	if err != nil {
		c.m.redisErrors.WithLabelValues("track_message").Inc()
		return
	}
	for _, ev := range evs {
		if err := c.handleMessageStatus(ctx, ev); err != nil {
			c.log.Warn("early message status", "err", err)
		}
	}
}

// CallButton is a call-button message (interactive voice_call): a tap calls
// the business number; Payload comes back as cta_payload on that call.
type CallButton struct {
	To          string // phone number or BSUID
	Text        string // body text (required)
	DisplayText string // button text, ≤ 20 characters (default "Call Now")
	TTLMinutes  int    // 1-43200 (default 10080)
	Payload     string // ≤ 512 characters
}

// SendCallButton sends a call button inside the user's customer service
// window (outside it Meta needs a template: refused with
// ErrOutsideWindow before anything is sent). It returns the message id.
func (c *Controller) SendCallButton(ctx context.Context, b CallButton) (string, error) {
	u, err := c.resolveUser(ctx, b.To)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(b.Text) == "" {
		return "", fmt.Errorf("%w: text is required", ErrBadCommand)
	}
	if c.dial == nil {
		return "", fmt.Errorf("%w: messages", ErrNotConfigured)
	}
	open, err := c.store.windowOpen(ctx, c.cfg.PhoneNumberID, u)
	if err != nil {
		return "", err
	}
	if !open {
		return "", ErrOutsideWindow
	}
	id, err := c.dial.SendCallButton(ctx, metaUser(u), cloudapi.CallButton{BodyText: b.Text, DisplayText: b.DisplayText,
		TTLMinutes: b.TTLMinutes, Payload: b.Payload})
	if err != nil {
		if errors.Is(err, cloudapi.ErrBadInput) {
			return "", fmt.Errorf("%w: %w", ErrBadCommand, err)
		}
		return "", &MetaError{Code: metaCode(err), Err: err}
	}
	if err := c.store.trackMessage(ctx, id, sentMessage{Kind: msgCallButton, Business: c.cfg.PhoneNumberID, User: u.Key()}); err != nil {
		c.m.redisErrors.WithLabelValues("track_message").Inc()
	}
	c.meterMessage(ctx, id, u, billing.KindCallButton)
	c.applyParkedStatuses(ctx, id)
	return id, nil
}

// NumberSettings returns a business number's calling settings as Meta
// last reported them (GET /settings at start, account_settings_update
// webhooks after); nil when never seen.
func (c *Controller) NumberSettings(ctx context.Context, pnid string) (json.RawMessage, error) {
	if !c.serves(pnid) {
		return nil, ErrUnknownNumber
	}
	return c.store.settings(ctx, pnid)
}

// RefreshSettings reads a number's calling settings from Meta and keeps
// them (at start and on demand).
func (c *Controller) RefreshSettings(ctx context.Context, pnid string, get func(context.Context) (json.RawMessage, error)) error {
	raw, err := get(ctx)
	if err != nil {
		return &MetaError{Code: metaCode(err), Err: err}
	}
	return c.store.saveSettings(ctx, pnid, raw)
}
