package billing

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReconKind is what a reconciliation row compares.
type ReconKind string

// Reconciliation kinds.
const (
	ReconCalls    ReconKind = "calls"
	ReconMessages ReconKind = "messages"
)

// String returns the kind name.
func (k ReconKind) String() string { return string(k) }

// ReconStatus is the outcome of a reconciliation (or of one row).
type ReconStatus string

// Reconciliation statuses.
const (
	ReconOK          ReconStatus = "ok"          // every row within the tolerance
	ReconDifferences ReconStatus = "differences" // at least one row differs
	ReconUnavailable ReconStatus = "unavailable" // Meta's figures could not be fetched or read
)

// String returns the status name.
func (s ReconStatus) String() string { return string(s) }

func (s ReconStatus) rank() int {
	return map[ReconStatus]int{ReconOK: 1, ReconDifferences: 3, ReconUnavailable: 2}[s]
}

// Figures are one day × market × kind of billing: ours from the ledger or
// Meta's from its analytics.
type Figures struct {
	Count         int64 `json:"count"`                    // billed calls / charged messages
	BilledSeconds int64 `json:"billed_seconds,omitempty"` // calls (Meta: count × average_duration)
	CostMicros    int64 `json:"cost_micros"`
}

// ReconDay is one row: a day (billing time zone), a market as Meta's
// analytics report it (the callee or recipient country, ISO alpha-2) and a
// kind.
type ReconDay struct {
	Date       string      `json:"date"`
	Market     string      `json:"market"`
	Kind       ReconKind   `json:"kind"`
	Ours       Figures     `json:"ours"`
	Meta       *Figures    `json:"meta"`              // nil: Meta's figures for this kind were unavailable
	Difference int64       `json:"difference_micros"` // ours - Meta's cost
	CountDiff  int64       `json:"count_difference"`  // ours - Meta's count (informational: Meta may count differently)
	Status     ReconStatus `json:"status"`            // ok or differences (|difference| above the tolerance)
}

// Reconciliation compares the ledger with Meta's analytics over days.
type Reconciliation struct {
	From   string      `json:"from"` // first day, YYYY-MM-DD
	To     string      `json:"to"`   // last day, inclusive
	Days   []ReconDay  `json:"days"`
	Status ReconStatus `json:"status"`
	Error  string      `json:"error,omitempty"` // why Meta's figures were unavailable
	RunAt  time.Time   `json:"run_at"`
}

// MetaAnalytics are Meta's raw answers for a range: the body of
// GET /<WABA_ID>?fields=call_analytics.start(…).end(…).granularity(DAILY)
// .directions(["BUSINESS_INITIATED"]).dimensions(["country"])
// .metric_types(["COST","COUNT","AVERAGE_DURATION"]) and of the matching
// pricing_analytics query (granularity DAILY, dimensions country,
// pricing_type, pricing_category). A nil body means "not fetched": that kind
// is reported unavailable.
type MetaAnalytics struct {
	CallAnalytics    []byte
	PricingAnalytics []byte
}

// Fetch gets Meta's analytics for [from, to).
type Fetch func(ctx context.Context, from, to time.Time) (MetaAnalytics, error)

// MetaFetcher is what reconciliation needs from the Graph API client: the
// raw JSON bodies of the two analytics queries for [from, to) (unix
// seconds, DAILY granularity).
type MetaFetcher interface {
	CallAnalytics(ctx context.Context, from, to time.Time) ([]byte, error)
	PricingAnalytics(ctx context.Context, from, to time.Time) ([]byte, error)
}

// FetchFrom adapts a MetaFetcher to a Fetch. A failed pricing query leaves
// messages unavailable but still reconciles calls, and the reverse.
func FetchFrom(f MetaFetcher) Fetch {
	return func(ctx context.Context, from, to time.Time) (MetaAnalytics, error) {
		var a MetaAnalytics
		var errs []error
		var err error
		if a.CallAnalytics, err = f.CallAnalytics(ctx, from, to); err != nil {
			errs = append(errs, fmt.Errorf("call_analytics: %w", err))
			a.CallAnalytics = nil
		}
		if a.PricingAnalytics, err = f.PricingAnalytics(ctx, from, to); err != nil {
			errs = append(errs, fmt.Errorf("pricing_analytics: %w", err))
			a.PricingAnalytics = nil
		}
		if a.CallAnalytics == nil && a.PricingAnalytics == nil {
			return a, errors.Join(errs...)
		}
		return a, nil
	}
}

