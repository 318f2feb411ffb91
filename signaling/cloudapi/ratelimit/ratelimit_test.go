package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/signaling/cloudapi"
	"github.com/callgw/callgw/signaling/cloudapi/ratelimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	pnid          = "106540352242922"
	token         = "EAAG-test-token"
	okPermissions = `{"messaging_product":"whatsapp","permission":{"status":"temporary","expiration_time":1761286400},
 "actions":[{"action_name":"start_call","can_perform_action":true,"limits":[{"time_period":"PT24H","max_allowed":100,"current_usage":1}]}]}`
)

// meta is a fake Graph API answering call_permissions and recording the
// arrival time of each request.
type meta struct {
	*httptest.Server
	mu       sync.Mutex
	arrivals []time.Time
	queries  []string
	reply    func(n int, w http.ResponseWriter)
}

func newMeta(t *testing.T, reply func(n int, w http.ResponseWriter)) *meta {
	m := &meta{reply: reply}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.arrivals = append(m.arrivals, time.Now())
		m.queries = append(m.queries, r.URL.RawQuery)
		n := len(m.arrivals)
		m.mu.Unlock()
		if r.URL.Path != "/v23.0/"+pnid+"/call_permissions" || r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if m.reply != nil {
			m.reply(n, w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, okPermissions)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *meta) times() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.arrivals...)
}

