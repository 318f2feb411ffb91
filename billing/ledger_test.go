package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/redistest"
)

// backend is one Redis implementation the ledger must work on.
type backend struct {
	name      string
	newClient func(t testing.TB) redis.UniversalClient
}

// backends starts a real redis-server and an in-process miniredis.
func backends(t *testing.T) []backend {
	t.Helper()
	srv := redistest.Start(t)
	mr := miniredis.RunT(t)
	return []backend{
		{"redis", func(t testing.TB) redis.UniversalClient { return srv.Client() }},
		{"miniredis", func(t testing.TB) redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
	}
}

// testClock is a settable clock for RecordedAt.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newTestLedger(t testing.TB, rdb redis.UniversalClient, prefix string) (*Ledger, *prometheus.Registry) {
	t.Helper()
	return newLedgerWith(t, rdb, prefix, loadTestCard(t), time.UTC)
}

func newLedgerWith(t testing.TB, rdb redis.UniversalClient, prefix string, rc *RateCard, loc *time.Location) (*Ledger, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	clk := &testClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	l, err := NewLedger(rdb, rc, Config{KeyPrefix: prefix, Now: clk.Now, Location: loc}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return l, reg
}

var nov = time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)

// outbound is a connected business-initiated call of secs seconds (Meta's
// duration) to user.
func outbound(id, user string, secs int64, at time.Time) call.Record {
	return call.Record{
		ID: call.ID(id), Direction: call.BusinessInitiated, PhoneNumberID: "106540352242922",
		BusinessPhone: "+15550001111", UserPhone: user, Agent: "alice",
		CreatedAt: at, AnsweredAt: at.Add(3 * time.Second), EndedAt: at.Add(time.Duration(secs+3) * time.Second),
		MetaDuration: secs, GatewayMillis: secs * 1000, Outcome: call.Answered, EndReason: call.AgentHangup,
	}
}

