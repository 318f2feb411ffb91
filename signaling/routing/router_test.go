package routing

import (
	"context"
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
	"go.uber.org/goleak"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/internal/clock"
	"github.com/callgw/callgw/internal/testkit/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"))
}

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func loadTeams(t testing.TB) *config.Config {
	t.Helper()
	c, err := config.Load("testdata/teams.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type env struct {
	srv *redistest.Server
	clk *clock.Manual
	reg *prometheus.Registry
	cfg *config.Config
}

func newEnv(t *testing.T) *env {
	return &env{srv: redistest.Start(t), clk: clock.NewManual(t0), reg: prometheus.NewRegistry(), cfg: loadTeams(t)}
}

// router is one instance: its own client, its own instance id.
func (e *env) router(t *testing.T, instance string) (*Router, *redis.Client) {
	t.Helper()
	c := e.srv.Client()
	r, err := New(c, Options{Config: e.cfg, Instance: instance, Clock: e.clk, Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func ids(s ...string) []AgentID {
	out := make([]AgentID, len(s))
	for i, x := range s {
		out[i] = AgentID(x)
	}
	return out
}

func TestNewValidates(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	cfg := loadTeams(t)
	tests := []struct {
		name string
		rdb  redis.UniversalClient
		o    Options
	}{
		{name: "nil client", o: Options{Config: cfg, Instance: "i"}},
		{name: "nil config", rdb: c, o: Options{Instance: "i"}},
		{name: "no instance", rdb: c, o: Options{Config: cfg}},
		{name: "instance with space", rdb: c, o: Options{Config: cfg, Instance: "a b"}},
		{name: "negative margin", rdb: c, o: Options{Config: cfg, Instance: "i", ReserveMargin: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.rdb, tt.o); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestPick(t *testing.T) {
	e := newEnv(t)
	r, rdb := e.router(t, "i1")
	ctx := context.Background()
	all := ids("a", "b", "c", "d", "z")

	t.Run("ring_all takes every available member not reserved by another call", func(t *testing.T) {
		if err := r.Reserve(ctx, "d", "other-call", time.Minute); err != nil {
			t.Fatal(err)
		}
		defer r.Release(ctx, "d", "other-call")
		got, err := r.Pick(ctx, "all", "c1", ids("z", "b", "d", "a", "b"), ids("a"))
		if err != nil || !reflect.DeepEqual(got, ids("b", "z")) {
			t.Fatalf("Pick = %v, %v", got, err)
		}
		if who, _ := r.ReservedFor(ctx, "b"); who != "" {
			t.Errorf("ring_all reserved b for %q", who)
		}
	})
	t.Run("round_robin goes around in team order and reserves", func(t *testing.T) {
		var got []AgentID
		for i := range 5 {
			cid := call.ID(fmt.Sprintf("rr-%d", i))
			p, err := r.Pick(ctx, "rr", cid, all, nil)
			if err != nil || len(p) != 1 {
				t.Fatalf("pick %d = %v, %v", i, p, err)
			}
			if who, _ := r.ReservedFor(ctx, p[0]); who != cid {
				t.Fatalf("%s reserved for %q, want %q", p[0], who, cid)
			}
			ttl := rdb.PTTL(ctx, r.reserveKey(p[0])).Val()
			if ttl <= 10*time.Second || ttl > 15*time.Second {
				t.Errorf("lease %v, want ring 10s + margin 5s", ttl)
			}
			if err := r.Release(ctx, p[0], cid); err != nil {
				t.Fatal(err)
			}
			got = append(got, p[0])
		}
		if want := ids("a", "b", "c", "a", "b"); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v, want %v", got, want)
		}
	})
	t.Run("round_robin skips the unavailable and the excluded, keeps its place", func(t *testing.T) {
		// Cursor is at b: next is c, but c is not available → a.
		p, err := r.Pick(ctx, "rr", "x1", ids("a", "b"), nil)
		if err != nil || !reflect.DeepEqual(p, ids("a")) {
			t.Fatalf("Pick = %v, %v", p, err)
		}
		// a is now reserved for x1; for x2 with b excluded nobody is left.
		if _, err := r.Pick(ctx, "rr", "x2", ids("a", "b"), ids("b")); !errors.Is(err, ErrNoAgent) {
			t.Fatalf("want ErrNoAgent, got %v", err)
		}
		// The same call picking again gets its own reservation back.
		if p, err := r.Pick(ctx, "rr", "x1", ids("a"), nil); err != nil || p[0] != "a" {
			t.Fatalf("re-pick = %v, %v", p, err)
		}
		_ = r.Release(ctx, "a", "x1")
	})
	t.Run("longest_idle takes the member idle longest", func(t *testing.T) {
		for a, at := range map[AgentID]time.Time{"a": t0.Add(3 * time.Minute), "b": t0.Add(time.Minute), "c": t0.Add(2 * time.Minute)} {
			if err := r.AgentFreed(ctx, a, at); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.AgentBusy(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		// d busy (last), b idle since t0+1m: b; then c (b reserved); then a; then d.
		var got []AgentID
		for i := range 4 {
			p, err := r.Pick(ctx, "idle", call.ID(fmt.Sprintf("li-%d", i)), ids("a", "b", "c", "d"), nil)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p[0])
		}
		if want := ids("b", "c", "a", "d"); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v, want %v", got, want)
		}
		if _, err := r.Pick(ctx, "idle", "li-9", ids("a", "b", "c", "d"), nil); !errors.Is(err, ErrNoAgent) {
			t.Fatalf("all reserved: %v", err)
		}
		since, busy, err := r.IdleSince(ctx, "b")
		if err != nil || busy || !since.Equal(t0.Add(time.Minute)) {
			t.Fatalf("IdleSince(b) = %v %v %v", since, busy, err)
		}
		if _, busy, _ := r.IdleSince(ctx, "d"); !busy {
			t.Error("d not busy")
		}
	})
	t.Run("bad input changes nothing", func(t *testing.T) {
		if _, err := r.Pick(ctx, "nope", "c", all, nil); !errors.Is(err, ErrUnknownTeam) {
			t.Errorf("unknown team: %v", err)
		}
		if _, err := r.Pick(ctx, "rr", "", all, nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("empty call: %v", err)
		}
		if _, err := r.Pick(ctx, "rr", "c", ids("x", "y"), nil); !errors.Is(err, ErrNoAgent) {
			t.Errorf("no member available: %v", err)
		}
		if err := r.Release(ctx, "a", "never"); !errors.Is(err, ErrNotReserved) {
			t.Errorf("release unheld: %v", err)
		}
		if err := r.Reserve(ctx, "z", "k1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := r.Reserve(ctx, "z", "k1", 2*time.Minute); err != nil {
			t.Errorf("extend own reservation: %v", err)
		}
		if err := r.Reserve(ctx, "z", "k2", time.Minute); !errors.Is(err, ErrAgentReserved) {
			t.Errorf("reserve held: %v", err)
		}
		if err := r.Release(ctx, "z", "k2"); !errors.Is(err, ErrNotReserved) {
			t.Errorf("release by another call: %v", err)
		}
		if err := r.Reserve(ctx, "z", "k1", 0); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("zero ttl: %v", err)
		}
		if who, _ := r.ReservedFor(ctx, "z"); who != "k1" {
			t.Errorf("reservation moved to %q", who)
		}
	})
	if v := testutil.ToFloat64(r.m.picks.WithLabelValues("rr", "round_robin", "picked")); v < 5 {
		t.Errorf("picks metric = %v", v)
	}
}

// TestRoundRobinTwoInstances: 6 calls over 3 agents from two instances
// (two Routers, two clients), two calls at a time → 2-2-2, never the same
// agent for two calls at once.
func TestRoundRobinTwoInstances(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router(t, "i1")
	r2, _ := e.router(t, "i2")
	ctx := context.Background()
	count := map[AgentID]int{}
	for round := range 3 {
		var wg sync.WaitGroup
		picks := make([]AgentID, 2)
		errs := make([]error, 2)
		for i, r := range []*Router{r1, r2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := r.Pick(ctx, "rr", call.ID(fmt.Sprintf("call-%d-%d", round, i)), ids("a", "b", "c"), nil)
				if err == nil {
					picks[i] = p[0]
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v", round, errors.Join(errs...))
		}
		if picks[0] == picks[1] {
			t.Fatalf("round %d: both instances picked %s", round, picks[0])
		}
		for i, r := range []*Router{r1, r2} {
			count[picks[i]]++
			if err := r.Release(ctx, picks[i], call.ID(fmt.Sprintf("call-%d-%d", round, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := map[AgentID]int{"a": 2, "b": 2, "c": 2}; !reflect.DeepEqual(count, want) {
		t.Fatalf("distribution %v, want %v", count, want)
	}
}

// TestPickContended: many calls at once from two instances over 3 agents:
// exactly 3 win, each a different agent, for every sequential strategy.
func TestPickContended(t *testing.T) {
	for _, team := range []TeamID{"rr", "idle"} {
		t.Run(string(team), func(t *testing.T) {
			e := newEnv(t)
			r1, _ := e.router(t, "i1")
			r2, _ := e.router(t, "i2")
			ctx := context.Background()
			const calls = 20
			var mu sync.Mutex
			won := map[AgentID]call.ID{}
			var none int
			var wg sync.WaitGroup
			for i := range calls {
				r := r1
				if i%2 == 1 {
					r = r2
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					cid := call.ID(fmt.Sprintf("c%d", i))
					p, err := r.Pick(ctx, team, cid, ids("a", "b", "c"), nil)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case errors.Is(err, ErrNoAgent):
						none++
					case err != nil:
						t.Error(err)
					default:
						if prev, dup := won[p[0]]; dup {
							t.Errorf("%s picked for %s and %s", p[0], prev, cid)
						}
						won[p[0]] = cid
					}
				}()
			}
			wg.Wait()
			if len(won) != 3 || none != calls-3 {
				t.Fatalf("won %v, none %d", won, none)
			}
		})
	}
}

func TestSetConfig(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router(t, "i1")
	c, err := config.Parse([]byte(`teams:
  - id: new
    agents: [q]
numbers:
  - {phone_number_id: "1", brand: B, token_env: T, teams: [new]}
`), "new.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.SetConfig(c)
	if _, err := r.Pick(context.Background(), "rr", "c", ids("a"), nil); !errors.Is(err, ErrUnknownTeam) {
		t.Fatalf("old team after reload: %v", err)
	}
	if p, err := r.Pick(context.Background(), "new", "c", ids("q"), nil); err != nil || p[0] != "q" {
		t.Fatalf("new team: %v %v", p, err)
	}
}

// TestKeysShareSlots: every script's keys carry one hash tag, so Redis
// Cluster runs them (agents' state together, each team's together).
func TestKeysShareSlots(t *testing.T) {
	r, err := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Options{Config: loadTeams(t), Instance: "i"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.rdb.Close()
	tag := func(k string) string {
		i := strings.IndexByte(k, '{')
		j := strings.IndexByte(k[i+1:], '}')
		if i < 0 || j <= 0 {
			t.Fatalf("key %q has no hash tag", k)
		}
		return k[i+1 : i+1+j]
	}
	groups := map[string][]string{
		"agents":  {r.reserveKey("a"), r.reserveKey("b"), r.idleKey(), r.cursorKey("rr"), r.cursorKey("idle")},
		"team:rr": {r.queueKey("rr"), r.ownerKey("rr"), r.taskKeyPrefix("rr") + "cb-x", r.taskSetKey("rr", TaskOpen), r.taskSetKey("rr", TaskClosed), r.userIndexKey("rr", "p", "4477"), r.userIndexKey("rr", "b", "GB.x")},
	}
	for want, keys := range groups {
		for _, k := range keys {
			if got := tag(k); got != want {
				t.Errorf("%s: tag %q, want %q", k, got, want)
			}
		}
	}
}

func TestRedisDown(t *testing.T) {
	e := newEnv(t)
	c := redis.NewClient(&redis.Options{Addr: e.srv.Addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
	defer c.Close()
	r, err := New(c, Options{Config: e.cfg, Instance: "i1", Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	checks := []struct {
		name string
		err  func() error
	}{
		{"pick", func() error { _, err := r.Pick(ctx, "rr", "c", ids("a"), nil); return err }},
		{"enqueue", func() error { _, err := r.Enqueue(ctx, "rr", "c", t0); return err }},
		{"expired", func() error { _, err := r.Expired(ctx, t0); return err }},
		{"create task", func() error { _, _, err := r.CreateTask(ctx, "rr", user(t, "+447700900123", ""), "c", t0); return err }},
		{"claim", func() error { _, err := r.Claim(ctx, "rr", "cb-c", "a"); return err }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.err(); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
		})
	}
	if v := testutil.ToFloat64(r.m.redisErrors.WithLabelValues("pick")); v != 1 {
		t.Errorf("redis errors{op=pick} = %v", v)
	}
}
