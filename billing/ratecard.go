package billing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Category is a message category: Meta's pricing categories (per-message
// pricing) and the four conversation categories of the legacy model.
type Category string

// Message categories. The first four are also the conversation categories.
const (
	Marketing                   Category = "marketing"
	Utility                     Category = "utility"
	Authentication              Category = "authentication"
	Service                     Category = "service"
	AuthenticationInternational Category = "authentication_international"
	ReferralConversion          Category = "referral_conversion"
)

// Categories lists the conversation categories (legacy model) in display order.
var Categories = [...]Category{Marketing, Utility, Authentication, Service}

// MessageCategories lists the per-message categories a rate card may price.
var MessageCategories = [...]Category{Marketing, Utility, Authentication, AuthenticationInternational, Service, ReferralConversion}

// String returns the category name.
func (c Category) String() string { return string(c) }

// Valid reports whether c is one of the four conversation categories.
func (c Category) Valid() bool { return slices.Contains(Categories[:], c) }

// ParseCategory normalises a category from a status webhook's pricing
// object: lower case, hyphens as underscores ("authentication-international"
// is reported too). Unknown values are kept as they are (Meta adds
// categories); only characters that cannot be stored are refused.
func ParseCategory(s string) (Category, bool) {
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	if !tokenRE.MatchString(s) {
		return "", false
	}
	return Category(s), true
}

// tokenRE is what a category or pricing type may look like when it becomes
// part of a Redis hash field.
var tokenRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// MessagingModel is how business messages are priced.
type MessagingModel string

const (
	// PerMessage: Meta's per-message pricing (PMP, since 2025-07-01); the
	// status webhooks' pricing object says what is billable. Default.
	PerMessage MessagingModel = "per_message"
	// ConversationBased: the legacy 24 h conversation model (before
	// 2025-07-01, or for resellers who still bill that way).
	ConversationBased MessagingModel = "conversation"
)

// String returns the model name.
func (m MessagingModel) String() string { return string(m) }

// TierBasis says what the call volume tiers count.
type TierBasis string

const (
	// TierBasisBilled counts billed (pulse-rounded) seconds. Default: Meta
	// does not say which it counts (unconfirmed); billed seconds is what
	// the invoice shows.
	TierBasisBilled TierBasis = "billed_seconds"
	// TierBasisRaw counts the calls' raw durations in seconds.
	TierBasisRaw TierBasis = "raw_seconds"
)

// String returns the basis name.
func (b TierBasis) String() string { return string(b) }

// TierScope says which calls count toward a market's volume tiers.
type TierScope string

const (
	// TierScopeMarket: only the calls to the same market (Meta's rule:
	// tiers accrue per market across the business portfolio). Default.
	TierScopeMarket TierScope = "market"
	// TierScopePortfolio: every call of the portfolio, all markets together
	// (a reseller's simplification).
	TierScopePortfolio TierScope = "portfolio"
)

// String returns the scope name.
func (s TierScope) String() string { return string(s) }

// UnknownCountry is the country of a user whose number has no region and
// whose BSUID names no country; it is priced at the card's default market.
const UnknownCountry = "ZZ"

// DefaultMarket is the market id that prices every country no other market
// lists.
const DefaultMarket = "default"

// DefaultIncrementSeconds is Meta's call pulse: 6 seconds, rounded up.
const DefaultIncrementSeconds = 6

// Tier is one monthly call volume tier: once more than FromMinutes minutes
// have accrued in the month (this call included), a call costs
// RateMicrosPerMinute. Meta's "50,001–250,000" is FromMinutes 50000.
type Tier struct {
	FromMinutes         int64 `json:"from_minutes"`
	RateMicrosPerMinute int64 `json:"rate_micros"`
}

// MessageTier is one graduated monthly message tier: messages numbered
// above FromMessages in the month cost RateMicros each.
type MessageTier struct {
	FromMessages int64 `json:"from_messages"`
	RateMicros   int64 `json:"rate_micros"`
}

// Market is the resolved rates of one market (a country or a group of
// countries) in one card.
type Market struct {
	ID                string
	Countries         []string // ISO alpha-2 codes mapped to this market
	IncrementSeconds  int64    // 1 = per second, 6 = Meta's pulses
	Tiers             []Tier   // calls; ascending, Tiers[0].FromMinutes == 0
	Messages          map[Category][]MessageTier
	ConversationRates map[Category]int64 // legacy model: micro-USD per conversation
}