func TestRecordPricing(t *testing.T) {
	ctx := context.Background()
	inbound := outbound("wacid.in", "+447700900123", 600, nov)
	inbound.Direction = call.UserInitiated
	unanswered := outbound("wacid.unans", "+447700900123", 0, nov)
	unanswered.Outcome, unanswered.EndReason, unanswered.AnsweredAt, unanswered.MetaDuration, unanswered.GatewayMillis = call.Unanswered, call.UserNoAnswer, time.Time{}, -1, 0
	gatewayOnly := outbound("wacid.gw", "+1 212 736 5000", 0, nov)
	gatewayOnly.MetaDuration, gatewayOnly.GatewayMillis = -1, 61_001 // ceil -> 62 s, US per second
	discrepant := outbound("wacid.disc", "+18768765432", 56, nov)
	discrepant.GatewayMillis = 59_500 // 3.5 s more than Meta: counted, Meta wins
	noNumber := outbound("wacid.nonum", "", 12, nov)
	noNumber.UserID = "US.13491208655302741918"
	bsuidGB := outbound("wacid.bsuid", "", 61, nov)
	bsuidGB.UserID = "GB.ENT.11815799212886844830"
	nobody := outbound("wacid.nobody", "", 12, nov)
	metaTimes := outbound("wacid.times", "+447700900123", 480, nov) // Meta's sample: duration 480, end-start 61
	metaTimes.MetaStart, metaTimes.MetaEnd, metaTimes.GatewayMillis = nov.Add(3*time.Second), nov.Add(64*time.Second), 61_200

	tests := []struct {
		name                       string
		rec                        call.Record
		country, market, src       string
		billed, cost, rate         int64
		tier                       int
		discrepancies, billedCalls float64
	}{
		{"GB 56 s -> 60 s at 6 s pulses", outbound("wacid.gb", "+447700900123", 56, nov), "GB", "GB", "meta", 60, 30000, 30000, 0, 0, 1},
		{"GB 61 s -> 66 s", outbound("wacid.gb61", "+447700900123", 61, nov), "GB", "GB", "meta", 66, 33000, 30000, 0, 0, 1},
		{"user-initiated is free", inbound, "GB", "GB", "meta", 0, 0, 0, -1, 0, 0},
		{"unconnected is free", unanswered, "GB", "GB", "gateway", 0, 0, 0, -1, 0, 0},
		{"NANP +1 876 is Jamaica", discrepant, "JM", "JM", "meta", 60, 45000, 45000, 0, 1, 1},
		{"gateway duration rounded up, US per second", gatewayOnly, "US", "North America", "gateway", 62, 12400, 12000, 0, 0, 1},
		{"+7 7xx is Kazakhstan", outbound("wacid.kz", "+77011234567", 6, nov), "KZ", "KZ", "meta", 6, 3600, 36000, 0, 0, 1},
		{"+7 9xx is Russia", outbound("wacid.ru", "79161234567", 6, nov), "RU", "RU", "meta", 6, 4000, 40000, 0, 0, 1},
		{"BSUID only: priced by its country (US per second)", noNumber, "US", "North America", "meta", 12, 2400, 12000, 0, 0, 1},
		{"parent BSUID only: GB", bsuidGB, "GB", "GB", "meta", 66, 33000, 30000, 0, 0, 1},
		{"no number, no BSUID: default market, ZZ", nobody, "ZZ", "default", "meta", 12, 12000, 60000, 0, 0, 1},
		{"end-start wins over duration, mismatch flagged", metaTimes, "GB", "GB", "meta_times", 66, 33000, 30000, 0, 1, 1},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					l, reg := newTestLedger(t, b.newClient(t), fmt.Sprintf("t%d:", i))
					e, created, err := l.Record(ctx, tt.rec)
					if err != nil || !created {
						t.Fatalf("Record = %v, %v", created, err)
					}
					if e.Country != tt.country || e.Market != tt.market || e.DurationSource != tt.src || e.BilledSeconds != tt.billed ||
						e.CostMicros != tt.cost || e.RateMicrosPerMinute != tt.rate || e.Tier != tt.tier {
						t.Fatalf("entry = country %s src %s billed %d cost %d rate %d tier %d; want %s %s %d %d %d %d",
							e.Country, e.DurationSource, e.BilledSeconds, e.CostMicros, e.RateMicrosPerMinute, e.Tier,
							tt.country, tt.src, tt.billed, tt.cost, tt.rate, tt.tier)
					}
					got, err := l.Get(ctx, tt.rec.ID)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(normalize(got), normalize(e)) {
						t.Fatalf("stored entry differs:\n got %+v\nwant %+v", got, e)
					}
					if d := testutil.ToFloat64(l.metrics.DurationDiscrepancies); d != tt.discrepancies {
						t.Fatalf("discrepancies = %v, want %v", d, tt.discrepancies)
					}
					if n, _ := testutil.GatherAndCount(reg, "callgw_calls_billed_total"); float64(n) != tt.billedCalls {
						t.Fatalf("calls_billed series = %d, want %v", n, tt.billedCalls)
					}
					u, err := l.Usage(ctx, "2026-11")
					if err != nil {
						t.Fatal(err)
					}
					if u.Totals.AllCalls != 1 || u.Totals.CallCostMicros != tt.cost || u.Totals.BilledSeconds != tt.billed {
						t.Fatalf("usage totals = %+v", u.Totals)
					}
				})
			}
		})
	}
}

// normalize drops monotonic clock readings and locations so entries read
// back from Redis compare equal to the ones returned by Record.
func normalize(e Entry) Entry {
	for _, p := range []*time.Time{&e.CreatedAt, &e.AnsweredAt, &e.EndedAt, &e.MetaStart, &e.MetaEnd, &e.RecordedAt} {
		if !p.IsZero() {
			*p = p.UTC().Round(0)
		}
	}
	return e
}

func TestRecordInvalidWritesNothing(t *testing.T) {
	ctx := context.Background()
	noDir := outbound("wacid.x", "+447700900123", 5, nov)
	noDir.Direction = call.DirectionUnknown
	tests := []struct {
		name string
		rec  call.Record
	}{
		{"no id", outbound("", "+447700900123", 5, nov)},
		{"no direction", noDir},
		{"no end", call.Record{ID: "wacid.z", Direction: call.UserInitiated}},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			rdb := b.newClient(t)
			l, _ := newTestLedger(t, rdb, "inv:")
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, created, err := l.Record(ctx, tt.rec)
					if !errors.Is(err, ErrInvalidRecord) || created {
						t.Fatalf("Record = %v, %v; want ErrInvalidRecord", created, err)
					}
					if keys, _ := rdb.Keys(ctx, "inv:*").Result(); len(keys) != 0 {
						t.Fatalf("invalid record wrote %v", keys)
					}
				})
			}
		})
	}
}

