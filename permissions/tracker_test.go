package permissions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

func TestBadInputChangesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		rdb := b.newClient()
		clock := newClock()
		tr := newTracker(t, rdb, Config{}, clock, nil, nil)
		ctx := ctxT(t)
		p := newPair()
		if _, err := tr.Grant(ctx, p, Grant{Source: UserAction, ID: "g1", ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.RecordRequest(ctx, p, "r1"); err != nil {
			t.Fatal(err)
		}
		before, err := tr.State(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		keysBefore := dump(t, rdb)
		long := strings.Repeat("x", 300)
		tests := []struct {
			name string
			do   func() error
			want error
		}{
			{"empty business", func() error { _, err := tr.CheckCall(ctx, Pair{User: p.User}); return err }, ErrInvalidPair},
			{"empty user", func() error { _, err := tr.RecordRequest(ctx, Pair{Business: p.Business}, "r"); return err }, ErrInvalidPair},
			{"hash tag in user", func() error { _, err := tr.RecordRequest(ctx, Pair{p.Business, "44}7"}, "r"); return err }, ErrInvalidPair},
			{"colon in business", func() error { _, err := tr.State(ctx, Pair{"1:2", p.User}); return err }, ErrInvalidPair},
			{"empty request id", func() error { _, err := tr.RecordRequest(ctx, p, ""); return err }, ErrInvalidArgument},
			{"long request id", func() error { _, err := tr.RecordRequest(ctx, p, long); return err }, ErrInvalidArgument},
			{"empty undo id", func() error { return tr.UndoRequest(ctx, p, "") }, ErrInvalidArgument},
			{"empty call id", func() error { _, err := tr.RecordCall(ctx, p, "", CallConnected); return err }, ErrInvalidArgument},
			{"unknown call result", func() error { _, err := tr.RecordCall(ctx, p, "c1", CallResultUnknown); return err }, ErrInvalidArgument},
			{"out of range call result", func() error { _, err := tr.RecordCall(ctx, p, "c1", CallResult(9)); return err }, ErrInvalidArgument},
			{"empty inbound call id", func() error { _, err := tr.RecordInbound(ctx, p, "", true); return err }, ErrInvalidArgument},
			{"grant without source", func() error { _, err := tr.Grant(ctx, p, Grant{ID: "g2"}); return err }, ErrInvalidArgument},
			{"grant from unanswered calls", func() error { _, err := tr.Grant(ctx, p, Grant{ID: "g2", Source: UnansweredCalls}); return err }, ErrInvalidArgument},
			{"grant expiring before 1970", func() error {
				_, err := tr.Grant(ctx, p, Grant{ID: "g2", Source: UserAction, ExpiresAt: time.Unix(-5, 0)})
				return err
			}, ErrInvalidArgument},
			{"revoke without source", func() error { _, err := tr.Revoke(ctx, p, SourceUnknown, "x"); return err }, ErrInvalidArgument},
			{"revoke id too long", func() error { _, err := tr.Revoke(ctx, p, UserAction, long); return err }, ErrInvalidArgument},
			{"unknown meta code", func() error { _, err := tr.MetaRefused(ctx, p, 138021, time.Time{}); return err }, ErrUnknownMetaCode},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.do()
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				after, err := tr.State(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(before, after) {
					t.Fatalf("state changed:\n before %+v\n after  %+v", before, after)
				}
				if got := dump(t, rdb); !reflect.DeepEqual(keysBefore, got) {
					t.Fatalf("redis changed:\n before %v\n after  %v", keysBefore, got)
				}
			})
		}
	})
}

// dump returns every key with its type and members, to show nothing changed.
func dump(t *testing.T, rdb redis.UniversalClient) map[string]string {
	t.Helper()
	ctx := ctxT(t)
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "hash":
			out[k] = fmt.Sprint(rdb.HGetAll(ctx, k).Val())
		case "zset":
			out[k] = fmt.Sprint(rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
		default:
			out[k] = typ
		}
	}
	return out
}

