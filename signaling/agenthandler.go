package signaling

import (
	"context"
	"errors"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/phone"
	"github.com/callgw/callgw/signaling/agents"
)

// Welcome implements agents.Handler: the calls ringing anywhere and the
// agent's own calls, wherever their media lives.
func (c *Controller) Welcome(s *agents.Session) []agents.CallInfo {
	var out []agents.CallInfo
	for _, ci := range c.allCalls() {
		st := ParseState(ci.State)
		if st == StateRinging || (st.agentOwned() && ci.Agent == s.Agent) {
			out = append(out, ci)
		}
	}
	return out
}

// allCalls returns the live calls of every instance: this instance's from
// memory, the others' from their last saved state.
func (c *Controller) allCalls() []agents.CallInfo {
	c.mu.Lock()
	local := map[call.ID]agents.CallInfo{}
	for id, l := range c.calls {
		if ci := l.snap.Load(); ci != nil && id != "" {
			local[id] = *ci
		}
	}
	c.mu.Unlock()
	out := make([]agents.CallInfo, 0, len(local))
	for _, ci := range local {
		out = append(out, ci)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ids, err := c.cl.rdb.ZRange(ctx, c.cl.leasesKey(), 0, 999).Result()
	if err != nil {
		return out
	}
	for _, sid := range ids {
		if _, ok := local[call.ID(sid)]; ok {
			continue
		}
		sc, err := c.store.load(ctx, call.ID(sid))
		if err != nil || sc.Info == nil || sc.State == StateEnded.String() {
			continue
		}
		out = append(out, *sc.Info)
	}
	return out
}

// PresenceChanged implements agents.Handler: an agent who becomes available
// hears the calls already ringing, on every instance.
func (c *Controller) PresenceChanged(s *agents.Session) {
	ref := refOf(s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.syncPresence(ctx)
	if !ref.Available {
		return
	}
	c.offerRinging(ref)
	_, _ = c.cl.publish(ctx, c.cl.agentsChannel(), busMsg{Kind: "available", Ref: &ref})
}

func (c *Controller) offerRinging(ref agentRef) {
	for _, l := range c.liveCalls() {
		go l.post(func(l *liveCall) { l.offerTo(ref) })
	}
}

// Closed implements agents.Handler. Calls do not depend on the socket: the
// agent leg's health decides (see checkAgentLeg).
func (c *Controller) Closed(s *agents.Session) { c.dropPresence(s.ID) }

// Handle implements agents.Handler.
func (c *Controller) Handle(ctx context.Context, s *agents.Session, m *agents.ClientMessage) error {
	switch m.Type {
	case agents.TypeDial, agents.TypePermissionQuery, agents.TypePermissionRequest:
		to, shown, err := c.numberFor(ctx, m)
		if err != nil {
			return err
		}
		switch m.Type {
		case agents.TypeDial:
			ci, err := c.Dial(ctx, s.Agent, to)
			if err != nil {
				return err
			}
			s.Send(agents.CallMsg{Type: agents.TypeCall, Ref: m.Ref, Call: ci})
			return nil
		case agents.TypePermissionQuery:
			c.watchPermission(ctx, to, s.Agent, shown == to)
			d, err := c.PermissionState(ctx, to)
			if err != nil {
				return err
			}
			s.Send(agents.PermissionMsg{Type: agents.TypePermission, Ref: m.Ref, To: shown, CallID: m.CallID, Permission: d})
			return nil
		default:
			// Watch first: the user's reply may come before the request returns.
			c.watchPermission(ctx, to, s.Agent, shown == to)
			d, err := c.RequestPermission(ctx, to, m.Text)
			if err != nil {
				return err
			}
			s.Send(agents.PermissionMsg{Type: agents.TypePermission, Ref: m.Ref, To: shown, CallID: m.CallID, Permission: d})
			return nil
		}
	}
	ref := refOf(s)
	id := call.ID(m.CallID)
	if c.lookup(id) != nil {
		return c.localCommand(ref, m)
	}
	owner, err := c.ownerOf(ctx, id)
	if err != nil {
		return &agents.CodedError{Code: agents.CodeUnavailable, Message: "state store unavailable, try again", Err: err}
	}
	if owner == "" || owner == c.cl.id {
		return agents.Errorf(agents.CodeUnknownCall, "no such call", nil)
	}
	return c.forwardCommand(ctx, owner, ref, m)
}

// localCommand applies an agent command to a call this instance owns.
func (c *Controller) localCommand(ref agentRef, m *agents.ClientMessage) error {
	l := c.lookup(call.ID(m.CallID))
	if l == nil {
		return agents.Errorf(agents.CodeUnknownCall, "no such call", nil)
	}
	switch m.Type {
	case agents.TypeAccept:
		return l.ask(func(l *liveCall) error { return l.accept(ref) })
	case agents.TypeReject:
		return l.ask(func(l *liveCall) error { return l.reject(ref) })
	case agents.TypeAnswer:
		return l.ask(func(l *liveCall) error { return l.answer(ref, m.SDP) })
	case agents.TypeICE:
		return l.ask(func(l *liveCall) error { return l.addCandidate(ref, *m.Candidate) })
	case agents.TypeResume:
		return l.ask(func(l *liveCall) error { return l.resume(ref) })
	case agents.TypeHangup:
		return l.ask(func(l *liveCall) error { return l.hangup(ref) })
	case agents.TypeDTMF:
		return l.ask(func(l *liveCall) error { return l.dtmf(ref, m.Digits) })
	}
	return agents.Errorf(agents.CodeBadMessage, "unsupported message", nil)
}

// numberFor returns the number a dial or permission message is about, and
// how to show it back: "to" as given, or the number of the earlier call
// named by call_id (shown masked when numbers are masked).
func (c *Controller) numberFor(ctx context.Context, m *agents.ClientMessage) (number, shown string, err error) {
	if m.To != "" {
		return m.To, m.To, nil
	}
	sc, err := c.store.load(ctx, call.ID(m.CallID))
	if errors.Is(err, ErrUnknownCall) {
		return "", "", agents.Errorf(agents.CodeUnknownCall, "no such call (call records are kept 7 days)", nil)
	}
	if err != nil {
		return "", "", &agents.CodedError{Code: agents.CodeUnavailable, Message: "state store unavailable, try again", Err: err}
	}
	if sc.Record.UserPhone == "" {
		return "", "", agents.Errorf(agents.CodeInvalidNumber, "that caller has no phone number to call back", nil)
	}
	shown = sc.Record.UserPhone
	if c.cfg.MaskNumbers {
		shown = phone.Mask(shown)
	}
	return sc.Record.UserPhone, shown, nil
}

// watchPermission remembers that agent follows a number's permission, so
// the user's reply is pushed to the agents who asked, and only to them, in
// the form they know it (full, or masked for a call back of a masked caller).
func (c *Controller) watchPermission(ctx context.Context, to, agent string, full bool) {
	n, err := phone.Parse(to)
	if err != nil {
		return
	}
	form := "masked"
	if full {
		form = "full"
	}
	if err := c.store.watchPermission(ctx, n.Digits, agent+"|"+form); err != nil {
		c.m.redisErrors.WithLabelValues("permission_watch").Inc()
	}
}
