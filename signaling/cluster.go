package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/signaling/agents"
	lc "github.com/callgw/callgw/signaling/lifecycle"
	"github.com/callgw/callgw/signaling/webhook"
)

// Several instances share one Redis. A call's media lives on the instance
// that created it (its owner, held as a lease in Redis); webhooks and agent
// commands that land elsewhere reach the owner over Redis pub/sub; agents'
// websockets may sit on any instance, so everything said to agents is
// fanned out to every instance, which delivers to its own sessions.

// agentRef is who sent an agent command: a session on some instance.
type agentRef struct {
	Session   string `json:"session"`
	Agent     string `json:"agent"`
	Available bool   `json:"available"`
	// Role is the session's role (monitoring is for supervisors).
	Role agents.Role `json:"role,omitempty"`
}

func refOf(s *agents.Session) agentRef {
	return agentRef{Session: s.ID, Agent: s.Agent, Available: s.Presence() == agents.Available, Role: s.Role}
}

// audience selects agent sessions on every instance.
type audience struct {
	Agent         string `json:"agent,omitempty"`     // only this agent's sessions
	NotAgent      string `json:"not_agent,omitempty"` // everybody but this agent
	Session       string `json:"session,omitempty"`   // only this session
	AvailableOnly bool   `json:"available_only,omitempty"`
}

func (a audience) match(s *agents.Session) bool {
	switch {
	case a.Session != "" && s.ID != a.Session:
		return false
	case a.Agent != "" && s.Agent != a.Agent:
		return false
	case a.NotAgent != "" && s.Agent == a.NotAgent:
		return false
	case a.AvailableOnly && s.Presence() != agents.Available:
		return false
	}
	return true
}

// busKind is what a bus message is.
type busKind string

const (
	busAgents    busKind = "agents"    // something said to agents: each instance delivers to its sessions
	busAvailable busKind = "available" // an agent became available: offer the calls ringing here
	busEvent     busKind = "event"     // a webhook event for the owner of its call
	busCmd       busKind = "cmd"       // an agent command for the owner of its call
	busReply     busKind = "reply"     // the owner's answer to a cmd
	busOffer     busKind = "offer"     // offer a queued call to an agent (for the call's owner)
)

// busMsg is what instances say to each other.
type busMsg struct {
	From string          `json:"from"`
	Kind busKind         `json:"kind"`
	To   audience        `json:"to,omitzero"`
	Msg  json.RawMessage `json:"msg,omitempty"`
	// event
	Event    *webhook.Event `json:"event,omitempty"`
	Received time.Time      `json:"received,omitzero"`
	// cmd / reply
	Corr    string                `json:"corr,omitempty"`
	ReplyTo string                `json:"reply_to,omitempty"`
	Ref     *agentRef             `json:"ref,omitempty"`
	Cmd     *agents.ClientMessage `json:"cmd,omitempty"`
	Err     *agents.CodedError    `json:"err,omitempty"`
	// offer
	Offer *queueOffer `json:"offer,omitempty"`
}

type cluster struct {
	c       *Controller
	rdb     redis.UniversalClient
	id      string
	lease   time.Duration
	mu      sync.Mutex
	pending map[string]chan busMsg
}

func (k *cluster) agentsChannel() string { return k.c.cfg.KeyPrefix + "bus:agents" }
func (k *cluster) instChannel(id string) string {
	return k.c.cfg.KeyPrefix + "bus:inst:" + id
}
func (k *cluster) leasesKey() string   { return k.c.cfg.KeyPrefix + "leases" }
func (k *cluster) presenceKey() string { return k.c.cfg.KeyPrefix + "presence" }

func (k *cluster) publish(ctx context.Context, channel string, m busMsg) (int64, error) {
	m.From = k.id
	b, err := json.Marshal(m)
	if err != nil {
		return 0, fmt.Errorf("signaling: bus marshal: %w", err)
	}
	n, err := k.rdb.Publish(ctx, channel, b).Result()
	if err != nil {
		k.c.m.redisErrors.WithLabelValues("publish").Inc()
		return 0, storeErr("publish", err)
	}
	return n, nil
}

