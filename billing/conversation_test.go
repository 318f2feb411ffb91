package billing

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

func newConvLedger(t testing.TB, rdb redis.UniversalClient, prefix string) (*Ledger, *prometheus.Registry) {
	t.Helper()
	rc, err := LoadRateCardFile("../testdata/billing/conversation.json")
	if err != nil {
		t.Fatal(err)
	}
	return newLedgerWith(t, rdb, prefix, rc, time.UTC)
}

func TestConversationWindows(t *testing.T) {
	ctx := context.Background()
	const gb, jm = "+447700900123", "+18768765432"
	t0 := nov
	type step struct {
		name string
		m    Message
		want ConversationCharge
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"same category inside 24h is free, after 24h charged again", []step{
			{"opens marketing", Message{User: gb, Category: Marketing, At: t0},
				ConversationCharge{Opened: true, Category: Marketing, CostMicros: 52900, WindowEnds: t0.Add(24 * time.Hour)}},
			{"second marketing in window", Message{User: gb, Category: Marketing, At: t0.Add(23 * time.Hour)},
				ConversationCharge{Category: Marketing, Free: true, FreeReason: FreeOpenWindow, WindowEnds: t0.Add(24 * time.Hour)}},
			{"exactly 24h later opens a new one", Message{User: gb, Category: Marketing, At: t0.Add(24 * time.Hour)},
				ConversationCharge{Opened: true, Category: Marketing, CostMicros: 52900, WindowEnds: t0.Add(48 * time.Hour)}},
		}},
		{"category switch is charged", []step{
			{"marketing", Message{User: jm, Category: Marketing, At: t0},
				ConversationCharge{Opened: true, Category: Marketing, CostMicros: 50000, WindowEnds: t0.Add(24 * time.Hour)}},
			{"utility in the marketing window", Message{User: jm, Category: Utility, At: t0.Add(time.Hour)},
				ConversationCharge{Opened: true, Category: Utility, CostMicros: 20000, WindowEnds: t0.Add(25 * time.Hour)}},
			{"marketing again still free", Message{User: jm, Category: Marketing, At: t0.Add(2 * time.Hour)},
				ConversationCharge{Category: Marketing, Free: true, FreeReason: FreeOpenWindow, WindowEnds: t0.Add(24 * time.Hour)}},
		}},
		{"free entry point: 72h of everything free", []step{
			{"from a CTWA ad", Message{User: gb, Category: Service, At: t0, FreeEntryPoint: true},
				ConversationCharge{Opened: true, Category: Service, Free: true, FreeReason: FreeEntryPointFree, WindowEnds: t0.Add(72 * time.Hour)}},
			{"marketing at 71h", Message{User: gb, Category: Marketing, At: t0.Add(71 * time.Hour)},
				ConversationCharge{Category: Marketing, Free: true, FreeReason: FreeEntryPointFree, WindowEnds: t0.Add(72 * time.Hour)}},
			{"authentication at 72h is charged", Message{User: gb, Category: Authentication, At: t0.Add(72 * time.Hour)},
				ConversationCharge{Opened: true, Category: Authentication, CostMicros: 15000, WindowEnds: t0.Add(96 * time.Hour)}},
		}},
		{"other users and businesses have their own windows", []step{
			{"user 1", Message{User: gb, Category: Utility, At: t0},
				ConversationCharge{Opened: true, Category: Utility, CostMicros: 20000, WindowEnds: t0.Add(24 * time.Hour)}},
			{"user 2", Message{User: jm, Category: Utility, At: t0},
				ConversationCharge{Opened: true, Category: Utility, CostMicros: 20000, WindowEnds: t0.Add(24 * time.Hour)}},
			{"user 1, other business", Message{Business: "waba2", User: gb, Category: Utility, At: t0},
				ConversationCharge{Opened: true, Category: Utility, CostMicros: 20000, WindowEnds: t0.Add(24 * time.Hour)}},
		}},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for ti, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					l, _ := newConvLedger(t, b.newClient(t), fmt.Sprintf("conv%d:", ti))
					for si, s := range tt.steps {
						m := s.m
						m.ID = fmt.Sprintf("wamid.%d", si)
						if m.Business == "" {
							m.Business = "waba1"
						}
						got, err := l.Conversation(ctx, m)
						if err != nil {
							t.Fatal(err)
						}
						if got != s.want {
							t.Fatalf("%s:\n got %+v\nwant %+v", s.name, got, s.want)
						}
						again, err := l.Conversation(ctx, m) // a retried message changes nothing
						if err != nil || again != got {
							t.Fatalf("%s: retry = %+v, %v; want %+v", s.name, again, err, got)
						}
					}
				})
			}
		})
	}
}

