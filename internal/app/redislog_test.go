package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/testkit/redistest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// jsonLines parses every line of a JSON log; a line that is not JSON fails
// the test.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// TestRedisLoggerKeepsTheLogJSON: with SetRedisLogger, what go-redis says
// while Redis is down arrives as JSON records (component=redis, WARN), not
// as plain text lines.
func TestRedisLoggerKeepsTheLogJSON(t *testing.T) {
	var buf lockedBuffer
	SetRedisLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { SetRedisLogger(slog.New(slog.DiscardHandler)) })
	rs := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	rs.Stop()
	for range 3 {
		if err := c.Ping(ctx).Err(); err == nil {
			t.Fatal("ping with Redis down")
		}
	}
	lines := jsonLines(t, buf.String())
	if len(lines) == 0 {
		t.Fatal("go-redis logged nothing about the failed dials: nothing shown")
	}
	for _, m := range lines {
		if m["component"] != "redis" || m["level"] != "WARN" || m["msg"] != "redis client" || m["detail"] == "" {
			t.Fatalf("record %v", m)
		}
	}
}

// TestRedisLoggerRateLimits: one pattern logs once per Every; the next
// record counts what was suppressed.
func TestRedisLoggerRateLimits(t *testing.T) {
	var buf lockedBuffer
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	l := &RedisLogger{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Every: 10 * time.Second, Now: func() time.Time { return now }}
	ctx := context.Background()
	for i := range 5 {
		l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", i, "dial tcp 127.0.0.1:1: connect: connection refused")
	}
	l.Printf(ctx, "other %s", "pattern")
	now = now.Add(11 * time.Second)
	l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 9, "x")
	lines := jsonLines(t, buf.String())
	if len(lines) != 3 {
		t.Fatalf("%d records: %v", len(lines), lines)
	}
	if lines[0]["suppressed"] != nil || lines[2]["suppressed"] != float64(4) {
		t.Fatalf("suppressed counts: %v / %v", lines[0]["suppressed"], lines[2]["suppressed"])
	}
	if !strings.Contains(lines[2]["detail"].(string), "after 9 attempts") {
		t.Fatalf("detail %v", lines[2]["detail"])
	}
}
