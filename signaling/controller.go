package signaling

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/phone"
	"github.com/callgw/callgw/signaling/agents"
	"github.com/callgw/callgw/signaling/lifecycle"
	"github.com/callgw/callgw/signaling/routing"
)

// Hub is what the controller needs from the agent hub.
type Hub interface {
	Broadcast(keep func(*agents.Session) bool, v any)
	AvailableAgents() map[string]bool
	Sessions(keep func(*agents.Session) bool) []*agents.Session
}

// Deps are the parts the controller drives. Graph, Media and Redis are
// required; the rest may be nil.
type Deps struct {
	Redis       redis.UniversalClient
	Graph       Graph
	Dialer      Dialer
	Live        LivePermissions // Meta's live permission state (nil: local state only)
	Media       Media
	Recorder    Recorder
	Permissions Permissions
	Messages    Messages
	Quotes      Quoter // running cost of outbound calls (nil: none shown)
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	Now         func() time.Time // deprecated: use Clock
	Clock       clock.Clock      // the one clock for time and call timers (default: the system clock)
	// GraphFor returns the Graph client of another business number this
	// deployment serves (Config.Numbers); nil means Graph serves them all.
	GraphFor func(phoneNumberID string) Graph
	// Router routes user-initiated calls by the numbers and teams of its
	// configuration, queues callers and keeps callback tasks (nil: every
	// available agent is offered every call, no queue).
	Router *routing.Router
	// DialerFor returns the Dialer of another business number (nil: Dialer
	// serves only the main number).
	DialerFor func(phoneNumberID string) Dialer
	// SettingsFor returns the settings client of a served number (main one
	// included); nil: settings are read-only (webhooks).
	SettingsFor func(phoneNumberID string) SettingsClient
	// LiveFor returns Meta's live permission state read through another
	// served number's own client (its token and rate budget); nil: the
	// local model alone decides for that number.
	LiveFor func(phoneNumberID string) LivePermissions
	// HoldAudio returns what a waiting caller of a number hears, looped
	// (the number's hold_audio, else the built-in hold music); nil: the
	// built-in "hold" prompt.
	HoldAudio func(phoneNumberID string) *media.Prompt
}

