package routing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/callgw/callgw/call"
)

func calls(es []Entry) []call.ID {
	out := make([]call.ID, len(es))
	for i, e := range es {
		out[i] = e.Call
	}
	return out
}

func TestQueue(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router(t, "i1")
	ctx := context.Background()

	t.Run("positions, idempotent enqueue, max_size", func(t *testing.T) {
		for i, c := range []call.ID{"q1", "q2", "q3"} {
			pos, err := r.Enqueue(ctx, "rr", c, t0.Add(time.Duration(i)*time.Second))
			if err != nil || pos != i+1 {
				t.Fatalf("Enqueue(%s) = %d, %v", c, pos, err)
			}
		}
		if pos, err := r.Enqueue(ctx, "rr", "q2", t0.Add(time.Hour)); err != nil || pos != 2 {
			t.Fatalf("re-enqueue = %d, %v", pos, err)
		}
		if _, err := r.Enqueue(ctx, "rr", "q4", t0.Add(5*time.Second)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("4th call in a queue of 3: %v", err)
		}
		if _, err := r.Enqueue(ctx, "all", "q9", t0); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("team without queue: %v", err)
		}
		if pos, err := r.Position(ctx, "rr", "q3"); err != nil || pos != 3 {
			t.Fatalf("Position = %d, %v", pos, err)
		}
		if v := testutil.ToFloat64(r.m.queued.WithLabelValues("rr", "full")); v != 1 {
			t.Errorf("full metric = %v", v)
		}
	})
	t.Run("snapshot for supervisors", func(t *testing.T) {
		s, err := r.Snapshot(ctx, "rr", t0.Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := []Entry{
			{Call: "q1", Team: "rr", Since: t0, Owner: "i1", Position: 1, Wait: 10 * time.Second},
			{Call: "q2", Team: "rr", Since: t0.Add(time.Second), Owner: "i1", Position: 2, Wait: 9 * time.Second},
			{Call: "q3", Team: "rr", Since: t0.Add(2 * time.Second), Owner: "i1", Position: 3, Wait: 8 * time.Second},
		}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("Snapshot =\n%+v\nwant\n%+v", s, want)
		}
	})
	t.Run("remove when the caller hangs up", func(t *testing.T) {
		if err := r.Remove(ctx, "rr", "q2"); err != nil {
			t.Fatal(err)
		}
		if err := r.Remove(ctx, "rr", "q2"); !errors.Is(err, ErrNotQueued) {
			t.Fatalf("second remove: %v", err)
		}
		if pos, _ := r.Position(ctx, "rr", "q3"); pos != 2 {
			t.Fatalf("q3 moved to %d, want 2", pos)
		}
		if _, err := r.Position(ctx, "rr", "q2"); !errors.Is(err, ErrNotQueued) {
			t.Fatalf("Position of removed: %v", err)
		}
	})
	t.Run("dequeue the longest waiting", func(t *testing.T) {
		e.clk.Advance(30 * time.Second)
		got, err := r.Dequeue(ctx, "rr")
		if err != nil || got.Call != "q1" || got.Owner != "i1" || !got.Since.Equal(t0) {
			t.Fatalf("Dequeue = %+v, %v", got, err)
		}
		if got, _ := r.Dequeue(ctx, "rr"); got.Call != "q3" {
			t.Fatalf("second Dequeue = %+v", got)
		}
		if _, err := r.Dequeue(ctx, "rr"); !errors.Is(err, ErrQueueEmpty) {
			t.Fatalf("empty: %v", err)
		}
		if n := testutil.CollectAndCount(r.m.wait); n != 1 {
			t.Errorf("wait histogram series = %d", n)
		}
	})
	t.Run("dequeue for an agent takes the oldest across their teams", func(t *testing.T) {
		// a is in rr and idle; d only in idle.
		mustEnqueue(t, r, "idle", "i-late", t0.Add(20*time.Second))
		mustEnqueue(t, r, "rr", "r-early", t0.Add(10*time.Second))
		mustEnqueue(t, r, "idle", "i-early", t0.Add(5*time.Second))
		var got []call.ID
		for range 3 {
			en, err := r.DequeueFor(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, en.Call)
		}
		if want := []call.ID{"i-early", "r-early", "i-late"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v, want %v", got, want)
		}
		mustEnqueue(t, r, "rr", "r-only", t0)
		if _, err := r.DequeueFor(ctx, "d"); !errors.Is(err, ErrQueueEmpty) {
			t.Fatalf("d is not in rr: %v", err)
		}
		if _, err := r.Dequeue(ctx, "rr"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		if _, err := r.Enqueue(ctx, "nope", "x", t0); !errors.Is(err, ErrUnknownTeam) {
			t.Errorf("unknown team: %v", err)
		}
		if _, err := r.Enqueue(ctx, "rr", "", t0); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("empty call: %v", err)
		}
		if _, err := r.Enqueue(ctx, "rr", "x", time.Time{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("zero time: %v", err)
		}
		if s, _ := r.Snapshot(ctx, "rr", t0); len(s) != 0 {
			t.Errorf("bad input queued something: %v", s)
		}
	})
}

