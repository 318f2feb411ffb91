package billing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// manualClock is a clock the test moves; After registers a waiter and
// signals it on waiting so the test knows the job is asleep.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []manualWaiter
	waiting chan time.Duration
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

func newManualClock(now time.Time) *manualClock {
	return &manualClock{now: now, waiting: make(chan time.Duration, 16)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, manualWaiter{c.now.Add(d), ch})
	c.waiting <- d
	return ch
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// reconDay records the ledger's side of 2026-11-10: two GB calls and one IN
// call (Meta's fixture has a third GB call the ledger lacks) and one
// charged GB marketing message.
func reconDay(t *testing.T, l *Ledger) {
	t.Helper()
	ctx := context.Background()
	for i, c := range []struct {
		user string
		secs int64
	}{{"+447700900123", 56}, {"+447700900124", 56}, {"+919812345678", 30}} {
		if _, _, err := l.Record(ctx, outbound(fmt.Sprintf("wacid.r%d", i), c.user, c.secs, nov.Add(time.Duration(i)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Sent(ctx, MessageSent{ID: "wamid.r", Business: "waba1", User: "+447700900123", At: nov}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Status(ctx, MessageStatus{ID: "wamid.r", Status: StatusDelivered, Billable: true, Type: "regular", Category: "marketing", At: nov}); err != nil {
		t.Fatal(err)
	}
}

func fixtureFetch(t *testing.T, calls chan<- [2]time.Time) Fetch {
	ca := mustRead(t, "../testdata/billing/call_analytics_2026-11-10.json")
	pa := mustRead(t, "../testdata/billing/pricing_analytics_2026-11-10.json")
	return func(ctx context.Context, from, to time.Time) (MetaAnalytics, error) {
		if calls != nil {
			calls <- [2]time.Time{from, to}
		}
		return MetaAnalytics{CallAnalytics: ca, PricingAnalytics: pa}, nil
	}
}

func TestReconcileMissingLedgerEntry(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l, _ := newTestLedger(t, b.newClient(t), "recon:")
			reconDay(t, l)
			clk := newManualClock(time.Date(2026, 11, 11, 5, 0, 0, 0, time.UTC))
			r, err := NewReconciler(l, ReconcileConfig{Instance: "callgw-1", Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			rec, ran, err := r.RunOnce(ctx, fixtureFetch(t, nil))
			if err != nil || !ran {
				t.Fatalf("RunOnce = %v, %v", ran, err)
			}
			if rec.Status != ReconDifferences || rec.From != "2026-11-08" || rec.To != "2026-11-10" {
				t.Fatalf("reconciliation %s %s..%s, want differences 2026-11-08..2026-11-10", rec.Status, rec.From, rec.To)
			}
			want := []ReconDay{
				{Date: "2026-11-10", Market: "GB", Kind: ReconCalls, Ours: Figures{2, 120, 60000}, Meta: &Figures{3, 180, 90000},
					Difference: -30000, CountDiff: -1, Status: ReconDifferences},
				{Date: "2026-11-10", Market: "IN", Kind: ReconCalls, Ours: Figures{1, 30, 1600}, Meta: &Figures{1, 30, 1600}, Status: ReconOK},
				{Date: "2026-11-10", Market: "GB", Kind: ReconMessages, Ours: Figures{1, 0, 52900}, Meta: &Figures{1, 0, 52900}, Status: ReconOK},
			}
			if !reflect.DeepEqual(rec.Days, want) {
				t.Fatalf("days:\n got %+v\nwant %+v", rec.Days, want)
			}
			if g := testutil.ToFloat64(l.metrics.ReconDifference.WithLabelValues("calls")); g != 30000 {
				t.Fatalf("difference metric (calls) = %v, want 30000", g)
			}
			if g := testutil.ToFloat64(l.metrics.ReconDifference.WithLabelValues("messages")); g != 0 {
				t.Fatalf("difference metric (messages) = %v, want 0", g)
			}
			// Meta's figures are stored beside ours.
			dc, err := l.rdb.HGetAll(ctx, l.k.dayMeta(ReconCalls, "2026-11-10")).Result()
			if err != nil || dc["GB:cost_micros"] != "90000" || dc["GB:count"] != "3" {
				t.Fatalf("stored Meta call figures = %v, %v", dc, err)
			}
			dmsg, err := l.rdb.HGetAll(ctx, l.k.dayMeta(ReconMessages, "2026-11-10")).Result()
			if err != nil || dmsg["GB:count"] != "1" || dmsg["GB:cost_micros"] != "52900" {
				t.Fatalf("stored Meta message figures = %v, %v", dmsg, err)
			}
			// The usage report carries the month's reconciliation.
			u, err := l.Usage(ctx, "2026-11")
			if err != nil {
				t.Fatal(err)
			}
			if u.Reconciliation == nil || u.Reconciliation.Status != ReconDifferences || len(u.Reconciliation.Days) != 3 {
				t.Fatalf("usage reconciliation = %+v", u.Reconciliation)
			}
		})
	}
}

func TestReconcileUnavailable(t *testing.T) {
	ctx := context.Background()
	l, _ := newTestLedger(t, backends(t)[1].newClient(t), "reconu:")
	reconDay(t, l)
	clk := newManualClock(time.Date(2026, 11, 11, 5, 0, 0, 0, time.UTC))
	r, err := NewReconciler(l, ReconcileConfig{Instance: "callgw-1", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		fetch  Fetch
		status ReconStatus
	}{
		{"Graph down", func(context.Context, time.Time, time.Time) (MetaAnalytics, error) {
			return MetaAnalytics{}, errors.New("graph: 503")
		}, ReconUnavailable},
		{"garbage body", func(context.Context, time.Time, time.Time) (MetaAnalytics, error) {
			return MetaAnalytics{CallAnalytics: []byte(`{"call_analytics":[`)}, nil
		}, ReconUnavailable},
		{"only messages, which agree", func(context.Context, time.Time, time.Time) (MetaAnalytics, error) {
			return MetaAnalytics{PricingAnalytics: mustRead(t, "../testdata/billing/pricing_analytics_2026-11-10.json")}, nil
		}, ReconUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, ran, err := r.RunOnce(ctx, tt.fetch)
			if err != nil || !ran || rec.Status != tt.status || rec.Error == "" {
				t.Fatalf("RunOnce = %+v, %v, %v; want %s with an error", rec, ran, err, tt.status)
			}
		})
	}
}

func TestReconcileLeaseOneInstance(t *testing.T) {
	ctx := context.Background()
	srv := backends(t)[0]
	l, _ := newTestLedger(t, srv.newClient(t), "lease:")
	reconDay(t, l)
	clk := newManualClock(time.Date(2026, 11, 11, 5, 0, 0, 0, time.UTC))
	a, _ := NewReconciler(l, ReconcileConfig{Instance: "a", Clock: clk})
	lb, _ := newTestLedger(t, srv.newClient(t), "lease:")
	b, _ := NewReconciler(lb, ReconcileConfig{Instance: "b", Clock: clk})
	// a holds the lease while it fetches; b runs meanwhile and must not.
	inFetch, release := make(chan struct{}), make(chan struct{})
	fetch := fixtureFetch(t, nil)
	slow := func(ctx context.Context, from, to time.Time) (MetaAnalytics, error) {
		close(inFetch)
		<-release
		return fetch(ctx, from, to)
	}
	done := make(chan error, 1)
	go func() {
		_, ran, err := a.RunOnce(ctx, slow)
		if err == nil && !ran {
			err = errors.New("a did not run")
		}
		done <- err
	}()
	select {
	case <-inFetch:
	case <-time.After(10 * time.Second):
		t.Fatal("a never fetched")
	}
	if _, ran, err := b.RunOnce(ctx, fetch); err != nil || ran {
		t.Fatalf("b.RunOnce while a holds the lease = ran %v, %v", ran, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// a released the lease: b may run the next time, and its metric follows
	// the stored result even when it does not run.
	if _, ran, err := b.RunOnce(ctx, fetch); err != nil || !ran {
		t.Fatalf("b after release = ran %v, %v", ran, err)
	}
	if g := testutil.ToFloat64(lb.metrics.ReconDifference.WithLabelValues("calls")); g != 30000 {
		t.Fatalf("b's metric = %v", g)
	}
}

func TestRunDailyWaitsForRunAtAndStops(t *testing.T) {
	l, _ := newTestLedger(t, backends(t)[1].newClient(t), "daily:")
	reconDay(t, l)
	clk := newManualClock(time.Date(2026, 11, 11, 3, 0, 0, 0, time.UTC))
	r, err := NewReconciler(l, ReconcileConfig{Instance: "callgw-1", Clock: clk, RunAt: 4 * time.Hour, Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fetched := make(chan [2]time.Time, 4)
	done := make(chan error, 1)
	go func() { done <- r.RunDaily(ctx, fixtureFetch(t, fetched)) }()
	wait := func() time.Duration {
		select {
		case d := <-clk.waiting:
			return d
		case <-time.After(10 * time.Second):
			t.Fatal("RunDaily did not wait")
		}
		return 0
	}
	if d := wait(); d != time.Hour {
		t.Fatalf("first wait %s, want 1h (03:00 → 04:00)", d)
	}
	clk.Advance(time.Hour)
	select {
	case rng := <-fetched:
		if !rng[0].Equal(time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)) || !rng[1].Equal(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("fetched %v, want yesterday", rng)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no run at 04:00")
	}
	if d := wait(); d != 24*time.Hour {
		t.Fatalf("next wait %s, want 24h", d)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("RunDaily = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunDaily did not stop")
	}
}

func TestDecimalMicros(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0.132", 132000, false}, {"0", 0, false}, {"", 0, false}, {"12", 12000000, false},
		{"1.5e-05", 15, false}, {"0.0000005", 1, false}, {"0.0000004", 0, false}, {"-0.0000005", -1, false},
		{"0.30000000000000004", 300000, false}, {"abc", 0, true}, {"1e30", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := decimalMicros(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("decimalMicros(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestReconcileConfig(t *testing.T) {
	l, _ := newTestLedger(t, backends(t)[1].newClient(t), "rcfg:")
	tests := []struct {
		name string
		cfg  ReconcileConfig
		ok   bool
	}{
		{"defaults", ReconcileConfig{Instance: "a"}, true},
		{"no instance", ReconcileConfig{}, false},
		{"run at 24h", ReconcileConfig{Instance: "a", RunAt: 24 * time.Hour}, false},
		{"too many days", ReconcileConfig{Instance: "a", Days: 91}, false},
		{"negative tolerance", ReconcileConfig{Instance: "a", ToleranceMicros: -1}, false},
		{"lease under a second", ReconcileConfig{Instance: "a", LeaseTTL: time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReconciler(l, tt.cfg)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("NewReconciler = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
