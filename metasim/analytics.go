package metasim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// callRecord is an ended call as Meta's analytics see it.
type callRecord struct {
	start    time.Time // pickup, else the call's creation
	num      *bizNumber
	dir      direction
	country  string
	duration int64 // seconds, 0 when not picked up
	answered bool
	cost     int64 // micros, BIC picked up only
}

// AnalyticsSkew makes Meta's analytics differ from what happened, to test
// reconciliation: the most recent DropCalls calls are left out, ExtraCalls
// copies of the most recent call are added, ExtraCostMicros is added to the
// most recent call's cost.
type AnalyticsSkew struct {
	DropCalls       int
	ExtraCalls      int
	ExtraCostMicros int64
}

// SetAnalyticsSkew sets the analytics skew (zero value: truthful).
func (s *Sim) SetAnalyticsSkew(k AnalyticsSkew) {
	s.mu.Lock()
	s.skew = k
	s.mu.Unlock()
}

// CallCostMicros prices a picked-up business-initiated call of duration d to
// country cc like Meta: 6-second pulses, fractions rounded up, at the rate
// card's per-minute price (a pulse is a tenth of it, rounded half up).
func (s *Sim) CallCostMicros(cc string, d time.Duration) int64 {
	rate, ok := s.cfg.CallRates.PerMinute[cc]
	if !ok {
		rate = s.cfg.CallRates.Default
	}
	ms := d.Milliseconds()
	if ms <= 0 {
		return 0
	}
	pulses := (ms + 5999) / 6000
	return (pulses*rate + 5) / 10
}

func (s *Sim) recordCall(c *UserCall, answered bool, acceptedAt, endedAt time.Time, dur int64) {
	r := callRecord{start: c.ringAt, num: c.num, dir: c.dir, country: userCountry(c.usr), answered: answered}
	if answered {
		r.start, r.duration = acceptedAt, dur
		if c.dir == businessInitiated {
			r.cost = s.CallCostMicros(r.country, endedAt.Sub(acceptedAt))
		}
	}
	s.mu.Lock()
	s.history = append(s.history, r)
	s.mu.Unlock()
}

// analyticsQuery is a parsed fields=call_analytics.start(..).end(..)... chain.
type analyticsQuery struct {
	kind        string
	start, end  int64
	granularity string
	args        map[string][]string
}

// parseFields parses Meta's field expansion syntax:
// name.start(1).end(2).granularity(DAILY).dimensions(["a","b"]).
func parseFields(f string) (analyticsQuery, error) {
	q := analyticsQuery{args: map[string][]string{}}
	var parts []string
	depth, last := 0, 0
	for i, r := range f {
		switch r {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case '.':
			if depth == 0 {
				parts = append(parts, f[last:i])
				last = i + 1
			}
		}
	}
	parts = append(parts, f[last:])
	q.kind = parts[0]
	for _, p := range parts[1:] {
		i := strings.IndexByte(p, '(')
		if i < 0 || !strings.HasSuffix(p, ")") {
			return q, fmt.Errorf("bad modifier %q", p)
		}
		name, arg := p[:i], strings.TrimSpace(p[i+1:len(p)-1])
		var list []string
		if strings.HasPrefix(arg, "[") {
			if err := json.Unmarshal([]byte(arg), &list); err != nil {
				return q, fmt.Errorf("%s: %w", name, err)
			}
		} else {
			list = []string{arg}
		}
		q.args[name] = list
	}
	var err error
	if v := q.args["start"]; len(v) == 1 {
		q.start, err = strconv.ParseInt(v[0], 10, 64)
	}
	if err != nil {
		return q, fmt.Errorf("start: %w", err)
	}
	if v := q.args["end"]; len(v) == 1 {
		q.end, err = strconv.ParseInt(v[0], 10, 64)
	}
	if err != nil {
		return q, fmt.Errorf("end: %w", err)
	}
	if q.start <= 0 || q.end <= q.start {
		return q, fmt.Errorf("start and end (unix seconds, start < end) are required")
	}
	if g := q.args["granularity"]; len(g) == 1 {
		q.granularity = g[0]
	}
	return q, nil
}

func bucket(t time.Time, g string) (time.Time, time.Time) {
	t = t.UTC()
	switch g {
	case "HALF_HOUR":
		b := t.Truncate(30 * time.Minute)
		return b, b.Add(30 * time.Minute)
	case "MONTHLY", "MONTH":
		b := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return b, b.AddDate(0, 1, 0)
	default:
		b := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return b, b.AddDate(0, 0, 1)
	}
}

// micros renders integer micros as a decimal JSON number without floats.
func micros(m int64) json.Number {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	s := fmt.Sprintf("%s%d.%06d", sign, m/1e6, m%1e6)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return json.Number(s)
}

// graphAnalytics answers GET /{WABA_ID}?fields=call_analytics...|pricing_analytics...
func (s *Sim) graphAnalytics(waba, fields string) (any, *graphError) {
	q, err := parseFields(fields)
	if err != nil {
		return nil, errParam("Invalid parameter fields: %v", err)
	}
	switch q.kind {
	case "call_analytics":
		if !contains([]string{"HALF_HOUR", "DAILY", "MONTHLY"}, q.granularity) {
			return nil, errParam("Invalid parameter granularity %q: HALF_HOUR, DAILY or MONTHLY", q.granularity)
		}
		return map[string]any{"id": waba, "call_analytics": map[string]any{
			"granularity": q.granularity, "data_points": s.callPoints(waba, q)}}, nil
	case "pricing_analytics":
		if !contains([]string{"HALF_HOUR", "DAILY", "MONTHLY"}, q.granularity) {
			return nil, errParam("Invalid parameter granularity %q: HALF_HOUR, DAILY or MONTHLY", q.granularity)
		}
		return map[string]any{"id": waba, "pricing_analytics": map[string]any{
			"data": []any{map[string]any{"data_points": s.pricingPoints(waba, q)}}}}, nil
	}
	return nil, errParam("Invalid parameter fields: unknown field %q", q.kind)
}

