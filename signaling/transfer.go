package signaling

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/signaling/agents"
	lc "github.com/callgw/callgw/signaling/lifecycle"
)

// Hold, transfer and supervisor monitoring of connected calls (issue 14).
// Decisions are lifecycle events (lifecycle/transfer.go); this file runs
// their effects on the bridge's side legs (media/side.go) and routes the
// agent commands. Monitoring changes no lifecycle state: it runs in the
// call's actor directly.

// sideBridge is what transfer and monitoring need of the bridge.
type sideBridge interface {
	OfferSide(ctx context.Context, id string, m media.SideMode) (string, error)
	SetSideAnswer(id, sdp string) error
	AddSideCandidate(id string, c webrtc.ICECandidateInit) error
	SetSideMode(id string, m media.SideMode) error
	PromoteSide(id string) error
	CloseSide(id string) error
	SideStats(id string) (media.SideStats, bool)
	CloseAgent() error
}

// consultID is the side leg of a warm transfer's consultation.
const consultID = "consult"

// monitorPrefix + session id is a supervisor's monitor leg.
const monitorPrefix = "mon:"

// ErrForbidden: the session's role may not do this.
var ErrForbidden = errors.New("signaling: forbidden for this role")

// transferState is the liveCall's part of transfers and monitoring.
type transferState struct {
	consultSDP  string
	consultCand webrtc.ICECandidateInit
	consultTo   atomic.Value      // string: who receives the consult leg's candidates (media goroutines read it)
	monitors    map[string]string // side id -> supervisor session (actor only)
	monitorSess sessionSet        // session ids with a monitor leg (media goroutines read it)
	expires     time.Time         // when a ringing transfer gives up
	busy        atomic.Bool       // a transfer is under way (set by mirror; read by command routing)
}

// sessionSet is a small copy-on-write set read without a lock.
type sessionSet struct {
	p atomic.Pointer[map[string]bool]
}

func (s *sessionSet) has(id string) bool {
	m := s.p.Load()
	return m != nil && (*m)[id]
}

func (s *sessionSet) set(id string, on bool) {
	old := map[string]bool{}
	if m := s.p.Load(); m != nil {
		old = *m
	}
	n := make(map[string]bool, len(old)+1)
	for k, v := range old {
		n[k] = v
	}
	if on {
		n[id] = true
	} else {
		delete(n, id)
	}
	s.p.Store(&n)
}

func (l *liveCall) sides() (sideBridge, error) {
	sb, ok := l.bridge.(sideBridge)
	if !ok || l.bridge == nil {
		return nil, fmt.Errorf("%w: no media bridge with side legs", ErrBadCommand)
	}
	return sb, nil
}