func mustEnqueue(t *testing.T, r *Router, team TeamID, c call.ID, at time.Time) {
	t.Helper()
	if _, err := r.Enqueue(context.Background(), team, c, at); err != nil {
		t.Fatal(err)
	}
}

func TestExpired(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router(t, "i1")
	r2, _ := e.router(t, "i2")
	ctx := context.Background()
	mustEnqueue(t, r1, "rr", "mine-old", t0)
	mustEnqueue(t, r2, "rr", "theirs-old", t0.Add(time.Second))
	mustEnqueue(t, r1, "rr", "mine-new", t0.Add(50*time.Second))
	mustEnqueue(t, r1, "idle", "idle-old", t0)

	// rr max_wait 60s (overflow idle), idle max_wait 2m (no overflow).
	now := t0.Add(61 * time.Second)
	got, err := r1.Expired(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []Expiry{{Call: "mine-old", Team: "rr", Since: t0, Overflow: "idle"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Expired = %+v, want %+v", got, want)
	}
	if again, _ := r1.Expired(ctx, now); len(again) != 0 {
		t.Fatalf("expired twice: %+v", again)
	}
	// The other instance gets its own.
	if got, _ := r2.Expired(ctx, now); len(got) != 1 || got[0].Call != "theirs-old" {
		t.Fatalf("r2 Expired = %+v", got)
	}
	// idle-old expires at 2m, missed (no overflow).
	got, _ = r1.Expired(ctx, t0.Add(2*time.Minute))
	if len(got) != 2 || got[0].Call != "mine-new" || got[1] != (Expiry{Call: "idle-old", Team: "idle", Since: t0}) {
		t.Fatalf("Expired at 2m = %+v", got)
	}
	// A call of a dead instance is dropped after max_wait + StaleGrace,
	// by anyone, and returned to nobody.
	mustEnqueue(t, r2, "rr", "orphan", t0)
	if got, _ := r1.Expired(ctx, t0.Add(61*time.Second)); len(got) != 0 {
		t.Fatalf("orphan returned early: %+v", got)
	}
	if got, _ := r1.Expired(ctx, t0.Add(3*time.Minute+time.Second)); len(got) != 0 {
		t.Fatalf("orphan returned to a non-owner: %+v", got)
	}
	if s, _ := r1.Snapshot(ctx, "rr", t0); len(s) != 0 {
		t.Fatalf("orphan still queued: %+v", s)
	}
	if v := testutil.ToFloat64(r1.m.left.WithLabelValues("rr", "stale")); v != 1 {
		t.Errorf("stale metric = %v", v)
	}
}

// TestQueueContended: two instances fill a queue of 3 at once: exactly 3
// get in; then they drain it at once: each call comes out exactly once.
func TestQueueContended(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router(t, "i1")
	r2, _ := e.router(t, "i2")
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var in, full int
	for i := range 12 {
		r := []*Router{r1, r2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Enqueue(ctx, "rr", call.ID(fmt.Sprintf("c%d", i)), t0.Add(time.Duration(i)*time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrQueueFull):
				full++
			case err != nil:
				t.Error(err)
			default:
				in++
			}
		}()
	}
	wg.Wait()
	if in != 3 || full != 9 {
		t.Fatalf("in %d full %d", in, full)
	}
	seen := map[call.ID]int{}
	for i := range 6 {
		r := []*Router{r1, r2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			en, err := r.DequeueFor(ctx, "a")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				seen[en.Call]++
			} else if !errors.Is(err, ErrQueueEmpty) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(seen) != 3 {
		t.Fatalf("dequeued %v", seen)
	}
	for c, n := range seen {
		if n != 1 {
			t.Errorf("%s dequeued %d times", c, n)
		}
	}
}
