package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisLogger adapts go-redis' process-wide logger (redis.SetLogger) to
// slog, so that its lines (failed dials, pool trouble during a Redis
// outage) are structured records in the JSON log instead of plain text on
// stderr. Records are Warn with component=redis and the text in "detail".
// A message pattern (the format string) logs at most once per Every; the
// next record says how many were suppressed.
type RedisLogger struct {
	Log   *slog.Logger
	Every time.Duration    // default 10s
	Now   func() time.Time // default time.Now

	mu   sync.Mutex
	seen map[string]*redisLogState
}

type redisLogState struct {
	last       time.Time
	suppressed int
}

// Printf implements go-redis' Logging interface.
func (l *RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	every := l.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	t := now()
	l.mu.Lock()
	if l.seen == nil {
		l.seen = map[string]*redisLogState{}
	}
	st := l.seen[format]
	if st == nil {
		if len(l.seen) > 256 { // bounded: patterns are go-redis' format strings
			clear(l.seen)
		}
		st = &redisLogState{}
		l.seen[format] = st
	} else if t.Sub(st.last) < every {
		st.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = t, 0
	l.mu.Unlock()
	attrs := []any{"component", "redis", "detail", strings.TrimSpace(fmt.Sprintf(format, v...))}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	l.Log.Log(ctx, slog.LevelWarn, "redis client", attrs...)
}

// SetRedisLogger routes go-redis' logging (a process-wide global) to log.
// Call it once, where the process' logger is built (cmd/callgw).
func SetRedisLogger(log *slog.Logger) {
	if log == nil {
		return
	}
	redis.SetLogger(&RedisLogger{Log: log})
}
