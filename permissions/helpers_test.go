package permissions

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/callgw/callgw/internal/testkit/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the start of every scenario.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// manualClock is the tests' clock: time moves only when told.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *manualClock { return &manualClock{now: t0} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// backend is a Redis-compatible server the suite runs against.
type backend struct {
	name      string
	newClient func() redis.UniversalClient // a new client to the same server
	real      *redistest.Server            // nil for miniredis
}

// backends starts a real redis-server and a miniredis for the test.
func backends(t *testing.T) []backend {
	t.Helper()
	srv := redistest.Start(t)
	mr := miniredis.RunT(t)
	return []backend{
		{name: "redis-server", real: srv, newClient: func() redis.UniversalClient { return srv.Client() }},
		{name: "miniredis", newClient: func() redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
	}
}

// forEachBackend runs fn as a sub-test per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

var pairSeq struct {
	mu sync.Mutex
	n  int
}

// newPair returns a pair no other test uses, so tests share a server safely.
func newPair() Pair {
	pairSeq.mu.Lock()
	defer pairSeq.mu.Unlock()
	pairSeq.n++
	return Pair{Business: fmt.Sprintf("10600%04d", pairSeq.n), User: fmt.Sprintf("4477009%05d", pairSeq.n)}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newTracker(t *testing.T, rdb redis.UniversalClient, cfg Config, clock Clock, meta MetaChecker, reg prometheus.Registerer) *Tracker {
	t.Helper()
	tr, err := New(rdb, cfg, clock, meta, reg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tr
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
