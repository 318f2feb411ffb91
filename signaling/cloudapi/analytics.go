package cloudapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Granularity of analytics data points.
type Granularity string

// Granularities Meta accepts.
const (
	GranularityHalfHour Granularity = "HALF_HOUR"
	GranularityDaily    Granularity = "DAILY"
	GranularityMonthly  Granularity = "MONTHLY"
)

// AnalyticsQuery selects call_analytics or pricing_analytics data. Empty
// filters are omitted (Meta then reports everything).
type AnalyticsQuery struct {
	Start, End   time.Time   // sent as unix seconds; Start before End
	Granularity  Granularity // HALF_HOUR | DAILY | MONTHLY
	PhoneNumbers []string    // business numbers (display numbers, digits)
	CountryCodes []string    // ISO 3166 alpha-2
	// call_analytics only.
	Directions  []string // BUSINESS_INITIATED | USER_INITIATED
	Dimensions  []string // call: direction, country, phone; pricing: PRICING_CATEGORY, PRICING_TYPE, COUNTRY, PHONE
	MetricTypes []string // call: COST, COUNT, AVERAGE_DURATION
	// pricing_analytics only.
	PricingTypes      []string // REGULAR, FREE_CUSTOMER_SERVICE, FREE_ENTRY_POINT
	PricingCategories []string // MARKETING, UTILITY, AUTHENTICATION, SERVICE...
}

var (
	analyticsWordRE  = regexp.MustCompile(`^[A-Za-z_]{1,64}$`)
	analyticsPhoneRE = regexp.MustCompile(`^\+?[0-9]{6,15}$`)
)

func (q AnalyticsQuery) validate(kind string) error {
	switch {
	case q.Start.IsZero() || q.End.IsZero() || !q.Start.Before(q.End):
		return fmt.Errorf("%w: %s needs Start before End", ErrBadInput, kind)
	case q.Granularity != GranularityHalfHour && q.Granularity != GranularityDaily && q.Granularity != GranularityMonthly:
		return fmt.Errorf("%w: granularity %q must be HALF_HOUR, DAILY or MONTHLY", ErrBadInput, q.Granularity)
	}
	for _, p := range q.PhoneNumbers {
		if !analyticsPhoneRE.MatchString(p) {
			return fmt.Errorf("%w: phone_numbers item %q is not a phone number", ErrBadInput, maskPhone(p))
		}
	}
	for _, cc := range q.CountryCodes {
		if !countryRE.MatchString(cc) {
			return fmt.Errorf("%w: country_codes item %q must be ISO 3166 alpha-2", ErrBadInput, cc)
		}
	}
	for _, d := range q.Directions {
		if d != "BUSINESS_INITIATED" && d != "USER_INITIATED" {
			return fmt.Errorf("%w: direction %q must be BUSINESS_INITIATED or USER_INITIATED", ErrBadInput, d)
		}
	}
	for _, l := range [][]string{q.Dimensions, q.MetricTypes, q.PricingTypes, q.PricingCategories} {
		for _, w := range l {
			if !analyticsWordRE.MatchString(w) {
				return fmt.Errorf("%w: %q is not an analytics keyword", ErrBadInput, w)
			}
		}
	}
	return nil
}

// field builds "<edge>.start(..).end(..).granularity(..)[.list([...])]".
func (q AnalyticsQuery) field(edge string, lists []struct {
	name string
	v    []string
}) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s.start(%d).end(%d).granularity(%s)", edge, q.Start.Unix(), q.End.Unix(), q.Granularity)
	for _, l := range lists {
		if len(l.v) == 0 {
			continue
		}
		b, _ := json.Marshal(l.v)
		fmt.Fprintf(&sb, ".%s(%s)", l.name, b)
	}
	return sb.String()
}

type namedList = struct {
	name string
	v    []string
}

// CallAnalytics is call_analytics of a WABA.
type CallAnalytics struct {
	Granularity string
	DataPoints  []CallDataPoint
	Raw         json.RawMessage // the call_analytics object as received
}

// CallDataPoint is one data point. Cost is in micros of the account
// currency (Meta reports a decimal amount; converted exactly). Fields Meta
// omits are zero; Has* tell which metrics were present.
type CallDataPoint struct {
	Start, End      time.Time
	Direction       string
	Country         string
	PhoneNumber     string
	CostMicros      int64
	Count           int64
	AverageDuration int64 // seconds
	HasCost         bool
	HasCount        bool
	HasDuration     bool
}