// Controller owns every live call of this instance.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	graph   Graph
	dial    Dialer
	live    LivePermissions
	media   Media
	rec     Recorder
	perms   Permissions
	msgs    Messages
	quotes  Quoter
	store   *store
	m       *metrics
	now     func() time.Time
	clock   clock.Clock
	rules   lifecycle.Rules
	graphs  func(string) Graph
	foreign sync.Map // phone number ids seen but not served (logged once)
	router  *routing.Router
	dialers func(string) Dialer
	// settingsClients: see Deps.SettingsFor.
	settingsClients func(string) SettingsClient
	holdAudio       func(string) *media.Prompt
	lives           func(string) LivePermissions // see Deps.LiveFor
	numbers         atomic.Pointer[[]string]     // further numbers served (SetNumbers)
	retired         sync.Map                     // numbers removed by a reload: their calls in progress continue
	prompts         promptCache                  // IVR prompts (hold.go)
	freed           chan string                  // agents who freed up (routing loop)

	hub Hub // set by SetHub before serving
	cl  *cluster

	recs Recordings // recording hooks (SetRecordings, recording.go; nil = none)

	mu    sync.Mutex
	calls map[call.ID]*liveCall

	pendMu  sync.Mutex
	pending []call.Record // final records Redis could not take yet; retried by Run

	draining atomic.Bool
	ctx      context.Context // cancelled by Close, after the calls have ended
	cancel   context.CancelFunc
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New builds a controller; call SetHub, then Run.
func New(cfg Config, d Deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	if d.Redis == nil || d.Graph == nil || d.Media == nil {
		return nil, errors.New("signaling: redis, graph and media are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
		if d.Now != nil {
			d.Clock = clock.Func(d.Now)
		}
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = randomID()
	}
	c := &Controller{
		cfg: cfg, log: d.Logger, graph: d.Graph, dial: d.Dialer, live: d.Live, media: d.Media, rec: d.Recorder,
		perms: d.Permissions, msgs: d.Messages, quotes: d.Quotes, now: d.Clock.Now, clock: d.Clock, graphs: d.GraphFor,
		rules: lifecycle.Rules{RingTimeout: cfg.RingTimeout, RingCeiling: cfg.RingCeiling, AgentGrace: cfg.AgentGrace,
			MetaWait: cfg.MetaTerminateWait},
		store:  &store{rdb: d.Redis, prefix: cfg.KeyPrefix, ttl: cfg.StateTTL},
		calls:  map[call.ID]*liveCall{},
		stop:   make(chan struct{}),
		router: d.Router, freed: make(chan string, 256), dialers: d.DialerFor, settingsClients: d.SettingsFor, holdAudio: d.HoldAudio,
		lives: d.LiveFor,
	}
	served := slices.Clone(cfg.Numbers)
	c.numbers.Store(&served)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cl = &cluster{c: c, rdb: d.Redis, id: cfg.InstanceID, lease: cfg.LeaseTTL, pending: map[string]chan busMsg{}}
	reg := d.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c.m = newMetrics(reg, c)
	return c, nil
}

// SetHub connects the agent hub (which itself needs the controller as its
// Handler, hence the two steps).
func (c *Controller) SetHub(h Hub) { c.hub = h }

// Run does the instance's background work until ctx ends: it listens to
// the other instances (pub/sub), renews the leases of its calls and its
// agents' presence, ends the calls of instances that died, and re-records
// ended calls the ledger has not confirmed (after a Redis or ledger blip, or
// a restart).
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		for ctx.Err() == nil {
			if err := c.listen(ctx); err != nil {
				c.log.Warn("bus", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-c.stop:
				cancel()
			case <-time.After(time.Second):
			}
		}
	}()
	defer func() { <-listened }()
	routed := make(chan struct{})
	go func() { defer close(routed); c.runRouting(ctx) }()
	defer func() { <-routed }()
	tick := c.cfg.LeaseTTL / 3
	t := time.NewTicker(tick)
	defer t.Stop()
	for n := 0; ; n++ {
		c.renewLeases(ctx)
		c.syncPresence(ctx)
		c.reap(ctx)
		c.flushPending(ctx)
		c.sweepEarly(ctx)
		if n%3 == 0 {
			c.flushUnrecorded(ctx)
		}
		if n%10 == 0 {
			c.prunePresence(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.stop:
			return nil
		case <-t.C:
		}
	}
}

func (c *Controller) flushUnrecorded(ctx context.Context) {
	if c.rec == nil {
		return
	}
	recs, err := c.store.unrecorded(ctx, 100)
	if err != nil {
		c.m.redisErrors.WithLabelValues("unrecorded").Inc()
		return
	}
	for _, r := range recs {
		c.mu.Lock()
		_, live := c.calls[r.ID]
		c.mu.Unlock()
		if live {
			continue // its actor records it
		}
		if err := c.rec.Record(ctx, r); err != nil {
			c.log.Warn("ledger still unavailable", "call", r.ID, "err", err)
			return
		}
		_ = c.store.recorded(ctx, r.ID)
	}
}

// ActiveCalls counts live calls by state.
func (c *Controller) ActiveCalls() (ringing, active int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.calls {
		switch st := State(l.stateAtomic.Load()); st {
		case StateRinging, StateSetup, lifecycle.StateWaiting:
			ringing++
		case StateDialing, StateConnecting, StateConnected:
			active++
		}
	}
	return ringing, active
}

// Draining reports whether Drain has started.
func (c *Controller) Draining() bool { return c.draining.Load() }

// Drain stops taking new calls and waits for live calls to end until ctx is
// done; then it ends the rest (terminate through the Graph API, recorded
// with reason drained) and waits for their records.
func (c *Controller) Drain(ctx context.Context) {
	c.draining.Store(true)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		n := len(c.calls)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			c.endAll()
			return
		case <-t.C:
		}
	}
}

// endAll ends every live call (reason drained) and waits for the actors (their
// records included, bounded by MetaTerminateWait).
func (c *Controller) endAll() {
	for _, l := range c.liveCalls() {
		l.fire(lifecycle.Drain{When: lifecycle.When{At: c.now()}})
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.MetaTerminateWait + 5*time.Second):
		c.log.Warn("calls still finishing after drain")
	}
}

// Close ends every call (reason drained) and stops the controller. Records
// still waiting for Redis get a last chance; any left are logged.
func (c *Controller) Close() error {
	c.draining.Store(true)
	c.endAll()
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	c.flushPending(ctx)
	defer c.cancel()
	if n := c.PendingRecords(); n > 0 {
		c.log.Error("stopping with call records Redis never took", "records", n)
	}
	return nil
}

// liveCalls returns this instance's live calls at this moment.
func (c *Controller) liveCalls() []*liveCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	ls := make([]*liveCall, 0, len(c.calls))
	for _, l := range c.calls {
		ls = append(ls, l)
	}
	return ls
}

func (c *Controller) lookup(id call.ID) *liveCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// register adds l and starts its actor.
func (c *Controller) register(l *liveCall) {
	c.mu.Lock()
	c.calls[l.id] = l
	c.mu.Unlock()
	c.wg.Add(1)
	go l.run()
}

func (c *Controller) unregister(l *liveCall) {
	c.mu.Lock()
	if c.calls[l.id] == l {
		delete(c.calls, l.id)
	}
	c.mu.Unlock()
}