// transferCommand handles the agent commands of hold, transfer and
// monitoring, and the usual commands of a transfer's target (accept,
// reject, answer, ice, hangup). False when m is none of them.
func (c *Controller) transferCommand(l *liveCall, ref agentRef, m *agents.ClientMessage) (bool, error) {
	w := lc.When{At: c.now()}
	switch m.Type {
	case agents.TypeHold, agents.TypeUnhold:
		on := m.Type == agents.TypeHold
		return true, l.ask(m.Ref, func(*liveCall) lc.Event { return lc.HoldRequest{When: w, Agent: ref.Agent, On: on} })
	case agents.TypeTransfer:
		targets, err := c.transferTargets(ref.Agent, m.Agent, m.Team)
		if err != nil {
			return true, err
		}
		mode := lc.ParseTransferMode(m.Mode)
		return true, l.ask(m.Ref, func(*liveCall) lc.Event {
			return lc.TransferRequest{When: w, Agent: ref.Agent, Mode: mode, Team: m.Team, Targets: targets}
		})
	case agents.TypeTransferComplete:
		return true, l.ask(m.Ref, func(l *liveCall) lc.Event {
			up := false
			if sb, err := l.sides(); err == nil {
				st, ok := sb.SideStats(consultID)
				up = ok && st.State == media.LegConnected
			}
			return lc.TransferComplete{When: w, Agent: ref.Agent, SideUp: up}
		})
	case agents.TypeTransferCancel:
		return true, l.ask(m.Ref, func(*liveCall) lc.Event { return lc.TransferCancel{When: w, Agent: ref.Agent} })
	case agents.TypeMonitor, agents.TypeMonitorAnswer, agents.TypeMonitorICE, agents.TypeMonitorStop:
		if ref.Role != agents.RoleSupervisor {
			return true, ErrForbidden
		}
		return true, l.act(m.Ref, func(l *liveCall) error { return l.monitor(ref, m) })
	}
	// A transfer's target uses the usual commands; the actor decides.
	switch m.Type {
	case agents.TypeAccept, agents.TypeReject, agents.TypeAnswer, agents.TypeICE, agents.TypeHangup:
	default:
		return false, nil
	}
	if !l.xfer.busy.Load() {
		return false, nil // the usual path (no extra trip through the actor)
	}
	handled := false
	err := l.act(m.Ref, func(l *liveCall) error {
		x := l.lc.Transfer
		consulting := x.Phase == lc.TransferConsulting && x.To == ref.Agent && l.lc.Agent != ref.Agent
		var ev lc.Event
		switch {
		case m.Type == agents.TypeAccept && x.Offered(ref.Agent):
			ev = lc.TransferAccept{When: w, Agent: ref.Agent}
		case m.Type == agents.TypeReject && x.Offered(ref.Agent):
			ev = lc.TransferDecline{When: w, Agent: ref.Agent}
		case m.Type == agents.TypeAnswer && consulting:
			l.xfer.consultSDP = m.SDP
			ev = lc.ConsultCommand{When: w, Agent: ref.Agent, Answer: true}
		case m.Type == agents.TypeICE && consulting:
			l.xfer.consultCand = *m.Candidate
			if l.xfer.consultCand.Candidate == "" {
				handled = true
				return nil // end of candidates
			}
			ev = lc.ConsultCommand{When: w, Agent: ref.Agent}
		case m.Type == agents.TypeHangup && consulting:
			ev = lc.ConsultLegChanged{When: w, Leg: lc.LegDown}
		default:
			return nil
		}
		handled = true
		return l.step(ev)
	})
	if !handled && err == nil {
		return false, nil
	}
	return true, err
}

// transferTargets resolves a transfer's target: one available agent, or a
// team's available agents not in a call.
func (c *Controller) transferTargets(from, agent, team string) ([]string, error) {
	avail := c.availableAgents()
	if agent != "" {
		if agent == from || !avail[agent] || c.busyAgents()[agent] {
			return nil, fmt.Errorf("%w: %s is not available", lc.ErrNoTarget, agent)
		}
		return []string{agent}, nil
	}
	cfg := c.routingConfig()
	if cfg == nil {
		return nil, fmt.Errorf("%w: no teams configured", lc.ErrNoTarget)
	}
	t, ok := cfg.Team(config.TeamID(team))
	if !ok {
		return nil, fmt.Errorf("%w: no team %q", lc.ErrNoTarget, team)
	}
	busy := c.busyAgents()
	var out []string
	for a := range avail {
		if a != from && !busy[a] && t.Has(config.AgentID(a)) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: nobody of team %q is available", lc.ErrNoTarget, team)
	}
	slices.Sort(out)
	return out, nil
}

// act runs f in the call's actor and returns its error (like ask, for work
// that is not one lifecycle event).
func (l *liveCall) act(ref string, f func(*liveCall) error) error {
	res := make(chan error, 1)
	if !l.post(func(l *liveCall) {
		l.ref = ref
		res <- f(l)
		l.ref = ""
	}) {
		return ErrCallEnded
	}
	select {
	case err := <-res:
		return err
	case <-l.done:
		select {
		case err := <-res:
			return err
		default:
			return ErrCallEnded
		}
	}
}