// ---- saying things to agents, wherever they are ----

// tell delivers v to the matching sessions here and on every other instance.
func (c *Controller) tell(to audience, v any) {
	if c.hub != nil {
		c.hub.Broadcast(to.match, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	_, _ = c.cl.publish(ctx, c.cl.agentsChannel(), busMsg{Kind: busAgents, To: to, Msg: b})
}

func (c *Controller) toAgent(agent string, v any) { c.tell(audience{Agent: agent}, v) }

// availableAgents returns the agents with an available session on any
// instance (this instance's view when Redis is unreachable).
func (c *Controller) availableAgents() map[string]bool {
	out := map[string]bool{}
	if c.hub != nil {
		for a := range c.hub.AvailableAgents() {
			out[a] = true
		}
	}
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	all, err := c.cl.rdb.HGetAll(ctx, c.cl.presenceKey()).Result()
	if err != nil {
		c.m.redisErrors.WithLabelValues("presence").Inc()
		return out
	}
	now := c.now()
	for _, v := range all {
		var p presenceEntry
		if json.Unmarshal([]byte(v), &p) == nil && p.Available && now.Before(p.Until) {
			out[p.Agent] = true
		}
	}
	return out
}

type presenceEntry struct {
	Agent     string    `json:"agent"`
	Available bool      `json:"available"`
	Instance  string    `json:"instance"`
	Until     time.Time `json:"until"`
}

// syncPresence writes this instance's sessions to the shared registry.
func (c *Controller) syncPresence(ctx context.Context) {
	if c.hub == nil {
		return
	}
	until := c.now().Add(3 * c.cl.lease / 2)
	ss := c.hub.Sessions(nil)
	if len(ss) == 0 {
		return
	}
	vals := make([]any, 0, 2*len(ss))
	for _, s := range ss {
		b, _ := json.Marshal(presenceEntry{Agent: s.Agent, Available: s.Presence() == agents.Available, Instance: c.cl.id, Until: until})
		vals = append(vals, s.ID, string(b))
	}
	if err := c.cl.rdb.HSet(ctx, c.cl.presenceKey(), vals...).Err(); err != nil {
		c.m.redisErrors.WithLabelValues("presence").Inc()
	}
}

func (c *Controller) dropPresence(session string) {
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	_ = c.cl.rdb.HDel(ctx, c.cl.presenceKey(), session).Err()
}

// prunePresence removes entries whose instance stopped refreshing them.
func (c *Controller) prunePresence(ctx context.Context) {
	all, err := c.cl.rdb.HGetAll(ctx, c.cl.presenceKey()).Result()
	if err != nil {
		return
	}
	now := c.now()
	for k, v := range all {
		var p presenceEntry
		if json.Unmarshal([]byte(v), &p) != nil || now.After(p.Until) {
			_ = c.cl.rdb.HDel(ctx, c.cl.presenceKey(), k).Err()
		}
	}
}

// ---- ownership ----

// own records this instance as the owner of id, with a lease.
func (c *Controller) own(ctx context.Context, id call.ID) error {
	exp := c.now().Add(c.cl.lease)
	// Two slots in Redis Cluster, so a plain pipeline, not MULTI: the lease
	// entry lies in the future, so no reaper acts between the two.
	_, err := c.cl.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, c.cl.leasesKey(), redis.Z{Score: float64(exp.Unix()), Member: string(id)})
		p.Set(ctx, c.store.key(id, "owner"), c.cl.id, c.cl.lease)
		return nil
	})
	if err != nil {
		c.m.redisErrors.WithLabelValues("own").Inc()
		return storeErr("own", err)
	}
	return nil
}

func (c *Controller) disown(id call.ID) {
	ctx, cancel := c.opCtx(2 * time.Second)
	defer cancel()
	_, _ = c.cl.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, c.cl.leasesKey(), string(id))
		p.Del(ctx, c.store.key(id, "owner"))
		return nil
	})
}

