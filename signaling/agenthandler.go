package signaling

import (
	"context"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/signaling/agents"
)

// Welcome implements agents.Handler: ringing calls and the agent's own.
func (c *Controller) Welcome(s *agents.Session) []agents.CallInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []agents.CallInfo
	for _, l := range c.calls {
		ci := l.snap.Load()
		if ci == nil {
			continue
		}
		st := ParseState(ci.State)
		if st == StateRinging || (st.agentOwned() && ci.Agent == s.Agent) {
			out = append(out, *ci)
		}
	}
	return out
}

// PresenceChanged implements agents.Handler: an agent who becomes available
// hears the calls already ringing.
func (c *Controller) PresenceChanged(s *agents.Session) {
	if s.Presence() != agents.Available {
		return
	}
	c.mu.Lock()
	ls := make([]*liveCall, 0, len(c.calls))
	for _, l := range c.calls {
		ls = append(ls, l)
	}
	c.mu.Unlock()
	for _, l := range ls {
		l.post(func(l *liveCall) { l.offerTo(s) })
	}
}

// Closed implements agents.Handler. Calls do not depend on the socket: the
// agent leg's health decides (see checkAgentLeg).
func (c *Controller) Closed(*agents.Session) {}

// Handle implements agents.Handler.
func (c *Controller) Handle(ctx context.Context, s *agents.Session, m *agents.ClientMessage) error {
	switch m.Type {
	case agents.TypeDial:
		ci, err := c.Dial(ctx, s.Agent, m.To)
		if err != nil {
			return err
		}
		s.Send(agents.CallMsg{Type: agents.TypeCall, Ref: m.Ref, Call: ci})
		return nil
	case agents.TypePermissionQuery:
		d, err := c.PermissionState(ctx, m.To)
		if err != nil {
			return err
		}
		s.Send(agents.PermissionMsg{Type: agents.TypePermission, Ref: m.Ref, To: m.To, Permission: d})
		return nil
	case agents.TypePermissionRequest:
		d, err := c.RequestPermission(ctx, m.To, m.Text)
		if err != nil {
			return err
		}
		s.Send(agents.PermissionMsg{Type: agents.TypePermission, Ref: m.Ref, To: m.To, Permission: d})
		return nil
	}
	l := c.lookup(call.ID(m.CallID))
	if l == nil {
		return agents.Errorf(agents.CodeUnknownCall, "no such call", nil)
	}
	switch m.Type {
	case agents.TypeAccept:
		return l.ask(func(l *liveCall) error { return l.accept(s) })
	case agents.TypeReject:
		return l.ask(func(l *liveCall) error { return l.reject(s) })
	case agents.TypeAnswer:
		return l.ask(func(l *liveCall) error { return l.answer(s, m.SDP) })
	case agents.TypeICE:
		return l.ask(func(l *liveCall) error { return l.addCandidate(s, *m.Candidate) })
	case agents.TypeResume:
		return l.ask(func(l *liveCall) error { return l.resume(s) })
	case agents.TypeHangup:
		return l.ask(func(l *liveCall) error { return l.hangup(s) })
	case agents.TypeDTMF:
		return l.ask(func(l *liveCall) error { return l.dtmf(s, m.Digits) })
	}
	return agents.Errorf(agents.CodeBadMessage, "unsupported message", nil)
}
