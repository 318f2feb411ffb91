package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Limiter is a request budget shared by every callgw instance; package
// cloudapi/ratelimit has the Redis implementation. Allow spends one request
// of key's budget, or reports when one may be available again.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Completer is optionally implemented by a Limiter: Done marks one request
// admitted for key as finished now. A limiter that knows when requests end
// counts each one from admission until Done + its window, so what Meta
// sees stays within the budget whatever the network delay (Meta counts a
// request when it arrives, somewhere between our admission and our Done).
type Completer interface {
	Done(ctx context.Context, key string) error
}

// Penalizer is optionally implemented by a Limiter: after Meta answers
// 613/429, Penalize closes key's budget for d on every instance.
type Penalizer interface {
	Penalize(ctx context.Context, key string, d time.Duration) error
}

// Defaults of ReaderConfig.
const (
	DefaultPermissionsCacheTTL = 3 * time.Second
	DefaultPermissionsBackoff  = time.Second
	DefaultPermissionsEntries  = 10000
	maxPermissionsCacheTTL     = time.Minute
)

// ReaderConfig configures a PermissionsReader.
type ReaderConfig struct {
	// Limiter is the call_permissions budget shared by all instances
	// (ratelimit.Redis: 5 requests per second per business number).
	// Required.
	Limiter Limiter
	// CacheTTL keeps an answer per user in this instance. Default 3s; at
	// most 1 minute (permissions change on webhooks: call Invalidate then).
	CacheTTL time.Duration
	// MaxEntries bounds the cache. Default 10,000.
	MaxEntries int
	// Now is the clock of the cache and the backoff. Default time.Now.
	Now func() time.Time
	// Logger: default the Client's.
	Logger *slog.Logger
}

// PermissionsReader wraps Client.GetCallPermissions with a short per-user
// cache, one Meta request per user at a time, one HTTP attempt per unit of
// budget (no automatic retries), and the shared budget: when
// the budget is spent it returns a *LocalRateLimitError
// (errors.Is(err, ErrRateLimitedLocally)) without calling Meta, and after
// Meta answers 613/HTTP 429 it stops asking for Retry-After (1 s when
// absent), on every instance when the Limiter is a Penalizer. Safe for
// concurrent use; it owns no goroutines.
type PermissionsReader struct {
	c     *Client
	cfg   ReaderConfig
	key   string
	log   *slog.Logger
	group singleflight.Group
	reads *prometheus.CounterVec

	mu           sync.Mutex
	cache        map[string]cachedPermission
	blockedUntil time.Time
}

type cachedPermission struct {
	p  *Permission
	at time.Time
}

// Read results of callgw_graph_permission_reads_total.
const (
	ReadCacheHit = "cache_hit"
	ReadMeta     = "meta"
	ReadLimited  = "limited"
	ReadError    = "error"
)

// NewPermissionsReader builds a reader for c's number; its counter
// callgw_graph_permission_reads_total{result} is registered on reg (nil: not
// registered; a second reader on the same registry shares it).
func NewPermissionsReader(c *Client, cfg ReaderConfig, reg prometheus.Registerer) (*PermissionsReader, error) {
	switch {
	case c == nil:
		return nil, fmt.Errorf("%w: PermissionsReader needs a Client", ErrBadConfig)
	case cfg.Limiter == nil:
		return nil, fmt.Errorf("%w: PermissionsReader needs a Limiter (the budget shared by all instances)", ErrBadConfig)
	case cfg.CacheTTL < 0 || cfg.CacheTTL > maxPermissionsCacheTTL:
		return nil, fmt.Errorf("%w: CacheTTL %v must be within 0-%v", ErrBadConfig, cfg.CacheTTL, maxPermissionsCacheTTL)
	case cfg.MaxEntries < 0:
		return nil, fmt.Errorf("%w: MaxEntries %d is negative", ErrBadConfig, cfg.MaxEntries)
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultPermissionsCacheTTL
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultPermissionsEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = c.log
	}
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "callgw", Subsystem: "graph", Name: "permission_reads_total",
		Help: "call_permissions reads through PermissionsReader, by result (cache_hit, meta, limited, error).",
	}, []string{"result"})
	if reg != nil {
		var err error
		if reads, err = register(reg, reads); err != nil {
			return nil, fmt.Errorf("cloudapi: metrics: %w", err)
		}
	}
	return &PermissionsReader{c: c, cfg: cfg, key: "call_permissions:" + c.cfg.PhoneNumberID, log: log,
		reads: reads, cache: map[string]cachedPermission{}}, nil
}

// LimiterKey is the budget key this reader spends (one per business number).
func (r *PermissionsReader) LimiterKey() string { return r.key }

