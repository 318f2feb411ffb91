// Package ratelimit holds request budgets shared by every callgw instance,
// for Graph API limits Meta counts per business number (call_permissions: 5
// requests per 1-second window). Redis implements cloudapi.Limiter and
// cloudapi.Penalizer with one Lua script per decision, on the Redis
// server's clock, so instances with skewed clocks still share one window.
package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrBadConfig is returned by NewRedis for an unusable Config.
var ErrBadConfig = errors.New("ratelimit: bad config")

// Defaults of Config.
const (
	// DefaultLimit is Meta's call_permissions budget per window.
	DefaultLimit = 5
	// DefaultWindow is Meta's 1-second window plus 100 ms for network and
	// clock jitter between our admission and Meta's count.
	DefaultWindow = 1100 * time.Millisecond
	DefaultPrefix = "callgw:graphrl:"
)

// Config of a Redis limiter.
type Config struct {
	Limit  int           // requests per window; default 5
	Window time.Duration // sliding window; default 1.1 s; at least 10 ms
	Prefix string        // key prefix; default "callgw:graphrl:"
}

// Redis is a sliding-window limiter: at most Limit admissions in any
// Window, across every instance using the same Redis. It is a log of
// admission times (a sorted set), not a refilling token bucket: a bucket of
// 5 refilling at 5/s admits up to 9 requests inside one second, which Meta
// would refuse. Safe for concurrent use; no goroutines.
type Redis struct {
	rdb redis.Scripter
	cfg Config
}

// NewRedis builds a limiter on rdb (a *redis.Client, ClusterClient or Ring).
func NewRedis(rdb redis.Scripter, cfg Config) (*Redis, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: no redis client", ErrBadConfig)
	}
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Limit < 0 || cfg.Limit > 10000 {
		return nil, fmt.Errorf("%w: Limit %d must be 1-10000", ErrBadConfig, cfg.Limit)
	}
	if cfg.Window < 10*time.Millisecond || cfg.Window > time.Hour {
		return nil, fmt.Errorf("%w: Window %v must be 10ms-1h", ErrBadConfig, cfg.Window)
	}
	return &Redis{rdb: rdb, cfg: cfg}, nil
}

// Keys share a hash tag so the script's two keys live on one cluster slot.
func (r *Redis) keys(key string) []string {
	base := r.cfg.Prefix + "{" + strings.NewReplacer("{", "_", "}", "_").Replace(key) + "}"
	return []string{base + ":log", base + ":block"}
}

// allowScript: KEYS[1] admission log (zset of µs), KEYS[2] blocked-until
// (µs). ARGV limit, window µs, unique member. Returns {1,0} or {0, wait µs}.
var allowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  return {0, blocked - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1 then wait = 1 end
return {0, wait}
`)

// penalizeScript: KEYS[1] blocked-until; ARGV[1] µs. Extends, never shortens.
var penalizeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untilUs = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilUs > cur then
  redis.call('SET', KEYS[1], string.format('%d', untilUs), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
`)

// Allow spends one admission of key's budget, or reports how long until one
// frees up. A Redis error is returned as is (the caller decides: the
// PermissionsReader treats it as "do not call Meta").
func (r *Redis) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	res, err := allowScript.Run(ctx, r.rdb, r.keys(key), r.cfg.Limit, r.cfg.Window.Microseconds(), hex.EncodeToString(b[:])).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("ratelimit: allow %s: %w", key, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("ratelimit: allow %s: script answered %v", key, res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}

// Penalize closes key's budget for d on every instance (Meta answered
// 613/429). A shorter penalty never shortens a longer one.
func (r *Redis) Penalize(ctx context.Context, key string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := penalizeScript.Run(ctx, r.rdb, r.keys(key)[1:], d.Microseconds()).Err(); err != nil {
		return fmt.Errorf("ratelimit: penalize %s: %w", key, err)
	}
	return nil
}