func TestConcurrentRequestsExactlyAllowedPass(t *testing.T) {
	const clients, perClient = 4, 25 // 100 requests
	cfg := Config{RequestsPer24h: 3, RequestsPer7d: 5}
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newClock()
		p := newPair()
		ctx := ctxT(t)
		var trackers []*Tracker
		for range clients {
			trackers = append(trackers, newTracker(t, b.newClient(), cfg, clock, nil, nil))
		}
		var (
			mu      sync.Mutex
			allowed = map[string]int{}
			errs    []error
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		for c, tr := range trackers {
			for g := range perClient {
				wg.Go(func() {
					<-start
					id := fmt.Sprintf("req-%d-%d", c, g)
					for range 2 { // every request is retried once: it must count once
						d, err := tr.RecordRequest(ctx, p, id)
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else if d.Allowed {
							allowed[id]++
						}
						mu.Unlock()
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("errors: %v", errors.Join(errs...))
		}
		if len(allowed) != cfg.RequestsPer24h {
			t.Fatalf("%d distinct requests allowed, want exactly %d: %v", len(allowed), cfg.RequestsPer24h, allowed)
		}
		for id, n := range allowed {
			if n != 2 {
				t.Errorf("%s: allowed %d of its 2 tries, want both (the retry is a duplicate)", id, n)
			}
		}
		d, err := trackers[0].State(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if d.RequestsLeft24h != 0 || d.RequestsLeft7d != 2 || d.CanRequest {
			t.Fatalf("after the race: %+v", d)
		}
	})
}

// metaFake stands in for Meta's call_permissions endpoint (mocks are allowed
// only for Meta).
type metaFake struct {
	mu    sync.Mutex
	perm  MetaPermission
	err   error
	calls []string
}

func (m *metaFake) CallPermissions(_ context.Context, user string) (MetaPermission, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, user)
	return m.perm, m.err
}

func TestRedisDownDegradesThenRecovers(t *testing.T) {
	srv := backends(t)[0].real
	clock := newClock()
	reg := prometheus.NewRegistry()
	meta := &metaFake{perm: MetaPermission{Status: Temporary, ExpiresAt: t0.Add(time.Hour), CanCall: true, RequestsLeft24h: 0, RequestsLeft7d: 1}}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: 1, DialerRetries: 1, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	withMeta := newTracker(t, rdb, Config{}, clock, meta, reg)
	closed := newTracker(t, rdb, Config{}, clock, nil, reg)
	ctx := ctxT(t)
	p := newPair()

	if _, err := withMeta.Grant(ctx, p, Grant{Permanent: true, Source: UserAction, ID: "g1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := withMeta.RecordCall(ctx, p, "c1", CallConnected); err != nil {
		t.Fatal(err)
	}
	if _, err := withMeta.RecordCall(ctx, p, "u1", CallUnanswered); err != nil {
		t.Fatal(err)
	}
	want, err := withMeta.State(ctx, p)
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()

	tests := []struct {
		name string
		do   func() (Decision, error)
		ok   bool // the call itself succeeds (degraded answer from Meta)
		want Decision
	}{
		{"CheckCall falls back to meta", func() (Decision, error) { return withMeta.CheckCall(ctx, p) }, true,
			Decision{Allowed: true, Status: Temporary, ExpiresAt: t0.Add(time.Hour), CanCall: true, RequestsLeft7d: 1, Degraded: true}},
		{"CheckCall without meta fails closed", func() (Decision, error) { return closed.CheckCall(ctx, p) }, false,
			Decision{Reason: ReasonRedisUnavailable}},
		{"RecordRequest fails closed", func() (Decision, error) { return withMeta.RecordRequest(ctx, p, "r1") }, false,
			Decision{Reason: ReasonRedisUnavailable}},
		{"RecordCall fails", func() (Decision, error) { return withMeta.RecordCall(ctx, p, "u2", CallUnanswered) }, false,
			Decision{Reason: ReasonRedisUnavailable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.do()
			if tc.ok && err != nil {
				t.Fatalf("err = %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if !reflect.DeepEqual(d, tc.want) {
				t.Fatalf("decision\n got  %+v\n want %+v", d, tc.want)
			}
		})
	}
	meta.mu.Lock()
	meta.err = errors.New("graph api: 503")
	meta.mu.Unlock()
	d, err := withMeta.CheckCall(ctx, p)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrMetaFallback) || d.Allowed || d.Reason != ReasonMetaUnavailable || !d.Degraded {
		t.Fatalf("redis and meta down: %+v, %v", d, err)
	}
	if got := testutil.ToFloat64(withMeta.m.Degraded); got != 4 {
		t.Errorf("degraded decisions = %v, want 4 (3 CheckCall + 1 RecordRequest)", got)
	}
	if got := testutil.ToFloat64(withMeta.m.CallAttempts.WithLabelValues("allowed", "none")); got != 1 {
		t.Errorf("call attempts allowed = %v, want 1", got)
	}

	srv.Restart() // also empties the script cache: EVALSHA must fall back to EVAL

	got, err := withMeta.State(ctx, p)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("state after restart\n got  %+v\n want %+v", got, want)
	}
	if got.Status != Permanent || got.UnansweredStreak != 1 || got.CallsLeft24h != 99 {
		t.Fatalf("state lost: %+v", got)
	}
	if d, err := withMeta.RecordRequest(ctx, p, "r1"); err != nil || d.Reason != ReasonPermanentExists {
		t.Fatalf("after restart RecordRequest: %+v %v", d, err)
	}
}

func TestKeysAreHashTaggedAndExpire(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		rdb := b.newClient()
		clock := newClock()
		tr := newTracker(t, rdb, Config{KeyPrefix: "kt:"}, clock, nil, nil)
		ctx := ctxT(t)
		tests := []struct {
			name      string
			permanent bool
			wantTTL   map[string]time.Duration // -1: no TTL
		}{
			{"temporary", false, map[string]time.Duration{"st": 8 * day, "rq": 8 * day, "cc": 8 * day, "ev": 8 * day}},
			{"permanent", true, map[string]time.Duration{"st": -1, "rq": 8 * day, "cc": 8 * day, "ev": 8 * day}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := newPair()
				if _, err := tr.RecordRequest(ctx, p, "r1"); err != nil {
					t.Fatal(err)
				}
				if _, err := tr.Grant(ctx, p, Grant{Permanent: tc.permanent, Source: UserAction, ID: "g"}); err != nil {
					t.Fatal(err)
				}
				if _, err := tr.RecordCall(ctx, p, "c1", CallConnected); err != nil {
					t.Fatal(err)
				}
				tag := "kt:{" + p.Business + ":" + p.User + "}:"
				keys, err := rdb.Keys(ctx, "kt:{"+p.Business+"*").Result()
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) != 4 {
					t.Fatalf("keys %v, want 4", keys)
				}
				for _, k := range keys {
					suffix, ok := strings.CutPrefix(k, tag)
					if !ok {
						t.Fatalf("key %q lacks the pair's hash tag %q", k, tag)
					}
					ttl, err := rdb.PTTL(ctx, k).Result()
					if err != nil {
						t.Fatal(err)
					}
					want := tc.wantTTL[suffix]
					if want < 0 {
						if ttl >= 0 {
							t.Errorf("%s: ttl %s, want none", suffix, ttl)
						}
						continue
					}
					if ttl <= want-time.Minute || ttl > want {
						t.Errorf("%s: ttl %s, want about %s", suffix, ttl, want)
					}
				}
			})
		}
	})
}

