package signaling

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/signaling/agents"
	lc "github.com/callgw/callgw/signaling/lifecycle"
	"github.com/callgw/callgw/signaling/routing"
)

// Routing of user-initiated calls (with Deps.Router): the number called →
// its teams in order → routing.Pick per team strategy, cluster-wide;
// ring_all offers every free member at once, round_robin and longest_idle
// one member for the team's ring_seconds, then the next. Nobody free and a
// team of the number has a queue: callgw answers the call itself
// (lifecycle.StateWaiting), the caller hears the number's hold audio, and
// the longest-waiting caller is offered to the first agent who frees up.
// Without a Router every available agent is offered every call (the
// behaviour before teams).

// callRoute is a live call's routing state (actor-owned).
type callRoute struct {
	routed     bool
	number     config.Number
	teamIdx    int           // the number's team being tried
	team       config.TeamID // the team ringing, or whose queue holds the call
	targets    []string      // agents offered the call now
	tried      []config.AgentID
	seq        string // the one agent a sequential strategy (or a waiting offer) rings
	seqTimer   clock.Timer
	offerUntil time.Time     // the offer to seq (or a waiting call's offer) ends then (zero: with the ring)
	queueTeam  config.TeamID // the queue holding the call ("" = none)
	since      time.Time     // when it first queued
}

// SetRoutingConfig replaces the teams and numbers in force (config
// reload). Calls already ringing keep their plan.
func (c *Controller) SetRoutingConfig(cfg *config.Config) {
	if c.router != nil {
		c.router.SetConfig(cfg)
	}
}

// Router returns the routing decisions maker (nil without one).
func (c *Controller) Router() *routing.Router { return c.router }

// routingConfig is the configuration in force (nil without a Router).
func (c *Controller) routingConfig() *config.Config {
	if c.router == nil {
		return nil
	}
	return c.router.Config()
}

// busyAgents are the agents owning a live call on any instance.
func (c *Controller) busyAgents() map[string]bool {
	busy := map[string]bool{}
	for _, ci := range c.allCalls() {
		if ParseState(ci.State).AgentOwned() && ci.Agent != "" {
			busy[ci.Agent] = true
		}
	}
	return busy
}

// freeAgents are the agents available on any instance and not in a call,
// sorted. For a "*" team (every agent), agents in a call are offered too, as
// before teams existed.
func (c *Controller) freeAgents(anyTeam bool) []config.AgentID {
	avail := c.availableAgents()
	var busy map[string]bool
	if !anyTeam {
		busy = c.busyAgents()
	}
	out := make([]config.AgentID, 0, len(avail))
	for a := range avail {
		if !busy[a] {
			out = append(out, config.AgentID(a))
		}
	}
	slices.Sort(out)
	return out
}

// planInbound decides, once pre_accept returned, who rings (or whether the
// caller waits).
func (l *liveCall) planInbound() lc.Prepared {
	c := l.c
	p := lc.Prepared{When: l.when()}
	cfg := c.routingConfig()
	var n config.Number
	ok := false
	if cfg != nil {
		n, ok = cfg.Number(l.lc.Rec.PhoneNumberID)
	}
	if !ok {
		p.Available = len(c.availableAgents())
		return p
	}
	l.route.routed, l.route.number = true, n
	if l.ivrFirst(n, &p) { // ivrrun.go: the caller goes through the IVR first
		return p
	}
	p.CanWait = l.queueTeam() != ""
	switch {
	case l.ringNext():
		p.Available = len(l.route.targets)
	case p.CanWait:
		p.Wait = true
	default:
		p.QueueFull = l.hasQueue()
	}
	return p
}

// queueTeam is the first of the number's teams with a queue that has room.
func (l *liveCall) queueTeam() config.TeamID {
	c := l.c
	cfg := c.routingConfig()
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	for _, id := range l.route.number.Teams {
		t, ok := cfg.Team(id)
		if !ok || t.MaxSize == 0 {
			continue
		}
		q, err := c.router.Snapshot(ctx, id, c.now())
		if err != nil || len(q) >= t.MaxSize {
			continue // full, or Redis failed: the queue cannot take the call
		}
		return id
	}
	return ""
}

// hasQueue reports whether a team of the number has a queue at all.
func (l *liveCall) hasQueue() bool {
	cfg := l.c.routingConfig()
	for _, id := range l.route.number.Teams {
		if t, ok := cfg.Team(id); ok && t.MaxSize > 0 {
			return true
		}
	}
	return false
}

