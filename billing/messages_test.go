package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMessageMeter(t *testing.T) {
	ctx := context.Background()
	const gb, fr = "+447700900123", "+33612345678"
	sent := func(id, user string) MessageSent {
		return MessageSent{ID: id, Business: "waba1", User: user, At: nov, Kind: KindPermissionRequest}
	}
	status := func(id string, st StatusKind, billable bool, typ, cat string) MessageStatus {
		return MessageStatus{ID: id, Status: st, Billable: billable, PricingModel: "PMP", Type: typ, Category: cat, At: nov.Add(time.Second)}
	}
	// One step is a Sent or a Status and what it must return.
	type step struct {
		sent   *MessageSent
		status *MessageStatus
		state  MessageState
		cost   int64
		dup    bool
	}
	S := func(m MessageSent, st MessageState, dup bool, cost ...int64) step {
		st2 := step{sent: &m, state: st, dup: dup}
		if len(cost) > 0 {
			st2.cost = cost[0]
		}
		return st2
	}
	U := func(m MessageStatus, st MessageState, cost int64, dup bool) step {
		return step{status: &m, state: st, cost: cost, dup: dup}
	}
	tests := []struct {
		name  string
		steps []step
		want  map[Category]MessageUsage // usage of 2026-11 afterwards
	}{
		{"billable utility is charged once", []step{
			S(sent("m1", gb), MessagePending, false),
			U(status("m1", StatusSent, true, "regular", "utility"), MessagePending, 0, false),
			U(status("m1", StatusDelivered, true, "regular", "utility"), MessageCharged, 20000, false),
			U(status("m1", StatusDelivered, true, "regular", "utility"), MessageCharged, 20000, true), // replayed
			U(status("m1", StatusRead, true, "regular", "utility"), MessageCharged, 20000, false),     // newer status, no new charge
			U(status("m1", StatusSent, true, "regular", "utility"), MessageCharged, 20000, true),      // late sent
			S(sent("m1", gb), MessageCharged, true, 20000),                                            // replayed Sent
		}, map[Category]MessageUsage{Utility: {Category: Utility, Billable: 1, Free: map[string]int64{}, CostMicros: 20000}}},
		{"free_customer_service is counted free", []step{
			S(sent("m2", gb), MessagePending, false),
			U(status("m2", StatusDelivered, false, "free_customer_service", "service"), MessageFree, 0, false),
			U(status("m2", StatusRead, false, "free_customer_service", "service"), MessageFree, 0, false),
		}, map[Category]MessageUsage{Service: {Category: Service, Free: map[string]int64{"free_customer_service": 1}}}},
		{"free entry point, hyphenated category", []step{
			S(sent("m3", gb), MessagePending, false),
			U(status("m3", StatusDelivered, false, "free_entry_point", "authentication-international"), MessageFree, 0, false),
		}, map[Category]MessageUsage{AuthenticationInternational: {Category: AuthenticationInternational, Free: map[string]int64{"free_entry_point": 1}}}},
		{"failed is never charged", []step{
			S(sent("m4", gb), MessagePending, false),
			U(status("m4", StatusSent, true, "regular", "marketing"), MessagePending, 0, false),
			U(status("m4", StatusFailed, false, "", ""), MessageFailed, 0, false),
			U(status("m4", StatusDelivered, true, "regular", "marketing"), MessageFailed, 0, false),
		}, map[Category]MessageUsage{Marketing: {Category: Marketing, Failed: 1, Free: map[string]int64{}}}},
		{"status before Sent settles when Sent arrives", []step{
			U(status("m5", StatusDelivered, true, "regular", "marketing"), MessageAwaitingSent, 0, false),
			U(status("m5", StatusDelivered, true, "regular", "marketing"), MessageAwaitingSent, 0, true),
			S(sent("m5", gb), MessageCharged, false, 52900),
		}, map[Category]MessageUsage{Marketing: {Category: Marketing, Billable: 1, Free: map[string]int64{}, CostMicros: 52900}}},
		{"pending until a status, by category once known", []step{
			S(sent("m6", gb), MessagePending, false),
			S(sent("m7", gb), MessagePending, false),
			U(status("m7", StatusSent, true, "regular", "utility"), MessagePending, 0, false),
		}, map[Category]MessageUsage{"unknown": {Category: "unknown", Pending: 1, Free: map[string]int64{}},
			Utility: {Category: Utility, Pending: 1, Free: map[string]int64{}}}},
		{"graduated utility tiers per market", []step{
			S(sent("g1", gb), MessagePending, false),
			U(status("g1", StatusDelivered, true, "regular", "utility"), MessageCharged, 20000, false),
			S(sent("g2", gb), MessagePending, false),
			U(status("g2", StatusDelivered, true, "regular", "utility"), MessageCharged, 20000, false),
			S(sent("g3", gb), MessagePending, false),
			U(status("g3", StatusDelivered, true, "regular", "utility"), MessageCharged, 10000, false), // 3rd: tier 1
			S(sent("g4", fr), MessagePending, false),
			U(status("g4", StatusDelivered, true, "regular", "utility"), MessageCharged, 20000, false), // FR's own count
		}, map[Category]MessageUsage{Utility: {Category: Utility, Billable: 4, Free: map[string]int64{}, CostMicros: 70000}}},
		{"BSUID user priced by its country", []step{
			S(sent("b1", "GB.13491208655302741918"), MessagePending, false),
			U(status("b1", StatusRead, true, "regular", "marketing"), MessageCharged, 52900, false),
		}, map[Category]MessageUsage{Marketing: {Category: Marketing, Billable: 1, Free: map[string]int64{}, CostMicros: 52900}}},
		{"category the card does not price: charged 0, counted", []step{
			S(sent("r1", gb), MessagePending, false),
			U(status("r1", StatusDelivered, true, "regular", "referral_conversion"), MessageCharged, 0, false),
		}, map[Category]MessageUsage{ReferralConversion: {Category: ReferralConversion, Billable: 1, Free: map[string]int64{}}}},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					l, _ := newTestLedger(t, b.newClient(t), fmt.Sprintf("pm%d:", i))
					for si, s := range tt.steps {
						var got MessageCharge
						var err error
						if s.sent != nil {
							got, err = l.Sent(ctx, *s.sent)
						} else {
							got, err = l.Status(ctx, *s.status)
						}
						if err != nil {
							t.Fatalf("step %d: %v", si, err)
						}
						if got.State != s.state || got.CostMicros != s.cost || got.Duplicate != s.dup {
							t.Fatalf("step %d: %+v; want state %s cost %d duplicate %v", si, got, s.state, s.cost, s.dup)
						}
					}
					u, err := l.Usage(ctx, "2026-11")
					if err != nil {
						t.Fatal(err)
					}
					got := map[Category]MessageUsage{}
					for _, m := range u.Messages {
						if m.Billable+m.Pending+m.Failed+m.CostMicros+int64(len(m.Free)) > 0 {
							got[m.Category] = m
						}
					}
					if fmt.Sprint(got) != fmt.Sprint(tt.want) {
						t.Fatalf("usage messages:\n got %v\nwant %v", got, tt.want)
					}
				})
			}
		})
	}
}

