package signaling

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/redistest"
	"github.com/callgw/callgw/signaling/webhook"
)

func newStore(t *testing.T) (*store, *redistest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	return &store{rdb: rs.Client(), prefix: "t:", ttl: time.Hour}, rs
}

func TestStoreDedupIsOncePerEventAcrossClients(t *testing.T) {
	s, rs := newStore(t)
	ctx := context.Background()
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s
			if i%2 == 1 { // another instance: another client
				st = &store{rdb: rs.Client(), prefix: "t:", ttl: time.Hour}
			}
			ok, err := st.firstDelivery(ctx, "wacid.A", "connect", "")
			if err != nil {
				t.Error(err)
			}
			if ok {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Fatalf("%d first deliveries", firsts.Load())
	}
	// Another event of the same call is its own first delivery; forgetting
	// lets Meta's retry apply.
	if ok, _ := s.firstDelivery(ctx, "wacid.A", "terminate", ""); !ok {
		t.Fatal("terminate deduplicated against connect")
	}
	s.forgetDelivery(ctx, "wacid.A", "terminate", "")
	if ok, _ := s.firstDelivery(ctx, "wacid.A", "terminate", ""); !ok {
		t.Fatal("forgotten delivery not applied again")
	}
}

func TestStoreClaimFirstAcceptWins(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	tests := []struct {
		agent      string
		won        bool
		wantHolder string
	}{
		{"ann", true, "ann"},
		{"ben", false, "ann"},
		{"ann", true, "ann"}, // the winner asking again still holds it
	}
	for _, tc := range tests {
		won, holder, err := s.claim(ctx, "wacid.B", tc.agent)
		if err != nil || won != tc.won || holder != tc.wantHolder {
			t.Fatalf("%s: won %v holder %q err %v", tc.agent, won, holder, err)
		}
	}
	// The call waits again (a lost transfer): the claim is freed and the
	// next agent wins it.
	if err := s.unclaim(ctx, "wacid.B"); err != nil {
		t.Fatal(err)
	}
	if won, holder, err := s.claim(ctx, "wacid.B", "ben"); err != nil || !won || holder != "ben" {
		t.Fatalf("after unclaim: won %v holder %q err %v", won, holder, err)
	}
}

func TestStoreEndedRecordsAndUnrecorded(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	rec := call.Record{ID: "wacid.C", Direction: call.UserInitiated, EndedAt: time.Now(), MetaDuration: -1}
	if ended, _ := s.ended(ctx, rec.ID); ended {
		t.Fatal("ended before markEnded")
	}
	if err := s.markEnded(ctx, rec, "i1"); err != nil {
		t.Fatal(err)
	}
	if ended, _ := s.ended(ctx, rec.ID); !ended {
		t.Fatal("no tombstone")
	}
	un, err := s.unrecorded(ctx, 10)
	if err != nil || len(un) != 1 || un[0].ID != rec.ID {
		t.Fatalf("unrecorded %v %v", un, err)
	}
	// A reaped record waits for Meta's terminate before it is offered.
	rec2 := call.Record{ID: "wacid.D", Direction: call.UserInitiated, EndedAt: time.Now(), MetaDuration: -1}
	if err := s.markEndedAwaiting(ctx, rec2, "i1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if un, _ := s.unrecorded(ctx, 10); len(un) != 1 {
		t.Fatalf("awaiting record offered: %v", un)
	}
	if err := s.recorded(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if un, _ := s.unrecorded(ctx, 10); len(un) != 0 {
		t.Fatalf("recorded record still offered: %v", un)
	}
}

func TestStoreEarlyEvents(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	evs := []webhook.Event{
		{Status: &webhook.StatusEvent{CallID: "wacid.E", Status: webhook.StatusRinging}},
		{Call: &webhook.CallEvent{CallID: "wacid.E", Event: webhook.CallConnect, SDPType: "answer", SDP: "v=0"}},
	}
	t0 := time.Unix(1_800_000_000, 0)
	for i, ev := range evs {
		if err := s.pushEarly(ctx, "wacid.E", ev, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if due, err := s.earlyDue(ctx, t0.Add(-time.Second)); err != nil || len(due) != 0 {
		t.Fatalf("due too early: %v %v", due, err)
	}
	if due, err := s.earlyDue(ctx, t0); err != nil || len(due) != 1 || due[0] != "wacid.E" {
		t.Fatalf("due: %v %v", due, err)
	}
	got, err := s.popEarly(ctx, "wacid.E")
	if err != nil || len(got) != 2 || got[0].Status == nil || got[1].Call == nil || got[1].Call.SDP != "v=0" {
		t.Fatalf("early %+v %v", got, err)
	}
	if again, _ := s.popEarly(ctx, "wacid.E"); len(again) != 0 {
		t.Fatal("early events delivered twice")
	}
	if err := s.earlyDone(ctx, "wacid.E"); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.earlyDue(ctx, t0.Add(time.Hour)); len(due) != 0 {
		t.Fatalf("still indexed: %v", due)
	}
}

func TestStoreFailsClearlyWithoutRedis(t *testing.T) {
	s, rs := newStore(t)
	rs.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.firstDelivery(ctx, "wacid.F", "connect", ""); err == nil || !IsRetryable(err) {
		t.Fatalf("dedup without redis: %v", err)
	}
}

func TestStateAndConfig(t *testing.T) {
	for s := StateUnknown; s <= StateEnded; s++ {
		if ParseState(s.String()) != s {
			t.Fatalf("state %d round trip", s)
		}
	}
	if State(99).String() != "unknown" {
		t.Fatal("out of range state")
	}
	base := Config{PhoneNumberID: "1", AppSecret: "s", VerifyToken: "v"}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no phone":      func(c *Config) { c.PhoneNumberID = "" },
		"no secret":     func(c *Config) { c.AppSecret = "" },
		"no verify":     func(c *Config) { c.VerifyToken = "" },
		"ring too long": func(c *Config) { c.RingTimeout = time.Minute },
		"negative":      func(c *Config) { c.AgentGrace = -time.Second },
	} {
		c := base
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