// ringNext picks who rings next among the number's teams (from the current
// one on), excluding agents already tried; false when nobody qualifies.
func (l *liveCall) ringNext() bool {
	c := l.c
	cfg := c.routingConfig()
	ctx, cancel := c.opCtx(3 * time.Second)
	defer cancel()
	teams := l.route.number.Teams
	var freeCache [2][]config.AgentID // [any team], read once per decision
	var freeRead [2]bool
	freeFor := func(any bool) []config.AgentID {
		i := 0
		if any {
			i = 1
		}
		if !freeRead[i] {
			freeCache[i], freeRead[i] = c.freeAgents(any), true
		}
		return freeCache[i]
	}
	for ; l.route.teamIdx < len(teams); l.route.teamIdx++ {
		id := teams[l.route.teamIdx]
		t, ok := cfg.Team(id)
		if !ok {
			continue
		}
		free := freeFor(t.Any())
		picked, err := c.router.Pick(ctx, id, l.id, free, l.route.tried)
		if errors.Is(err, routing.ErrUnavailable) {
			// Redis failed: ring every free member at once (no reservation,
			// no rotation) rather than lose the call.
			l.log.Warn("routing: pick failed: ringing every free member", "team", string(id), "err", err)
			picked = nil
			for _, a := range free {
				if t.Has(a) && !slices.Contains(l.route.tried, a) {
					picked = append(picked, a)
				}
			}
			if len(picked) > 0 {
				t.Strategy = config.RingAll
				err = nil
			}
		}
		if err != nil || len(picked) == 0 {
			if err != nil && !errors.Is(err, routing.ErrNoAgent) && !errors.Is(err, routing.ErrUnavailable) {
				l.log.Warn("routing: pick", "team", string(id), "err", err)
			}
			continue
		}
		l.route.team = id
		l.route.targets = l.route.targets[:0]
		for _, a := range picked {
			l.route.targets = append(l.route.targets, string(a))
		}
		l.route.offerUntil = time.Time{}
		if t.Strategy.Sequential() {
			l.ringOne(string(picked[0]), t.RingTime)
		}
		return true
	}
	return false
}

// ringOne rings one agent for d; then the next (ringing) or back to the
// queue (waiting).
func (l *liveCall) ringOne(agent string, d time.Duration) {
	l.stopSeq()
	l.route.seq = agent
	l.route.offerUntil = l.c.now().Add(d)
	l.route.seqTimer = l.c.clock.AfterFunc(d, func() {
		l.post(func(l *liveCall) {
			if l.route.seq == agent && l.lc.State.Offered() && l.lc.Agent == "" {
				l.log.Debug("routing: no answer", "agent", agent)
				l.moveOn(agent)
			}
		})
	})
}

func (l *liveCall) stopSeq() {
	l.route.offerUntil = time.Time{}
	if l.route.seqTimer != nil {
		l.route.seqTimer.Stop()
		l.route.seqTimer = nil
	}
}

// moveOn: the agent ringing alone did not take the call (no answer,
// declined): a ringing call rings the next agent (or, with nobody left,
// waits or is missed); a waiting call goes back to its queue.
func (l *liveCall) moveOn(agent string) {
	c := l.c
	l.stopSeq()
	l.route.seq = ""
	if l.lc.Declined[agent] {
		ctx, cancel := c.opCtx(2 * time.Second)
		_ = c.router.Release(ctx, config.AgentID(agent), l.id)
		cancel()
	} else {
		l.withdraw(agent)
	}
	l.route.tried = append(l.route.tried, config.AgentID(agent))
	for a := range l.lc.Declined {
		if !slices.Contains(l.route.tried, config.AgentID(a)) {
			l.route.tried = append(l.route.tried, config.AgentID(a))
		}
	}
	l.route.targets = slices.DeleteFunc(l.route.targets, func(a string) bool { return a == agent })
	switch l.lc.State {
	case StateRinging:
		if t, ok := c.routingConfig().Team(l.route.team); ok && !t.Strategy.Sequential() {
			l.route.teamIdx++ // a ring_all team rang every free member already
		}
		if l.ringNext() {
			l.offerTargets()
			l.mirror()
			l.saveState()
			return
		}
		if err := l.step(lc.RingExhausted{When: l.when()}); err != nil {
			l.log.Debug("ring exhausted", "err", err)
		}
	case lc.StateWaiting:
		l.requeue()
		c.kickQueues()
	}
}

