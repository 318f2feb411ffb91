package recording

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/storage"
)

// RetainerConfig configures the retention job. Zero values take defaults.
type RetainerConfig struct {
	// Interval between passes (default 1 h).
	Interval time.Duration
	// LeaseTTL bounds one pass; the lease lapses after it if the holder dies (default 10 min).
	LeaseTTL time.Duration
	// Batch is how many expired entries a pass handles (default 500).
	Batch int
	// Owner names this instance in the lease (default random).
	Owner      string
	Prefix     string // Redis key prefix (default DefaultPrefix)
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Retainer deletes objects and index entries whose retention has ended.
// Every instance may run it: a Redis lease lets one pass run at a time.
type Retainer struct {
	cfg   RetainerConfig
	store storage.Store
	idx   index
	m     *retentionMetrics
}

// NewRetainer returns the retention job.
func NewRetainer(store storage.Store, rdb redis.UniversalClient, cfg RetainerConfig) (*Retainer, error) {
	if store == nil || rdb == nil {
		return nil, fmt.Errorf("%w: retainer needs a store and redis", ErrBadConfig)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Owner == "" {
		cfg.Owner = randomToken()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Retainer{cfg: cfg, store: store, idx: index{rdb: rdb, prefix: cfg.Prefix}, m: newRetentionMetrics(cfg.Registerer)}, nil
}

// RunOnce takes the lease and deletes what has expired by the clock's now.
// It returns the number of entries removed, or ErrLeaseHeld.
func (r *Retainer) RunOnce(ctx context.Context) (int, error) {
	lease := r.idx.leaseKey("retention")
	token := r.cfg.Owner + ":" + randomToken()
	ok, err := r.idx.rdb.SetNX(ctx, lease, token, r.cfg.LeaseTTL).Result()
	if err != nil {
		r.m.runs.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("recording: retention lease: %w", err)
	}
	if !ok {
		r.m.runs.WithLabelValues("lease_held").Inc()
		return 0, ErrLeaseHeld
	}
	defer r.idx.release(context.WithoutCancel(ctx), lease, token)
	n, err := r.sweep(ctx)
	if err != nil {
		r.m.runs.WithLabelValues("error").Inc()
		return n, err
	}
	r.m.runs.WithLabelValues("ok").Inc()
	return n, nil
}

func (r *Retainer) sweep(ctx context.Context) (int, error) {
	ms, err := r.idx.due(ctx, r.idx.expiryKey(), r.cfg.Clock.Now(), int64(r.cfg.Batch))
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, m := range ms {
		callID, kind, err := splitMember(m)
		if err != nil {
			_ = r.idx.rdb.ZRem(ctx, r.idx.expiryKey(), m).Err()
			continue
		}
		e, err := r.idx.get(ctx, callID, kind)
		if errors.Is(err, ErrNotFound) {
			_ = r.idx.rdb.ZRem(ctx, r.idx.expiryKey(), m).Err()
			continue
		}
		if err != nil {
			return removed, err
		}
		if e.Key != "" {
			if err := r.store.Delete(ctx, e.Key); err != nil {
				r.m.deletions.WithLabelValues(kind.String(), "error").Inc()
				r.cfg.Logger.Error("recording: retention delete failed", "call", callID, "kind", kind, "key", e.Key, "err", err)
				errs = append(errs, err)
				continue // index kept: the next pass tries again
			}
		}
		if err := r.idx.remove(ctx, e); err != nil {
			return removed, err
		}
		removed++
		r.m.deletions.WithLabelValues(kind.String(), "ok").Inc()
		r.cfg.Logger.Info("recording: retention deleted", "call", callID, "kind", kind, "key", e.Key,
			"number", e.Number, "stored_at", e.StoredAt, "expired_at", e.ExpiresAt)
	}
	return removed, errors.Join(errs...)
}

// Run makes a pass every Interval until ctx ends.
func (r *Retainer) Run(ctx context.Context) error {
	for {
		if _, err := r.RunOnce(ctx); err != nil && !errors.Is(err, ErrLeaseHeld) && ctx.Err() == nil {
			r.cfg.Logger.Warn("recording: retention pass", "err", err)
		}
		tick := make(chan struct{})
		t := r.cfg.Clock.AfterFunc(r.cfg.Interval, func() { close(tick) })
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-tick:
		}
	}
}
