package billing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Category is a conversation category of the seed's conversation-based
// pricing model.
type Category string

// The four conversation categories.
const (
	Marketing      Category = "marketing"
	Utility        Category = "utility"
	Authentication Category = "authentication"
	Service        Category = "service"
)

// Categories lists the valid categories in display order.
var Categories = [...]Category{Marketing, Utility, Authentication, Service}

// String returns the category name.
func (c Category) String() string { return string(c) }

// Valid reports whether c is one of the four categories.
func (c Category) Valid() bool { return slices.Contains(Categories[:], c) }

// TierScope says which minutes count toward a country's volume tiers.
type TierScope string

const (
	// TierScopeBusiness: every billed minute of the month, all countries
	// together (the reference's "across the business portfolio"). Default.
	TierScopeBusiness TierScope = "business"
	// TierScopeCountry: only the minutes billed to the same country.
	TierScopeCountry TierScope = "country"
)

// String returns the scope name.
func (s TierScope) String() string { return string(s) }

// UnknownCountry is the country of entries whose user number has no region
// (a username-only user, a non-geographic number); it is priced at the
// card's default rates.
const UnknownCountry = "ZZ"

// Tier is one monthly volume tier: from FromMinutes minutes billed earlier in
// the month, calls cost RateMicrosPerMinute.
type Tier struct {
	FromMinutes         int64 `json:"from_minutes"`
	RateMicrosPerMinute int64 `json:"rate_micros_per_minute"`
}

// CountryRates are the resolved rates of one country (or the default).
type CountryRates struct {
	IncrementSeconds  int64              // 1 = per second, 6 = 6 s pulses
	Tiers             []Tier             // ascending, Tiers[0].FromMinutes == 0
	ConversationRates map[Category]int64 // micro-USD per conversation
}

// RateCard prices calls and conversations. It is immutable once loaded and
// safe for concurrent use.
type RateCard struct {
	Currency                         string
	FreeServiceConversationsPerMonth int64
	ConversationWindow               time.Duration
	FreeEntryPointWindow             time.Duration
	TierScope                        TierScope
	Default                          CountryRates
	Countries                        map[string]CountryRates // ISO alpha-2, upper case
}

// micros is an integer amount of micro-USD in JSON; it rejects fractions and
// exponents so that float money cannot sneak in.
type micros int64

func (m *micros) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return fmt.Errorf("money must be an integer number of micro-USD, got null")
	}
	if strings.HasPrefix(s, "\"") {
		return fmt.Errorf("money must be a JSON integer of micro-USD, got the string %s", s)
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("money must be an integer number of micro-USD, got %s", s)
	}
	if strings.ContainsAny(s, ".eE") {
		return fmt.Errorf("money must be an integer number of micro-USD, got %s (no fractions: 0.005 USD is 5000)", s)
	}
	v, err := n.Int64()
	if err != nil {
		return fmt.Errorf("money %s out of range: %w", s, err)
	}
	*m = micros(v)
	return nil
}

// intValue is an integer count (minutes, seconds) that rejects fractions.
type intValue = micros

type jsonTier struct {
	FromMinutes *intValue `json:"from_minutes"`
	Rate        *micros   `json:"rate_micros_per_minute"`
}

type jsonRates struct {
	CallRate          *micros           `json:"call_rate_micros_per_minute"`
	IncrementSeconds  *intValue         `json:"increment_seconds"`
	Tiers             []jsonTier        `json:"tiers"`
	ConversationRates map[string]micros `json:"conversation_rates"`
}

type jsonCard struct {
	Currency                         string               `json:"currency"`
	FreeServiceConversationsPerMonth *intValue            `json:"free_service_conversations_per_month"`
	ConversationWindow               string               `json:"conversation_window"`
	FreeEntryPointWindow             string               `json:"free_entry_point_window"`
	TierScope                        string               `json:"tier_scope"`
	Default                          *jsonRates           `json:"default"`
	Countries                        map[string]jsonRates `json:"countries"`
}

// Limits that keep every price computation far from int64 overflow.
const (
	maxRateMicrosPerMinute = 1_000_000_000_000 // 1,000,000 USD a minute
	maxIncrementSeconds    = 3600
)

// LoadRateCardFile reads a JSON rate card from path.
func LoadRateCardFile(path string) (*RateCard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRateCard, err)
	}
	defer f.Close()
	rc, err := LoadRateCard(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rc, nil
}

