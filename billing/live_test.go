package billing

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestLiveQuotePulseByPulse(t *testing.T) {
	ctx := context.Background()
	l, _ := newTestLedger(t, backends(t)[1].newClient(t), "live:")
	// 9 min 54 s already billed to GB this month: the tier 1 boundary (10 min) is 6 s away.
	if _, _, err := l.Record(ctx, outbound("wacid.before", "+447700900123", 594, nov)); err != nil {
		t.Fatal(err)
	}
	q, err := l.LiveQuote(ctx, "+447700900999", "", nov.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if q.Market != "GB" || q.UsedSeconds != 594 || q.IncrementSeconds != 6 {
		t.Fatalf("quote = %+v", q)
	}
	tests := []struct {
		elapsed      time.Duration
		billed, cost int64
	}{
		{0, 0, 0},
		{time.Millisecond, 6, 3000},       // first pulse begun: 6 s at tier 0 (ends exactly at 10 min)
		{6 * time.Second, 6, 3000},        // still the first pulse
		{6*time.Second + 1, 12, 4000},     // second pulse crosses 10 min: the whole call at tier 1
		{61 * time.Second, 66, 22000},     //
		{11 * time.Minute, 660, 110000},   // 594+660 s > 20 min: tier 2 for all of it
		{11*time.Minute + 1, 666, 111000}, //
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.elapsed), func(t *testing.T) {
			b, c := q.CostAt(tt.elapsed)
			if b != tt.billed || c != tt.cost {
				t.Fatalf("CostAt(%s) = %d s, %d µ; want %d, %d", tt.elapsed, b, c, tt.billed, tt.cost)
			}
		})
	}
	if got := q.NextPulse(7 * time.Second); got != 12*time.Second {
		t.Fatalf("NextPulse(7s) = %s", got)
	}
	// The running cost at the end equals what Record then charges.
	e, _, err := l.Record(ctx, outbound("wacid.live", "+447700900999", 61, nov.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, c := q.CostAt(61 * time.Second); c != e.CostMicros {
		t.Fatalf("live cost %d != recorded %d", c, e.CostMicros)
	}
	// A BSUID-only callee is quoted by its country.
	if q, err := l.LiveQuote(ctx, "", "US.13491208655302741918", nov); err != nil || q.Market != "North America" || q.IncrementSeconds != 1 {
		t.Fatalf("BSUID quote = %+v, %v", q, err)
	}
}