func TestMetrics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		reg := prometheus.NewRegistry()
		clock := newClock()
		tr := newTracker(t, b.newClient(), Config{}, clock, nil, reg)
		ctx := ctxT(t)
		p := newPair()
		steps := []func() error{
			func() error { _, err := tr.RecordRequest(ctx, p, "r1"); return err },
			func() error { _, err := tr.RecordRequest(ctx, p, "r1"); return err },
			func() error { _, err := tr.RecordRequest(ctx, p, "r2"); return err },
			func() error { _, err := tr.CheckCall(ctx, p); return err },
			func() error { _, err := tr.Grant(ctx, p, Grant{Source: UserAction, ID: "g1"}); return err },
			func() error { _, err := tr.Grant(ctx, p, Grant{Source: UserAction, ID: "g1"}); return err },
			func() error { _, err := tr.CheckCall(ctx, p); return err },
			func() error { _, err := tr.RecordCall(ctx, p, "u1", CallUnanswered); return err },
			func() error { _, err := tr.RecordCall(ctx, p, "u2", CallUnanswered); return err },
			func() error { _, err := tr.RecordCall(ctx, p, "u3", CallUnanswered); return err },
			func() error { _, err := tr.RecordCall(ctx, p, "u4", CallUnanswered); return err },
			func() error { _, err := tr.Revoke(ctx, p, UserAction, "x1"); return err }, // nothing left to revoke
		}
		for i, s := range steps {
			if err := s(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		tests := []struct {
			name string
			c    prometheus.Collector
			want float64
		}{
			{"request allowed", tr.m.Requests.WithLabelValues("allowed", "none"), 1},
			{"request duplicate", tr.m.Requests.WithLabelValues("duplicate", "none"), 1},
			{"request denied 24h", tr.m.Requests.WithLabelValues("denied", "request_limit_24h"), 1},
			{"call denied no permission", tr.m.CallAttempts.WithLabelValues("denied", "no_permission"), 1},
			{"call allowed", tr.m.CallAttempts.WithLabelValues("allowed", "none"), 1},
			{"grants user_action", tr.m.Grants.WithLabelValues("user_action"), 1},
			{"revocations unanswered", tr.m.Revocations.WithLabelValues("unanswered_calls"), 1},
			{"revocations user_action", tr.m.Revocations.WithLabelValues("user_action"), 0},
			{"degraded", tr.m.Degraded, 0},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := testutil.ToFloat64(tc.c); got != tc.want {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			})
		}
		n, err := testutil.GatherAndCount(reg, "callgw_permission_decision_duration_seconds")
		if err != nil || n == 0 {
			t.Fatalf("duration histogram: %d series, %v", n, err)
		}
		// A second tracker on the same registry shares the series.
		tr2 := newTracker(t, b.newClient(), Config{}, clock, nil, reg)
		if tr2.m.Requests != tr.m.Requests {
			t.Fatal("second tracker did not share the registered series")
		}
	})
}