// execTransfer runs the effects of lifecycle/transfer.go; false when f is
// not one of them.
func (l *liveCall) execTransfer(f lc.Effect) (bool, error) {
	c := l.c
	switch e := f.(type) {
	case lc.SetHold:
		return true, l.setHold(e.On)
	case lc.OfferConsult:
		sb, err := l.sides()
		if err != nil {
			l.then(lc.ConsultLegChanged{When: l.when(), Leg: lc.LegDown})
			return true, err
		}
		to := l.lc.Transfer.To
		l.xfer.consultTo.Store(to)
		ctx, cancel := c.opCtx(5 * time.Second)
		offer, err := sb.OfferSide(ctx, consultID, media.SideConsult)
		cancel()
		if err != nil {
			l.log.Warn("consult leg", "err", err)
			l.then(lc.ConsultLegChanged{When: l.when(), Leg: lc.LegDown})
			return true, fmt.Errorf("%w: %w", ErrMediaSetup, err)
		}
		c.toAgent(to, agents.SDPMsg{Type: agents.TypeOffer, Ref: l.ref, CallID: string(l.id), SDP: offer})
	case lc.ApplyConsultAnswer:
		sb, err := l.sides()
		if err != nil {
			return true, err
		}
		sdp := l.xfer.consultSDP
		l.xfer.consultSDP = ""
		if err := sb.SetSideAnswer(consultID, sdp); err != nil {
			return true, fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
	case lc.ForwardConsultICE:
		sb, err := l.sides()
		if err != nil {
			return true, err
		}
		if err := sb.AddSideCandidate(consultID, l.xfer.consultCand); err != nil {
			return true, fmt.Errorf("%w: the candidate could not be added: %w", ErrBadCommand, err)
		}
	case lc.PromoteConsult:
		sb, err := l.sides()
		if err == nil {
			err = sb.PromoteSide(consultID)
		}
		if err != nil {
			l.log.Warn("warm transfer: promote the consult leg", "err", err)
			l.then(lc.AgentLegChanged{When: l.when(), Leg: lc.LegDown})
		}
	case lc.CloseConsult:
		if sb, err := l.sides(); err == nil {
			if err := sb.CloseSide(consultID); err != nil && !errors.Is(err, media.ErrNoSide) {
				l.log.Warn("close the consult leg", "err", err)
			}
		}
		l.xfer.consultTo.Store("")
	case lc.CloseAgentLeg:
		if sb, err := l.sides(); err == nil {
			if err := sb.CloseAgent(); err != nil {
				l.log.Warn("close the agent leg", "err", err)
			}
		}
	case lc.TellTransfer:
		l.tellTransfer(e)
	default:
		return false, nil
	}
	return true, nil
}

// tellTransfer tells the agents concerned about the transfer (as it was
// when the event came).
func (l *liveCall) tellTransfer(e lc.TellTransfer) {
	c := l.c
	id := string(l.id)
	var targets []string
	if e.Targets != "" {
		targets = strings.Split(e.Targets, ",")
	}
	mode := e.Mode.String()
	switch e.What {
	case lc.TransferOffered:
		ci := c.info(l)
		for _, a := range targets {
			c.toAgent(a, agents.CallMsg{Type: agents.TypeCallOffered, Call: ci})
		}
	case lc.TransferTaken:
		for _, a := range targets {
			if a != e.To {
				c.toAgent(a, agents.CallTaken{Type: agents.TypeCallTaken, CallID: id, Agent: e.To})
			}
		}
		c.m.transfers.WithLabelValues(mode, "taken").Inc()
	case lc.TransferEnded:
		for _, a := range targets {
			if a != e.To {
				c.toAgent(a, agents.CallTaken{Type: agents.TypeCallTaken, CallID: id})
			}
		}
		if e.To != "" && e.To != l.lc.Agent {
			c.toAgent(e.To, agents.CallEnded{Type: agents.TypeCallEnded, CallID: id, Reason: "transfer_cancelled",
				Outcome: "answered"})
		}
		c.m.transfers.WithLabelValues(mode, "back").Inc()
	case lc.TransferHandedOff:
		if e.From != "" {
			c.toAgent(e.From, agents.CallEnded{Type: agents.TypeCallEnded, CallID: id, Reason: "transferred", Outcome: "answered"})
		}
	case lc.TransferConsult:
		if e.To != "" {
			c.toAgent(e.To, agents.CallMsg{Type: agents.TypeCall, Ref: l.ref, Call: c.info(l)})
		}
	}
}

// transferInfo adds hold and transfer to what agents see of the call.
func (l *liveCall) transferInfo(ci *agents.CallInfo) {
	ci.OnHold = l.lc.OnHold
	x := l.lc.Transfer
	l.xfer.busy.Store(x.Active())
	if !x.Active() {
		return
	}
	ti := &agents.TransferInfo{Phase: x.Phase.String(), Mode: x.Mode.String(), From: x.From, To: x.To, Team: x.Team}
	if x.Phase == lc.TransferRinging {
		ti.ExpiresAt = l.xfer.expires.UTC()
	}
	ci.Transfer = ti
}

// ---- media callbacks of side legs ----

func (l *liveCall) onSideCandidate(id string, cand webrtc.ICECandidateInit) {
	c := l.c
	if id == consultID {
		if to, _ := l.xfer.consultTo.Load().(string); to != "" {
			c.toAgent(to, agents.ICEMsg{Type: agents.TypeICE, CallID: string(l.id), Candidate: cand})
		}
		return
	}
	if sess, ok := strings.CutPrefix(id, monitorPrefix); ok && l.xfer.monitorSess.has(sess) {
		c.tell(audience{Session: sess}, agents.MonitorICEMsg{Type: agents.TypeMonitorICE, CallID: string(l.id), Candidate: cand})
	}
}

func (l *liveCall) onSideState(id string, s media.LegState) {
	if id == consultID {
		l.fire(lc.ConsultLegChanged{When: l.when(), Leg: legOf(s)})
		return
	}
	if sess, ok := strings.CutPrefix(id, monitorPrefix); ok {
		switch s {
		case media.LegConnected, media.LegFailed, media.LegClosed:
			l.c.tell(audience{Session: sess}, agents.MonitorMsg{Type: agents.TypeMonitorState, CallID: string(l.id), State: s.String()})
		}
		if s == media.LegFailed {
			l.post(func(l *liveCall) { l.stopMonitor(sess) })
		}
	}
}

// ---- monitoring (supervisors) ----

func (l *liveCall) monitor(ref agentRef, m *agents.ClientMessage) error {
	if l.lc.State != lc.StateConnected {
		return ErrOutOfTurn
	}
	sb, err := l.sides()
	if err != nil {
		return err
	}
	id := monitorPrefix + ref.Session
	if l.xfer.monitors == nil {
		l.xfer.monitors = map[string]string{}
	}
	c := l.c
	switch m.Type {
	case agents.TypeMonitor:
		mode, err := media.ParseSideMode(m.Mode)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadCommand, err)
		}
		if _, on := l.xfer.monitors[id]; on {
			if err := sb.SetSideMode(id, mode); err != nil {
				return monitorErr(err)
			}
			c.m.monitors.WithLabelValues(mode.String()).Inc()
			c.tell(audience{Session: ref.Session}, agents.MonitorMsg{Type: agents.TypeMonitorState, Ref: m.Ref, CallID: string(l.id), Mode: mode.String(), State: "mode"})
			return nil
		}
		l.xfer.monitors[id] = ref.Session
		l.xfer.monitorSess.set(ref.Session, true)
		ctx, cancel := c.opCtx(5 * time.Second)
		offer, err := sb.OfferSide(ctx, id, mode)
		cancel()
		if err != nil {
			delete(l.xfer.monitors, id)
			l.xfer.monitorSess.set(ref.Session, false)
			return monitorErr(err)
		}
		c.m.monitors.WithLabelValues(mode.String()).Inc()
		l.log.Info("supervisor monitors", "supervisor", ref.Agent, "mode", mode.String())
		c.tell(audience{Session: ref.Session}, agents.MonitorMsg{Type: agents.TypeMonitorOffer, Ref: m.Ref, CallID: string(l.id), SDP: offer, Mode: mode.String()})
	case agents.TypeMonitorAnswer:
		if _, on := l.xfer.monitors[id]; !on {
			return ErrOutOfTurn
		}
		if err := sb.SetSideAnswer(id, m.SDP); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
		}
	case agents.TypeMonitorICE:
		if _, on := l.xfer.monitors[id]; !on {
			return ErrOutOfTurn
		}
		if m.Candidate.Candidate == "" {
			return nil
		}
		if err := sb.AddSideCandidate(id, *m.Candidate); err != nil {
			return fmt.Errorf("%w: the candidate could not be added: %w", ErrBadCommand, err)
		}
	case agents.TypeMonitorStop:
		if _, on := l.xfer.monitors[id]; !on {
			return ErrOutOfTurn
		}
		l.stopMonitor(ref.Session)
	}
	return nil
}