type pointKey struct {
	start, end             int64
	direction, country, pn string
	category, ptype        string
}

func (s *Sim) callPoints(waba string, q analyticsQuery) []any {
	s.mu.Lock()
	hist := append([]callRecord(nil), s.history...)
	skew := s.skew
	s.mu.Unlock()
	if skew.DropCalls > 0 {
		hist = hist[:max(0, len(hist)-skew.DropCalls)]
	}
	if n := len(hist); n > 0 {
		last := hist[n-1]
		hist[n-1].cost += skew.ExtraCostMicros
		for range skew.ExtraCalls {
			hist = append(hist, last)
		}
	}
	dims := map[string]bool{}
	for _, d := range q.args["dimensions"] {
		dims[strings.ToLower(d)] = true
	}
	type agg struct{ count, answered, dur, cost int64 }
	points := map[pointKey]*agg{}
	for _, r := range hist {
		if r.num.WABAID != waba || r.start.Unix() < q.start || r.start.Unix() >= q.end {
			continue
		}
		if f := q.args["phone_numbers"]; len(f) > 0 && !contains(f, r.num.DisplayPhoneNumber) && !contains(f, r.num.PhoneNumberID) {
			continue
		}
		if f := q.args["country_codes"]; len(f) > 0 && !contains(f, r.country) {
			continue
		}
		if f := q.args["directions"]; len(f) > 0 && !contains(f, r.dir.String()) {
			continue
		}
		b, e := bucket(r.start, q.granularity)
		k := pointKey{start: b.Unix(), end: e.Unix()}
		if dims["direction"] {
			k.direction = r.dir.String()
		}
		if dims["country"] {
			k.country = r.country
		}
		if dims["phone"] || dims["phone_number"] {
			k.pn = r.num.DisplayPhoneNumber
		}
		a := points[k]
		if a == nil {
			a = &agg{}
			points[k] = a
		}
		a.count++
		a.cost += r.cost
		if r.answered {
			a.answered++
			a.dur += r.duration
		}
	}
	metrics := map[string]bool{}
	for _, m := range q.args["metric_types"] {
		metrics[strings.ToUpper(m)] = true
	}
	all := len(metrics) == 0
	out := make([]any, 0, len(points))
	for _, k := range sortedKeys(points) {
		a := points[k]
		p := map[string]any{"start": k.start, "end": k.end}
		if all || metrics["COST"] {
			p["cost"] = micros(a.cost)
		}
		if all || metrics["COUNT"] {
			p["count"] = a.count
		}
		if all || metrics["AVERAGE_DURATION"] {
			avg := int64(0)
			if a.answered > 0 {
				avg = a.dur / a.answered
			}
			p["average_duration"] = avg
		}
		if k.direction != "" {
			p["direction"] = k.direction
		}
		if k.country != "" {
			p["country"] = k.country
		}
		if k.pn != "" {
			p["phone_number"] = k.pn
		}
		out = append(out, p)
	}
	return out
}

func (s *Sim) pricingPoints(waba string, q analyticsQuery) []any {
	s.mu.Lock()
	sent := append([]sentMessage(nil), s.sent...)
	s.mu.Unlock()
	dims := map[string]bool{}
	for _, d := range q.args["dimensions"] {
		dims[strings.ToUpper(d)] = true
	}
	type agg struct{ volume, cost int64 }
	points := map[pointKey]*agg{}
	for _, m := range sent {
		if m.num.WABAID != waba || m.at.Unix() < q.start || m.at.Unix() >= q.end {
			continue
		}
		b, e := bucket(m.at, q.granularity)
		k := pointKey{start: b.Unix(), end: e.Unix()}
		if dims["PRICING_CATEGORY"] {
			k.category = strings.ToUpper(m.category)
		}
		if dims["PRICING_TYPE"] {
			k.ptype = strings.ToUpper(m.typ)
		}
		if dims["COUNTRY"] {
			k.country = m.country
		}
		if dims["PHONE"] {
			k.pn = m.num.DisplayPhoneNumber
		}
		a := points[k]
		if a == nil {
			a = &agg{}
			points[k] = a
		}
		a.volume++
		if m.billable {
			a.cost += s.cfg.Pricing.MessageRates[m.category]
		}
	}
	out := make([]any, 0, len(points))
	for _, k := range sortedKeys(points) {
		a := points[k]
		p := map[string]any{"start": k.start, "end": k.end, "volume": a.volume, "cost": micros(a.cost)}
		for name, v := range map[string]string{"pricing_category": k.category, "pricing_type": k.ptype,
			"country": k.country, "phone_number": k.pn} {
			if v != "" {
				p[name] = v
			}
		}
		out = append(out, p)
	}
	return out
}

func sortedKeys[V any](m map[pointKey]V) []pointKey {
	keys := make([]pointKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.start != b.start {
			return a.start < b.start
		}
		return fmt.Sprint(a) < fmt.Sprint(b)
	})
	return keys
}

// SetPricing changes what the simulated Meta reports in message statuses'
// pricing objects from now on (a test knob, like SetAnalyticsSkew).
func (s *Sim) SetPricing(p Pricing) {
	s.mu.Lock()
	s.cfg.Pricing = p
	s.mu.Unlock()
}