// CallAnalytics reads call analytics for billing reconciliation:
// GET /<WABA_ID>?fields=call_analytics.start(<unix>).end(<unix>).granularity(G)
// [.phone_numbers([...]).country_codes([...]).directions([...]).dimensions([...]).metric_types([...])].
// Insights are approximate; Meta's invoice rules. Retried when safe.
func (c *Client) CallAnalytics(ctx context.Context, wabaID string, q AnalyticsQuery) (*CallAnalytics, error) {
	if err := firstErr(checkNode("WABA id", wabaID), q.validate("call_analytics")); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w", ActionCallAnalytics, err)
	}
	field := q.field("call_analytics", []namedList{{"phone_numbers", q.PhoneNumbers}, {"country_codes", q.CountryCodes},
		{"directions", q.Directions}, {"dimensions", q.Dimensions}, {"metric_types", q.MetricTypes}})
	var w struct {
		CallAnalytics json.RawMessage `json:"call_analytics"`
	}
	if err := c.do(ctx, request{action: ActionCallAnalytics, method: http.MethodGet, node: wabaID, safe: true,
		query: url.Values{"fields": {field}}}, &w); err != nil {
		return nil, err
	}
	out := &CallAnalytics{Raw: w.CallAnalytics}
	if len(w.CallAnalytics) == 0 || string(w.CallAnalytics) == "null" {
		return out, nil // no calls in the range
	}
	// Meta's example is {"granularity","data_points":[…]}; the messaging
	// analytics shape {"data":[{"data_points":[…]}]} is read too.
	var body struct {
		Granularity string      `json:"granularity"`
		DataPoints  []wirePoint `json:"data_points"`
		Data        []struct {
			DataPoints []wirePoint `json:"data_points"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.CallAnalytics, &body); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w: %w", ActionCallAnalytics, ErrUnexpectedResponse, err)
	}
	out.Granularity = body.Granularity
	points := body.DataPoints
	for _, d := range body.Data {
		points = append(points, d.DataPoints...)
	}
	for i, p := range points {
		dp := CallDataPoint{Start: p.Start.t, End: p.End.t, Direction: p.Direction, Country: p.Country,
			PhoneNumber: cmpOr(p.PhoneNumber, p.Phone)}
		var err error
		if dp.CostMicros, dp.HasCost, err = p.Cost.micros(); err != nil {
			return nil, fmt.Errorf("cloudapi: %s: data_points[%d].cost: %w", ActionCallAnalytics, i, err)
		}
		if dp.Count, dp.HasCount, err = p.Count.integer(); err != nil {
			return nil, fmt.Errorf("cloudapi: %s: data_points[%d].count: %w", ActionCallAnalytics, i, err)
		}
		if dp.AverageDuration, dp.HasDuration, err = p.AverageDuration.integer(); err != nil {
			return nil, fmt.Errorf("cloudapi: %s: data_points[%d].average_duration: %w", ActionCallAnalytics, i, err)
		}
		out.DataPoints = append(out.DataPoints, dp)
	}
	return out, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type wirePoint struct {
	Start           flexEpoch `json:"start"`
	End             flexEpoch `json:"end"`
	Direction       string    `json:"direction"`
	Country         string    `json:"country"`
	PhoneNumber     string    `json:"phone_number"`
	Phone           string    `json:"phone"`
	Cost            rawNumber `json:"cost"`
	Count           rawNumber `json:"count"`
	AverageDuration rawNumber `json:"average_duration"`
	PricingType     string    `json:"pricing_type"`
	PricingCategory string    `json:"pricing_category"`
	Volume          rawNumber `json:"volume"`
	Tier            string    `json:"tier"`
}

// PricingAnalytics is pricing_analytics of a WABA (per-message pricing).
type PricingAnalytics struct {
	DataPoints []PricingDataPoint
	Raw        json.RawMessage
}

// PricingDataPoint is one pricing_analytics data point.
type PricingDataPoint struct {
	Start, End      time.Time
	Country         string
	PhoneNumber     string
	PricingType     string // REGULAR, FREE_CUSTOMER_SERVICE, FREE_ENTRY_POINT… (kept as sent)
	PricingCategory string // MARKETING, UTILITY, AUTHENTICATION, SERVICE… (kept as sent)
	Tier            string
	Volume          int64
	CostMicros      int64
	HasCost         bool
}

// PricingAnalytics reads per-message pricing analytics:
// GET /<WABA_ID>?fields=pricing_analytics.start(<unix>).end(<unix>).granularity(G)
// [.phone_numbers([...]).country_codes([...]).pricing_types([...]).pricing_categories([...])
// .dimensions([...]).metric_types([...])] → {"pricing_analytics":{"data":[{"data_points":[{start,end,
// country,pricing_type,pricing_category,volume,cost}]}]}}. Retried when safe.
func (c *Client) PricingAnalytics(ctx context.Context, wabaID string, q AnalyticsQuery) (*PricingAnalytics, error) {
	if err := firstErr(checkNode("WABA id", wabaID), q.validate("pricing_analytics")); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w", ActionPricingAnalytics, err)
	}
	if len(q.Directions) > 0 {
		return nil, fmt.Errorf("cloudapi: %s: %w: directions apply to call_analytics only", ActionPricingAnalytics, ErrBadInput)
	}
	field := q.field("pricing_analytics", []namedList{{"phone_numbers", q.PhoneNumbers}, {"country_codes", q.CountryCodes},
		{"metric_types", q.MetricTypes}, {"pricing_types", q.PricingTypes}, {"pricing_categories", q.PricingCategories},
		{"dimensions", q.Dimensions}})
	var w struct {
		PricingAnalytics json.RawMessage `json:"pricing_analytics"`
	}
	if err := c.do(ctx, request{action: ActionPricingAnalytics, method: http.MethodGet, node: wabaID, safe: true,
		query: url.Values{"fields": {field}}}, &w); err != nil {
		return nil, err
	}
	out := &PricingAnalytics{Raw: w.PricingAnalytics}
	if len(w.PricingAnalytics) == 0 || string(w.PricingAnalytics) == "null" {
		return out, nil
	}
	var body struct {
		DataPoints []wirePoint `json:"data_points"`
		Data       []struct {
			DataPoints []wirePoint `json:"data_points"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.PricingAnalytics, &body); err != nil {
		return nil, fmt.Errorf("cloudapi: %s: %w: %w", ActionPricingAnalytics, ErrUnexpectedResponse, err)
	}
	points := slices.Clone(body.DataPoints)
	for _, d := range body.Data {
		points = append(points, d.DataPoints...)
	}
	for i, p := range points {
		dp := PricingDataPoint{Start: p.Start.t, End: p.End.t, Country: p.Country, PhoneNumber: cmpOr(p.PhoneNumber, p.Phone),
			PricingType: p.PricingType, PricingCategory: p.PricingCategory, Tier: p.Tier}
		var err error
		if dp.CostMicros, dp.HasCost, err = p.Cost.micros(); err != nil {
			return nil, fmt.Errorf("cloudapi: %s: data_points[%d].cost: %w", ActionPricingAnalytics, i, err)
		}
		if dp.Volume, _, err = p.Volume.integer(); err != nil {
			return nil, fmt.Errorf("cloudapi: %s: data_points[%d].volume: %w", ActionPricingAnalytics, i, err)
		}
		out.DataPoints = append(out.DataPoints, dp)
	}
	return out, nil
}