func monitorErr(err error) error {
	if errors.Is(err, media.ErrSideBusy) {
		return fmt.Errorf("%w: another supervisor or a transfer talks on this call", ErrOutOfTurn)
	}
	return fmt.Errorf("%w: %w", ErrMediaSetup, err)
}

// stopMonitor closes session's monitor leg (in the actor).
func (l *liveCall) stopMonitor(session string) {
	id := monitorPrefix + session
	if _, on := l.xfer.monitors[id]; !on {
		return
	}
	delete(l.xfer.monitors, id)
	l.xfer.monitorSess.set(session, false)
	if sb, err := l.sides(); err == nil {
		if err := sb.CloseSide(id); err != nil && !errors.Is(err, media.ErrNoSide) {
			l.log.Warn("close a monitor leg", "err", err)
		}
	}
	l.c.tell(audience{Session: session}, agents.MonitorMsg{Type: agents.TypeMonitorState, CallID: string(l.id), State: "closed"})
}

// sessionGone closes the monitor legs of a closed supervisor session.
func (c *Controller) sessionGone(session string) {
	for _, l := range c.liveCalls() {
		if l.xfer.monitorSess.has(session) {
			l.post(func(l *liveCall) { l.stopMonitor(session) })
		}
	}
}

func (m *metrics) transferMetrics() {
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "transfers_total",
		Help: "Call transfers by mode (blind, warm) and result (taken: a target took it; back: cancelled, declined or unanswered)."},
		[]string{"mode", "result"})
	m.monitors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "monitor_sessions_total",
		Help: "Supervisor monitor legs opened or switched, by mode (listen, whisper, takeover)."}, []string{"mode"})
	m.holds = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "callgw", Name: "holds_total",
		Help: "Times a caller was put on hold."})
}

