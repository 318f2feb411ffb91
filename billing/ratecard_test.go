package billing

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func loadTestCard(t testing.TB) *RateCard {
	t.Helper()
	rc, err := LoadRateCardFile("../testdata/billing/tiers.json")
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestLoadSampleRateCard(t *testing.T) {
	rc, err := LoadRateCardFile("ratecards/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	if rc.FreeServiceConversationsPerMonth != 1000 || rc.ConversationWindow != 24*time.Hour || rc.FreeEntryPointWindow != 72*time.Hour {
		t.Fatalf("top level: %+v", rc)
	}
	if got := rc.Rates("gb").Tiers[1]; got != (Tier{FromMinutes: 50000, RateMicrosPerMinute: 19800}) {
		t.Fatalf("GB tier 1 = %+v", got)
	}
	// JM lists only a call rate: increment (per second, as the demo bills) and conversation rates come from default.
	if jm := rc.Rates("JM"); jm.IncrementSeconds != 1 || jm.ConversationRates[Marketing] != 60000 || len(jm.Tiers) != 1 {
		t.Fatalf("JM = %+v", jm)
	}
}

func TestPriceRounding(t *testing.T) {
	rc := loadTestCard(t)
	tests := []struct {
		name                string
		country             string
		seconds, minutes    int64
		wantBilled, wantUSD int64
		wantTier            int
	}{
		{"6s pulse 0", "GB", 0, 0, 0, 0, 0},
		{"6s pulse 1", "GB", 1, 0, 6, 3000, 0},       // 6*30000/60
		{"6s pulse 56", "GB", 56, 0, 60, 30000, 0},   // Meta: 56 s -> 10 pulses
		{"6s pulse 61", "GB", 61, 0, 66, 33000, 0},   //
		{"6s pulse 60", "GB", 60, 0, 60, 30000, 0},   // exact multiple stays
		{"negative", "GB", -5, 0, 0, 0, 0},           //
		{"per second 1", "US", 1, 0, 1, 200, 0},      // 12000/60
		{"per second 61", "US", 61, 0, 61, 12200, 0}, //
		{"ceil cost", "JM", 1, 0, 6, 4500, 0},        // 6*45000/60 exact
		{"tier 1 at 10 minutes", "GB", 60, 10, 60, 20000, 1},
		{"tier 1 just below 20", "GB", 60, 19, 60, 20000, 1},
		{"tier 2", "GB", 60, 25, 60, 10000, 2},
		{"unknown country uses default", "FR", 61, 0, 66, 66000, 0},
		{"ZZ uses default", UnknownCountry, 6, 0, 6, 6000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, c, tier := rc.Price(tt.country, tt.seconds, tt.minutes)
			if b != tt.wantBilled || c != tt.wantUSD || tier != tt.wantTier {
				t.Fatalf("Price(%s, %d, %d) = %d s, %d µ$, tier %d; want %d, %d, %d", tt.country, tt.seconds, tt.minutes, b, c, tier, tt.wantBilled, tt.wantUSD, tt.wantTier)
			}
		})
	}
}

func TestCostMicrosCeil(t *testing.T) {
	tests := []struct {
		name               string
		billed, rate, want int64
	}{
		{"exact", 60, 1000, 1000},
		{"one second of 1 µ$/min rounds up", 1, 1, 1},
		{"7 s at 100 µ$/min = 11.67 -> 12", 7, 100, 12},
		{"zero rate", 100, 0, 0},
		{"zero seconds", 0, 100, 0},
		{"huge no overflow", math.MaxInt64 / 2, maxRateMicrosPerMinute, math.MaxInt64},
		{"large exact", 1 << 40, 60, 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CostMicros(tt.billed, tt.rate); got != tt.want {
				t.Fatalf("CostMicros(%d, %d) = %d, want %d", tt.billed, tt.rate, got, tt.want)
			}
		})
	}
}