// A negative or absurd duration is clamped and flagged, never a lost record.
func TestRecordClampsDurations(t *testing.T) {
	ctx := context.Background()
	negGateway := outbound("wacid.neg", "+447700900123", 0, nov)
	negGateway.MetaDuration, negGateway.GatewayMillis = -1, -5000
	negMeta := outbound("wacid.negmeta", "+447700900123", -30, nov)
	negMeta.GatewayMillis = 0
	endBeforeStart := outbound("wacid.swap", "+447700900123", 10, nov)
	endBeforeStart.MetaStart, endBeforeStart.MetaEnd, endBeforeStart.MetaDuration, endBeforeStart.GatewayMillis = nov.Add(time.Minute), nov, -1, 0
	absurd := outbound("wacid.absurd", "+447700900123", 3*24*3600, nov)
	absurd.GatewayMillis = 0
	tests := []struct {
		name   string
		rec    call.Record
		secs   int64
		billed int64
		flags  string
	}{
		{"negative gateway duration", negGateway, 0, 0, FlagNegativeDuration},
		{"negative Meta duration", negMeta, 0, 0, FlagNegativeDuration},
		{"end_time before start_time", endBeforeStart, 0, 0, FlagNegativeDuration},
		{"three days", absurd, 24 * 3600, 24 * 3600, FlagAbsurdDuration},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					l, _ := newTestLedger(t, b.newClient(t), fmt.Sprintf("clamp%d:", i))
					e, created, err := l.Record(ctx, tt.rec)
					if err != nil || !created {
						t.Fatalf("Record = %v, %v; want recorded", created, err)
					}
					if e.DurationSeconds != tt.secs || e.BilledSeconds != tt.billed || e.Flags != tt.flags {
						t.Fatalf("entry: %d s, billed %d, flags %q; want %d, %d, %q", e.DurationSeconds, e.BilledSeconds, e.Flags, tt.secs, tt.billed, tt.flags)
					}
					if got, err := l.Get(ctx, tt.rec.ID); err != nil || got.Flags != tt.flags {
						t.Fatalf("stored flags = %q, %v", got.Flags, err)
					}
					if n := testutil.ToFloat64(l.metrics.ClampedDurations.WithLabelValues(tt.flags)); n != 1 {
						t.Fatalf("clamped metric = %v", n)
					}
				})
			}
		})
	}
}

func TestRecordTiersCrossInsideMonth(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l, _ := newTestLedger(t, b.newClient(t), "tiers:")
			const gb, in = "+447700900123", "+919812345678"
			// GB: up to 10 min 30000, above 10 min 20000, above 20 min 10000 µ$/min.
			// IN: up to 1 min 3200, above 1600. Tiers accrue per market.
			steps := []struct {
				name       string
				user       string
				secs       int64
				at         time.Time
				tier       int
				cost       int64
				monthAfter int64 // billed minutes of November after the call (all markets)
			}{
				{"first call tier 0", gb, 9 * 60, nov, 0, 270000, 9},
				{"crossing 10 min: the whole call at tier 1", gb, 5 * 60, nov.Add(time.Hour), 1, 100000, 14},
				{"ending exactly at 20 min stays tier 1", gb, 6 * 60, nov.Add(2 * time.Hour), 1, 120000, 20},
				{"one pulse past 20 min: tier 2", gb, 1, nov.Add(3 * time.Hour), 2, 1000, 20},
				{"IN accrues apart from GB: tier 0", in, 30, nov.Add(4 * time.Hour), 0, 1600, 20},
				{"IN crosses its own 1 min", in, 31, nov.Add(5 * time.Hour), 1, 960, 21},
				{"new month back to tier 0", gb, 60, time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC), 0, 30000, 21},
				{"next quarter's card", gb, 60, time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC), 0, 25000, 21},
			}
			for i, s := range steps {
				e, _, err := l.Record(ctx, outbound(fmt.Sprintf("wacid.t%d", i), s.user, s.secs, s.at))
				if err != nil {
					t.Fatal(err)
				}
				if e.Tier != s.tier || e.CostMicros != s.cost {
					t.Fatalf("%s: tier %d cost %d, want %d %d", s.name, e.Tier, e.CostMicros, s.tier, s.cost)
				}
				u, err := l.Usage(ctx, "2026-11")
				if err != nil {
					t.Fatal(err)
				}
				if u.Totals.Minutes != s.monthAfter {
					t.Fatalf("%s: November minutes %d, want %d", s.name, u.Totals.Minutes, s.monthAfter)
				}
			}
		})
	}
}