func (c *Controller) ownerOf(ctx context.Context, id call.ID) (string, error) {
	o, err := c.cl.rdb.Get(ctx, c.store.key(id, "owner")).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", storeErr("owner", err)
	}
	return o, nil
}

// renewLeases extends the lease of every live call of this instance.
func (c *Controller) renewLeases(ctx context.Context) {
	c.mu.Lock()
	ids := make([]call.ID, 0, len(c.calls))
	for id := range c.calls {
		if id != "" {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	exp := float64(c.now().Add(c.cl.lease).Unix())
	_, err := c.cl.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Set(ctx, c.store.key(id, "owner"), c.cl.id, c.cl.lease)
			p.ZAdd(ctx, c.cl.leasesKey(), redis.Z{Score: exp, Member: string(id)})
		}
		return nil
	})
	if err != nil {
		c.m.redisErrors.WithLabelValues("lease").Inc()
	}
}

// reap ends the calls whose owner stopped renewing its lease (it died): the
// call is terminated through the Graph API, agents are told, and the record
// waits for Meta's terminate webhook (its duration bills) before it goes to
// the ledger.
func (c *Controller) reap(ctx context.Context) {
	now := c.now()
	ids, err := c.cl.rdb.ZRangeByScore(ctx, c.cl.leasesKey(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.Unix(), 10)}).Result()
	if err != nil {
		return
	}
	for _, sid := range ids {
		id := call.ID(sid)
		if c.lookup(id) != nil {
			continue // ours: the renewal will catch up
		}
		if owner, err := c.ownerOf(ctx, id); err != nil || owner != "" {
			continue // still leased (renewed since the scan)
		}
		won, err := c.cl.rdb.SetNX(ctx, c.store.key(id, "reap"), c.cl.id, time.Minute).Result()
		if err != nil || !won {
			continue
		}
		c.reapOne(ctx, id, now)
		c.cl.rdb.ZRem(ctx, c.cl.leasesKey(), sid)
	}
}

func (c *Controller) reapOne(ctx context.Context, id call.ID, now time.Time) {
	log := c.logCall(id)
	sc, err := c.store.load(ctx, id)
	if err != nil {
		log.Warn("reaping: no stored state", "err", err)
		return
	}
	if sc.State == StateEnded.String() {
		return
	}
	log.Warn("owner instance lost: ending its call", "owner", sc.Owner)
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var gerr error
	if sc.Record.Direction == call.UserInitiated && sc.Record.AnsweredAt.IsZero() {
		gerr = c.graphFor(sc.Record.PhoneNumberID).Reject(gctx, string(id))
	} else {
		gerr = c.graphFor(sc.Record.PhoneNumberID).Terminate(gctx, string(id))
	}
	cancel()
	if gerr != nil {
		log.Warn("reaping: graph", "err", gerr)
	}
	// The lifecycle decides as for a live call whose owner was lost; Meta's
	// terminate, when it comes, completes the record (terminateNotLive).
	cl := lc.New(sc.Record)
	if st := lc.ParseState(sc.State); st.Live() {
		cl.State = st
	}
	cl.PickedUp = !sc.Record.AnsweredAt.IsZero()
	cl.Accepted = cl.PickedUp && sc.Record.Direction == call.UserInitiated
	cl.GatewayAnswered = lc.GatewayOnly(sc.Record)
	cl, _, _ = c.rules.Transition(cl, lc.Drain{When: lc.When{At: now}})
	cl.Cause = lc.CauseOwnerLost
	cl.Rec.Outcome, cl.Rec.EndReason = lc.Conclude(cl)
	rec := cl.Rec
	if err := c.store.markEndedAwaiting(ctx, rec, c.cl.id, now.Add(c.cfg.MetaTerminateWait)); err != nil {
		log.Error("reaping: cannot save", "err", err)
		return
	}
	c.m.calls.WithLabelValues(rec.Direction.String(), rec.Outcome.String()).Inc()
	c.tell(audience{}, agents.CallEnded{Type: agents.TypeCallEnded, CallID: string(id), Reason: rec.EndReason.String(),
		Outcome: rec.Outcome.String(), DurationS: rec.GatewayMillis / 1000})
}

