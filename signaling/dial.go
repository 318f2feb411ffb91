package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/cloudapi"
	lc "github.com/callgw/callgw/signaling/lifecycle"
)

// Dial places a business-initiated call from agent to a number: the
// permission check, our offer, Graph connect, then the call's lifecycle
// (Meta's connect webhook brings its answer while the phone rings; ACCEPTED
// is pickup).
func (c *Controller) Dial(ctx context.Context, agent, to string) (agents.CallInfo, error) {
	n, err := phone.Parse(to)
	if err != nil {
		return agents.CallInfo{}, fmt.Errorf("%w: %w", ErrInvalidNumber, err)
	}
	if c.dial == nil {
		return agents.CallInfo{}, fmt.Errorf("%w: outbound calling", ErrNotConfigured)
	}
	if c.draining.Load() {
		return agents.CallInfo{}, ErrDraining
	}
	pair := c.pairFor(n)
	if c.perms != nil {
		d, err := c.perms.CheckCall(ctx, pair)
		if err != nil && !d.Degraded {
			return agents.CallInfo{}, fmt.Errorf("%w: permission state: %w", ErrStore, err)
		}
		if !d.Allowed {
			return agents.CallInfo{}, permissionError(d)
		}
	}
	l := newLiveCall(c, call.Record{Direction: call.BusinessInitiated, PhoneNumberID: c.cfg.PhoneNumberID,
		UserPhone: n.E164, Agent: agent, CreatedAt: c.now(), MetaDuration: -1})
	b, err := c.media.NewBridge("dial-"+newRequestID(), l.events())
	if err != nil {
		return agents.CallInfo{}, fmt.Errorf("%w: %w", ErrMediaSetup, err)
	}
	octx, cancel := c.opCtx(10 * time.Second)
	defer cancel()
	offer, err := b.OfferWhatsApp(octx)
	if err != nil {
		_ = b.Close()
		return agents.CallInfo{}, fmt.Errorf("%w: %w", ErrMediaSetup, err)
	}
	id, err := c.dial.Connect(octx, n.Digits, offer, "")
	if err != nil {
		_ = b.Close()
		code := metaCode(err)
		if c.perms != nil && (code == cloudapi.CodeNoPermission || code == cloudapi.CodeConnectedCallLimit) {
			if _, perr := c.perms.MetaRefused(context.WithoutCancel(ctx), pair, code, nextAllowed(err)); perr != nil {
				c.log.Warn("permissions: meta refusal not recorded", "err", perr)
			}
		}
		c.m.dials.WithLabelValues("refused").Inc()
		return agents.CallInfo{}, &MetaError{Code: code, Err: err}
	}
	c.m.dials.WithLabelValues("placed").Inc()
	l.id = call.ID(id)
	l.lc.Rec.ID = l.id
	l.log = c.logCall(l.id)
	l.setBridge(b)
	l.mirror()
	l.log.Info("outbound call placed", "to", phone.Mask(n.E164), "agent", agent)
	ci := c.info(l) // the actor has not started: l is still ours to read
	c.register(l)
	if err := c.own(context.WithoutCancel(ctx), l.id); err != nil {
		l.log.Warn("cannot record ownership: other instances will not route to this call", "err", err)
	}
	l.fire(lc.Begin{When: l.when()})
	c.drainEarly(context.WithoutCancel(ctx), l)
	return ci, nil
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
