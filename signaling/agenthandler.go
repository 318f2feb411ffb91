package signaling

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	lc "github.com/callgw/callgw/signaling/lifecycle"
)

// Welcome implements agents.Handler: the calls ringing anywhere and the
// agent's own calls, wherever their media lives.
func (c *Controller) Welcome(s *agents.Session) []agents.CallInfo {
	var out []agents.CallInfo
	for _, ci := range c.allCalls() {
		st := ParseState(ci.State)
		offered := st == StateRinging && len(ci.OfferedTo) == 0 || (st.Offered() && slices.Contains(ci.OfferedTo, s.Agent))
		if offered || (st.AgentOwned() && ci.Agent == s.Agent) {
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
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	ids, err := c.cl.liveCallIDs(ctx, 1000)
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
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	c.syncPresence(ctx)
	if !ref.Available {
		return
	}
	c.offerRinging(ref)
	c.agentFree(ref.Agent) // the longest-waiting caller of their teams, if any (route.go)
	_, _ = c.cl.publish(ctx, c.cl.agentsChannel(), busMsg{Kind: busAvailable, Ref: &ref})
}

func (c *Controller) offerRinging(ref agentRef) {
	for _, l := range c.liveCalls() {
		go l.post(func(l *liveCall) { l.offerTo(ref) })
	}
}

// Closed implements agents.Handler. Calls do not depend on the socket: the
// agent leg's health decides (see checkAgentLeg).
func (c *Controller) Closed(s *agents.Session) {
	c.dropPresence(s.ID)
	c.sessionGone(s.ID) // monitor legs (transfer.go)
}

// Handle implements agents.Handler. Domain errors become protocol error
// codes here, at the websocket edge (protocolError).
func (c *Controller) Handle(ctx context.Context, s *agents.Session, m *agents.ClientMessage) error {
	return protocolError(c.handle(ctx, s, m))
}

func (c *Controller) handle(ctx context.Context, s *agents.Session, m *agents.ClientMessage) error {
	switch m.Type {
	case agents.TypeDial, agents.TypePermissionQuery, agents.TypePermissionRequest:
		to, shown, err := c.numberFor(ctx, m)
		if err != nil {
			return err
		}
		from, err := c.callingNumber(s.Agent, m.From) // the business number (route: dial.from)
		if err != nil {
			return err
		}
		switch m.Type {
		case agents.TypeDial:
			ci, start, err := c.dialStartFrom(ctx, s.Agent, to, from)
			if err != nil {
				return err
			}
			s.Send(agents.CallMsg{Type: agents.TypeCall, Ref: m.Ref, Call: ci})
			start() // the offer follows the reply
			return nil
		case agents.TypePermissionQuery:
			c.watchPermission(ctx, to, s.Agent, shown == to)
			d, err := c.permissionStateFrom(ctx, to, from)
			if err != nil {
				return err
			}
			s.Send(agents.PermissionMsg{Type: agents.TypePermission, Ref: m.Ref, To: shown, CallID: m.CallID, Permission: d})
			return nil
		default:
			// Watch first: the user's reply may come before the request returns.
			c.watchPermission(ctx, to, s.Agent, shown == to)
			d, err := c.requestPermissionFrom(ctx, to, m.Text, from)
			if err != nil {
				return err
			}
			s.Send(agents.PermissionMsg{Type: agents.TypePermission, Ref: m.Ref, To: shown, CallID: m.CallID, Permission: d})
			return nil
		}
	}
	if m.Type == agents.TypeRecordingStop {
		return c.recordingStopMsg(ctx, s, m) // recording.go
	}
	return c.commandAt(ctx, refOf(s), m)
}

// localCommand applies an agent command to a call this instance owns.
func (c *Controller) localCommand(ref agentRef, m *agents.ClientMessage) error {
	l := c.lookup(call.ID(m.CallID))
	if l == nil {
		return ErrUnknownCall
	}
	if ok, err := c.transferCommand(l, ref, m); ok { // hold, transfer, monitor: transfer.go
		return err
	}
	w := lc.When{At: c.now()}
	var build func(*liveCall) lc.Event
	switch m.Type {
	case agents.TypeAccept:
		build = func(*liveCall) lc.Event { return lc.AgentAccept{When: w, Agent: ref.Agent, Available: ref.Available} }
	case agents.TypeReject:
		build = func(l *liveCall) lc.Event {
			if l.route.routed {
				return lc.AgentDecline{When: w, Agent: ref.Agent, Others: 1} // routing decides what follows (route.go)
			}
			others := 0
			for a := range c.availableAgents() {
				if a != ref.Agent && !l.lc.Declined[a] {
					others++
				}
			}
			return lc.AgentDecline{When: w, Agent: ref.Agent, Others: others}
		}
	case agents.TypeAnswer:
		build = func(l *liveCall) lc.Event {
			if l.lc.Agent == ref.Agent {
				l.agentSDP = m.SDP
			}
			return lc.AgentAnswer{When: w, Agent: ref.Agent}
		}
	case agents.TypeICE:
		build = func(l *liveCall) lc.Event {
			l.candidate = *m.Candidate
			return lc.AgentCommand{When: w, Agent: ref.Agent, Kind: lc.CmdICE}
		}
	case agents.TypeResume:
		build = func(*liveCall) lc.Event { return lc.AgentCommand{When: w, Agent: ref.Agent, Kind: lc.CmdResume} }
	case agents.TypeDTMF:
		build = func(l *liveCall) lc.Event {
			l.digits = m.Digits
			return lc.AgentCommand{When: w, Agent: ref.Agent, Kind: lc.CmdDTMF}
		}
	case agents.TypeHangup:
		build = func(*liveCall) lc.Event { return lc.AgentHangup{When: w, Agent: ref.Agent} }
	default:
		return fmt.Errorf("%w: unsupported message", ErrBadCommand)
	}
	return l.ask(m.Ref, build)
}

// numberFor returns the number a dial or permission message is about, and
// how to show it back: "to" as given, or the number of the earlier call
// named by call_id (shown masked when numbers are masked).
func (c *Controller) numberFor(ctx context.Context, m *agents.ClientMessage) (number, shown string, err error) {
	if m.To != "" {
		return m.To, m.To, nil
	}
	sc, err := c.store.load(ctx, call.ID(m.CallID))
	if err != nil {
		return "", "", err
	}
	if sc.Record.UserPhone == "" {
		return "", "", ErrNoCallback
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
	u, err := c.resolveUser(ctx, to)
	if err != nil {
		return
	}
	if err := c.store.watchPermission(ctx, u.Key(), watcher{Agent: agent, Masked: !full}); err != nil {
		c.m.redisErrors.WithLabelValues("permission_watch").Inc()
	}
}

// protocolError maps call control's errors to the agent protocol's codes.
func protocolError(err error) error {
	if err == nil {
		return nil
	}
	var (
		ce *agents.CodedError
		me *MetaError
		pe *PermissionError
	)
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &pe):
		return &agents.CodedError{Code: string(pe.Reason), Message: pe.Text(), Err: err}
	case errors.As(err, &me):
		return &agents.CodedError{Code: agents.CodeMetaError, Message: me.Reason(), MetaCode: me.Code, Err: err}
	}
	for _, m := range []struct {
		err        error
		code, text string
	}{
		{ErrCallTaken, agents.CodeCallTaken, "another agent took the call"},
		{ErrNotYourCall, agents.CodeNotYourCall, "the call belongs to another agent"},
		{ErrNotAvailable, agents.CodeNotAvailable, "set yourself available to take calls"},
		{ErrOutOfTurn, agents.CodeOutOfTurn, "not possible in the call's current state"},
		{ErrCallEnded, agents.CodeUnknownCall, "the call has ended"},
		{ErrUnknownCall, agents.CodeUnknownCall, "no such call (call records are kept 7 days)"},
		{ErrInvalidNumber, agents.CodeInvalidNumber, "not a valid phone number"},
		{ErrTemplateRequired, "template_required", "outside the user's 24 h customer service window a permission request must be a template, and none is configured"},
		{ErrNoCallback, agents.CodeInvalidNumber, "that caller has no phone number to call back"},
		{ErrInvalidSDP, agents.CodeInvalidSDP, "the SDP could not be applied"},
		{ErrBadCommand, agents.CodeBadMessage, "the command could not be carried out"},
		{ErrDraining, agents.CodeUnavailable, "this instance is shutting down"},
		{ErrStore, agents.CodeUnavailable, "state store unavailable, try again"},
		{ErrNotConfigured, agents.CodeUnavailable, "outbound calling is not configured"},
		{ErrMediaSetup, agents.CodeInternal, "media setup failed"},
		{ErrForbidden, agents.CodeForbidden, "your role may not do this"},
		{lc.ErrNoTarget, agents.CodeNoTarget, "nobody available to transfer the call to"},
		{ErrUnknownBusinessNumber, CodeUnknownNumber, "not a business number this deployment serves"},
		{ErrNotYourNumber, CodeNotYourNumber, "you may only call from the numbers of your teams"},
	} {
		if errors.Is(err, m.err) {
			return &agents.CodedError{Code: m.code, Message: m.text, Err: err}
		}
	}
	return &agents.CodedError{Code: agents.CodeInternal, Message: "internal error", Err: err}
}
