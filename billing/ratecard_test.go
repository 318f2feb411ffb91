package billing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
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
	c := rc.For("2026-11")
	if c.MessagingModel != PerMessage || c.TierBasis != TierBasisBilled || c.TierScope != TierScopeMarket {
		t.Fatalf("card in force in 2026-11 = %+v, want Meta's rules (per message, billed seconds, per market)", c)
	}
	for _, m := range c.Markets {
		if m.IncrementSeconds != 6 {
			t.Fatalf("market %s bills in %d s increments, want Meta's 6 s pulses", m.ID, m.IncrementSeconds)
		}
	}
	if got := c.MarketOf("gb").Tiers[1]; got != (Tier{FromMinutes: 50000, RateMicrosPerMinute: 19800}) {
		t.Fatalf("GB tier 1 = %+v", got)
	}
	if us, ca := c.MarketOf("US"), c.MarketOf("CA"); us != ca || us.ID != "North America" {
		t.Fatalf("US and CA are markets %s and %s, want one North America market", us.ID, ca.ID)
	}
	if old := rc.For("2025-03"); old.MessagingModel != ConversationBased {
		t.Fatalf("card in force in 2025-03 prices %s, want the legacy conversation model", old.MessagingModel)
	}
	def, err := SampleRateCard()
	if err != nil || len(def.Cards) != len(rc.Cards) {
		t.Fatalf("embedded sample = %v, %v", def, err)
	}
}