func TestMessageStatusReplayedConcurrently(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l0, _ := newTestLedger(t, b.newClient(t), "pmc:")
			if _, err := l0.Sent(ctx, MessageSent{ID: "wamid.c", Business: "waba1", User: "+447700900123", At: nov}); err != nil {
				t.Fatal(err)
			}
			const clients = 8
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, clients)
			for range clients {
				l, _ := newTestLedger(t, b.newClient(t), "pmc:") // like 8 instances receiving Meta's retries
				wg.Go(func() {
					<-start
					_, err := l.Status(ctx, MessageStatus{ID: "wamid.c", Status: StatusDelivered, Billable: true, Type: "regular", Category: "utility", At: nov})
					errs <- err
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			u, err := l0.Usage(ctx, "2026-11")
			if err != nil {
				t.Fatal(err)
			}
			if u.Totals.MessagesBillable != 1 || u.Totals.MessageCostMicros != 20000 || u.Totals.MessagesPending != 0 {
				t.Fatalf("totals = %+v; want one charge of 20000", u.Totals)
			}
			d, err := l0.rdb.HGetAll(ctx, l0.k.day("2026-11-10")).Result()
			if err != nil || d["msgs:GB:count"] != "1" || d["msgs:GB:cost_micros"] != "20000" {
				t.Fatalf("day aggregates = %v, %v", d, err)
			}
		})
	}
}