// info describes l for agents (in the actor, or before it starts).
func (c *Controller) info(l *liveCall) agents.CallInfo {
	r := l.lc.Rec
	st := l.lc.State
	if st == lifecycle.StateFinal {
		st = lifecycle.StateEnded
	}
	from, to := r.UserPhone, r.BusinessPhone
	if r.Direction == call.BusinessInitiated {
		from, to = r.BusinessPhone, r.UserPhone
	}
	if from == "" && r.Direction == call.UserInitiated {
		from = r.UserID
	}
	if to == "" && r.Direction == call.BusinessInitiated {
		to = r.UserID
	}
	if c.cfg.MaskNumbers {
		if r.Direction == call.UserInitiated {
			from = phone.Mask(from)
		} else {
			to = phone.Mask(to)
		}
	}
	ci := agents.CallInfo{ID: string(r.ID), Direction: r.Direction.String(), From: from, To: to,
		Name: r.UserName, State: st.String(), Agent: r.Agent, CreatedAt: r.CreatedAt.UTC(),
		Payload: r.Payload}
	if st == StateRinging {
		ci.RingExpiresAt = l.ringExpires.UTC()
	}
	if !r.AnsweredAt.IsZero() {
		ci.ConnectedAt = r.AnsweredAt.UTC()
	}
	ci.Price = l.price
	if l.route.routed {
		ci.Brand, ci.Team = l.route.number.Brand, string(l.route.team)
		if t, ok := c.routingConfig().Team(l.route.team); st.Offered() && (!ok || !t.Any()) {
			ci.OfferedTo = slices.Clone(l.route.targets) // a "*" team offers every available agent, as before teams
		}
		if u := l.route.offerUntil; st.Offered() && !u.IsZero() && (ci.RingExpiresAt.IsZero() || u.Before(ci.RingExpiresAt)) {
			ci.OfferExpiresAt = u.UTC() // the per-agent ring time (route.go)
		}
	} else if cfg := c.routingConfig(); cfg != nil {
		if n, ok := cfg.Number(r.PhoneNumberID); ok {
			ci.Brand = n.Brand
		}
	}
	ci.PhoneNumberID = r.PhoneNumberID
	l.transferInfo(&ci)
	l.recordingInfo(&ci) // recording.go
	if st.AgentOwned() {
		ci.Media = "connecting"
		if l.lc.AgentLeg == lifecycle.LegUp {
			ci.Media = "up"
		}
	}
	return ci
}

// ctx returns a context for one outside operation of a call actor.
func (c *Controller) opCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, d)
}

func (c *Controller) logCall(id call.ID) *slog.Logger { return c.log.With("call", string(id)) }

// Live returns the live calls of every instance; this instance's carry
// their media quality.
func (c *Controller) Live() []agents.CallInfo {
	all := c.allCalls()
	for i := range all {
		l := c.lookup(call.ID(all[i].ID))
		if l == nil {
			continue
		}
		if b, ok := l.bridgeRef.Load().(*Bridge); ok && b != nil {
			st := (*b).Stats()
			q := agents.Quality{
				RTTMillis:    float64(st.WhatsApp.RTT.Microseconds()) / 1000,
				JitterMillis: float64(st.WhatsApp.Jitter.Microseconds()) / 1000,
			}
			if tot := st.WhatsApp.PacketsReceived + st.WhatsApp.PacketsLost; tot > 0 {
				q.LossPercent = 100 * float64(st.WhatsApp.PacketsLost) / float64(tot)
			}
			all[i].Quality = &q
		}
	}
	return all
}

// persistRecord saves a final record and hands it to the ledger. When Redis
// is unreachable the record is kept in memory and retried by Run, so a
// Redis blip loses no call record.
func (c *Controller) persistRecord(ctx context.Context, rec call.Record) {
	if err := c.store.markEnded(ctx, rec, c.cfg.InstanceID); err != nil {
		c.m.redisErrors.WithLabelValues("mark_ended").Inc()
		c.logCall(rec.ID).Warn("cannot save the final record: kept in memory and retried", "err", err)
		c.pendMu.Lock()
		if len(c.pending) < 100000 {
			c.pending = append(c.pending, rec)
		}
		c.pendMu.Unlock()
		return
	}
	if c.rec == nil {
		return
	}
	if err := c.rec.Record(ctx, rec); err != nil {
		c.logCall(rec.ID).Warn("ledger unavailable: the record waits in Redis", "err", err)
		return
	}
	if err := c.store.recorded(ctx, rec.ID); err != nil {
		c.m.redisErrors.WithLabelValues("recorded").Inc()
	}
}

// flushPending retries the records Redis could not take.
func (c *Controller) flushPending(ctx context.Context) {
	c.pendMu.Lock()
	recs := c.pending
	c.pending = nil
	c.pendMu.Unlock()
	for i, rec := range recs {
		if err := c.store.markEnded(ctx, rec, c.cfg.InstanceID); err != nil {
			c.pendMu.Lock()
			c.pending = append(c.pending, recs[i:]...)
			c.pendMu.Unlock()
			return
		}
		if c.rec != nil {
			if err := c.rec.Record(ctx, rec); err == nil {
				_ = c.store.recorded(ctx, rec.ID)
			}
		}
	}
}

// PendingRecords counts final records waiting for Redis.
func (c *Controller) PendingRecords() int {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	return len(c.pending)
}
