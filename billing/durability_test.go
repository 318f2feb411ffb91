package billing

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/testkit/redistest"
)

// checkAggregates verifies the ledger's invariant: the month aggregates,
// the stream and the index equal the sum over the entries. It returns the
// number of entries.
func checkAggregates(t *testing.T, l *Ledger, month string) int {
	t.Helper()
	ctx := context.Background()
	var all []Entry
	cursor := ""
	for {
		page, next, err := l.Calls(ctx, CallFilter{Limit: MaxCallsLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	var want Totals
	perCountry := map[string]CountryUsage{}
	for _, e := range all {
		want.AllCalls++
		cu := perCountry[e.Country]
		cu.Country = e.Country
		cu.AllCalls++
		if e.Billable() {
			want.Calls++
			want.BilledSeconds += e.BilledSeconds
			want.CallCostMicros += e.CostMicros
			cu.Calls++
			cu.Market = e.Market
			cu.BilledSeconds += e.BilledSeconds
			cu.CostMicros += e.CostMicros
		}
		perCountry[e.Country] = cu
	}
	want.Minutes = want.BilledSeconds / 60
	want.CostMicros = want.CallCostMicros
	u, err := l.Usage(ctx, month)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals != want {
		t.Fatalf("aggregates %+v != sum over %d entries %+v", u.Totals, len(all), want)
	}
	for _, cu := range u.Countries {
		if perCountry[cu.Country] != cu {
			t.Fatalf("country %s aggregates %+v != entries %+v", cu.Country, cu, perCountry[cu.Country])
		}
	}
	// The daily aggregates (reconciliation's side) sum to the month's.
	days, err := l.rdb.Keys(ctx, l.k.base+"d:"+month+"-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var dayCalls, dayCost int64
	for _, d := range days {
		h, err := l.rdb.HGetAll(ctx, d).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range h {
			n, _ := strconv.ParseInt(v, 10, 64)
			switch {
			case strings.HasPrefix(f, "calls:") && strings.HasSuffix(f, ":count"):
				dayCalls += n
			case strings.HasPrefix(f, "calls:") && strings.HasSuffix(f, ":cost_micros"):
				dayCost += n
			}
		}
	}
	if dayCalls != want.Calls || dayCost != want.CallCostMicros {
		t.Fatalf("daily aggregates: %d calls, %d micros; month: %d, %d", dayCalls, dayCost, want.Calls, want.CallCostMicros)
	}
	xlen, err := l.rdb.XLen(ctx, l.k.stream()).Result()
	if err != nil || xlen != int64(len(all)) {
		t.Fatalf("stream has %d records (%v), entries %d", xlen, err, len(all))
	}
	keys, err := l.rdb.Keys(ctx, l.k.base+"e:*").Result()
	if err != nil || len(keys) != len(all) {
		t.Fatalf("%d entry keys (%v) but %d indexed entries: half-written entry", len(keys), err, len(all))
	}
	return len(all)
}

// TestCrashMidWriteStorm kills redis-server (SIGKILL) while 8 writers record
// calls, restarts it, and checks that no entry is half-written; then retries
// every call and checks each is billed exactly once.
func TestCrashMidWriteStorm(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	newClient := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const writers, perWriter = 8, 400
	rec := func(w, i int) call.Record {
		users := []string{"+447700900123", "+18768765432", "+12127365000", "+77011234567"}
		r := outbound(fmt.Sprintf("wacid.w%d.%d", w, i), users[(w+i)%len(users)], int64(1+(w*perWriter+i)%300), nov.Add(time.Duration(i)*time.Second))
		if i%5 == 0 {
			r.Direction = call.UserInitiated
		}
		return r
	}
	okCount := make(chan struct{}, writers*perWriter)
	var wg sync.WaitGroup
	for w := range writers {
		l, _ := newTestLedger(t, newClient(), "crash:")
		wg.Go(func() {
			for i := range perWriter {
				if _, _, err := l.Record(ctx, rec(w, i)); err != nil {
					return // redis is gone: this writer's remaining calls are retried below
				}
				okCount <- struct{}{}
			}
		})
	}
	// Kill redis once the storm is well under way.
	for range writers * perWriter / 4 {
		select {
		case <-okCount:
		case <-time.After(30 * time.Second):
			t.Fatal("storm did not make progress")
		}
	}
	srv.Stop()
	wg.Wait()
	srv.Restart()

	l, _ := newTestLedger(t, newClient(), "crash:")
	before := checkAggregates(t, l, "2026-11")
	if before == 0 || before == writers*perWriter {
		t.Fatalf("crash landed outside the storm: %d of %d entries", before, writers*perWriter)
	}
	t.Logf("%d of %d calls were recorded before the crash", before, writers*perWriter)

	// The caller retries everything it was not sure of: each call once.
	created := 0
	for w := range writers {
		for i := range perWriter {
			_, c, err := l.Record(ctx, rec(w, i))
			if err != nil {
				t.Fatal(err)
			}
			if c {
				created++
			}
		}
	}
	if got := checkAggregates(t, l, "2026-11"); got != writers*perWriter || created != writers*perWriter-before {
		t.Fatalf("after retries: %d entries, %d newly created; want %d, %d", got, created, writers*perWriter, writers*perWriter-before)
	}
}

func TestRestartKeepsReport(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	l, _ := newTestLedger(t, srv.Client(), "")
	for i := range 20 {
		if _, _, err := l.Record(ctx, outbound(fmt.Sprintf("wacid.r%d", i), "+447700900123", int64(10+i*7), nov)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		id := fmt.Sprintf("wamid.%d", i)
		if _, err := l.Sent(ctx, MessageSent{ID: id, Business: "waba1", User: fmt.Sprintf("+4477009001%02d", i), At: nov}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Status(ctx, MessageStatus{ID: id, Status: StatusDelivered, Billable: true, PricingModel: "PMP", Type: "regular", Category: "marketing", At: nov}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := l.Usage(ctx, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	callsBefore, _, err := l.Calls(ctx, CallFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	l2, _ := newTestLedger(t, srv.Client(), "")
	after, err := l2.Usage(ctx, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("report changed across restart:\n%+v\n%+v", before, after)
	}
	if before.Totals.Calls != 20 || before.Totals.MessagesBillable != 5 || before.Totals.MessageCostMicros != 5*52900 {
		t.Fatalf("report = %+v", before.Totals)
	}
	callsAfter, _, err := l2.Calls(ctx, CallFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(callsAfter) != 20 || !reflect.DeepEqual(callsBefore, callsAfter) {
		t.Fatalf("call log changed across restart: %d vs %d entries", len(callsBefore), len(callsAfter))
	}
}