func userKey(u User) string {
	if u.Phone != "" {
		return "p:" + strings.TrimPrefix(u.Phone, "+")
	}
	return "b:" + u.BSUID
}

// Get returns u's permission: from the cache when younger than CacheTTL,
// else from Meta if the shared budget allows. Concurrent Gets for one user
// share one Meta request, run under the first caller's ctx. The result is
// the caller's own copy.
func (r *PermissionsReader) Get(ctx context.Context, u User) (*Permission, error) {
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w", ActionCallPermissions, err)
	}
	k := userKey(u)
	if p, ok := r.cached(k); ok {
		r.reads.WithLabelValues(ReadCacheHit).Inc()
		return p, nil
	}
	v, err, _ := r.group.Do(k, func() (any, error) { return r.fetch(ctx, k, u) })
	if err != nil {
		if errors.Is(err, ErrRateLimitedLocally) {
			r.reads.WithLabelValues(ReadLimited).Inc()
		} else {
			r.reads.WithLabelValues(ReadError).Inc()
		}
		return nil, err
	}
	r.reads.WithLabelValues(ReadMeta).Inc()
	return v.(*Permission).clone(), nil
}

// Invalidate drops u's cached answer (call it on a permission webhook).
func (r *PermissionsReader) Invalidate(u User) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u.Phone != "" {
		delete(r.cache, userKey(User{Phone: u.Phone}))
	}
	if u.BSUID != "" {
		delete(r.cache, userKey(User{BSUID: u.BSUID}))
	}
}

func (r *PermissionsReader) cached(k string) (*Permission, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[k]
	if !ok || r.cfg.Now().Sub(e.at) >= r.cfg.CacheTTL {
		return nil, false
	}
	return e.p.clone(), true
}

func (r *PermissionsReader) fetch(ctx context.Context, k string, u User) (*Permission, error) {
	if p, ok := r.cached(k); ok { // filled while we waited for the group
		return p, nil
	}
	r.mu.Lock()
	wait := r.blockedUntil.Sub(r.cfg.Now())
	r.mu.Unlock()
	if wait > 0 {
		return nil, &LocalRateLimitError{RetryAfter: wait, Backoff: true}
	}
	ok, retryAfter, err := r.cfg.Limiter.Allow(ctx, r.key)
	if err != nil {
		return nil, &LocalRateLimitError{Err: err}
	}
	if !ok {
		return nil, &LocalRateLimitError{RetryAfter: retryAfter}
	}
	// One HTTP attempt per admission: a retry would be a second request to
	// Meta on one unit of budget.
	p, err := r.c.getCallPermissions(ctx, u, true)
	if done, ok := r.cfg.Limiter.(Completer); ok {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if derr := done.Done(dctx, r.key); derr != nil {
			r.log.WarnContext(ctx, "could not mark a call_permissions request done", "err", derr)
		}
		cancel()
	}
	var me *Error
	if errors.As(err, &me) && (me.Code == CodePermissionsRateLimit || me.HTTPStatus == http.StatusTooManyRequests) {
		r.backOff(ctx, err)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	r.store(k, p)
	return p.clone(), nil
}

// backOff stops this instance (and, through a Penalizer, all instances)
// from asking for Meta's Retry-After, or DefaultPermissionsBackoff.
func (r *PermissionsReader) backOff(ctx context.Context, err error) {
	d := retryAfterOf(err)
	if d <= 0 {
		d = DefaultPermissionsBackoff
	}
	r.mu.Lock()
	if until := r.cfg.Now().Add(d); until.After(r.blockedUntil) {
		r.blockedUntil = until
	}
	r.mu.Unlock()
	if p, ok := r.cfg.Limiter.(Penalizer); ok {
		if perr := p.Penalize(ctx, r.key, d); perr != nil {
			r.log.WarnContext(ctx, "could not share the call_permissions backoff", "err", perr)
		}
	}
	r.log.WarnContext(ctx, "meta rate-limited call_permissions: backing off", "backoff", d)
}

func (r *PermissionsReader) store(k string, p *Permission) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	if len(r.cache) >= r.cfg.MaxEntries {
		for ck, e := range r.cache {
			if now.Sub(e.at) >= r.cfg.CacheTTL {
				delete(r.cache, ck)
			}
		}
		for ck := range r.cache { // still full: drop any
			if len(r.cache) < r.cfg.MaxEntries {
				break
			}
			delete(r.cache, ck)
		}
	}
	r.cache[k] = cachedPermission{p: p.clone(), at: now}
}

func (p *Permission) clone() *Permission {
	if p == nil {
		return nil
	}
	c := *p
	c.Actions = make([]Action, len(p.Actions))
	for i, a := range p.Actions {
		a.Limits = append([]Limit(nil), a.Limits...)
		c.Actions[i] = a
	}
	return &c
}