// LoadRateCard reads and validates a JSON rate card (format in README.md).
// Unknown fields, float money, negative values and unknown countries are
// errors wrapping ErrInvalidRateCard.
func LoadRateCard(r io.Reader) (*RateCard, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var jc jsonCard
	if err := dec.Decode(&jc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRateCard, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidRateCard)
	}
	rc, err := jc.build()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRateCard, err)
	}
	return rc, nil
}

func (jc *jsonCard) build() (*RateCard, error) {
	rc := &RateCard{Currency: jc.Currency, TierScope: TierScope(jc.TierScope), Countries: map[string]CountryRates{}}
	if rc.Currency != "USD" {
		return nil, fmt.Errorf("currency must be \"USD\", got %q", jc.Currency)
	}
	if rc.TierScope == "" {
		rc.TierScope = TierScopeBusiness
	}
	if rc.TierScope != TierScopeBusiness && rc.TierScope != TierScopeCountry {
		return nil, fmt.Errorf("tier_scope must be \"business\" or \"country\", got %q", jc.TierScope)
	}
	rc.FreeServiceConversationsPerMonth = 1000
	if jc.FreeServiceConversationsPerMonth != nil {
		rc.FreeServiceConversationsPerMonth = int64(*jc.FreeServiceConversationsPerMonth)
		if rc.FreeServiceConversationsPerMonth < 0 {
			return nil, fmt.Errorf("free_service_conversations_per_month must be >= 0, got %d", rc.FreeServiceConversationsPerMonth)
		}
	}
	var err error
	if rc.ConversationWindow, err = parseWindow("conversation_window", jc.ConversationWindow, 24*time.Hour); err != nil {
		return nil, err
	}
	if rc.FreeEntryPointWindow, err = parseWindow("free_entry_point_window", jc.FreeEntryPointWindow, 72*time.Hour); err != nil {
		return nil, err
	}
	if jc.Default == nil {
		return nil, fmt.Errorf("missing \"default\" rates")
	}
	if rc.Default, err = jc.Default.resolve("default", nil); err != nil {
		return nil, err
	}
	for code, jr := range jc.Countries {
		cc := code
		if len(cc) != 2 || strings.ToUpper(cc) != cc || phonenumbers.GetCountryCodeForRegion(cc) == 0 {
			return nil, fmt.Errorf("countries: unknown country %q (want an ISO 3166-1 alpha-2 code in upper case, e.g. \"GB\")", code)
		}
		if rc.Countries[cc], err = jr.resolve(cc, &rc.Default); err != nil {
			return nil, err
		}
	}
	return rc, nil
}

func parseWindow(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if d <= 0 || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%s must be a positive whole number of milliseconds, got %q", name, s)
	}
	return d, nil
}