// maxInWindow is the largest number of arrivals inside any window.
func maxInWindow(ts []time.Time, window time.Duration) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func newClient(t *testing.T, url string) *cloudapi.Client {
	c, err := cloudapi.New(cloudapi.Config{BaseURL: url, AccessToken: token, PhoneNumberID: pnid,
		Timeout: 2 * time.Second, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	_ cloudapi.Limiter   = (*ratelimit.Redis)(nil)
	_ cloudapi.Completer = (*ratelimit.Redis)(nil)
	_ cloudapi.Penalizer = (*ratelimit.Redis)(nil)
)

func TestRedisSlidingWindow(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	const window = 300 * time.Millisecond
	lim, err := ratelimit.NewRedis(rdb, ratelimit.Config{Limit: 5, Window: window, Lease: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ok, _, err := lim.Allow(ctx, "a")
		if err != nil || !ok {
			t.Fatalf("admission %d: ok=%v err=%v", i+1, ok, err)
		}
	}
	ok, wait, err := lim.Allow(ctx, "a")
	if err != nil || ok || wait <= 0 || wait > window {
		t.Fatalf("6th while 5 in flight: ok=%v wait=%v err=%v, want refused with 0<wait<=window", ok, wait, err)
	}
	if ok, _, _ := lim.Allow(ctx, "b"); !ok {
		t.Error("another key shares the budget")
	}
	// Finished requests still count for a window after they end.
	for range 5 {
		if err := lim.Done(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := lim.Done(ctx, "a"); err != nil { // nothing in flight: a no-op
		t.Fatal(err)
	}
	ok, wait, err = lim.Allow(ctx, "a")
	if err != nil || ok || wait <= 0 || wait > window {
		t.Fatalf("right after Done: ok=%v wait=%v err=%v, want refused for at most the window", ok, wait, err)
	}
	<-time.After(wait) // the window itself is what we wait for
	if ok, _, err := lim.Allow(ctx, "a"); !ok || err != nil {
		t.Errorf("a window after Done: ok=%v err=%v", ok, err)
	}

	// Penalize closes the budget for everyone, never shortened.
	if err := lim.Penalize(ctx, "c", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := lim.Penalize(ctx, "c", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ok, wait, err = lim.Allow(ctx, "c")
	if err != nil || ok || wait < 100*time.Millisecond || wait > 500*time.Millisecond {
		t.Errorf("penalized: ok=%v wait=%v err=%v, want refused up to 500ms (not shortened to 10ms)", ok, wait, err)
	}
}

// Without Done an admission counts until its lease ends, plus the window.
func TestRedisLease(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	lim, err := ratelimit.NewRedis(srv.Client(), ratelimit.Config{Limit: 1, Window: 50 * time.Millisecond, Lease: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ok, _, _ := lim.Allow(ctx, "k"); !ok {
		t.Fatal("first admission refused")
	}
	deadline := time.After(5 * time.Second)
	for {
		ok, wait, err := lim.Allow(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		select {
		case <-deadline:
			t.Fatal("a lost request holds the budget forever")
		case <-time.After(wait):
		}
	}
	if held := time.Since(start); held < 190*time.Millisecond {
		t.Errorf("budget came back after %v, want lease+window (200ms)", held)
	}
}

func TestNewRedisConfig(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		name string
		cfg  ratelimit.Config
		ok   bool
	}{
		{"defaults", ratelimit.Config{}, true},
		{"negative limit", ratelimit.Config{Limit: -1}, false},
		{"tiny window", ratelimit.Config{Window: time.Millisecond}, false},
		{"lease below window", ratelimit.Config{Window: time.Second, Lease: time.Millisecond * 500}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ratelimit.NewRedis(srv.Client(), tc.cfg)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ratelimit.ErrBadConfig)) {
				t.Errorf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// Two instances (two Clients, two Redis connections), 20 readers asking for
// distinct users: Meta never sees more than 5 requests in any second, the
// rest get ErrRateLimitedLocally, and the budget is used.
func TestSharedBudgetAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	m := newMeta(t, nil)
	var readers []*cloudapi.PermissionsReader
	for range 2 {
		lim, err := ratelimit.NewRedis(srv.Client(), ratelimit.Config{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := cloudapi.NewPermissionsReader(newClient(t, m.URL), cloudapi.ReaderConfig{Limiter: lim}, nil)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var limited, served, other atomic.Int64
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := readers[g%2]
			for i := 0; ctx.Err() == nil; i++ {
				u := cloudapi.Phone(fmt.Sprintf("4477009%02d%03d", g, i%1000))
				_, err := r.Get(ctx, u)
				switch {
				case err == nil:
					served.Add(1)
				case errors.Is(err, cloudapi.ErrRateLimitedLocally):
					limited.Add(1)
					var le *cloudapi.LocalRateLimitError
					if errors.As(err, &le) && le.RetryAfter > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(le.RetryAfter):
						}
					}
				case ctx.Err() != nil:
				default:
					other.Add(1)
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	ts := m.times()
	if n := maxInWindow(ts, time.Second); n > 5 {
		t.Errorf("Meta saw %d call_permissions requests within one second, limit 5", n)
	}
	if len(ts) < 8 {
		t.Errorf("only %d requests reached Meta in 2.5 s: the budget is not being used", len(ts))
	}
	if limited.Load() == 0 {
		t.Error("no reader was limited: 20 readers must exceed 5/s")
	}
	t.Logf("meta requests %d, served %d, limited locally %d, max in 1s %d", len(ts), served.Load(), limited.Load(), maxInWindow(ts, time.Second))
}

// A 613 from Meta stops every instance for Retry-After.
func TestMetaRateLimitBacksOffEveryInstance(t *testing.T) {
	srv := redistest.Start(t)
	m := newMeta(t, func(n int, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","type":"OAuthException","code":613,"fbtrace_id":"X"}}`)
			return
		}
		fmt.Fprint(w, okPermissions)
	})
	var readers []*cloudapi.PermissionsReader
	for range 2 {
		lim, _ := ratelimit.NewRedis(srv.Client(), ratelimit.Config{})
		r, err := cloudapi.NewPermissionsReader(newClient(t, m.URL), cloudapi.ReaderConfig{Limiter: lim}, nil)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, r)
	}
	ctx := context.Background()
	_, err := readers[0].Get(ctx, cloudapi.Phone("447700900001"))
	if !errors.Is(err, cloudapi.ErrPermissionsRateLimit) {
		t.Fatalf("err = %v, want 613", err)
	}
	if got := len(m.times()); got != 1 {
		t.Fatalf("a 613 was retried: %d requests", got)
	}
	for i, r := range readers {
		_, err := r.Get(ctx, cloudapi.BSUID("GB.1234567890"))
		var le *cloudapi.LocalRateLimitError
		if !errors.As(err, &le) || le.RetryAfter <= 0 || le.RetryAfter > time.Second {
			t.Errorf("reader %d right after 613: err = %v, want a local limit with RetryAfter ≤ 1s", i, err)
		}
	}
	if got := len(m.times()); got != 1 {
		t.Errorf("%d requests reached Meta during the backoff", got)
	}
}

func TestReaderCache(t *testing.T) {
	srv := redistest.Start(t)
	m := newMeta(t, nil)
	lim, _ := ratelimit.NewRedis(srv.Client(), ratelimit.Config{Limit: 100})
	var mu sync.Mutex
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	reg := prometheus.NewRegistry()
	r, err := cloudapi.NewPermissionsReader(newClient(t, m.URL), cloudapi.ReaderConfig{Limiter: lim, CacheTTL: 2 * time.Second, Now: clock}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u := cloudapi.User{Phone: "+447700900123", BSUID: "GB.13491208655302741918"}
	steps := []struct {
		name     string
		do       func()
		wantHits int
	}{
		{"first read asks Meta", func() {}, 1},
		{"second read is cached", func() {}, 1},
		{"after TTL asks again", func() { advance(2 * time.Second) }, 2},
		{"invalidate asks again", func() { r.Invalidate(u) }, 3},
	}
	for _, s := range steps {
		s.do()
		p, err := r.Get(ctx, u)
		if err != nil || p.Status != cloudapi.PermissionTemporary {
			t.Fatalf("%s: %+v %v", s.name, p, err)
		}
		p.Actions[0].Limits[0].CurrentUsage = 99 // the caller's copy
		if got := len(m.times()); got != s.wantHits {
			t.Errorf("%s: %d requests to Meta, want %d", s.name, got, s.wantHits)
		}
	}
	p, _ := r.Get(ctx, u)
	if p.Actions[0].Limits[0].CurrentUsage != 1 {
		t.Error("a caller's change leaked into the cache")
	}
	for result, want := range map[string]float64{cloudapi.ReadMeta: 3, cloudapi.ReadCacheHit: 2} {
		if got := readsOf(t, reg, result); got != want {
			t.Errorf("permission_reads_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	m.mu.Lock()
	q := m.queries[0]
	m.mu.Unlock()
	if q != "recipient=GB.13491208655302741918&user_wa_id=447700900123" {
		t.Errorf("query %q", q)
	}
}

func readsOf(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "callgw_graph_permission_reads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// One admission buys one HTTP attempt: a 503 is not retried by the reader.
func TestReaderNeverRetries(t *testing.T) {
	srv := redistest.Start(t)
	m := newMeta(t, func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	lim, _ := ratelimit.NewRedis(srv.Client(), ratelimit.Config{})
	r, err := cloudapi.NewPermissionsReader(newClient(t, m.URL), cloudapi.ReaderConfig{Limiter: lim}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(context.Background(), cloudapi.Phone("447700900123"))
	var me *cloudapi.Error
	if !errors.As(err, &me) || me.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("err = %v, want the 503", err)
	}
	if n := len(m.times()); n != 1 {
		t.Errorf("%d attempts on one admission, want 1", n)
	}
}

func TestReaderLimiterDown(t *testing.T) {
	srv := redistest.Start(t)
	m := newMeta(t, nil)
	lim, _ := ratelimit.NewRedis(srv.Client(), ratelimit.Config{})
	r, err := cloudapi.NewPermissionsReader(newClient(t, m.URL), cloudapi.ReaderConfig{Limiter: lim}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = r.Get(ctx, cloudapi.Phone("447700900123"))
	var le *cloudapi.LocalRateLimitError
	if !errors.Is(err, cloudapi.ErrRateLimitedLocally) || !errors.As(err, &le) || le.Err == nil {
		t.Errorf("err = %v, want ErrRateLimitedLocally carrying the Redis error (fall back to local state)", err)
	}
	if n := len(m.times()); n != 0 {
		t.Errorf("%d requests reached Meta without a budget", n)
	}
}
