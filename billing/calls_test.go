package billing

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
)

func ids(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.ID)
	}
	return out
}

func TestCallsPaginationStableUnderInserts(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l, _ := newTestLedger(t, b.newClient(t), "page:")
			var want []string
			for i := range 25 {
				id := fmt.Sprintf("wacid.p%02d", i)
				if _, _, err := l.Record(ctx, outbound(id, "+447700900123", 30, nov.Add(time.Duration(i)*time.Minute))); err != nil {
					t.Fatal(err)
				}
				want = append([]string{id}, want...) // newest first
			}
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				es, next, err := l.Calls(ctx, CallFilter{Limit: 10, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(es)...)
				// New calls land while the user pages: they must not shift pages.
				for j := range 3 {
					if _, _, err := l.Record(ctx, outbound(fmt.Sprintf("wacid.new%d.%d", page, j), "+447700900123", 5, nov)); err != nil {
						t.Fatal(err)
					}
				}
				if next == "" {
					break
				}
				cursor = next
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("pages = %v\nwant    %v", got, want)
			}
			if _, _, err := l.Calls(ctx, CallFilter{Cursor: "abc"}); !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("bad cursor: %v", err)
			}
		})
	}
}

func TestCallsFilters(t *testing.T) {
	ctx := context.Background()
	recs := []call.Record{
		outbound("wacid.a", "+447700900123", 30, nov),
		outbound("wacid.b", "+18768765432", 30, nov.Add(time.Hour)),
		outbound("wacid.c", "+447700900123", 30, nov.Add(2*time.Hour)),
		outbound("wacid.d", "+12127365000", 30, nov.Add(3*time.Hour)),
	}
	recs[1].Agent = "bob"
	recs[2].Direction = call.UserInitiated
	recs[3].Outcome, recs[3].MetaDuration, recs[3].GatewayMillis = call.Declined, -1, 0
	tests := []struct {
		name string
		f    CallFilter
		want string
	}{
		{"all newest first", CallFilter{}, "wacid.d,wacid.c,wacid.b,wacid.a"},
		{"by number in wa_id form", CallFilter{Number: "447700900123"}, "wacid.c,wacid.a"},
		{"by agent", CallFilter{Agent: "bob"}, "wacid.b"},
		{"by direction", CallFilter{Direction: call.UserInitiated}, "wacid.c"},
		{"by outcome", CallFilter{Outcome: call.Declined}, "wacid.d"},
		{"number and direction", CallFilter{Number: "+44 7700 900123", Direction: call.BusinessInitiated}, "wacid.a"},
		{"time range [from, to)", CallFilter{From: nov.Add(time.Hour), To: recs[2].EndedAt}, "wacid.b"},
		{"limit", CallFilter{Limit: 1}, "wacid.d"},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l, _ := newTestLedger(t, b.newClient(t), "filt:")
			for _, r := range recs {
				if _, _, err := l.Record(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					es, _, err := l.Calls(ctx, tt.f)
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.Join(ids(es), ","); got != tt.want {
						t.Fatalf("got %s, want %s", got, tt.want)
					}
				})
			}
			if _, _, err := l.Calls(ctx, CallFilter{Number: "not a number"}); !errors.Is(err, phone.ErrInvalid) {
				t.Fatalf("bad number filter: %v", err)
			}
		})
	}
}

func TestCSVAndTable(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			l, _ := newTestLedger(t, b.newClient(t), "csv:")
			r := outbound("wacid.csv", "+447700900123", 56, nov)
			r.UserName = "=HYPERLINK(\"x\")"
			if _, _, err := l.Record(ctx, r); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Sent(ctx, MessageSent{ID: "wamid.1", Business: "waba", User: "+447700900123", At: nov, Kind: KindPermissionRequest}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Status(ctx, MessageStatus{ID: "wamid.1", Status: StatusDelivered, Billable: true, PricingModel: "PMP", Type: "regular", Category: "marketing", At: nov}); err != nil {
				t.Fatal(err)
			}
			es, _, err := l.Calls(ctx, CallFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, mask := range []bool{true, false} {
				var buf bytes.Buffer
				if err := WriteCallsCSV(&buf, es, mask); err != nil {
					t.Fatal(err)
				}
				rows, err := csv.NewReader(&buf).ReadAll()
				if err != nil || len(rows) != 2 {
					t.Fatalf("calls csv: %d rows, %v", len(rows), err)
				}
				row := map[string]string{}
				for i, h := range rows[0] {
					row[h] = rows[1][i]
				}
				wantUser, wantName := "+447700900123", "'=HYPERLINK(\"x\")"
				if mask {
					wantUser, wantName = "+44*******123", ""
				}
				if row["user_phone"] != wantUser || row["user_name"] != wantName || row["cost_micros"] != "30000" ||
					row["cost_usd"] != "0.030000" || row["billed_seconds"] != "60" || row["country"] != "GB" || row["market"] != "GB" {
					t.Fatalf("mask=%v row = %v", mask, row)
				}
			}
			u, err := l.Usage(ctx, "2026-11")
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteUsageCSV(&buf, u); err != nil {
				t.Fatal(err)
			}
			want := "month,kind,country,category,calls,all_calls,billed_seconds,conversations,charged_conversations,messages,pricing_type,date,meta_cost_micros,difference_micros,cost_micros,cost_usd\n" +
				"2026-11,call,GB,,1,1,60,,,,,,,,30000,0.030000\n" +
				"2026-11,message,,marketing,,,,,,1,regular,,,,52900,0.052900\n" +
				"2026-11,total,,,1,1,60,0,0,1,,,,,82900,0.082900\n"
			if buf.String() != want {
				t.Fatalf("usage csv:\n%s\nwant\n%s", buf.String(), want)
			}
			buf.Reset()
			if err := WriteUsageTable(&buf, u); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"Usage 2026-11", "0.030000", "0.052900", "0.082900", "marketing"} {
				if !strings.Contains(buf.String(), s) {
					t.Fatalf("table lacks %q:\n%s", s, buf.String())
				}
			}
			t.Logf("\n%s", buf.String())
		})
	}
}

func TestUsageBadMonth(t *testing.T) {
	l, _ := newTestLedger(t, backends(t)[1].newClient(t), "")
	for _, m := range []string{"", "2026-13", "2026-1", "November", "2026-11-01"} {
		if _, err := l.Usage(context.Background(), m); !errors.Is(err, ErrInvalidMonth) {
			t.Fatalf("Usage(%q) = %v, want ErrInvalidMonth", m, err)
		}
	}
}
