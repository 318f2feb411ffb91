package metasim

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

func TestCallCostPulses(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CallRates = RateCard{PerMinute: map[string]int64{"GB": 50000}, Default: 12345} })
	tests := []struct {
		cc   string
		d    time.Duration
		want int64
	}{
		{"GB", 0, 0},
		{"GB", 1 * time.Second, 5000},   // 1 pulse = 1/10 minute
		{"GB", 56 * time.Second, 50000}, // 10 pulses
		{"GB", 60 * time.Second, 50000},
		{"GB", 61 * time.Second, 55000},
		{"FR", 6 * time.Second, 1235}, // 12345/10 rounded half up
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.cc, tt.d), func(t *testing.T) {
			if got := e.sim.CallCostMicros(tt.cc, tt.d); got != tt.want {
				t.Fatalf("= %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCallAnalyticsFromWhatHappened(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *Config) {
		c.Clock = clk.Now
		c.CallRates = RateCard{PerMinute: map[string]int64{"GB": 50000}}
	})
	const user = "447700900123"
	e.sim.SetUser(user, UserBehavior{AnswerAfter: 10 * time.Millisecond})
	if err := e.sim.GrantPermission("", user, true); err != nil {
		t.Fatal(err)
	}
	st, body := connect(t, e, user, newBizPeer(t).offer(t))
	if st != 200 {
		t.Fatalf("connect = %d %v", st, body)
	}
	id := body["calls"].([]any)[0].(map[string]any)["id"].(string)
	e.recv.wait(t, "ACCEPTED", statusIs(id, "ACCEPTED"))
	clk.Add(56 * time.Second)
	e.calls(t, map[string]any{"action": "terminate", "call_id": id})
	e.recv.wait(t, "terminate", callEventIs(id, "terminate"))
	// and one free user-initiated call
	uc, err := e.sim.PlaceCall(ctxT(t), CallOptions{From: user})
	if err != nil {
		t.Fatal(err)
	}
	_ = uc.Hangup(ctxT(t))

	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).Unix()
	q := func(extra string) (int, map[string]any) {
		f := fmt.Sprintf("call_analytics.start(%d).end(%d).granularity(DAILY)%s", day, day+86400, extra)
		return e.call(t, "GET", "/v23.0/200000000000002?fields="+url.QueryEscape(f), testToken, nil)
	}
	st, body = q(`.dimensions(["direction","country"])`)
	if st != 200 {
		t.Fatalf("analytics = %d %v", st, body)
	}
	ca := body["call_analytics"].(map[string]any)
	pts := ca["data_points"].([]any)
	if ca["granularity"] != "DAILY" || len(pts) != 2 {
		t.Fatalf("call_analytics = %v", body)
	}
	var bic map[string]any
	for _, p := range pts {
		if p.(map[string]any)["direction"] == "BUSINESS_INITIATED" {
			bic = p.(map[string]any)
		}
	}
	if bic == nil || bic["cost"] != 0.05 || bic["count"] != 1.0 || bic["average_duration"] != 56.0 || bic["country"] != "GB" ||
		bic["start"] != float64(day) || bic["end"] != float64(day+86400) {
		t.Fatalf("BIC point = %v", bic)
	}
	st, body = q(`.directions(["BUSINESS_INITIATED"]).metric_types(["COST"])`)
	pts = body["call_analytics"].(map[string]any)["data_points"].([]any)
	if st != 200 || len(pts) != 1 || pts[0].(map[string]any)["count"] != nil || pts[0].(map[string]any)["cost"] != 0.05 {
		t.Fatalf("filtered = %d %v", st, body)
	}
	e.sim.SetAnalyticsSkew(AnalyticsSkew{ExtraCostMicros: 10000})
	_, body = q(`.directions(["BUSINESS_INITIATED"])`)
	if c := body["call_analytics"].(map[string]any)["data_points"].([]any); len(c) != 1 || c[0].(map[string]any)["cost"] != 0.05 {
		// the skew lands on the most recent call (the free UIC one)
		t.Fatalf("skewed = %v", body)
	}
	_, body = q("")
	if c := body["call_analytics"].(map[string]any)["data_points"].([]any); len(c) != 1 || c[0].(map[string]any)["cost"] != 0.06 || c[0].(map[string]any)["count"] != 2.0 {
		t.Fatalf("skewed total = %v", body)
	}
	for _, bad := range []string{"call_analytics.start(x).end(2).granularity(DAILY)", "call_analytics.start(1).end(2).granularity(WEEKLY)", "nonsense"} {
		if st, body := e.call(t, "GET", "/v23.0/200000000000002?fields="+url.QueryEscape(bad), testToken, nil); st != 400 || errCode(body) != 100 {
			t.Fatalf("%s = %d %v", bad, st, body)
		}
	}
}

func TestPricingAnalytics(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	e := newEnv(t, func(c *Config) {
		c.Clock = clk.Now
		c.AssumeWindowOpen = true
		c.Pricing = Pricing{MessageRates: map[string]int64{"service": 4000}}
	})
	grantByRequest(t, e, "447700900123")
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).Unix()
	f := fmt.Sprintf(`pricing_analytics.start(%d).end(%d).granularity(DAILY).dimensions(["PRICING_CATEGORY","PRICING_TYPE"])`, day, day+86400)
	st, body := e.call(t, "GET", "/v23.0/200000000000002?fields="+url.QueryEscape(f), testToken, nil)
	if st != 200 {
		t.Fatalf("pricing_analytics = %d %v", st, body)
	}
	pts := body["pricing_analytics"].(map[string]any)["data"].([]any)[0].(map[string]any)["data_points"].([]any)
	if len(pts) != 1 || pts[0].(map[string]any)["volume"] != 1.0 || pts[0].(map[string]any)["cost"] != 0.004 ||
		pts[0].(map[string]any)["pricing_category"] != "SERVICE" || pts[0].(map[string]any)["pricing_type"] != "REGULAR" {
		t.Fatalf("points = %v", pts)
	}
}

func FuzzParseFields(f *testing.F) {
	for _, s := range []string{
		"call_analytics.start(1).end(2).granularity(DAILY)",
		`call_analytics.start(1).end(2).granularity(DAILY).dimensions(["direction","country"]).phone_numbers(["1555"])`,
		"pricing_analytics.start(1).end(2)", "x.y(", "a..b()", `a.b([)`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseFields(s)
		if err == nil && (q.start <= 0 || q.end <= q.start) {
			t.Fatalf("accepted a bad range: %+v", q)
		}
	})
}
