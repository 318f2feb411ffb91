package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/permissions"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	lc "github.com/callgw/callgw/signaling/lifecycle"
)

// Dial places a business-initiated call from agent to a number: the
// permission check, our offer, Graph connect, then the call's lifecycle
// (Meta's connect webhook brings its answer while the phone rings; ACCEPTED
// is pickup).
func (c *Controller) Dial(ctx context.Context, agent, to string) (agents.CallInfo, error) {
	return c.DialFrom(ctx, agent, to, "")
}

// DialFrom is Dial from one of the agent's business numbers (from: its
// phone_number_id; "" = the main number).
func (c *Controller) DialFrom(ctx context.Context, agent, to, from string) (agents.CallInfo, error) {
	ci, start, err := c.dialStartFrom(ctx, agent, to, from)
	if err != nil {
		return ci, err
	}
	start()
	return ci, nil
}

// dialStart places the call and returns its first description and start, which
// begins its lifecycle (the agent-leg offer): the agent's reply to `dial`
// goes out first, so that the page knows the call when the offer comes.
func (c *Controller) dialStartFrom(ctx context.Context, agent, to, from string) (agents.CallInfo, func(), error) {
	pnid, err := c.callingNumber(agent, from)
	if err != nil {
		return agents.CallInfo{}, nil, err
	}
	ci, l, err := c.place(ctx, agent, to, pnid)
	if err != nil {
		return ci, nil, err
	}
	return ci, func() {
		l.fire(lc.Begin{When: l.when()})
		c.drainEarly(context.WithoutCancel(ctx), l)
	}, nil
}

func (c *Controller) place(ctx context.Context, agent, to, pnid string) (agents.CallInfo, *liveCall, error) {
	u, err := c.resolveUser(ctx, to)
	if err != nil {
		return agents.CallInfo{}, nil, err
	}
	dialer := c.dialerFor(pnid)
	if dialer == nil {
		return agents.CallInfo{}, nil, fmt.Errorf("%w: outbound calling", ErrNotConfigured)
	}
	if c.draining.Load() {
		return agents.CallInfo{}, nil, ErrDraining
	}
	pair := permissions.Pair{Business: pnid, User: u.Key()}
	if err := c.mayCall(ctx, u, pair); err != nil {
		return agents.CallInfo{}, nil, err
	}
	dialID := newRequestID()
	l := newLiveCall(c, call.Record{Direction: call.BusinessInitiated, PhoneNumberID: pnid,
		UserPhone: u.Phone.E164, UserID: u.BSUID, Agent: agent, CreatedAt: c.now(), MetaDuration: -1,
		Opaque: opaqueFor(dialID, agent)})
	b, err := c.media.NewBridge("dial-"+dialID, l.events())
	if err != nil {
		return agents.CallInfo{}, nil, fmt.Errorf("%w: %w", ErrMediaSetup, err)
	}
	octx, cancel := c.opCtx(10 * time.Second)
	defer cancel()
	offer, err := b.OfferWhatsApp(octx)
	if err != nil {
		_ = b.Close()
		return agents.CallInfo{}, nil, fmt.Errorf("%w: %w", ErrMediaSetup, err)
	}
	id, err := dialer.ConnectUser(octx, cloudapi.ConnectRequest{User: metaUser(u), OfferSDP: offer, BizOpaque: l.lc.Rec.Opaque})
	if err != nil {
		_ = b.Close()
		code := metaCode(err)
		if c.perms != nil && (code == cloudapi.CodeNoPermission || code == cloudapi.CodeConnectedCallLimit) {
			if _, perr := c.perms.MetaRefused(context.WithoutCancel(ctx), pair, code, nextAllowed(err)); perr != nil {
				c.log.Warn("permissions: meta refusal not recorded", "err", perr)
			}
		}
		c.invalidateLive(pnid, u)
		c.m.dials.WithLabelValues("refused").Inc()
		return agents.CallInfo{}, nil, &MetaError{Code: code, Err: err}
	}
	c.m.dials.WithLabelValues("placed").Inc()
	l.id = call.ID(id)
	l.lc.Rec.ID = l.id
	l.log = c.logCall(l.id)
	l.setBridge(b)
	l.mirror()
	l.log.Info("outbound call placed", "to", u.Masked(), "agent", agent)
	ci := c.info(l) // the actor has not started: l is still ours to read
	ci.Warning = c.hoursWarning(ctx, pnid)
	c.agentBusy(ctx, agent)
	c.register(l)
	if err := c.own(context.WithoutCancel(ctx), l.id); err != nil {
		l.log.Warn("cannot record ownership: other instances will not route to this call", "err", err)
	}
	return ci, l, nil
}

// mayCall checks WhatsApp's rules before a call: the local model, then
// Meta's live state, which wins when they disagree.
func (c *Controller) mayCall(ctx context.Context, u phone.User, pair permissions.Pair) error {
	var d permissions.Decision
	if c.perms != nil {
		var err error
		d, err = c.perms.CheckCall(ctx, pair)
		if err != nil && !d.Degraded {
			return fmt.Errorf("%w: permission state: %w", ErrStore, err)
		}
	} else {
		d.Allowed = true
	}
	var (
		p  *cloudapi.Permission
		ok bool
	)
	p, ok = c.livePermission(ctx, pair.Business, u) // through the number's own client
	if !ok {
		if !d.Allowed {
			return permissionError(d)
		}
		return nil
	}
	allowed, reason, frees := metaCallVerdict(p)
	switch {
	case allowed && !d.Allowed:
		c.disagree("call", u, false, "allowed")
		return nil
	case !allowed:
		if !d.Allowed && d.Reason != "" {
			return permissionError(d) // both say no: ours names the rule
		}
		c.disagree("call", u, true, string(reason))
		// Meta wins: correct the local model as Meta's refusal would.
		if c.perms != nil {
			code := cloudapi.CodeNoPermission
			if reason == permissions.ReasonConnectedCallLimit {
				code = cloudapi.CodeConnectedCallLimit
			}
			if _, err := c.perms.MetaRefused(ctx, pair, code, frees); err != nil {
				c.log.Warn("permissions: Meta's live state not recorded", "err", err)
			}
		}
		d.Allowed, d.CanCall, d.Reason = false, false, reason
		if reason == permissions.ReasonConnectedCallLimit {
			d.NextCallAt = frees
		}
		return permissionError(d)
	}
	return nil
}

// opaqueFor is the biz_opaque_callback_data of an outbound call: callgw's
// dial id and the agent, so that Meta's echo can be checked.
func opaqueFor(dialID, agent string) string {
	return "callgw:1:" + dialID + ":" + agent
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