// rawNumber keeps a JSON number or numeric string exactly as sent.
type rawNumber struct {
	s   string
	set bool
}

func (n *rawNumber) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		n.s, n.set = strings.TrimSpace(s), true
		return nil
	}
	n.s, n.set = string(b), true
	return nil
}

func (n rawNumber) micros() (int64, bool, error) {
	if !n.set || n.s == "" {
		return 0, false, nil
	}
	m, err := ParseMicros(n.s)
	return m, true, err
}

func (n rawNumber) integer() (int64, bool, error) {
	if !n.set || n.s == "" {
		return 0, false, nil
	}
	if v, err := strconv.ParseInt(n.s, 10, 64); err == nil {
		return v, true, nil
	}
	// "12.0" or 1.2e1: accept whole values only.
	m, err := ParseMicros(n.s)
	if err != nil || m%1_000_000 != 0 {
		return 0, true, fmt.Errorf("%w: %q is not a whole number", ErrUnexpectedResponse, n.s)
	}
	return m / 1_000_000, true, nil
}

var decimalRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$`)

var (
	million  = big.NewRat(1_000_000, 1)
	maxInt64 = new(big.Int).SetInt64(1<<63 - 1)
	minInt64 = new(big.Int).SetInt64(-1 << 63)
)

// ParseMicros converts a decimal amount ("0.0123", "12", "1.5e-3", "-0.5")
// to integer millionths exactly, with decimal arithmetic (no float). Digits
// below a micro are rounded half away from zero (Meta reports at most a few
// decimals). Anything else, or a value outside int64, is an *AmountError
// (errors.Is(err, ErrBadAmount)).
func ParseMicros(s string) (int64, error) {
	if len(s) > 64 || !decimalRE.MatchString(s) {
		return 0, &AmountError{Value: s, Reason: "not a decimal number"}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, &AmountError{Value: s, Reason: "not a decimal number"}
	}
	r.Mul(r, million)
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	// Round half away from zero: |2m| >= den.
	if m.Sign() != 0 && new(big.Int).Abs(new(big.Int).Lsh(m, 1)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if q.Cmp(maxInt64) > 0 || q.Cmp(minInt64) < 0 {
		return 0, &AmountError{Value: s, Reason: "out of range"}
	}
	return q.Int64(), nil
}