// withdraw takes an offer back from an agent (their page drops the card).
func (l *liveCall) withdraw(agent string) {
	c := l.c
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	if err := c.router.Release(ctx, config.AgentID(agent), l.id); err != nil && !errors.Is(err, routing.ErrNotReserved) {
		l.log.Debug("routing: release", "err", err)
	}
	c.toAgent(agent, agents.CallTaken{Type: agents.TypeCallTaken, CallID: string(l.id)})
}

// offerTargets tells the agents picked for the call that it rings.
func (l *liveCall) offerTargets() {
	ci := l.c.info(l)
	for _, a := range l.route.targets {
		if !l.lc.Declined[a] {
			l.c.tell(audience{Agent: a, AvailableOnly: true}, agents.CallMsg{Type: agents.TypeCallOffered, Call: ci})
		}
	}
}

// offeredTo reports whether agent is among the call's targets (always true
// for a call routed without teams).
func (l *liveCall) offeredTo(agent string) bool {
	return !l.route.routed || slices.Contains(l.route.targets, agent)
}

// afterStep runs routing's side of a transition: reservations, idle
// tracking, callbacks.
func (l *liveCall) afterStep(prev lc.Call) {
	c := l.c
	cur := l.lc
	if c.router == nil || prev.State == cur.State {
		return
	}
	ctx, cancel := c.opCtx(3 * time.Second)
	defer cancel()
	switch {
	case prev.State.Offered() && cur.State == StateConnecting:
		// Taken: the agent is busy; offers elsewhere are withdrawn (call_taken).
		l.stopSeq()
		for _, a := range l.route.targets {
			_ = c.router.Release(ctx, config.AgentID(a), l.id)
		}
		l.route.targets, l.route.seq = nil, ""
		if err := c.router.AgentBusy(ctx, config.AgentID(cur.Agent)); err != nil {
			l.log.Warn("routing: agent busy", "err", err)
		}
	}
	if cur.State == StateConnected && prev.State != StateConnected {
		l.userReached()
	}
	if prev.State.Live() && !cur.State.Live() {
		l.stopSeq()
		for _, a := range l.route.targets {
			_ = c.router.Release(ctx, config.AgentID(a), l.id)
		}
		l.route.targets, l.route.seq = nil, ""
		if prev.State.AgentOwned() && cur.Agent != "" {
			if err := c.router.AgentFreed(ctx, config.AgentID(cur.Agent), c.now()); err != nil {
				l.log.Warn("routing: agent freed", "err", err)
			}
			c.agentFree(cur.Agent)
		}
		if cur.Rec.Direction == call.UserInitiated && cur.Rec.Outcome == call.Missed && cur.Cause != lc.CauseStale {
			l.missed()
		}
	}
}

