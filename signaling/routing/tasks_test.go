package routing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
)

func user(t *testing.T, num, bsuid string) phone.User {
	t.Helper()
	var u phone.User
	if num != "" {
		n, err := phone.Parse(num)
		if err != nil {
			t.Fatal(err)
		}
		u.Phone = n
	}
	u.BSUID = bsuid
	return u
}

func TestTasks(t *testing.T) {
	e := newEnv(t)
	r, _ := e.router(t, "i1")
	ctx := context.Background()
	ana := user(t, "+447700900123", "")

	first, created, err := r.CreateTask(ctx, "rr", ana, "m1", t0)
	if err != nil || !created || first.ID != "cb-m1" || first.State != TaskOpen || first.Missed != 1 || first.User.Phone.E164 != "+447700900123" {
		t.Fatalf("CreateTask = %+v, %v, %v", first, created, err)
	}
	t.Run("a second missed call updates the open task", func(t *testing.T) {
		got, created, err := r.CreateTask(ctx, "rr", user(t, "+447700900123", "GB.abc123"), "m2", t0.Add(time.Minute))
		if err != nil || created || got.ID != "cb-m1" || got.Missed != 2 || got.LastCall != "m2" || got.User.BSUID != "GB.abc123" ||
			!got.Updated.Equal(t0.Add(time.Minute)) || !got.Created.Equal(t0) {
			t.Fatalf("second = %+v, %v, %v", got, created, err)
		}
		// Known by BSUID alone now.
		got, created, _ = r.CreateTask(ctx, "rr", user(t, "", "GB.abc123"), "m3", t0.Add(2*time.Minute))
		if created || got.ID != "cb-m1" || got.Missed != 3 {
			t.Fatalf("by BSUID = %+v, %v", got, created)
		}
		// The same call reported twice counts once.
		got, _, _ = r.CreateTask(ctx, "rr", ana, "m3", t0.Add(2*time.Minute))
		if got.Missed != 3 {
			t.Fatalf("repeat counted: %+v", got)
		}
		// Another team keeps its own task.
		if _, created, _ := r.CreateTask(ctx, "idle", ana, "m4", t0); !created {
			t.Fatal("no task in the second team")
		}
		open, err := r.Tasks(ctx, "rr", TaskOpen, 0)
		if err != nil || len(open) != 1 {
			t.Fatalf("open = %+v, %v", open, err)
		}
	})
	t.Run("claim: one agent wins", func(t *testing.T) {
		if _, err := r.Claim(ctx, "rr", "cb-m1", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Claim(ctx, "rr", "cb-m1", "a"); err != nil {
			t.Fatalf("reclaim by the winner: %v", err)
		}
		if _, err := r.Claim(ctx, "rr", "cb-m1", "b"); !errors.Is(err, ErrTaskClaimed) {
			t.Fatalf("claim by b: %v", err)
		}
		if err := r.Unclaim(ctx, "rr", "cb-m1", "b"); !errors.Is(err, ErrTaskClaimed) {
			t.Fatalf("unclaim by b: %v", err)
		}
		claimed, _ := r.Tasks(ctx, "rr", TaskClaimed, 0)
		if open, _ := r.Tasks(ctx, "rr", TaskOpen, 0); len(open) != 0 || len(claimed) != 1 || claimed[0].Agent != "a" {
			t.Fatalf("open %v claimed %+v", open, claimed)
		}
		// A missed call while claimed still folds into it.
		if got, created, _ := r.CreateTask(ctx, "rr", ana, "m5", t0.Add(3*time.Minute)); created || got.State != TaskClaimed || got.Missed != 4 {
			t.Fatalf("missed while claimed = %+v", got)
		}
	})
	t.Run("reaching the user closes their tasks in every team", func(t *testing.T) {
		closed, err := r.CloseForUser(ctx, user(t, "", "GB.abc123"), "reached-1")
		if err != nil || len(closed) != 1 || closed[0].ID != "cb-m1" || closed[0].ClosedBy != "reached-1" || closed[0].State != TaskClosed {
			t.Fatalf("by BSUID: %+v, %v", closed, err)
		}
		closed, err = r.CloseForUser(ctx, ana, "reached-2")
		if err != nil || len(closed) != 1 || closed[0].Team != "idle" {
			t.Fatalf("by phone: %+v, %v", closed, err)
		}
		if again, _ := r.CloseForUser(ctx, ana, "reached-3"); len(again) != 0 {
			t.Fatalf("closed twice: %+v", again)
		}
		if _, err := r.Claim(ctx, "rr", "cb-m1", "b"); !errors.Is(err, ErrTaskClosed) {
			t.Fatalf("claim closed: %v", err)
		}
		list, _ := r.Tasks(ctx, "rr", TaskClosed, 0)
		if len(list) != 1 {
			t.Fatalf("closed list %+v", list)
		}
		// The next missed call opens a new task.
		got, created, _ := r.CreateTask(ctx, "rr", ana, "m6", t0.Add(time.Hour))
		if !created || got.ID != "cb-m6" {
			t.Fatalf("after close = %+v, %v", got, created)
		}
		// The closed task's call reported again does not reopen anything.
		if got, created, err := r.CreateTask(ctx, "rr", user(t, "+447700900999", ""), "m1", t0); created || err != nil || got.State != TaskClosed {
			t.Fatalf("replay of a closed call = %+v %v %v", got, created, err)
		}
	})
	t.Run("close by hand and unclaim", func(t *testing.T) {
		if _, err := r.Claim(ctx, "rr", "cb-m6", "c"); err != nil {
			t.Fatal(err)
		}
		if err := r.Unclaim(ctx, "rr", "cb-m6", "c"); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(ctx, "rr", "cb-m6", "agent:c"); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.Task(ctx, "rr", "cb-m6"); got.State != TaskClosed || got.ClosedBy != "agent:c" || !got.ClosedAt.Equal(t0) {
			t.Fatalf("closed = %+v", got)
		}
	})
	t.Run("bad input changes nothing", func(t *testing.T) {
		tests := []struct {
			name string
			team TeamID
			u    phone.User
			c    call.ID
			at   time.Time
			want error
		}{
			{name: "unknown team", team: "nope", u: ana, c: "x", at: t0, want: ErrUnknownTeam},
			{name: "no user", team: "rr", c: "x", at: t0, want: ErrInvalidArgument},
			{name: "bad bsuid", team: "rr", u: phone.User{BSUID: "nope"}, c: "x", at: t0, want: ErrInvalidArgument},
			{name: "no call", team: "rr", u: ana, at: t0, want: ErrInvalidArgument},
			{name: "no time", team: "rr", u: ana, c: "x", want: ErrInvalidArgument},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, _, err := r.CreateTask(ctx, tt.team, tt.u, tt.c, tt.at); !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			})
		}
		if _, err := r.Claim(ctx, "rr", "cb-none", "a"); !errors.Is(err, ErrNoTask) {
			t.Errorf("claim missing: %v", err)
		}
		if _, err := r.Tasks(ctx, "rr", TaskUnknown, 0); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("list unknown state: %v", err)
		}
		if open, _ := r.Tasks(ctx, "rr", TaskOpen, 0); len(open) != 0 {
			t.Errorf("bad input opened %+v", open)
		}
	})
}

