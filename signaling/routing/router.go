package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/clock"
)

// AgentID is an agent, as in the configuration.
type AgentID = config.AgentID

// TeamID is a team, as in the configuration.
type TeamID = config.TeamID

// Options configure a Router. Config is required.
type Options struct {
	Config    *config.Config        // teams in force; replace with SetConfig on reload
	Instance  string                // this instance's id, recorded as the owner of the calls it queues (required)
	KeyPrefix string                // default "callgw:"
	Clock     clock.Clock           // default clock.Real{}
	Logger    *slog.Logger          // default slog.Default()
	Registry  prometheus.Registerer // nil = metrics not registered
	// ReserveMargin is added to a team's ring time to make the lease of an
	// agent picked by a sequential strategy (default 5s): a reservation
	// left by a crashed instance frees the agent after it.
	ReserveMargin time.Duration
	// StaleGrace: a queued call of another instance still queued this long
	// after its max_wait is taken as left behind by a dead instance and
	// dropped by Expired (default 2m).
	StaleGrace time.Duration
	// TaskRetention is how long a closed task is kept, and how long an open
	// or claimed task lives without a new missed call (default 30 days).
	TaskRetention time.Duration
	// ClosedKept bounds the closed list of a team (default 1000).
	ClosedKept int
}

// Router makes routing decisions over Redis. Safe for concurrent use; any
// number of Routers (one per instance) may share one Redis.
type Router struct {
	rdb      redis.UniversalClient
	cfg      atomic.Pointer[config.Config]
	instance string
	prefix   string
	clk      clock.Clock
	log      *slog.Logger
	margin   time.Duration
	stale    time.Duration
	ttl      time.Duration
	kept     int
	m        *metrics
}

var instanceRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// New returns a Router over rdb (a single server, Sentinel or Cluster client).
func New(rdb redis.UniversalClient, o Options) (*Router, error) {
	switch {
	case rdb == nil:
		return nil, fmt.Errorf("%w: redis client is nil", ErrInvalidArgument)
	case o.Config == nil:
		return nil, fmt.Errorf("%w: config is nil", ErrInvalidArgument)
	case !instanceRE.MatchString(o.Instance):
		return nil, fmt.Errorf("%w: instance id %q", ErrInvalidArgument, o.Instance)
	case o.ReserveMargin < 0 || o.StaleGrace < 0 || o.TaskRetention < 0 || o.ClosedKept < 0:
		return nil, fmt.Errorf("%w: negative option", ErrInvalidArgument)
	}
	r := &Router{rdb: rdb, instance: o.Instance, prefix: o.KeyPrefix, clk: o.Clock, log: o.Logger,
		margin: o.ReserveMargin, stale: o.StaleGrace, ttl: o.TaskRetention, kept: o.ClosedKept}
	if r.prefix == "" {
		r.prefix = "callgw:"
	}
	if r.clk == nil {
		r.clk = clock.Real{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "routing")
	if r.margin == 0 {
		r.margin = 5 * time.Second
	}
	if r.stale == 0 {
		r.stale = 2 * time.Minute
	}
	if r.ttl == 0 {
		r.ttl = 30 * 24 * time.Hour
	}
	if r.kept == 0 {
		r.kept = 1000
	}
	m, err := newMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	r.m = m
	r.cfg.Store(o.Config)
	return r, nil
}

// SetConfig replaces the teams in force (call it from the config Loader's
// OnChange). State of teams that disappeared stays in Redis untouched.
func (r *Router) SetConfig(c *config.Config) {
	if c != nil {
		r.cfg.Store(c)
	}
}

// Config returns the configuration in force.
func (r *Router) Config() *config.Config { return r.cfg.Load() }

func (r *Router) team(id TeamID) (config.Team, error) {
	t, ok := r.cfg.Load().Team(id)
	if !ok {
		return config.Team{}, fmt.Errorf("%w: %q", ErrUnknownTeam, id)
	}
	return t, nil
}

// Keys. Agent state: one slot for all teams. Queues and tasks: one slot
// per team.
func (r *Router) agentsTag() string             { return r.prefix + "route:{agents}:" }
func (r *Router) reserveKey(a AgentID) string   { return r.agentsTag() + "res:" + string(a) }
func (r *Router) idleKey() string               { return r.agentsTag() + "idle" }
func (r *Router) cursorKey(t TeamID) string     { return r.agentsTag() + "rr:" + string(t) }
func (r *Router) teamTag(t TeamID) string       { return r.prefix + "route:{team:" + string(t) + "}:" }
func (r *Router) queueKey(t TeamID) string      { return r.teamTag(t) + "queue" }
func (r *Router) ownerKey(t TeamID) string      { return r.teamTag(t) + "queue:owner" }
func (r *Router) taskKeyPrefix(t TeamID) string { return r.teamTag(t) + "task:" }
func (r *Router) taskSetKey(t TeamID, s TaskState) string {
	return r.teamTag(t) + "tasks:" + s.String()
}
func (r *Router) userIndexKey(t TeamID, kind, id string) string {
	return r.teamTag(t) + "taskuser:" + kind + ":" + id
}

// redisErr wraps a Redis failure (redis.Nil is handled by callers).
func (r *Router) redisErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		r.m.redisErrors.WithLabelValues(op).Inc()
		return fmt.Errorf("routing: %s: %w: %w", op, ErrUnavailable, err)
	}
	r.m.redisErrors.WithLabelValues(op).Inc()
	return fmt.Errorf("routing: %s: %w: %v", op, ErrUnavailable, err)
}

func micros(t time.Time) int64      { return t.UnixMicro() }
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
func validID(s string) bool         { return s != "" && len(s) <= 256 && idRE.MatchString(s) }

var idRE = regexp.MustCompile(`^[^\s{}]+$`)