// ---- forwarding to the owner ----

// forwardEvent hands a webhook event to the instance that owns its call.
func (c *Controller) forwardEvent(ctx context.Context, owner string, ev webhook.Event, received time.Time) error {
	n, err := c.cl.publish(ctx, c.cl.instChannel(owner), busMsg{Kind: busEvent, Event: &ev, Received: received})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: owner %s is not listening", ErrStore, owner)
	}
	return nil
}

// forwardCommand runs an agent command on the owner and returns its error.
func (c *Controller) forwardCommand(ctx context.Context, owner string, ref agentRef, m *agents.ClientMessage) error {
	corr := randomID()
	ch := make(chan busMsg, 1)
	c.cl.mu.Lock()
	c.cl.pending[corr] = ch
	c.cl.mu.Unlock()
	defer func() {
		c.cl.mu.Lock()
		delete(c.cl.pending, corr)
		c.cl.mu.Unlock()
	}()
	n, err := c.cl.publish(ctx, c.cl.instChannel(owner), busMsg{Kind: busCmd, Corr: corr, ReplyTo: c.cl.id, Ref: &ref, Cmd: m})
	if err != nil {
		return &agents.CodedError{Code: agents.CodeUnavailable, Message: "state store unavailable, try again", Err: err}
	}
	if n == 0 {
		return agents.Errorf(agents.CodeUnknownCall, "the instance holding the call is gone", nil)
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return r.Err
		}
		return nil
	case <-time.After(15 * time.Second):
		return agents.Errorf(agents.CodeUnavailable, "the instance holding the call did not answer", nil)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// listen serves the bus until ctx ends.
func (c *Controller) listen(ctx context.Context) error {
	ps := c.cl.rdb.Subscribe(ctx, c.cl.agentsChannel(), c.cl.instChannel(c.cl.id))
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.stop:
			return nil
		case pm, ok := <-ch:
			if !ok {
				return nil
			}
			var m busMsg
			if err := json.Unmarshal([]byte(pm.Payload), &m); err != nil || m.From == c.cl.id {
				continue
			}
			c.onBus(ctx, m)
		}
	}
}

func (c *Controller) onBus(ctx context.Context, m busMsg) {
	switch m.Kind {
	case busAgents:
		if c.hub != nil {
			c.hub.Broadcast(m.To.match, json.RawMessage(m.Msg))
		}
	case busAvailable:
		if m.Ref != nil {
			c.offerRinging(*m.Ref)
		}
	case busEvent:
		if m.Event != nil {
			c.applyForwarded(ctx, *m.Event, m.Received)
		}
	case busCmd:
		if m.Ref == nil || m.Cmd == nil {
			return
		}
		go func() {
			err := c.localCommand(*m.Ref, m.Cmd)
			reply := busMsg{Kind: busReply, Corr: m.Corr}
			if err != nil {
				var ce *agents.CodedError
				if !errors.As(err, &ce) {
					ce = agents.Errorf(agents.CodeInternal, "internal error", nil)
				}
				reply.Err = &agents.CodedError{Code: ce.Code, Message: ce.Message, MetaCode: ce.MetaCode}
			}
			rctx, cancel := c.opCtx(2 * time.Second)
			defer cancel()
			_, _ = c.cl.publish(rctx, c.cl.instChannel(m.ReplyTo), reply)
		}()
	case busOffer:
		if m.Offer != nil {
			c.onQueueOffer(*m.Offer)
		}
	case busReply:
		c.cl.mu.Lock()
		ch := c.cl.pending[m.Corr]
		c.cl.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AvailableAgents returns the agents with an available session on any
// instance (for the REST API, which may run on an instance with no agents).
func (c *Controller) AvailableAgents() map[string]bool { return c.availableAgents() }

// liveCallIDs lists up to max calls leased by any instance.
func (k *cluster) liveCallIDs(ctx context.Context, max int64) ([]string, error) {
	ids, err := k.rdb.ZRange(ctx, k.leasesKey(), 0, max-1).Result()
	if err != nil {
		return nil, storeErr("leases", err)
	}
	return ids, nil
}