// Clock is the time source of the daily job.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ReconcileConfig configures a Reconciler. Zero values take the defaults.
type ReconcileConfig struct {
	Instance        string        // lease owner (instance id); required
	Clock           Clock         // default: the system clock
	RunAt           time.Duration // time of day (billing time zone) of the daily run; default 4h (04:00)
	Days            int           // days reconciled per run, ending yesterday (Meta's figures settle late); default 3
	ToleranceMicros int64         // |ours - Meta's| cost per row still "ok"; default 10,000 (one cent)
	LeaseTTL        time.Duration // how long one instance holds the job; default 10m (also the run's timeout)
}

// Reconciler compares the ledger's daily figures with Meta's analytics and
// stores both. Only the instance holding the Redis lease runs a day's job.
type Reconciler struct {
	l   *Ledger
	cfg ReconcileConfig
}

// NewReconciler builds a reconciler over l.
func NewReconciler(l *Ledger, cfg ReconcileConfig) (*Reconciler, error) {
	if l == nil || cfg.Instance == "" {
		return nil, fmt.Errorf("%w: reconciler needs a ledger and an instance id", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.RunAt == 0 {
		cfg.RunAt = 4 * time.Hour
	}
	if cfg.Days == 0 {
		cfg.Days = 3
	}
	if cfg.ToleranceMicros == 0 {
		cfg.ToleranceMicros = 10_000
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 10 * time.Minute
	}
	switch {
	case cfg.RunAt < 0 || cfg.RunAt >= 24*time.Hour:
		return nil, fmt.Errorf("%w: RunAt must be a time of day in [0, 24h), got %s", ErrInvalidConfig, cfg.RunAt)
	case cfg.Days < 1 || cfg.Days > 90:
		return nil, fmt.Errorf("%w: Days must be 1..90, got %d", ErrInvalidConfig, cfg.Days)
	case cfg.ToleranceMicros < 0:
		return nil, fmt.Errorf("%w: ToleranceMicros must be >= 0", ErrInvalidConfig)
	case cfg.LeaseTTL < time.Second:
		return nil, fmt.Errorf("%w: LeaseTTL must be at least 1s", ErrInvalidConfig)
	}
	return &Reconciler{l: l, cfg: cfg}, nil
}

// nextRun is the first RunAt time of day strictly after now.
func (r *Reconciler) nextRun(now time.Time) time.Time {
	loc := r.l.cfg.Location
	n := now.In(loc)
	day := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	at := day.Add(r.cfg.RunAt)
	if !at.After(n) {
		at = time.Date(n.Year(), n.Month(), n.Day()+1, 0, 0, 0, 0, loc).Add(r.cfg.RunAt)
	}
	return at
}

// RunDaily runs the job once a day at RunAt until ctx is cancelled (it then
// returns ctx.Err()). Every instance may run it: the lease lets one do the
// work; the others refresh their metric from the stored result. A failed
// run is logged and retried the next day.
func (r *Reconciler) RunDaily(ctx context.Context, fetch Fetch) error {
	for {
		now := r.cfg.Clock.Now()
		wait := r.nextRun(now).Sub(now)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.cfg.Clock.After(wait):
		}
		if _, _, err := r.RunOnce(ctx, fetch); err != nil && ctx.Err() == nil {
			r.l.log.LogAttrs(ctx, slog.LevelWarn, "billing: reconciliation failed", slog.String("err", err.Error()))
		}
	}
}

// releaseScript deletes the lease only if this instance still holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// RunOnce reconciles the configured days ending yesterday if this instance
// gets the lease (ran == true); otherwise it only refreshes the metric from
// the last stored result.
func (r *Reconciler) RunOnce(ctx context.Context, fetch Fetch) (rec *Reconciliation, ran bool, err error) {
	lease := r.l.k.lease("reconcile")
	ok, err := r.l.rdb.SetNX(ctx, lease, r.cfg.Instance, r.cfg.LeaseTTL).Result()
	if err != nil {
		return nil, false, fmt.Errorf("%w: reconcile lease: %w", ErrLedger, err)
	}
	if !ok {
		last, err := r.Last(ctx)
		if err == nil && last != nil {
			r.setMetric(last)
		}
		return last, false, err
	}
	defer func() {
		// Released with a fresh context: the run's may be cancelled.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = releaseScript.Run(rctx, r.l.rdb, []string{lease}, r.cfg.Instance).Err()
	}()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	defer cancel()

	loc := r.l.cfg.Location
	n := r.cfg.Clock.Now().In(loc)
	to := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	from := time.Date(n.Year(), n.Month(), n.Day()-r.cfg.Days, 0, 0, 0, 0, loc)
	a, ferr := fetch(ctx, from, to)
	if ferr != nil {
		if ctx.Err() != nil {
			return nil, true, ctx.Err()
		}
		a = MetaAnalytics{}
	}
	rec, err = r.Reconcile(ctx, from, to, a)
	if err != nil {
		return nil, true, err
	}
	if ferr != nil {
		rec.Error = ferr.Error()
	}
	if err := r.store(ctx, rec); err != nil {
		return nil, true, err
	}
	r.setMetric(rec)
	r.l.metrics.ReconRuns.WithLabelValues(string(rec.Status)).Inc()
	r.l.log.LogAttrs(ctx, slog.LevelInfo, "billing: reconciliation", slog.String("from", rec.From), slog.String("to", rec.To),
		slog.String("status", string(rec.Status)), slog.Int("rows", len(rec.Days)))
	return rec, true, nil
}

func (r *Reconciler) setMetric(rec *Reconciliation) {
	sums := map[ReconKind]int64{ReconCalls: 0, ReconMessages: 0}
	for _, d := range rec.Days {
		if d.Status == ReconDifferences {
			sums[d.Kind] += absInt64(d.Difference)
		}
	}
	for k, v := range sums {
		r.l.metrics.ReconDifference.WithLabelValues(string(k)).Set(float64(v))
	}
}

// metaPoint is one data point of call_analytics or pricing_analytics.
type metaPoint struct {
	Start           json.Number `json:"start"`
	End             json.Number `json:"end"`
	Cost            json.Number `json:"cost"`
	Count           json.Number `json:"count"`
	Volume          json.Number `json:"volume"`
	AverageDuration json.Number `json:"average_duration"`
	Country         string      `json:"country"`
	Direction       string      `json:"direction"`
	PricingType     string      `json:"pricing_type"`
	PricingCategory string      `json:"pricing_category"`
}

type metaSeries struct {
	Granularity string      `json:"granularity"`
	DataPoints  []metaPoint `json:"data_points"`
	Data        []struct {
		DataPoints []metaPoint `json:"data_points"`
	} `json:"data"`
}

func (s metaSeries) points() []metaPoint {
	out := slices.Clone(s.DataPoints)
	for _, d := range s.Data {
		out = append(out, d.DataPoints...)
	}
	return out
}

// parseMeta reads one analytics body into day → country → figures. field is
// "call_analytics" or "pricing_analytics"; the body may be the object
// itself or wrap it under that name.
func (r *Reconciler) parseMeta(body []byte, field string, kind ReconKind) (map[[2]string]*Figures, error) {
	var wrapped map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&wrapped); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	raw := json.RawMessage(body)
	if inner, ok := wrapped[field]; ok {
		raw = inner
	}
	var s metaSeries
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if g := strings.ToUpper(s.Granularity); g == "MONTHLY" {
		return nil, fmt.Errorf("%s: granularity MONTHLY cannot be compared per day (ask for DAILY)", field)
	}
	out := map[[2]string]*Figures{}
	for i, p := range s.points() {
		if kind == ReconCalls && p.Direction != "" && !strings.EqualFold(p.Direction, "BUSINESS_INITIATED") {
			continue
		}
		if kind == ReconMessages && p.PricingType != "" && !strings.EqualFold(p.PricingType, "REGULAR") {
			continue // free messages: Meta reports volume at cost 0
		}
		start, err := p.Start.Int64()
		if err != nil {
			return nil, fmt.Errorf("%s: data_points[%d].start: %w", field, i, err)
		}
		cost, err := decimalMicros(string(p.Cost))
		if err != nil {
			return nil, fmt.Errorf("%s: data_points[%d].cost: %w", field, i, err)
		}
		cnt := p.Count
		if kind == ReconMessages && p.Volume != "" {
			cnt = p.Volume
		}
		count, err := decimalMicros(string(cnt))
		if err != nil {
			return nil, fmt.Errorf("%s: data_points[%d].count: %w", field, i, err)
		}
		country := strings.ToUpper(p.Country)
		if country == "" {
			country = "*"
		}
		key := [2]string{r.l.dayOf(time.Unix(start, 0)), country}
		f := out[key]
		if f == nil {
			f = &Figures{}
			out[key] = f
		}
		f.Count += count / 1_000_000
		f.CostMicros += cost
		if kind == ReconCalls && p.AverageDuration != "" {
			if avg, err := decimalMicros(string(p.AverageDuration)); err == nil {
				f.BilledSeconds += avg * (count / 1_000_000) / 1_000_000
			}
		}
	}
	return out, nil
}