func TestLoadRateCardErrors(t *testing.T) {
	const def = `"default":{"call_rate_micros_per_minute":1000,"increment_seconds":6,"conversation_rates":{"marketing":1,"utility":1,"authentication":1,"service":1}}`
	tests := []struct{ name, json, wantErr string }{
		{"float money", `{"currency":"USD","default":{"call_rate_micros_per_minute":0.05,"increment_seconds":6,"conversation_rates":{"marketing":1,"utility":1,"authentication":1,"service":1}}}`, "integer number of micro-USD"},
		{"exponent money", `{"currency":"USD","default":{"call_rate_micros_per_minute":1e3,"increment_seconds":6,"conversation_rates":{"marketing":1,"utility":1,"authentication":1,"service":1}}}`, "integer number of micro-USD"},
		{"string money", `{"currency":"USD","default":{"call_rate_micros_per_minute":"1000","increment_seconds":6,"conversation_rates":{"marketing":1,"utility":1,"authentication":1,"service":1}}}`, "string"},
		{"negative rate", `{"currency":"USD",` + def + `,"countries":{"GB":{"call_rate_micros_per_minute":-1}}}`, "rate must be 0.."},
		{"negative conversation rate", `{"currency":"USD",` + def + `,"countries":{"GB":{"conversation_rates":{"service":-3}}}}`, "conversation_rates.service"},
		{"unknown country", `{"currency":"USD",` + def + `,"countries":{"XX":{"call_rate_micros_per_minute":1}}}`, "unknown country \"XX\""},
		{"lower-case country", `{"currency":"USD",` + def + `,"countries":{"gb":{"call_rate_micros_per_minute":1}}}`, "unknown country \"gb\""},
		{"unknown category", `{"currency":"USD",` + def + `,"countries":{"GB":{"conversation_rates":{"promo":1}}}}`, "unknown category"},
		{"tiers not from 0", `{"currency":"USD",` + def + `,"countries":{"GB":{"tiers":[{"from_minutes":5,"rate_micros_per_minute":1}]}}}`, "tiers[0].from_minutes must be 0"},
		{"tiers not ascending", `{"currency":"USD",` + def + `,"countries":{"GB":{"tiers":[{"from_minutes":0,"rate_micros_per_minute":2},{"from_minutes":0,"rate_micros_per_minute":1}]}}}`, "must be greater"},
		{"rate disagrees with tier 0", `{"currency":"USD",` + def + `,"countries":{"GB":{"call_rate_micros_per_minute":3,"tiers":[{"from_minutes":0,"rate_micros_per_minute":2}]}}}`, "disagrees"},
		{"zero increment", `{"currency":"USD",` + def + `,"countries":{"GB":{"increment_seconds":0}}}`, "increment_seconds must be"},
		{"fractional increment", `{"currency":"USD",` + def + `,"countries":{"GB":{"increment_seconds":1.5}}}`, "integer"},
		{"missing default", `{"currency":"USD"}`, "missing \"default\""},
		{"incomplete default", `{"currency":"USD","default":{"call_rate_micros_per_minute":1,"increment_seconds":1}}`, "conversation_rates.marketing is required"},
		{"euro", `{"currency":"EUR",` + def + `}`, "currency must be \"USD\""},
		{"unknown field", `{"currency":"USD","rebate":1,` + def + `}`, "unknown field"},
		{"bad window", `{"currency":"USD","conversation_window":"-1h",` + def + `}`, "conversation_window"},
		{"negative free tier", `{"currency":"USD","free_service_conversations_per_month":-1,` + def + `}`, "free_service_conversations_per_month"},
		{"bad tier scope", `{"currency":"USD","tier_scope":"galaxy",` + def + `}`, "tier_scope"},
		{"trailing data", `{"currency":"USD",` + def + `} {}`, "trailing"},
		{"not json", `currency: USD`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := LoadRateCard(strings.NewReader(tt.json))
			if !errors.Is(err, ErrInvalidRateCard) || rc != nil {
				t.Fatalf("LoadRateCard = %v, %v; want ErrInvalidRateCard", rc, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestFormatUSD(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0.000000"}, {1, "0.000001"}, {1234567, "1.234567"}, {-5, "-0.000005"},
		{30_000_000, "30.000000"}, {math.MinInt64, "-9223372036854.775808"}, {math.MaxInt64, "9223372036854.775807"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := FormatUSD(tt.in); got != tt.want {
				t.Fatalf("FormatUSD(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