// beginWait (BeginWait: callgw's own accept returned 200) queues the
// caller in the first of the number's teams with room and plays the hold
// audio.
func (l *liveCall) beginWait() {
	c := l.c
	if l.ivrBegin() { // ivrrun.go: the IVR routes the caller
		return
	}
	l.playHold()
	if c.router == nil || !l.route.routed {
		l.then(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
		return
	}
	team := l.queueTeam()
	if team == "" {
		l.then(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
		return
	}
	l.route.since = l.lc.Rec.CreatedAt
	if !l.enqueue(team, l.route.since) {
		l.then(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
		return
	}
	l.log.Info("caller waits", "team", string(team))
	c.kickQueues()
}

// enqueue puts the call in team's queue (at its original time, so it
// keeps its place).
func (l *liveCall) enqueue(team config.TeamID, at time.Time) bool {
	c := l.c
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	pos, err := c.router.Enqueue(ctx, team, l.id, at)
	if err != nil {
		l.log.Warn("routing: enqueue", "team", string(team), "err", err)
		return false
	}
	l.route.queueTeam, l.route.team = team, team
	l.log.Debug("queued", "team", string(team), "position", pos)
	l.mirror()
	l.saveState()
	return true
}

// requeue puts a waiting call whose offer lapsed back in its queue.
func (l *liveCall) requeue() {
	if l.lc.State != lc.StateWaiting || l.route.queueTeam == "" {
		return
	}
	if !l.enqueue(l.route.queueTeam, l.route.since) {
		_ = l.step(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
	}
}

// leaveQueue (EndWait) takes the call out of its queue.
func (l *liveCall) leaveQueue() {
	c := l.c
	if c.router == nil || l.route.queueTeam == "" {
		return
	}
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	if err := c.router.Remove(ctx, l.route.queueTeam, l.id); err != nil && !errors.Is(err, routing.ErrNotQueued) {
		l.log.Warn("routing: leave queue", "err", err)
	}
	l.route.queueTeam = ""
}

// offerWaiting offers a waiting call (just taken from its queue for
// agents) to those agents; the call goes back to its queue when they do not
// take it within the team's ring time.
func (l *liveCall) offerWaiting(team config.TeamID, ags []string) {
	c := l.c
	if l.lc.State != lc.StateWaiting || !l.lc.Accepted || l.lc.Agent != "" {
		return
	}
	t, ok := c.routingConfig().Team(team)
	if !ok {
		t = config.Team{RingTime: config.DefaultRingTime}
	}
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	var ok2 []string
	for _, a := range ags {
		if l.lc.Declined[a] {
			continue
		}
		if err := c.router.Reserve(ctx, config.AgentID(a), l.id, t.RingTime+5*time.Second); err != nil {
			continue // ringing for another call meanwhile
		}
		ok2 = append(ok2, a)
	}
	if len(ok2) == 0 {
		l.requeue()
		return
	}
	l.stopSeq()
	l.route.offerUntil = c.now().Add(t.RingTime)
	l.route.targets = ok2
	l.route.team = team
	l.offerTargets()
	l.mirror()
	l.saveState()
	first := ok2[0]
	l.route.seqTimer = c.clock.AfterFunc(t.RingTime, func() {
		l.post(func(l *liveCall) {
			if l.lc.State == lc.StateWaiting && l.lc.Agent == "" && len(l.route.targets) > 0 && l.route.targets[0] == first {
				for _, a := range l.route.targets {
					l.withdraw(a)
				}
				l.route.targets = nil
				l.requeue()
				l.mirror()
			}
		})
	})
}

// declined: an agent declined an offered call; with nobody left ringing, the
// call moves on.
func (l *liveCall) declined(agent string) {
	if !l.route.routed || !l.lc.State.Offered() {
		return
	}
	if l.route.seq == agent {
		l.moveOn(agent)
		return
	}
	left := false
	for _, a := range l.route.targets {
		if !l.lc.Declined[a] {
			left = true
		}
	}
	if left {
		return
	}
	ctx, cancel := l.c.opCtx(2 * time.Second)
	_ = l.c.router.Release(ctx, config.AgentID(agent), l.id)
	cancel()
	if l.lc.State == lc.StateWaiting {
		l.route.targets = nil
		l.requeue()
		return
	}
	l.moveOn(agent)
}

// expire handles a call whose max_wait passed in its queue: overflow, or
// missed.
func (l *liveCall) expire(e routing.Expiry) {
	c := l.c
	if l.lc.State != lc.StateWaiting {
		return
	}
	l.route.queueTeam = ""
	if e.Overflow == "" {
		l.log.Info("max_wait passed: missed", "team", string(e.Team))
		_ = l.step(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueTimeout})
		return
	}
	l.log.Info("max_wait passed: overflow", "team", string(e.Team), "overflow", string(e.Overflow))
	l.route.since = c.now()
	t, _ := c.routingConfig().Team(e.Overflow)
	ctx, cancel := c.opCtx(3 * time.Second)
	picked, err := c.router.Pick(ctx, e.Overflow, l.id, c.freeAgents(t.Any()), nil)
	cancel()
	if err == nil && len(picked) > 0 {
		l.route.queueTeam = e.Overflow
		as := make([]string, len(picked))
		for i, a := range picked {
			as[i] = string(a)
		}
		// Pick reserved a sequential pick already; offerWaiting reserves again (same call: fine).
		l.offerWaiting(e.Overflow, as)
		return
	}
	if !l.enqueue(e.Overflow, l.route.since) {
		_ = l.step(lc.LeaveWait{When: l.when(), Cause: lc.CauseQueueFull})
	}
}

// ---- the instance's routing loop ----

// agentFree asks the routing loop to offer the agent the longest-waiting
// caller of their teams.
func (c *Controller) agentFree(agent string) {
	if c.router == nil {
		return
	}
	select {
	case c.freed <- agent:
	default:
	}
}

// kickQueues asks the routing loop to look at the queues now.
func (c *Controller) kickQueues() {
	if c.router == nil {
		return
	}
	select {
	case c.freed <- "":
	default:
	}
}

// runRouting serves the queues until ctx ends: every second (and whenever
// an agent frees up) free agents of this instance get the longest-waiting
// caller of their teams, and calls past max_wait overflow or are missed.
func (c *Controller) runRouting(ctx context.Context) {
	if c.router == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		case a := <-c.freed:
			if !c.hasQueues() {
				continue
			}
			if a != "" {
				c.serveAgent(ctx, a)
			}
			c.serveLocal(ctx)
		case <-t.C:
			c.expireQueued(ctx)
			if c.hasQueues() { // e.g. the legacy single team: nobody ever waits
				c.serveLocal(ctx)
			}
		}
	}
}

// hasQueues reports whether a team of the configuration has a queue.
func (c *Controller) hasQueues() bool {
	cfg := c.routingConfig()
	if cfg == nil {
		return false
	}
	for _, t := range cfg.Teams {
		if t.MaxSize > 0 {
			return true
		}
	}
	return false
}

func (c *Controller) expireQueued(ctx context.Context) {
	ex, err := c.router.Expired(ctx, c.now())
	if err != nil {
		c.log.Warn("routing: expired", "err", err)
		return
	}
	for _, e := range ex {
		if l := c.lookup(e.Call); l != nil {
			l.post(func(l *liveCall) { l.expire(e) })
		}
	}
}

// serveLocal offers queued callers to the free agents signed in here.
func (c *Controller) serveLocal(ctx context.Context) {
	if c.hub == nil {
		return
	}
	local := c.hub.AvailableAgents()
	if len(local) == 0 {
		return
	}
	// Nobody waiting anywhere: nothing to do (one read per team, cheaper
	// than finding who is busy).
	queued, err := c.router.SnapshotAll(ctx, c.now())
	if err != nil {
		return
	}
	waiting := false
	for _, q := range queued {
		waiting = waiting || len(q) > 0
	}
	if !waiting {
		return
	}
	busy := c.busyAgents()
	names := make([]string, 0, len(local))
	for a := range local {
		if !busy[a] {
			names = append(names, a)
		}
	}
	sort.Strings(names)
	for _, a := range names {
		c.serveAgentChecked(ctx, a)
	}
}

// serveAgent offers the longest-waiting caller of the agent's teams to the
// agent, if free.
func (c *Controller) serveAgent(ctx context.Context, agent string) {
	if !c.availableAgents()[agent] || c.busyAgents()[agent] {
		return
	}
	c.serveAgentChecked(ctx, agent)
}

func (c *Controller) serveAgentChecked(ctx context.Context, agent string) {
	if res, err := c.router.ReservedFor(ctx, config.AgentID(agent)); err == nil && res != "" {
		return // ringing for a call
	}
	e, err := c.router.DequeueFor(ctx, config.AgentID(agent))
	if err != nil {
		if !errors.Is(err, routing.ErrQueueEmpty) && !errors.Is(err, routing.ErrUnknownTeam) {
			c.log.Warn("routing: dequeue", "agent", agent, "err", err)
		}
		return
	}
	if e.Owner == c.cl.id {
		if l := c.lookup(e.Call); l != nil {
			l.post(func(l *liveCall) { l.offerWaiting(e.Team, []string{agent}) })
		}
		return
	}
	n, err := c.cl.publish(ctx, c.cl.instChannel(e.Owner), busMsg{Kind: busOffer, Offer: &queueOffer{Call: e.Call, Team: e.Team, Agent: agent}})
	if err != nil || n == 0 {
		c.log.Warn("routing: the instance holding a queued call is gone", "owner", e.Owner)
	}
}

// queueOffer asks a queued call's owner to offer it to an agent.
type queueOffer struct {
	Call  call.ID       `json:"call"`
	Team  config.TeamID `json:"team"`
	Agent string        `json:"agent"`
}

func (c *Controller) onQueueOffer(o queueOffer) {
	if l := c.lookup(o.Call); l != nil {
		l.post(func(l *liveCall) { l.offerWaiting(o.Team, []string{o.Agent}) })
	}
}