// decimalMicros converts a JSON number in currency units ("0.132",
// "1.5e-05", "" = 0) to integer micros exactly, rounding half away from
// zero: no float on the way.
func decimalMicros(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		// Bound the exponent: big.Rat would build 10^exp exactly.
		if e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+")); err != nil || e > 30 || e < -30 {
			return 0, fmt.Errorf("exponent out of range: %q", s)
		}
	}
	if len(s) > 64 {
		return 0, fmt.Errorf("number too long: %.20q…", s)
	}
	q, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	q.Mul(q, big.NewRat(1_000_000, 1))
	num, den := q.Num(), q.Denom()
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			quo.Sub(quo, big.NewInt(1))
		} else {
			quo.Add(quo, big.NewInt(1))
		}
	}
	if !quo.IsInt64() {
		return 0, fmt.Errorf("out of range: %q", s)
	}
	return quo.Int64(), nil
}

// Reconcile compares the ledger's days in [from, to) (midnights in the
// billing time zone) with Meta's analytics a, and stores Meta's figures
// beside ours (hashes dm:calls:<day> and dm:messages:<day>). It does not store the result (RunOnce does).
func (r *Reconciler) Reconcile(ctx context.Context, from, to time.Time, a MetaAnalytics) (*Reconciliation, error) {
	loc := r.l.cfg.Location
	var days []string
	for d := from.In(loc); d.Before(to); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc) {
		days = append(days, d.Format("2006-01-02"))
	}
	rec := &Reconciliation{Days: []ReconDay{}, RunAt: r.cfg.Clock.Now().UTC(), Status: ReconOK}
	if len(days) == 0 {
		return nil, fmt.Errorf("billing: reconcile: empty range %s..%s", from, to)
	}
	rec.From, rec.To = days[0], days[len(days)-1]

	meta := map[ReconKind]map[[2]string]*Figures{}
	var errs []string
	for _, src := range []struct {
		kind  ReconKind
		body  []byte
		field string
	}{{ReconCalls, a.CallAnalytics, "call_analytics"}, {ReconMessages, a.PricingAnalytics, "pricing_analytics"}} {
		if src.body == nil {
			continue
		}
		m, err := r.parseMeta(src.body, src.field, src.kind)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		meta[src.kind] = m
	}
	if len(meta) == 0 {
		rec.Status = ReconUnavailable
		rec.Error = strings.Join(errs, "; ")
		if rec.Error == "" {
			rec.Error = "no analytics fetched"
		}
	}

	pipe := r.l.rdb.Pipeline()
	ours := make([]*redis.MapStringStringCmd, len(days))
	for i, d := range days {
		ours[i] = pipe.HGetAll(ctx, r.l.k.day(d))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("%w: reconcile: %w", ErrLedger, err)
	}

	store := r.l.rdb.TxPipeline()
	for i, d := range days {
		h := ours[i].Val()
		rows := map[[2]string]*ReconDay{} // kind, country
		row := func(kind ReconKind, country string) *ReconDay {
			k := [2]string{string(kind), country}
			if rows[k] == nil {
				rows[k] = &ReconDay{Date: d, Market: country, Kind: kind}
			}
			return rows[k]
		}
		for f, v := range h {
			parts := strings.Split(f, ":")
			if len(parts) != 3 {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			var kind ReconKind
			switch parts[0] {
			case "calls":
				kind = ReconCalls
			case "msgs":
				kind = ReconMessages
			default:
				continue
			}
			rw := row(kind, parts[1])
			switch parts[2] {
			case "count":
				rw.Ours.Count = n
			case "billed_seconds":
				rw.Ours.BilledSeconds = n
			case "cost_micros":
				rw.Ours.CostMicros = n
			}
		}
		for kind, m := range meta {
			// Meta's figures of a kind replace the ones stored before (a
			// kind that could not be fetched keeps its old figures).
			dm := r.l.k.dayMeta(kind, d)
			store.Del(ctx, dm)
			var fields []any
			for key, f := range m {
				if key[0] != d {
					continue
				}
				rw := row(kind, key[1])
				cp := *f
				rw.Meta = &cp
				p := key[1] + ":"
				fields = append(fields, p+"count", f.Count, p+"billed_seconds", f.BilledSeconds, p+"cost_micros", f.CostMicros)
			}
			if len(fields) > 0 {
				store.HSet(ctx, dm, fields...)
				store.Expire(ctx, dm, 400*24*time.Hour)
			}
		}
		for _, rw := range rows {
			if _, have := meta[rw.Kind]; have && rw.Meta == nil {
				rw.Meta = &Figures{} // Meta reported nothing for a market where we billed
			}
			rw.Status = ReconOK
			if rw.Meta != nil {
				rw.Difference = rw.Ours.CostMicros - rw.Meta.CostMicros
				rw.CountDiff = rw.Ours.Count - rw.Meta.Count
				if absInt64(rw.Difference) > r.cfg.ToleranceMicros {
					rw.Status = ReconDifferences
					rec.Status = ReconDifferences
				}
			}
			if rw.Ours == (Figures{}) && (rw.Meta == nil || *rw.Meta == (Figures{})) {
				continue
			}
			rec.Days = append(rec.Days, *rw)
		}
	}
	if _, err := store.Exec(ctx); err != nil {
		return nil, fmt.Errorf("%w: reconcile: store Meta's figures: %w", ErrLedger, err)
	}
	if rec.Status == ReconOK && len(meta) < 2 {
		// One kind could not be compared: say so unless something differs.
		rec.Status = ReconUnavailable
		if rec.Error == "" {
			rec.Error = strings.Join(errs, "; ")
		}
		if rec.Error == "" {
			rec.Error = "only one kind of analytics fetched"
		}
	}
	slices.SortFunc(rec.Days, func(a, b ReconDay) int {
		return cmp.Or(cmp.Compare(a.Date, b.Date), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Market, b.Market))
	})
	return rec, nil
}