func TestMessageInvalidWritesNothing(t *testing.T) {
	ctx := context.Background()
	rdb := backends(t)[1].newClient(t)
	l, reg := newTestLedger(t, rdb, "pminv:")
	okSent := MessageSent{ID: "wamid.1", Business: "waba1", User: "+447700900123", At: nov}
	okStatus := MessageStatus{ID: "wamid.1", Status: StatusDelivered, Billable: true, Category: "utility", At: nov}
	tests := []struct {
		name string
		call func() error
	}{
		{"sent without id", func() error { m := okSent; m.ID = ""; _, err := l.Sent(ctx, m); return err }},
		{"sent without business", func() error { m := okSent; m.Business = ""; _, err := l.Sent(ctx, m); return err }},
		{"sent without user or country", func() error { m := okSent; m.User = ""; _, err := l.Sent(ctx, m); return err }},
		{"sent with a bad country", func() error { m := okSent; m.Country = "gb"; _, err := l.Sent(ctx, m); return err }},
		{"sent without time", func() error { m := okSent; m.At = time.Time{}; _, err := l.Sent(ctx, m); return err }},
		{"status without id", func() error { m := okStatus; m.ID = ""; _, err := l.Status(ctx, m); return err }},
		{"unknown status", func() error { m := okStatus; m.Status = "queued"; _, err := l.Status(ctx, m); return err }},
		{"category with a colon", func() error { m := okStatus; m.Category = "util:ity"; _, err := l.Status(ctx, m); return err }},
		{"type with spaces", func() error { m := okStatus; m.Type = "free customer"; _, err := l.Status(ctx, m); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("err = %v, want ErrInvalidMessage", err)
			}
			if keys, _ := rdb.Keys(ctx, "pminv:*").Result(); len(keys) != 0 {
				t.Fatalf("invalid message wrote %v", keys)
			}
		})
	}
	if n, err := testutil.GatherAndCount(reg, "callgw_billing_messages_total"); err != nil || n != 0 {
		t.Fatalf("message series = %d, %v", n, err)
	}
}

// The legacy Conversation call, in a month whose card prices per message,
// records the message as pending (the deprecated path keeps working).
func TestConversationUnderPerMessageCard(t *testing.T) {
	ctx := context.Background()
	l, _ := newTestLedger(t, backends(t)[1].newClient(t), "bridge:")
	ch, err := l.Conversation(ctx, Message{ID: "wamid.b", Business: "waba1", User: "+447700900123", Category: Utility, At: nov})
	if err != nil || ch.FreeReason != PendingPerMessage || ch.Opened {
		t.Fatalf("Conversation = %+v, %v", ch, err)
	}
	got, err := l.Status(ctx, MessageStatus{ID: "wamid.b", Status: StatusDelivered, Billable: true, Category: "utility", Type: "regular", At: nov})
	if err != nil || got.State != MessageCharged || got.CostMicros != 20000 {
		t.Fatalf("Status = %+v, %v", got, err)
	}
}

// settle is the message state machine; a table of its transitions.
func TestSettle(t *testing.T) {
	pending := pmState{Sent: true, Month: "2026-11", State: MessagePending}
	tests := []struct {
		name   string
		prev   pmState
		next   pmState
		state  MessageState
		deltas string
		charge bool
	}{
		{"first Sent", pmState{}, pmState{Sent: true}, MessagePending, "[[pm:unknown:pending 1]]", false},
		{"status before Sent", pmState{}, pmState{Status: StatusDelivered}, MessageAwaitingSent, "[]", false},
		{"Sent after delivered billable", pmState{Status: StatusDelivered, Billable: true, Category: Utility, State: MessageAwaitingSent},
			pmState{Sent: true, Status: StatusDelivered, Billable: true, Category: Utility}, MessageCharged, "[[pm:utility:billable 1]]", true},
		{"category learnt while pending", pending, pmState{Sent: true, Status: StatusSent, Category: Marketing}, MessagePending,
			"[[pm:unknown:pending -1] [pm:marketing:pending 1]]", false},
		{"delivered free", pending, pmState{Sent: true, Status: StatusDelivered, Type: "free_entry_point", Category: Service}, MessageFree,
			"[[pm:unknown:pending -1] [pm:service:free:free_entry_point 1]]", false},
		{"failed", pending, pmState{Sent: true, Status: StatusFailed}, MessageFailed, "[[pm:unknown:pending -1] [pm:unknown:failed 1]]", false},
		{"final stays final", pmState{Sent: true, State: MessageCharged, Status: StatusDelivered},
			pmState{Sent: true, Status: StatusRead, State: MessageCharged}, MessageCharged, "[]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, d, charge := settle(tt.prev, tt.next)
			if next.State != tt.state || fmt.Sprint(d) != tt.deltas || charge != tt.charge {
				t.Fatalf("settle = %s %v %v; want %s %s %v", next.State, d, charge, tt.state, tt.deltas, tt.charge)
			}
		})
	}
}
