// Package ratelimit holds request budgets shared by every callgw instance,
// for Graph API limits Meta counts per business number (call_permissions: 5
// requests per 1-second window). Redis implements cloudapi.Limiter,
// cloudapi.Completer and cloudapi.Penalizer with one Lua script per
// decision, on the Redis server's clock, so instances with skewed clocks
// still share one window.
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
	// DefaultWindow is Meta's window. No margin is needed when callers
	// report completion (Done): see Redis.
	DefaultWindow = time.Second
	// DefaultLease bounds how long an admitted request whose Done never
	// comes (a crashed instance) keeps holding budget.
	DefaultLease  = 30 * time.Second
	DefaultPrefix = "callgw:graphrl:"
)

// Config of a Redis limiter.
type Config struct {
	Limit  int           // requests per window; default 5
	Window time.Duration // sliding window; default 1 s; 10 ms-1 h
	Lease  time.Duration // in-flight bound without Done; default 30 s; at least Window
	Prefix string        // key prefix; default "callgw:graphrl:"
}

// Redis is a sliding-window limiter shared by every instance using the
// same Redis, on the Redis server's clock (millisecond resolution). Each
// admission is an entry in a sorted set that counts while the request is
// in flight (until Done, or Lease) and for Window after it finished. Meta
// counts a request when it arrives, which is after our admission and before
// our Done; so if Meta ever saw Limit+1 requests within Window, the last
// one admitted would have found the other Limit still counted and been
// refused — whatever the network delays. Without Done (plain Limiter use)
// entries count for Lease+Window.
//
// It is a log, not a refilling token bucket: a bucket of 5 refilling at 5/s
// admits up to 9 requests inside one second, which Meta would refuse. Safe
// for concurrent use; no goroutines.
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
	if cfg.Lease == 0 {
		cfg.Lease = max(DefaultLease, cfg.Window)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	switch {
	case cfg.Limit < 0 || cfg.Limit > 10000:
		return nil, fmt.Errorf("%w: Limit %d must be 1-10000", ErrBadConfig, cfg.Limit)
	case cfg.Window < 10*time.Millisecond || cfg.Window > time.Hour:
		return nil, fmt.Errorf("%w: Window %v must be 10ms-1h", ErrBadConfig, cfg.Window)
	case cfg.Lease < cfg.Window || cfg.Lease > 24*time.Hour:
		return nil, fmt.Errorf("%w: Lease %v must be Window-24h", ErrBadConfig, cfg.Lease)
	}
	return &Redis{rdb: rdb, cfg: cfg}, nil
}

// Keys share a hash tag so the scripts' keys live on one cluster slot.
func (r *Redis) keys(key string) []string {
	base := r.cfg.Prefix + "{" + strings.NewReplacer("{", "_", "}", "_").Replace(key) + "}"
	return []string{base + ":log", base + ":block"}
}

// Scores are milliseconds on the Redis clock (13 digits: exact in Lua's
// doubles and in Redis' number formatting). An in-flight entry scores
// admission+lease; Done rescores one in-flight entry to now; entries scoring
// at or below now-window no longer count.
//
// allowScript: KEYS log, blocked-until; ARGV limit, window ms, lease ms,
// member. Returns {1,0} or {0, wait ms}.
var allowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then
  return {0, blocked - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], string.format('%d', now + lease), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], lease + window + 1000)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait > window then wait = window end
if wait < 1 then wait = 1 end
return {0, wait}
`)

// doneScript: KEYS log. Rescores one in-flight entry (score > now) to now.
var doneScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now), '+inf', 'LIMIT', 0, 1)
if #m == 0 then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', string.format('%d', now), m[1])
return 1
`)

// penalizeScript: KEYS blocked-until; ARGV ms. Extends, never shortens.
var penalizeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > cur then
  redis.call('SET', KEYS[1], string.format('%d', untilMs), 'PX', tonumber(ARGV[1]) + 1000)
end
return 1
`)

// Allow spends one admission of key's budget, or reports how long until one
// frees up. A Redis error is returned as is (the caller decides: the
// PermissionsReader treats it as "do not call Meta").
func (r *Redis) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	res, err := allowScript.Run(ctx, r.rdb, r.keys(key), r.cfg.Limit, r.cfg.Window.Milliseconds(), r.cfg.Lease.Milliseconds(),
		hex.EncodeToString(b[:])).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("ratelimit: allow %s: %w", key, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("ratelimit: allow %s: script answered %v", key, res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

// Done marks one admitted, unfinished request of key as finished now; it
// then counts for Window more. Call it once per admission, after the answer
// (or the failure) came back.
func (r *Redis) Done(ctx context.Context, key string) error {
	if err := doneScript.Run(ctx, r.rdb, r.keys(key)[:1]).Err(); err != nil {
		return fmt.Errorf("ratelimit: done %s: %w", key, err)
	}
	return nil
}

// Penalize closes key's budget for d on every instance (Meta answered
// 613/429). A shorter penalty never shortens a longer one.
func (r *Redis) Penalize(ctx context.Context, key string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := penalizeScript.Run(ctx, r.rdb, r.keys(key)[1:], max(d.Milliseconds(), 1)).Err(); err != nil {
		return fmt.Errorf("ratelimit: penalize %s: %w", key, err)
	}
	return nil
}