// Months (tiers, usage) are cut in the billing time zone.
func TestRecordMonthInTimeZone(t *testing.T) {
	ctx := context.Background()
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	lastDay := func(h, m int) time.Time { return time.Date(2026, 11, 30, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name  string
		loc   *time.Location
		start time.Time
		month string
	}{
		{"23:30 UTC on Nov 30 is December in Kolkata", kolkata, lastDay(23, 30), "2026-12"},
		{"18:29 UTC is still November in Kolkata (23:59 IST)", kolkata, lastDay(18, 29), "2026-11"},
		{"18:30 UTC is December 00:00 IST", kolkata, lastDay(18, 30), "2026-12"},
		{"23:30 UTC is November in UTC", time.UTC, lastDay(23, 30), "2026-11"},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					l, _ := newLedgerWith(t, b.newClient(t), fmt.Sprintf("tz%d:", i), loadTestCard(t), tt.loc)
					rec := outbound("wacid.tz", "+447700900123", 56, tt.start.Add(-3*time.Second))
					rec.MetaStart, rec.MetaEnd = tt.start, tt.start.Add(56*time.Second)
					if _, _, err := l.Record(ctx, rec); err != nil {
						t.Fatal(err)
					}
					for _, m := range []string{"2026-11", "2026-12"} {
						u, err := l.Usage(ctx, m)
						if err != nil {
							t.Fatal(err)
						}
						if want := int64(map[bool]int{true: 1}[m == tt.month]); u.Totals.Calls != want {
							t.Fatalf("%s has %d calls, want %d", m, u.Totals.Calls, want)
						}
					}
				})
			}
		})
	}
}

func TestRecordConcurrentSameCallOnce(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l0, _ := newTestLedger(t, b.newClient(t), "conc:")
			rec := outbound("wacid.same", "+447700900123", 56, nov)
			const clients = 10
			type result struct {
				e       Entry
				created bool
				err     error
			}
			results := make(chan result, clients)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range clients {
				// Each goroutine has its own client and ledger, like 10 instances.
				l, _ := newTestLedger(t, b.newClient(t), "conc:")
				wg.Go(func() {
					<-start
					e, created, err := l.Record(ctx, rec)
					results <- result{e, created, err}
				})
			}
			close(start)
			wg.Wait()
			close(results)
			created := 0
			var entries []Entry
			for r := range results {
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.created {
					created++
				}
				entries = append(entries, normalize(r.e))
			}
			if created != 1 {
				t.Fatalf("%d clients created the entry, want exactly 1", created)
			}
			for _, e := range entries[1:] {
				if !reflect.DeepEqual(e, entries[0]) {
					t.Fatalf("clients saw different entries:\n%+v\n%+v", e, entries[0])
				}
			}
			u, err := l0.Usage(ctx, "2026-11")
			if err != nil {
				t.Fatal(err)
			}
			want := Totals{Calls: 1, AllCalls: 1, BilledSeconds: 60, Minutes: 1, CallCostMicros: 30000, CostMicros: 30000}
			if u.Totals != want {
				t.Fatalf("totals = %+v, want %+v", u.Totals, want)
			}
			if n, err := l0.rdb.XLen(ctx, l0.k.stream()).Result(); err != nil || n != 1 {
				t.Fatalf("stream length = %d, %v; want 1", n, err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value takes defaults", Config{}, true},
		{"own hash tag", Config{KeyPrefix: "callgw:bill:{t1}:"}, true},
		{"unbalanced brace", Config{KeyPrefix: "callgw:{bill:"}, false},
		{"tiny dedup ttl", Config{MessageDedupTTL: time.Second}, false},
		{"negative scan limit", Config{ScanLimit: -1}, false},
		{"max call duration under a minute", Config{MaxCallDuration: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := NewLedger(nil, nil, Config{}, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewLedger(nil) = %v", err)
	}
	// Two ledgers on one registry: the second fails clearly instead of panicking.
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	reg := prometheus.NewRegistry()
	if _, err := NewLedger(rdb, loadTestCard(t), Config{}, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLedger(rdb, loadTestCard(t), Config{}, reg, nil); err == nil {
		t.Fatal("second registration succeeded")
	}
}
