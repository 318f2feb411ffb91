package billing

import (
	"strings"
	"testing"
)

// FuzzLoadRateCard: any input is either refused with ErrInvalidRateCard or
// gives a card that prices every market without panicking.
func FuzzLoadRateCard(f *testing.F) {
	for _, p := range []string{"ratecards/sample.json", "../testdata/billing/tiers.json", "../testdata/billing/conversation.json"} {
		f.Add(string(mustRead(f, p)))
	}
	f.Add(`{"cards":[{"effective":"2026-04-01","currency":"USD","markets":{"default":{"tiers":[{"from_minutes":0,"rate_micros":1}],"messages":{"marketing":{"rate_micros":1},"utility":{"rate_micros":1},"authentication":{"rate_micros":1}}}}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		rc, err := LoadRateCard(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, c := range rc.Cards {
			for id, m := range c.Markets {
				if len(m.Tiers) == 0 || m.IncrementSeconds < 1 {
					t.Fatalf("market %s of card %s cannot price a call: %+v", id, c.Effective, m)
				}
				p := c.PriceCall(id, 61, 1<<40)
				if p.CostMicros < 0 || p.BilledSeconds < 61 {
					t.Fatalf("market %s: %+v", id, p)
				}
			}
		}
	})
}

// FuzzParseAnalytics: Meta's analytics bodies never panic the parser.
func FuzzParseAnalytics(f *testing.F) {
	f.Add(string(mustRead(f, "../testdata/billing/call_analytics_2026-11-10.json")))
	f.Add(string(mustRead(f, "../testdata/billing/pricing_analytics_2026-11-10.json")))
	f.Add(`{"call_analytics":{"data_points":[{"start":"x","cost":"1e999999"}]}}`)
	r := &Reconciler{l: &Ledger{cfg: Config{}.withDefaults()}}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = r.parseMeta([]byte(s), "call_analytics", ReconCalls)
		_, _ = r.parseMeta([]byte(s), "pricing_analytics", ReconMessages)
	})
}