// TestTasksContended: two instances report missed calls of one user at
// once (one task results), then many agents on two instances claim it at
// once (exactly one wins).
func TestTasksContended(t *testing.T) {
	e := newEnv(t)
	r1, _ := e.router(t, "i1")
	r2, _ := e.router(t, "i2")
	ctx := context.Background()
	u := user(t, "+5511987654321", "BR.xyz")
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdN := 0
	for i := range 10 {
		r := []*Router{r1, r2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := r.CreateTask(ctx, "idle", u, call.ID(fmt.Sprintf("m%d", i)), t0.Add(time.Duration(i)*time.Second))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			if created {
				createdN++
			}
		}()
	}
	wg.Wait()
	open, _ := r1.Tasks(ctx, "idle", TaskOpen, 0)
	if createdN != 1 || len(open) != 1 || open[0].Missed != 10 {
		t.Fatalf("created %d, open %+v", createdN, open)
	}
	id := open[0].ID
	winners := map[AgentID]bool{}
	for i, a := range []AgentID{"a", "b", "c", "d", "a", "b", "c", "d"} {
		r := []*Router{r1, r2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Claim(ctx, "idle", id, a)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners[a] = true
			case !errors.Is(err, ErrTaskClaimed):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners %v", winners)
	}
}