// resolve checks one country's rates and fills what it omits from def (nil
// for the default itself, which must be complete).
func (jr jsonRates) resolve(where string, def *CountryRates) (CountryRates, error) {
	var cr CountryRates
	switch {
	case jr.IncrementSeconds != nil:
		cr.IncrementSeconds = int64(*jr.IncrementSeconds)
		if cr.IncrementSeconds < 1 || cr.IncrementSeconds > maxIncrementSeconds {
			return cr, fmt.Errorf("%s: increment_seconds must be 1..%d, got %d", where, maxIncrementSeconds, cr.IncrementSeconds)
		}
	case def != nil:
		cr.IncrementSeconds = def.IncrementSeconds
	default:
		return cr, fmt.Errorf("%s: increment_seconds is required", where)
	}

	switch {
	case len(jr.Tiers) > 0:
		for i, t := range jr.Tiers {
			if t.FromMinutes == nil || t.Rate == nil {
				return cr, fmt.Errorf("%s: tiers[%d] needs from_minutes and rate_micros_per_minute", where, i)
			}
			cr.Tiers = append(cr.Tiers, Tier{FromMinutes: int64(*t.FromMinutes), RateMicrosPerMinute: int64(*t.Rate)})
		}
		if jr.CallRate != nil && int64(*jr.CallRate) != cr.Tiers[0].RateMicrosPerMinute {
			return cr, fmt.Errorf("%s: call_rate_micros_per_minute (%d) disagrees with tiers[0] (%d): give one or make them equal",
				where, *jr.CallRate, cr.Tiers[0].RateMicrosPerMinute)
		}
	case jr.CallRate != nil:
		cr.Tiers = []Tier{{FromMinutes: 0, RateMicrosPerMinute: int64(*jr.CallRate)}}
	case def != nil:
		cr.Tiers = def.Tiers
	default:
		return cr, fmt.Errorf("%s: call_rate_micros_per_minute or tiers is required", where)
	}
	for i, t := range cr.Tiers {
		if t.RateMicrosPerMinute < 0 || t.RateMicrosPerMinute > maxRateMicrosPerMinute {
			return cr, fmt.Errorf("%s: tiers[%d]: rate must be 0..%d micro-USD per minute, got %d", where, i, int64(maxRateMicrosPerMinute), t.RateMicrosPerMinute)
		}
		if i == 0 && t.FromMinutes != 0 {
			return cr, fmt.Errorf("%s: tiers[0].from_minutes must be 0, got %d", where, t.FromMinutes)
		}
		if i > 0 && t.FromMinutes <= cr.Tiers[i-1].FromMinutes {
			return cr, fmt.Errorf("%s: tiers[%d].from_minutes (%d) must be greater than tiers[%d] (%d)", where, i, t.FromMinutes, i-1, cr.Tiers[i-1].FromMinutes)
		}
	}

	cr.ConversationRates = make(map[Category]int64, len(Categories))
	for name, v := range jr.ConversationRates {
		c := Category(name)
		if !c.Valid() {
			return cr, fmt.Errorf("%s: conversation_rates: unknown category %q (want marketing, utility, authentication or service)", where, name)
		}
		if v < 0 || v > maxRateMicrosPerMinute {
			return cr, fmt.Errorf("%s: conversation_rates.%s must be 0..%d micro-USD, got %d", where, name, int64(maxRateMicrosPerMinute), v)
		}
		cr.ConversationRates[c] = int64(v)
	}
	for _, c := range Categories {
		if _, ok := cr.ConversationRates[c]; ok {
			continue
		}
		if def == nil {
			return cr, fmt.Errorf("%s: conversation_rates.%s is required", where, c)
		}
		cr.ConversationRates[c] = def.ConversationRates[c]
	}
	return cr, nil
}

// Rates returns the resolved rates for country (ISO alpha-2, any case); the
// default rates for "", UnknownCountry and countries the card does not list.
func (rc *RateCard) Rates(country string) CountryRates {
	if cr, ok := rc.Countries[strings.ToUpper(country)]; ok {
		return cr
	}
	return rc.Default
}

// BilledSeconds rounds seconds up to the country's increment:
// ceil(seconds/increment)*increment; 0 for seconds <= 0.
func (cr CountryRates) BilledSeconds(seconds int64) int64 {
	if seconds <= 0 {
		return 0
	}
	inc := max(cr.IncrementSeconds, 1)
	n := seconds / inc
	if seconds%inc != 0 {
		n++
	}
	if n > math.MaxInt64/inc {
		return math.MaxInt64 / inc * inc
	}
	return n * inc
}

// TierAt returns the index of the tier a call starts in when minutesUsed
// minutes were billed earlier in the month.
func (cr CountryRates) TierAt(minutesUsed int64) int {
	idx := 0
	for i, t := range cr.Tiers {
		if minutesUsed >= t.FromMinutes {
			idx = i
		}
	}
	return idx
}

// CostMicros is ceil(billedSeconds * ratePerMinute / 60) in exact integer
// arithmetic (128-bit intermediate; saturates at MaxInt64).
func CostMicros(billedSeconds, ratePerMinute int64) int64 {
	if billedSeconds <= 0 || ratePerMinute <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(billedSeconds), uint64(ratePerMinute))
	if hi >= 60 {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, 60)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// Price prices a connected business-initiated call of seconds to country
// when minutesUsedThisMonth minutes were billed earlier in its month:
// billedSeconds = ceil(seconds/increment)*increment, the tier is the last
// one whose from_minutes <= minutesUsedThisMonth (the whole call is priced
// at the tier reached when it starts), costMicros =
// ceil(billedSeconds*rate/60).
func (rc *RateCard) Price(country string, seconds int64, minutesUsedThisMonth int64) (billedSeconds, costMicros int64, tierIndex int) {
	cr := rc.Rates(country)
	billedSeconds = cr.BilledSeconds(seconds)
	tierIndex = cr.TierAt(minutesUsedThisMonth)
	return billedSeconds, CostMicros(billedSeconds, cr.Tiers[tierIndex].RateMicrosPerMinute), tierIndex
}

// ConversationRate is the price of one charged conversation of category c
// with a user in country.
func (rc *RateCard) ConversationRate(country string, c Category) int64 {
	return rc.Rates(country).ConversationRates[c]
}