func TestPriceCall(t *testing.T) {
	rc := loadTestCard(t)
	c := rc.For("2026-11")
	raw, err := LoadRateCard(strings.NewReader(strings.Replace(string(mustRead(t, "../testdata/billing/tiers.json")),
		`"increment_seconds": 6,`, `"increment_seconds": 6, "tier_basis": "raw_seconds",`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rawCard := raw.For("2026-11")
	tests := []struct {
		name          string
		card          *Card
		country       string
		seconds, used int64 // used: seconds accrued in the market before the call
		want          CallPrice
	}{
		{"0 s", c, "GB", 0, 0, CallPrice{Market: "GB", RateMicrosPerMinute: 30000}},
		{"1 s is one pulse", c, "GB", 1, 0, CallPrice{"GB", 6, 6, 0, 30000, 3000}},
		{"56 s is 10 pulses", c, "GB", 56, 0, CallPrice{"GB", 60, 60, 0, 30000, 30000}},
		{"61 s bills 66 s", c, "GB", 61, 0, CallPrice{"GB", 66, 66, 0, 30000, 33000}},
		{"60 s stays 60 s", c, "GB", 60, 0, CallPrice{"GB", 60, 60, 0, 30000, 30000}},
		{"negative is 0", c, "GB", -5, 0, CallPrice{Market: "GB", RateMicrosPerMinute: 30000}},
		{"per-second market", c, "US", 61, 0, CallPrice{"North America", 61, 61, 0, 12000, 12200}},
		{"CA shares the US market", c, "CA", 1, 0, CallPrice{"North America", 1, 1, 0, 12000, 200}},
		{"ending exactly on the boundary stays below it", c, "GB", 60, 540, CallPrice{"GB", 60, 60, 0, 30000, 30000}},
		{"crossing a boundary: whole call at the better tier", c, "GB", 61, 540, CallPrice{"GB", 66, 66, 1, 20000, 22000}},
		{"crossing two boundaries: the best reached", c, "GB", 700, 540, CallPrice{"GB", 702, 702, 2, 10000, 117000}},
		{"already in tier 1", c, "GB", 60, 660, CallPrice{"GB", 60, 60, 1, 20000, 20000}},
		{"unlisted country: default market", c, "FR", 61, 0, CallPrice{"default", 66, 66, 0, 60000, 66000}},
		{"unknown country: default market", c, UnknownCountry, 6, 0, CallPrice{"default", 6, 6, 0, 60000, 6000}},
		{"billed basis: 56 s adds 60 s, ends on the boundary", c, "IN", 56, 0, CallPrice{"IN", 60, 60, 0, 3200, 3200}},
		{"billed basis: 57 s after 4 s crosses 1 min", c, "IN", 57, 4, CallPrice{"IN", 60, 60, 1, 1600, 1600}},
		{"raw basis: 57 s after 4 s = 61 s crosses", rawCard, "IN", 57, 4, CallPrice{"IN", 60, 57, 1, 1600, 1600}},
		{"raw basis: 55 s after 4 s = 59 s stays in tier 0", rawCard, "IN", 55, 4, CallPrice{"IN", 60, 55, 0, 3200, 3200}},
		{"billed basis: 55 s after 4 s = 64 s crosses", c, "IN", 55, 4, CallPrice{"IN", 60, 60, 1, 1600, 1600}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.card.PriceCall(tt.country, tt.seconds, tt.used); got != tt.want {
				t.Fatalf("PriceCall(%s, %d, %d) = %+v, want %+v", tt.country, tt.seconds, tt.used, got, tt.want)
			}
		})
	}
}

func TestCardVersions(t *testing.T) {
	rc := loadTestCard(t)
	tests := []struct{ month, effective string }{
		{"2025-01", "2026-10"}, // before the first card: the first card
		{"2026-10", "2026-10"},
		{"2026-12", "2026-10"},
		{"2027-01", "2027-01"},
		{"2031-07", "2027-01"},
	}
	for _, tt := range tests {
		t.Run(tt.month, func(t *testing.T) {
			if got := rc.For(tt.month).Effective; got != tt.effective {
				t.Fatalf("For(%s) = card %s, want %s", tt.month, got, tt.effective)
			}
		})
	}
	if got := rc.For("2027-02").MarketOf("GB").Tiers[0].RateMicrosPerMinute; got != 25000 {
		t.Fatalf("GB in 2027 = %d, want the new card's 25000", got)
	}
}

func TestMessageRateGraduated(t *testing.T) {
	m := loadTestCard(t).For("2026-11").MarketOf("FR")
	tests := []struct {
		n          int64
		rate       int64
		tier       int
		priced     bool
		categoryOf Category
	}{
		{1, 20000, 0, true, Utility}, {2, 20000, 0, true, Utility}, {3, 10000, 1, true, Utility}, {1000, 10000, 1, true, Utility},
		{5, 50000, 0, true, Marketing}, {1, 0, -1, false, ReferralConversion},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s#%d", tt.categoryOf, tt.n), func(t *testing.T) {
			rate, tier, ok := m.MessageRate(tt.categoryOf, tt.n)
			if rate != tt.rate || tier != tt.tier || ok != tt.priced {
				t.Fatalf("MessageRate = %d, %d, %v; want %d, %d, %v", rate, tier, ok, tt.rate, tt.tier, tt.priced)
			}
		})
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
		{"huge no overflow", math.MaxInt64 / 2, maxRateMicros, math.MaxInt64},
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
	const def = `"default":{"tiers":[{"from_minutes":0,"rate_micros":1000}],"messages":{"marketing":{"rate_micros":1},"utility":{"rate_micros":1},"authentication":{"rate_micros":1}}}`
	card := func(fields, markets string) string {
		if fields != "" {
			fields += ","
		}
		return `{"effective":"2026-04-01","currency":"USD",` + fields + `"markets":{` + def + markets + `}}`
	}
	one := func(fields, markets string) string { return `{"cards":[` + card(fields, markets) + `]}` }
	tests := []struct{ name, json, wantErr string }{
		{"zero tier rate names the field", `{"cards":[` + card("", "") + `,{"effective":"2026-07-01","currency":"USD","markets":{` + def +
			`,"GB":{"tiers":[{"from_minutes":0,"rate_micros":3},{"from_minutes":5,"rate_micros":2},{"from_minutes":9,"rate_micros":0}]}}}]}`,
			"cards[1].markets.GB.tiers[2].rate_micros: must be > 0"},
		{"float money", one("", `,"GB":{"tiers":[{"from_minutes":0,"rate_micros":0.05}]}`), "cards[0].markets.GB: must be an integer number of micro-units"},
		{"exponent money", one("", `,"GB":{"tiers":[{"from_minutes":0,"rate_micros":1e3}]}`), "integer number of micro-units"},
		{"string money", one("", `,"GB":{"messages":{"utility":{"rate_micros":"1000"}}}`), "string"},
		{"negative message rate", one("", `,"GB":{"messages":{"utility":{"rate_micros":-3}}}`), "cards[0].markets.GB.messages.utility.rate_micros: must be 0.."},
		{"rate and tiers", one("", `,"GB":{"messages":{"utility":{"rate_micros":3,"tiers":[{"from_messages":0,"rate_micros":1}]}}}`), "not both"},
		{"message tiers not ascending", one("", `,"GB":{"messages":{"utility":{"tiers":[{"from_messages":0,"rate_micros":2},{"from_messages":0,"rate_micros":1}]}}}`), "messages.utility.tiers[1].from_messages: must be greater"},
		{"unknown country market", one("", `,"XX":{"tiers":[{"from_minutes":0,"rate_micros":1}]}`), "cards[0].markets.XX: a market that is not an ISO"},
		{"lower-case country", one("", `,"Rest":{"countries":["gb"]}`), "cards[0].markets.Rest.countries[0]: unknown country \"gb\""},
		{"country in two markets", one("", `,"A":{"countries":["NG"]},"B":{"countries":["NG"]}`), "NG is already in market"},
		{"unknown category", one("", `,"GB":{"messages":{"promo":{"rate_micros":1}}}`), "cards[0].markets.GB.messages.promo: unknown category"},
		{"tiers not from 0", one("", `,"GB":{"tiers":[{"from_minutes":5,"rate_micros":1}]}`), "cards[0].markets.GB.tiers[0].from_minutes: the first tier must start at 0"},
		{"tiers not ascending", one("", `,"GB":{"tiers":[{"from_minutes":0,"rate_micros":2},{"from_minutes":0,"rate_micros":1}]}`), "tiers[1].from_minutes: must be greater"},
		{"zero increment", one(`"increment_seconds":0`, ""), "cards[0].increment_seconds: must be 1..3600"},
		{"market increment", one("", `,"GB":{"increment_seconds":7200}`), "cards[0].markets.GB.increment_seconds"},
		{"fractional increment", one(`"increment_seconds":1.5`, ""), "integer"},
		{"missing default", `{"cards":[{"effective":"2026-04-01","currency":"USD","markets":{}}]}`, "cards[0].markets.default: required"},
		{"default without messages", `{"cards":[{"effective":"2026-04-01","currency":"USD","markets":{"default":{"tiers":[{"from_minutes":0,"rate_micros":1}]}}}]}`, "cards[0].markets.default.messages.marketing: required"},
		{"conversation card without rates", `{"cards":[{"effective":"2025-01-01","currency":"USD","messaging_model":"conversation","markets":{"default":{"tiers":[{"from_minutes":0,"rate_micros":1}]}}}]}`, "conversation_rates.marketing: required"},
		{"bad currency", `{"cards":[` + strings.Replace(card("", ""), `"USD"`, `"usd"`, 1) + `]}`, "cards[0].currency: must be an ISO 4217 code"},
		{"currency changes", `{"cards":[` + card("", "") + `,` + strings.Replace(card("", ""), `"2026-04-01","currency":"USD"`, `"2026-07-01","currency":"EUR"`, 1) + `]}`, "cards[1].currency: EUR differs"},
		{"not the 1st", `{"cards":[` + strings.Replace(card("", ""), "2026-04-01", "2026-04-02", 1) + `]}`, "cards[0].effective: must be the 1st of a month"},
		{"out of order", `{"cards":[` + card("", "") + `,` + strings.Replace(card("", ""), "2026-04-01", "2026-01-01", 1) + `]}`, "cards[1].effective: 2026-01 must be after"},
		{"no cards", `{"cards":[]}`, "at least one card"},
		{"old format", `{"currency":"USD","default":{}}`, "pre-2026 single-card format"},
		{"unknown field", one(`"rebate":1`, ""), "cards[0]: json: unknown field \"rebate\""},
		{"bad window", one(`"conversation_window":"-1h"`, ""), "cards[0].conversation_window"},
		{"bad tier basis", one(`"tier_basis":"minutes"`, ""), "cards[0].tier_basis"},
		{"bad tier scope", one(`"tier_scope":"galaxy"`, ""), "cards[0].tier_scope"},
		{"bad messaging model", one(`"messaging_model":"cbp"`, ""), "cards[0].messaging_model"},
		{"trailing data", one("", "") + ` {}`, "trailing"},
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
	if _, err := LoadRateCard(strings.NewReader(one("", ""))); err != nil {
		t.Fatalf("minimal card: %v", err)
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

// TestSchemaMatchesLoader: ratecards/ratecard.schema.json documents exactly
// the fields the loader reads, the categories it prices and its enums.
func TestSchemaMatchesLoader(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(mustRead(t, "ratecards/ratecard.schema.json"), &schema); err != nil {
		t.Fatal(err)
	}
	get := func(path ...string) map[string]any {
		var cur any = schema
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("schema: %v is not an object", path)
			}
			cur = m[p]
		}
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("schema: no object at %v", path)
		}
		return m
	}
	props := func(path ...string) []string {
		var out []string
		for k := range get(append(path, "properties")...) {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	tags := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	names := func(cs []Category) []string {
		var out []string
		for _, c := range cs {
			out = append(out, string(c))
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"file", props(), tags(jsonFile{})},
		{"card", props("$defs", "card"), tags(jsonCard{})},
		{"market", props("$defs", "market"), tags(jsonMarket{})},
		{"call tier", props("$defs", "market", "properties", "tiers", "items"), tags(jsonTier{})},
		{"message rate", props("$defs", "messageRate"), tags(jsonMsgRate{})},
		{"message tier", props("$defs", "messageRate", "properties", "tiers", "items"), tags(jsonMsgTier{})},
		{"message categories", props("$defs", "market", "properties", "messages"), names(MessageCategories[:])},
		{"conversation categories", props("$defs", "market", "properties", "conversation_rates"), names(Categories[:])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Fatalf("schema %v\nloader %v", tt.got, tt.want)
			}
		})
	}
	enums := map[string][]string{
		"messaging_model": {string(PerMessage), string(ConversationBased)},
		"tier_basis":      {string(TierBasisBilled), string(TierBasisRaw)},
		"tier_scope":      {string(TierScopeMarket), string(TierScopePortfolio)},
	}
	for field, want := range enums {
		var got []string
		for _, v := range get("$defs", "card", "properties", field)["enum"].([]any) {
			got = append(got, v.(string))
		}
		if !slices.Equal(got, want) {
			t.Errorf("schema enum %s = %v, loader %v", field, got, want)
		}
	}
}