// Command runs a hold or transfer command (REST) as agent would on its
// websocket; an empty agent acts as the agent who owns the call
// (supervisors and admins). Errors are protocol errors (agents.CodedError).
func (c *Controller) Command(ctx context.Context, agent string, m *agents.ClientMessage) error {
	switch m.Type {
	case agents.TypeHold, agents.TypeUnhold, agents.TypeTransfer, agents.TypeTransferComplete, agents.TypeTransferCancel:
	default:
		return protocolError(fmt.Errorf("%w: %s is not a REST command", ErrBadCommand, m.Type))
	}
	if agent == "" {
		for _, ci := range c.allCalls() {
			if ci.ID == m.CallID {
				agent = ci.Agent
			}
		}
		if agent == "" {
			return protocolError(ErrUnknownCall)
		}
	}
	ref := agentRef{Session: "rest", Agent: agent, Available: true, Role: agents.RoleAgent}
	return protocolError(c.commandAt(ctx, ref, m))
}

// commandAt applies m here when this instance holds the call, else on its owner.
func (c *Controller) commandAt(ctx context.Context, ref agentRef, m *agents.ClientMessage) error {
	id := call.ID(m.CallID)
	if c.lookup(id) != nil {
		return c.localCommand(ref, m)
	}
	owner, err := c.ownerOf(ctx, id)
	if err != nil {
		return err
	}
	if owner == "" || owner == c.cl.id {
		return ErrUnknownCall
	}
	return c.forwardCommand(ctx, owner, ref, m)
}