// store saves the result per day (for the usage report) and as the last run
// (for the metric on every instance).
func (r *Reconciler) store(ctx context.Context, rec *Reconciliation) error {
	pipe := r.l.rdb.TxPipeline()
	byDay := map[string]*Reconciliation{}
	for _, d := range rec.Days {
		if byDay[d.Date] == nil {
			byDay[d.Date] = &Reconciliation{From: d.Date, To: d.Date, Status: ReconOK, RunAt: rec.RunAt, Error: rec.Error}
		}
		byDay[d.Date].Days = append(byDay[d.Date].Days, d)
		if d.Status == ReconDifferences {
			byDay[d.Date].Status = ReconDifferences
		}
	}
	for day, dr := range byDay {
		if rec.Status == ReconUnavailable && dr.Status == ReconOK {
			dr.Status = ReconUnavailable
		}
		b, _ := json.Marshal(dr)
		pipe.Set(ctx, r.l.k.recon(day), b, 400*24*time.Hour)
	}
	b, _ := json.Marshal(rec)
	pipe.Set(ctx, r.l.k.reconLast(), b, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: store reconciliation: %w", ErrLedger, err)
	}
	return nil
}

// Last returns the last stored run (nil if none).
func (r *Reconciler) Last(ctx context.Context) (*Reconciliation, error) {
	b, err := r.l.rdb.Get(ctx, r.l.k.reconLast()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: last reconciliation: %w", ErrLedger, err)
	}
	var rec Reconciliation
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: last reconciliation: %w", ErrLedger, err)
	}
	return &rec, nil
}

// storedReconciliation gathers the stored rows of a month's days (nil if
// none was reconciled).
func (l *Ledger) storedReconciliation(ctx context.Context, month string) (*Reconciliation, error) {
	t, err := ParseMonth(month)
	if err != nil {
		return nil, err
	}
	var days []string
	for d := t; d.Month() == t.Month(); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format("2006-01-02"))
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(days))
	for i, d := range days {
		cmds[i] = pipe.Get(ctx, l.k.recon(d))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: usage %s: reconciliation: %w", ErrLedger, month, err)
	}
	var out *Reconciliation
	for i, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			continue
		}
		var dr Reconciliation
		if json.Unmarshal(b, &dr) != nil {
			continue
		}
		if out == nil {
			out = &Reconciliation{From: days[i], Status: ReconOK, Days: []ReconDay{}}
		}
		out.To = days[i]
		out.Days = append(out.Days, dr.Days...)
		if dr.Status.rank() > out.Status.rank() {
			out.Status = dr.Status
		}
		if dr.RunAt.After(out.RunAt) {
			out.RunAt = dr.RunAt
		}
	}
	return out, nil
}