func TestDecisionJSON(t *testing.T) {
	d := Decision{Allowed: true, Status: Temporary, ExpiresAt: t0, CanCall: true, RequestsLeft24h: 1, RequestsLeft7d: 2, CallsLeft24h: 100}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"allowed":true,"reason":"","status":"temporary","expires_at":"2026-03-02T09:00:00Z","can_call":true,"can_request":false,"requests_left_24h":1,"requests_left_7d":2,"calls_left_24h":100,"unanswered_streak":0,"reminder":false,"degraded":false}`
	if string(b) != want {
		t.Fatalf("json\n got  %s\n want %s", b, want)
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, d) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero is the defaults", Config{}, true},
		{"seed 72h validity", Config{TemporaryValidity: 72 * time.Hour}, true},
		{"negative requests", Config{RequestsPer24h: -1}, false},
		{"7d below 24h", Config{RequestsPer24h: 3, RequestsPer7d: 2}, false},
		{"tiny validity", Config{TemporaryValidity: time.Second}, false},
		{"negative calls", Config{ConnectedCallsPer24h: -5}, false},
		{"revoke below reminder", Config{UnansweredReminder: 3, UnansweredRevoke: 2}, false},
		{"brace in prefix", Config{KeyPrefix: "x{"}, false},
		{"short retention", Config{EventRetention: day}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, ok want %v", err, tc.ok)
			}
		})
	}
	if d := DefaultConfig(); d.RequestsPer24h != 1 || d.RequestsPer7d != 2 || d.TemporaryValidity != 168*time.Hour ||
		d.ConnectedCallsPer24h != 100 || d.UnansweredReminder != 2 || d.UnansweredRevoke != 4 || d.KeyPrefix != "callgw:perm:" {
		t.Fatalf("defaults: %+v", d)
	}
	if _, err := New(nil, Config{}, nil, nil, nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New(nil client) = %v", err)
	}
}

func TestEnumNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{NoPermission.String(), "no_permission"}, {Temporary.String(), "temporary"}, {Permanent.String(), "permanent"},
		{ParseStatus("TEMPORARY").String(), "temporary"}, {ParseSource("user_action").String(), "user_action"},
		{ParseSource("automatic").String(), "automatic"}, {CallDeclined.String(), "declined"},
		{(Pair{"1", "447700900123"}).String(), "1/*********123"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