// Card is one version of the rate card, in force from Effective (the 1st of
// a month, in the billing time zone) until the next card's Effective.
type Card struct {
	Effective                        string // "2026-04" (month the card starts)
	Currency                         string
	Source                           string // free text: which published sheet the figures come from
	MessagingModel                   MessagingModel
	TierBasis                        TierBasis
	TierScope                        TierScope
	FreeServiceConversationsPerMonth int64
	ConversationWindow               time.Duration
	FreeEntryPointWindow             time.Duration
	Markets                          map[string]*Market // by id, DefaultMarket included
	countryMarket                    map[string]string
}

// RateCard is a rate card file: its versions sorted by effective month. It
// is immutable once loaded and safe for concurrent use.
type RateCard struct {
	Cards []*Card
}

// micros is an integer amount of micro-USD in JSON; it rejects fractions and
// exponents so that float money cannot sneak in.
type micros int64

func (m *micros) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return fmt.Errorf("must be an integer, got null")
	}
	if strings.HasPrefix(s, "\"") {
		return fmt.Errorf("must be a JSON integer, got the string %s", s)
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("must be an integer, got %s", s)
	}
	if strings.ContainsAny(s, ".eE") {
		return fmt.Errorf("must be an integer number of micro-units, got %s (no fractions: 0.005 USD is 5000)", s)
	}
	v, err := n.Int64()
	if err != nil {
		return fmt.Errorf("%s out of range: %w", s, err)
	}
	*m = micros(v)
	return nil
}

// intValue is an integer count (minutes, seconds) that rejects fractions.
type intValue = micros

type jsonFile struct {
	Schema string            `json:"$schema"`
	Cards  []json.RawMessage `json:"cards"`
}

type jsonCard struct {
	Effective                        string                     `json:"effective"`
	Currency                         string                     `json:"currency"`
	Source                           string                     `json:"source"`
	MessagingModel                   string                     `json:"messaging_model"`
	IncrementSeconds                 *intValue                  `json:"increment_seconds"`
	TierBasis                        string                     `json:"tier_basis"`
	TierScope                        string                     `json:"tier_scope"`
	FreeServiceConversationsPerMonth *intValue                  `json:"free_service_conversations_per_month"`
	ConversationWindow               string                     `json:"conversation_window"`
	FreeEntryPointWindow             string                     `json:"free_entry_point_window"`
	Markets                          map[string]json.RawMessage `json:"markets"`
}

type jsonMarket struct {
	Countries         []string               `json:"countries"`
	IncrementSeconds  *intValue              `json:"increment_seconds"`
	Tiers             []jsonTier             `json:"tiers"`
	Messages          map[string]jsonMsgRate `json:"messages"`
	ConversationRates map[string]micros      `json:"conversation_rates"`
}

type jsonTier struct {
	FromMinutes *intValue `json:"from_minutes"`
	RateMicros  *micros   `json:"rate_micros"`
}

type jsonMsgRate struct {
	RateMicros *micros       `json:"rate_micros"`
	Tiers      []jsonMsgTier `json:"tiers"`
}

type jsonMsgTier struct {
	FromMessages *intValue `json:"from_messages"`
	RateMicros   *micros   `json:"rate_micros"`
}

// Limits that keep every price computation far from int64 overflow.
const (
	maxRateMicros       = 1_000_000_000_000 // 1,000,000 USD a minute or a message
	maxIncrementSeconds = 3600
	maxTierStart        = 1_000_000_000_000 // minutes or messages
)

var marketIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$`)

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

// LoadRateCard reads and validates a JSON rate card (format in README.md and
// ratecards/ratecard.schema.json). Every error wraps ErrInvalidRateCard and
// names the field, e.g. "cards[1].markets.GB.tiers[2].rate_micros: must be
// > 0".
func LoadRateCard(r io.Reader) (*RateCard, error) {
	rc, err := loadRateCard(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRateCard, err)
	}
	return rc, nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return nil
}

func loadRateCard(r io.Reader) (*RateCard, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err == nil {
		if _, ok := probe["cards"]; !ok {
			if _, old := probe["default"]; old {
				return nil, fmt.Errorf("this is the pre-2026 single-card format: wrap it as {\"cards\":[{\"effective\":\"YYYY-MM-01\", \"markets\":{\"default\":…}}]} (see billing/README.md)")
			}
		}
	}
	var jf jsonFile
	if err := strictDecode(b, &jf); err != nil {
		return nil, err
	}
	if len(jf.Cards) == 0 {
		return nil, fmt.Errorf("cards: at least one card is required")
	}
	rc := &RateCard{}
	for i, raw := range jf.Cards {
		where := fmt.Sprintf("cards[%d]", i)
		var jc jsonCard
		if err := strictDecode(raw, &jc); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		c, err := jc.build(where)
		if err != nil {
			return nil, err
		}
		if n := len(rc.Cards); n > 0 && c.Currency != rc.Cards[0].Currency {
			return nil, fmt.Errorf("%s.currency: %s differs from cards[0].currency %s (one currency per file: usage sums months)", where, c.Currency, rc.Cards[0].Currency)
		}
		if n := len(rc.Cards); n > 0 && c.Effective <= rc.Cards[n-1].Effective {
			return nil, fmt.Errorf("%s.effective: %s must be after cards[%d].effective %s (cards in date order)", where, c.Effective, n-1, rc.Cards[n-1].Effective)
		}
		rc.Cards = append(rc.Cards, c)
	}
	return rc, nil
}

func (jc *jsonCard) build(where string) (*Card, error) {
	c := &Card{Currency: jc.Currency, Source: jc.Source, Markets: map[string]*Market{}, countryMarket: map[string]string{}}
	t, err := time.Parse("2006-01-02", jc.Effective)
	if err != nil || t.Day() != 1 {
		return nil, fmt.Errorf("%s.effective: must be the 1st of a month as YYYY-MM-01, got %q", where, jc.Effective)
	}
	c.Effective = t.Format("2006-01")
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency {
		return nil, fmt.Errorf("%s.currency: must be an ISO 4217 code such as \"USD\", got %q", where, jc.Currency)
	}
	c.MessagingModel = MessagingModel(cmpOr(jc.MessagingModel, string(PerMessage)))
	if c.MessagingModel != PerMessage && c.MessagingModel != ConversationBased {
		return nil, fmt.Errorf("%s.messaging_model: must be \"per_message\" or \"conversation\", got %q", where, jc.MessagingModel)
	}
	c.TierBasis = TierBasis(cmpOr(jc.TierBasis, string(TierBasisBilled)))
	if c.TierBasis != TierBasisBilled && c.TierBasis != TierBasisRaw {
		return nil, fmt.Errorf("%s.tier_basis: must be \"billed_seconds\" or \"raw_seconds\", got %q", where, jc.TierBasis)
	}
	c.TierScope = TierScope(cmpOr(jc.TierScope, string(TierScopeMarket)))
	if c.TierScope != TierScopeMarket && c.TierScope != TierScopePortfolio {
		return nil, fmt.Errorf("%s.tier_scope: must be \"market\" or \"portfolio\", got %q", where, jc.TierScope)
	}
	c.FreeServiceConversationsPerMonth = 1000
	if jc.FreeServiceConversationsPerMonth != nil {
		if c.FreeServiceConversationsPerMonth = int64(*jc.FreeServiceConversationsPerMonth); c.FreeServiceConversationsPerMonth < 0 {
			return nil, fmt.Errorf("%s.free_service_conversations_per_month: must be >= 0, got %d", where, c.FreeServiceConversationsPerMonth)
		}
	}
	if c.ConversationWindow, err = parseWindow(where+".conversation_window", jc.ConversationWindow, 24*time.Hour); err != nil {
		return nil, err
	}
	if c.FreeEntryPointWindow, err = parseWindow(where+".free_entry_point_window", jc.FreeEntryPointWindow, 72*time.Hour); err != nil {
		return nil, err
	}
	inc := int64(DefaultIncrementSeconds)
	if jc.IncrementSeconds != nil {
		if inc = int64(*jc.IncrementSeconds); inc < 1 || inc > maxIncrementSeconds {
			return nil, fmt.Errorf("%s.increment_seconds: must be 1..%d, got %d", where, maxIncrementSeconds, inc)
		}
	}
	rawDef, ok := jc.Markets[DefaultMarket]
	if !ok {
		return nil, fmt.Errorf("%s.markets.default: required (prices every country no other market lists)", where)
	}
	def, err := buildMarket(where+".markets.default", DefaultMarket, rawDef, nil, inc, c.MessagingModel)
	if err != nil {
		return nil, err
	}
	c.Markets[DefaultMarket] = def
	ids := make([]string, 0, len(jc.Markets))
	for id := range jc.Markets {
		if id != DefaultMarket {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		mw := where + ".markets." + id
		if !marketIDRE.MatchString(id) {
			return nil, fmt.Errorf("%s: market id must be letters, digits, space . _ - (up to 64), got %q", mw, id)
		}
		m, err := buildMarket(mw, id, jc.Markets[id], def, inc, c.MessagingModel)
		if err != nil {
			return nil, err
		}
		c.Markets[id] = m
		for _, cc := range m.Countries {
			if prev, dup := c.countryMarket[cc]; dup {
				return nil, fmt.Errorf("%s.countries: %s is already in market %q", mw, cc, prev)
			}
			c.countryMarket[cc] = id
		}
	}
	return c, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func parseWindow(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%s: must be a positive duration such as \"24h\", got %q", name, s)
	}
	return d, nil
}

func validCountry(cc string) bool {
	return len(cc) == 2 && strings.ToUpper(cc) == cc && phonenumbers.GetCountryCodeForRegion(cc) != 0
}

// buildMarket checks one market and fills what it omits from def (nil for
// the default market itself, which must be complete).
func buildMarket(where, id string, raw json.RawMessage, def *Market, cardInc int64, model MessagingModel) (*Market, error) {
	var jm jsonMarket
	if err := strictDecode(raw, &jm); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	m := &Market{ID: id, IncrementSeconds: cardInc, Messages: map[Category][]MessageTier{}, ConversationRates: map[Category]int64{}}
	switch {
	case def == nil && len(jm.Countries) > 0:
		return nil, fmt.Errorf("%s.countries: the default market takes every unlisted country; list none", where)
	case def != nil && len(jm.Countries) == 0:
		if !validCountry(id) {
			return nil, fmt.Errorf("%s: a market that is not an ISO 3166-1 alpha-2 country (upper case, e.g. \"GB\") needs \"countries\"", where)
		}
		m.Countries = []string{id}
	}
	for i, cc := range jm.Countries {
		if !validCountry(cc) {
			return nil, fmt.Errorf("%s.countries[%d]: unknown country %q (want ISO 3166-1 alpha-2 in upper case, e.g. \"NG\")", where, i, cc)
		}
		m.Countries = append(m.Countries, cc)
	}
	if def != nil {
		m.IncrementSeconds = def.IncrementSeconds
	}
	if jm.IncrementSeconds != nil {
		if m.IncrementSeconds = int64(*jm.IncrementSeconds); m.IncrementSeconds < 1 || m.IncrementSeconds > maxIncrementSeconds {
			return nil, fmt.Errorf("%s.increment_seconds: must be 1..%d, got %d", where, maxIncrementSeconds, m.IncrementSeconds)
		}
	}

	switch {
	case len(jm.Tiers) > 0:
		for i, t := range jm.Tiers {
			tw := fmt.Sprintf("%s.tiers[%d]", where, i)
			if t.FromMinutes == nil {
				return nil, fmt.Errorf("%s.from_minutes: required", tw)
			}
			if t.RateMicros == nil {
				return nil, fmt.Errorf("%s.rate_micros: required", tw)
			}
			if *t.RateMicros <= 0 || *t.RateMicros > maxRateMicros {
				return nil, fmt.Errorf("%s.rate_micros: must be > 0 and <= %d micro-units per minute, got %d", tw, int64(maxRateMicros), *t.RateMicros)
			}
			from := int64(*t.FromMinutes)
			if from < 0 || from > maxTierStart {
				return nil, fmt.Errorf("%s.from_minutes: must be 0..%d, got %d", tw, int64(maxTierStart), from)
			}
			if i == 0 && from != 0 {
				return nil, fmt.Errorf("%s.from_minutes: the first tier must start at 0, got %d", tw, from)
			}
			if i > 0 && from <= m.Tiers[i-1].FromMinutes {
				return nil, fmt.Errorf("%s.from_minutes: must be greater than tiers[%d].from_minutes (%d), got %d", tw, i-1, m.Tiers[i-1].FromMinutes, from)
			}
			m.Tiers = append(m.Tiers, Tier{FromMinutes: from, RateMicrosPerMinute: int64(*t.RateMicros)})
		}
	case def != nil:
		m.Tiers = def.Tiers
	default:
		return nil, fmt.Errorf("%s.tiers: required (call rates per minute by monthly volume)", where)
	}

	if def != nil {
		for k, v := range def.Messages {
			m.Messages[k] = v
		}
	}
	for name, jr := range jm.Messages {
		cw := where + ".messages." + name
		cat := Category(name)
		if !slices.Contains(MessageCategories[:], cat) {
			return nil, fmt.Errorf("%s: unknown category (want one of %v)", cw, MessageCategories)
		}
		tiers, err := jr.build(cw)
		if err != nil {
			return nil, err
		}
		m.Messages[cat] = tiers
	}
	if def == nil && model == PerMessage {
		for _, cat := range []Category{Marketing, Utility, Authentication} {
			if _, ok := m.Messages[cat]; !ok {
				return nil, fmt.Errorf("%s.messages.%s: required in the default market of a per_message card", where, cat)
			}
		}
	}

	if def != nil {
		for k, v := range def.ConversationRates {
			m.ConversationRates[k] = v
		}
	}
	for name, v := range jm.ConversationRates {
		cw := where + ".conversation_rates." + name
		c := Category(name)
		if !c.Valid() {
			return nil, fmt.Errorf("%s: unknown category (want marketing, utility, authentication or service)", cw)
		}
		if v < 0 || v > maxRateMicros {
			return nil, fmt.Errorf("%s: must be 0..%d micro-units, got %d", cw, int64(maxRateMicros), v)
		}
		m.ConversationRates[c] = int64(v)
	}
	if def == nil && model == ConversationBased {
		for _, c := range Categories {
			if _, ok := m.ConversationRates[c]; !ok {
				return nil, fmt.Errorf("%s.conversation_rates.%s: required in the default market of a conversation card", where, c)
			}
		}
	}
	return m, nil
}

func (jr jsonMsgRate) build(where string) ([]MessageTier, error) {
	switch {
	case jr.RateMicros != nil && len(jr.Tiers) > 0:
		return nil, fmt.Errorf("%s: give rate_micros or tiers, not both", where)
	case jr.RateMicros != nil:
		if *jr.RateMicros < 0 || *jr.RateMicros > maxRateMicros {
			return nil, fmt.Errorf("%s.rate_micros: must be 0..%d micro-units per message, got %d", where, int64(maxRateMicros), *jr.RateMicros)
		}
		return []MessageTier{{FromMessages: 0, RateMicros: int64(*jr.RateMicros)}}, nil
	case len(jr.Tiers) == 0:
		return nil, fmt.Errorf("%s: rate_micros or tiers is required", where)
	}
	var out []MessageTier
	for i, t := range jr.Tiers {
		tw := fmt.Sprintf("%s.tiers[%d]", where, i)
		if t.FromMessages == nil {
			return nil, fmt.Errorf("%s.from_messages: required", tw)
		}
		if t.RateMicros == nil {
			return nil, fmt.Errorf("%s.rate_micros: required", tw)
		}
		if *t.RateMicros < 0 || *t.RateMicros > maxRateMicros {
			return nil, fmt.Errorf("%s.rate_micros: must be 0..%d micro-units per message, got %d", tw, int64(maxRateMicros), *t.RateMicros)
		}
		from := int64(*t.FromMessages)
		if from < 0 || from > maxTierStart {
			return nil, fmt.Errorf("%s.from_messages: must be 0..%d, got %d", tw, int64(maxTierStart), from)
		}
		if i == 0 && from != 0 {
			return nil, fmt.Errorf("%s.from_messages: the first tier must start at 0, got %d", tw, from)
		}
		if i > 0 && from <= out[i-1].FromMessages {
			return nil, fmt.Errorf("%s.from_messages: must be greater than tiers[%d].from_messages (%d), got %d", tw, i-1, out[i-1].FromMessages, from)
		}
		out = append(out, MessageTier{FromMessages: from, RateMicros: int64(*t.RateMicros)})
	}
	return out, nil
}

// For returns the card in force in month ("2026-04"): the last card whose
// Effective is not after it. Months before the first card use the first
// card (a record is never refused for want of a card).
func (rc *RateCard) For(month string) *Card {
	i := sort.Search(len(rc.Cards), func(i int) bool { return rc.Cards[i].Effective > month })
	if i == 0 {
		return rc.Cards[0]
	}
	return rc.Cards[i-1]
}

// Latest returns the newest card.
func (rc *RateCard) Latest() *Card { return rc.Cards[len(rc.Cards)-1] }

// MarketOf returns the market that prices country (ISO alpha-2, any case):
// the market listing it, else the default market.
func (c *Card) MarketOf(country string) *Market {
	if id, ok := c.countryMarket[strings.ToUpper(country)]; ok {
		return c.Markets[id]
	}
	return c.Markets[DefaultMarket]
}

// BilledSeconds rounds seconds up to the market's increment:
// ceil(seconds/increment)*increment; 0 for seconds <= 0.
func (m *Market) BilledSeconds(seconds int64) int64 {
	if seconds <= 0 {
		return 0
	}
	inc := max(m.IncrementSeconds, 1)
	n := seconds / inc
	if seconds%inc != 0 {
		n++
	}
	if n > math.MaxInt64/inc {
		return math.MaxInt64 / inc * inc
	}
	return n * inc
}

// TierFor returns the index of the tier a call is priced at when the
// month's accrued seconds, this call included, are secondsAfter: the last
// tier whose FromMinutes*60 is below secondsAfter (tier 0 at least). A call
// that crosses a boundary is priced entirely at the better tier.
func (m *Market) TierFor(secondsAfter int64) int {
	idx := 0
	for i, t := range m.Tiers {
		if i == 0 || secondsAfter > t.FromMinutes*60 {
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

// CallPrice is what a connected business-initiated call costs.
type CallPrice struct {
	Market              string `json:"market"`
	BilledSeconds       int64  `json:"billed_seconds"`
	TierSeconds         int64  `json:"tier_seconds"` // what the call adds to the market's tier counter
	Tier                int    `json:"tier"`
	RateMicrosPerMinute int64  `json:"rate_micros_per_minute"`
	CostMicros          int64  `json:"cost_micros"`
}

// PriceCall prices a connected business-initiated call of seconds to
// country when usedSeconds already accrued toward its tiers this month
// (counted as the card's TierBasis says): billed = seconds rounded up to the
// increment; the tier is the one reached at the call's end (the whole call
// at the better tier when it crosses a boundary); cost =
// ceil(billed*rate/60).
func (c *Card) PriceCall(country string, seconds, usedSeconds int64) CallPrice {
	m := c.MarketOf(country)
	p := CallPrice{Market: m.ID, BilledSeconds: m.BilledSeconds(seconds)}
	p.TierSeconds = p.BilledSeconds
	if c.TierBasis == TierBasisRaw {
		p.TierSeconds = max(seconds, 0)
	}
	p.Tier = m.TierFor(satAdd(usedSeconds, p.TierSeconds))
	p.RateMicrosPerMinute = m.Tiers[p.Tier].RateMicrosPerMinute
	p.CostMicros = CostMicros(p.BilledSeconds, p.RateMicrosPerMinute)
	return p
}

// MessageRate returns the price of the n-th (1-based) billable message of
// category cat in the month to market: graduated tiers, so only messages
// inside a tier get its rate. ok is false when the card does not price cat.
func (m *Market) MessageRate(cat Category, n int64) (rate int64, tier int, ok bool) {
	tiers, ok := m.Messages[cat]
	if !ok || len(tiers) == 0 {
		return 0, -1, false
	}
	for i, t := range tiers {
		if i == 0 || n > t.FromMessages {
			rate, tier = t.RateMicros, i
		}
	}
	return rate, tier, true
}

func satAdd(a, b int64) int64 {
	if a > 0 && b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

// Summary describes the card versions (for `callgw ratecard check`).
func (rc *RateCard) Summary() string {
	var b strings.Builder
	for _, c := range rc.Cards {
		fmt.Fprintf(&b, "%s: %s, %s messaging, %d markets, tiers count %s per %s\n", c.Effective, c.Currency,
			c.MessagingModel, len(c.Markets), c.TierBasis, c.TierScope)
	}
	return b.String()
}