func TestConversationFreeServiceTier(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l, reg := newConvLedger(t, b.newClient(t), "tier:")
			var last ConversationCharge
			for i := 1; i <= 1001; i++ {
				ch, err := l.Conversation(ctx, Message{ID: fmt.Sprintf("wamid.%d", i), Business: "waba1",
					User: fmt.Sprintf("+4477009%05d", i%1000), Category: Service, At: nov.Add(time.Duration(i/1000) * 25 * time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				if i <= 1000 && (!ch.Free || ch.FreeReason != FreeTier || !ch.Opened) {
					t.Fatalf("conversation %d = %+v, want free_tier", i, ch)
				}
				last = ch
			}
			if last.Free || last.CostMicros != 38800 || !last.Opened {
				t.Fatalf("conversation 1001 = %+v, want charged 38800 (GB service)", last)
			}
			// Another business has its own allowance; a new month resets it.
			for _, m := range []Message{
				{ID: "wamid.other", Business: "waba2", User: "+447700900001", Category: Service, At: nov},
				{ID: "wamid.dec", Business: "waba1", User: "+447700900001", Category: Service, At: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
			} {
				ch, err := l.Conversation(ctx, m)
				if err != nil || !ch.Free || ch.FreeReason != FreeTier {
					t.Fatalf("%s = %+v, %v; want free_tier", m.ID, ch, err)
				}
			}
			u, err := l.Usage(ctx, "2026-11")
			if err != nil {
				t.Fatal(err)
			}
			if u.Totals.Conversations != 1002 || u.Totals.ChargedConversations != 1 || u.Totals.ConversationCostMicros != 38800 {
				t.Fatalf("usage = %+v", u.Totals)
			}
			if got := testutil.ToFloat64(l.metrics.Conversations.WithLabelValues("service", "true")); got != 1 {
				t.Fatalf("charged service conversations metric = %v", got)
			}
			if n, err := testutil.GatherAndCount(reg, "callgw_conversations_total"); err != nil || n != 2 {
				t.Fatalf("conversation series = %d, %v", n, err)
			}
		})
	}
}

func TestConversationInvalid(t *testing.T) {
	ctx := context.Background()
	ok := Message{ID: "wamid.1", Business: "waba1", User: "+447700900123", Category: Marketing, At: nov}
	tests := []struct {
		name   string
		mutate func(*Message)
	}{
		{"no id", func(m *Message) { m.ID = "" }},
		{"no business", func(m *Message) { m.Business = "" }},
		{"no user", func(m *Message) { m.User = "" }},
		{"bad category", func(m *Message) { m.Category = "promo" }},
		{"no time", func(m *Message) { m.At = time.Time{} }},
	}
	rdb := backends(t)[1].newClient(t)
	l, _ := newConvLedger(t, rdb, "cinv:")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok
			tt.mutate(&m)
			if _, err := l.Conversation(ctx, m); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("err = %v, want ErrInvalidMessage", err)
			}
			if keys, _ := rdb.Keys(ctx, "cinv:*").Result(); len(keys) != 0 {
				t.Fatalf("invalid message wrote %v", keys)
			}
		})
	}
}
