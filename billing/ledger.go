package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/internal/phone"
)

// Duration sources of an Entry.
const (
	SourceMeta    = "meta"    // the terminate webhook's duration
	SourceGateway = "gateway" // the gateway's own measurement
)

// discrepancyMillis is the difference between Meta's and the gateway's
// durations above which a call is counted as a discrepancy.
const discrepancyMillis = 2000

// Entry is one call in the ledger: the record as signaling wrote it plus
// what billing derived from it.
type Entry struct {
	call.Record
	Country             string    `json:"country"`                // ISO alpha-2 of the user, "ZZ" if unknown
	BilledSeconds       int64     `json:"billed_seconds"`         // 0 unless connected and business-initiated
	CostMicros          int64     `json:"cost_micros"`            // micro-USD
	RateMicrosPerMinute int64     `json:"rate_micros_per_minute"` // rate applied, 0 when not billed
	Tier                int       `json:"tier"`                   // volume tier index, -1 when not billed
	DurationSource      string    `json:"duration_source"`        // "meta" | "gateway"
	DurationSeconds     int64     `json:"duration_seconds"`       // the duration used, before rounding
	RecordedAt          time.Time `json:"recorded_at"`
	Seq                 string    `json:"seq"` // ledger sequence number; also the Calls cursor
}

// Billable reports whether the entry's call costs money (connected and
// business-initiated).
func (e Entry) Billable() bool {
	return e.Direction == call.BusinessInitiated && e.Connected()
}

// Ledger is the Redis-backed billing ledger. It holds no goroutines; Close
// is not needed (the Redis client belongs to the caller).
type Ledger struct {
	rdb     redis.UniversalClient
	rc      *RateCard
	cfg     Config
	metrics *Metrics
	log     *slog.Logger
	k       keys
}

// NewLedger builds a ledger over rdb (Redis, Sentinel, Cluster or
// miniredis) pricing with rc. Metrics are registered with reg (nil: none).
func NewLedger(rdb redis.UniversalClient, rc *RateCard, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Ledger, error) {
	if rdb == nil || rc == nil {
		return nil, fmt.Errorf("%w: nil redis client or rate card", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("billing: metrics: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ledger{rdb: rdb, rc: rc, cfg: cfg, metrics: m, log: log, k: newKeys(cfg.KeyPrefix)}, nil
}

// RateCard returns the card the ledger prices with.
func (l *Ledger) RateCard() *RateCard { return l.rc }

// Metrics returns the ledger's metrics (for tests and dashboards).
func (l *Ledger) Metrics() *Metrics { return l.metrics }

// keys builds every Redis key of a ledger; all share the "{ledger}" hash tag.
type keys struct{ base string }

func newKeys(prefix string) keys { return keys{base: prefix + "{ledger}:"} }

func (k keys) entry(id call.ID) string        { return k.base + "e:" + string(id) }
func (k keys) stream() string                 { return k.base + "stream" }
func (k keys) seq() string                    { return k.base + "seq" }
func (k keys) month(m string) string          { return k.base + "m:" + m }
func (k keys) idxAll() string                 { return k.base + "idx:all" }
func (k keys) idxAgent(a string) string       { return k.base + "idx:agent:" + a }
func (k keys) idxNumber(digits string) string { return k.base + "idx:num:" + digits }
func (k keys) idxDir(d call.Direction) string { return k.base + "idx:dir:" + d.String() }
func (k keys) idxOut(o call.Outcome) string   { return k.base + "idx:out:" + o.String() }
func (k keys) msg(id string) string           { return k.base + "msg:" + id }
func (k keys) window(business, user string) string {
	return k.base + "win:" + strconv.Itoa(len(business)) + ":" + business + ":" + user
}
func (k keys) freeTier(month, business string) string {
	return k.base + "free:" + month + ":" + business
}

// monthOf formats t's month in the ledger's location.
func (l *Ledger) monthOf(t time.Time) string { return t.In(l.cfg.Location).Format("2006-01") }

// billingStart is when a call started for month and tier purposes.
func billingStart(r call.Record) time.Time {
	for _, t := range []time.Time{r.MetaStart, r.AnsweredAt, r.CreatedAt} {
		if !t.IsZero() {
			return t
		}
	}
	return r.EndedAt
}

// recordScript writes one call atomically: it is the only writer of entries,
// the stream, the monthly aggregates and the indexes, so a crash (Redis or
// callgw) leaves either all of them or none. It picks the volume tier from
// the month's aggregates inside the script, so concurrent calls cannot both
// claim a cheaper tier than their order gives them.
//
// KEYS: 1 entry, 2 stream, 3 seq, 4 month hash, 5.. index sorted sets
// ARGV: 1 call id, 2 record JSON, 3 country, 4 duration source, 5 duration
// seconds, 6 recorded at (RFC 3339), 7 billable "1"/"0", 8 billed seconds,
// 9 tier-scope field prefix ("" or "GB:"), 10 number of tiers, then per tier
// from_minutes, rate, cost (all integers computed in Go).
var recordScript = redis.NewScript(`
local prev = redis.call('HGETALL', KEYS[1])
if #prev > 0 then
  return {0, prev}
end
local tier, rate, cost, billed = -1, '0', '0', '0'
local billable = ARGV[7] == '1'
if billable then
  billed = ARGV[8]
  local used = tonumber(redis.call('HGET', KEYS[4], ARGV[9] .. 'billed_seconds') or '0')
  local minutes = math.floor(used / 60)
  local n = tonumber(ARGV[10])
  for i = 0, n - 1 do
    if minutes >= tonumber(ARGV[11 + 3 * i]) then
      tier = i
      rate = ARGV[12 + 3 * i]
      cost = ARGV[13 + 3 * i]
    end
  end
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'country', ARGV[3], 'src', ARGV[4], 'dur', ARGV[5],
  'at', ARGV[6], 'bs', billed, 'cost', cost, 'rate', rate, 'tier', tier, 'seq', seq)
redis.call('XADD', KEYS[2], '*', 'seq', seq, 'id', ARGV[1], 'rec', ARGV[2], 'country', ARGV[3],
  'bs', billed, 'cost', cost, 'rate', rate, 'tier', tier, 'src', ARGV[4], 'at', ARGV[6])
local c = ARGV[3] .. ':'
redis.call('HINCRBY', KEYS[4], 'all_calls', 1)
redis.call('HINCRBY', KEYS[4], c .. 'all_calls', 1)
if billable then
  redis.call('HINCRBY', KEYS[4], 'calls', 1)
  redis.call('HINCRBY', KEYS[4], c .. 'calls', 1)
  local tb = redis.call('HINCRBY', KEYS[4], 'billed_seconds', billed)
  local cb = redis.call('HINCRBY', KEYS[4], c .. 'billed_seconds', billed)
  redis.call('HINCRBY', KEYS[4], 'cost_micros', cost)
  redis.call('HINCRBY', KEYS[4], c .. 'cost_micros', cost)
  redis.call('HSET', KEYS[4], 'minutes', math.floor(tb / 60), c .. 'minutes', math.floor(cb / 60))
end
for i = 5, #KEYS do
  redis.call('ZADD', KEYS[i], seq, ARGV[1])
end
return {1, seq, tier, rate, cost, billed}
`)

// Record writes an ended call to the ledger exactly once. Every ended call is
// recorded (it is the call log); only connected business-initiated calls
// cost. The duration is Meta's terminate duration when rec.MetaDuration >= 0,
// else the gateway's (rec.GatewayMillis rounded up to whole seconds); a
// difference above 2 s between the two is counted in
// callgw_billing_duration_discrepancies_total. Recording the same call id
// again returns the stored entry with created == false and changes nothing.
// An invalid record returns ErrInvalidRecord and writes nothing.
func (l *Ledger) Record(ctx context.Context, rec call.Record) (Entry, bool, error) {
	if err := rec.Validate(); err != nil {
		return Entry{}, false, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	if rec.GatewayMillis < 0 || rec.MetaDuration < -1 {
		return Entry{}, false, fmt.Errorf("%w: call %s has a negative duration", ErrInvalidRecord, rec.ID)
	}
	e := Entry{Record: rec, Country: UnknownCountry, Tier: -1}
	var numberKey string
	if n, err := phone.Parse(rec.UserPhone); err == nil {
		if n.Region != "" {
			e.Country = n.Region
		}
		numberKey = n.Digits
		e.UserPhone = n.E164
	} else if rec.UserPhone != "" {
		l.log.LogAttrs(ctx, slog.LevelWarn, "billing: user number does not parse; using default rates",
			slog.String("call_id", string(rec.ID)), slog.String("user", phone.Mask(rec.UserPhone)))
	}
	switch {
	case rec.MetaDuration >= 0:
		e.DurationSource, e.DurationSeconds = SourceMeta, rec.MetaDuration
	default:
		e.DurationSource, e.DurationSeconds = SourceGateway, (rec.GatewayMillis+999)/1000
	}
	discrepancy := rec.MetaDuration >= 0 && rec.GatewayMillis > 0 &&
		absInt64(rec.MetaDuration*1000-rec.GatewayMillis) > discrepancyMillis

	billable := e.Billable()
	cr := l.rc.Rates(e.Country)
	billed := int64(0)
	if billable {
		billed = cr.BilledSeconds(e.DurationSeconds)
	}
	scope := ""
	if l.rc.TierScope == TierScopeCountry {
		scope = e.Country + ":"
	}
	e.RecordedAt = l.cfg.Now().UTC()
	recJSON, err := json.Marshal(e.Record)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	month := l.monthOf(billingStart(rec))
	ks := []string{l.k.entry(rec.ID), l.k.stream(), l.k.seq(), l.k.month(month),
		l.k.idxAll(), l.k.idxDir(rec.Direction), l.k.idxOut(rec.Outcome)}
	if rec.Agent != "" {
		ks = append(ks, l.k.idxAgent(rec.Agent))
	}
	if numberKey != "" {
		ks = append(ks, l.k.idxNumber(numberKey))
	}
	args := []any{string(rec.ID), recJSON, e.Country, e.DurationSource, e.DurationSeconds,
		e.RecordedAt.Format(time.RFC3339Nano), boolArg(billable), billed, scope, len(cr.Tiers)}
	for _, t := range cr.Tiers {
		args = append(args, t.FromMinutes, t.RateMicrosPerMinute, CostMicros(billed, t.RateMicrosPerMinute))
	}
	res, err := recordScript.Run(ctx, l.rdb, ks, args...).Slice()
	if err != nil {
		l.metrics.LedgerWriteErrors.Inc()
		return Entry{}, false, fmt.Errorf("%w: record call %s: %w", ErrLedger, rec.ID, err)
	}
	if len(res) == 2 { // already recorded
		l.metrics.DuplicateRecords.Inc()
		prev, err := entryFromHash(pairs(res[1]))
		if err != nil {
			return Entry{}, false, err
		}
		return prev, false, nil
	}
	if len(res) != 6 {
		l.metrics.LedgerWriteErrors.Inc()
		return Entry{}, false, fmt.Errorf("%w: record call %s: unexpected script reply %v", ErrLedger, rec.ID, res)
	}
	e.Seq = fmt.Sprint(res[1])
	e.Tier = int(toInt64(res[2]))
	e.RateMicrosPerMinute = toInt64(res[3])
	e.CostMicros = toInt64(res[4])
	e.BilledSeconds = toInt64(res[5])

	l.metrics.CallsRecorded.WithLabelValues(rec.Direction.String(), rec.Outcome.String()).Inc()
	if discrepancy {
		l.metrics.DurationDiscrepancies.Inc()
		l.log.LogAttrs(ctx, slog.LevelWarn, "billing: meta and gateway durations disagree",
			slog.String("call_id", string(rec.ID)), slog.Int64("meta_seconds", rec.MetaDuration),
			slog.Int64("gateway_ms", rec.GatewayMillis))
	}
	if billable {
		l.metrics.CallsBilled.WithLabelValues(e.Country).Inc()
		l.metrics.BilledSeconds.WithLabelValues(e.Country).Add(float64(e.BilledSeconds))
		l.metrics.BilledUSD.WithLabelValues(e.Country).Add(float64(e.CostMicros) / 1e6)
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "billing: call recorded",
		slog.String("call_id", string(rec.ID)), slog.String("user", phone.Mask(rec.UserPhone)),
		slog.String("country", e.Country), slog.String("direction", rec.Direction.String()),
		slog.String("outcome", rec.Outcome.String()), slog.Int64("billed_seconds", e.BilledSeconds),
		slog.Int64("cost_micros", e.CostMicros), slog.Int("tier", e.Tier), slog.String("seq", e.Seq))
	return e, true, nil
}

// Get returns the ledger entry of call id, or ErrNotFound.
func (l *Ledger) Get(ctx context.Context, id call.ID) (Entry, error) {
	m, err := l.rdb.HGetAll(ctx, l.k.entry(id)).Result()
	if err != nil {
		return Entry{}, fmt.Errorf("%w: get %s: %w", ErrLedger, id, err)
	}
	if len(m) == 0 {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return entryFromHash(m)
}

func entryFromHash(m map[string]string) (Entry, error) {
	var e Entry
	if err := json.Unmarshal([]byte(m["rec"]), &e.Record); err != nil {
		return Entry{}, fmt.Errorf("%w: corrupt entry: %w", ErrLedger, err)
	}
	e.Country = m["country"]
	e.DurationSource = m["src"]
	var err error
	ints := []struct {
		f string
		p *int64
	}{{"dur", &e.DurationSeconds}, {"bs", &e.BilledSeconds}, {"cost", &e.CostMicros}, {"rate", &e.RateMicrosPerMinute}}
	for _, it := range ints {
		if *it.p, err = strconv.ParseInt(m[it.f], 10, 64); err != nil {
			return Entry{}, fmt.Errorf("%w: corrupt entry %s field %s: %w", ErrLedger, e.ID, it.f, err)
		}
	}
	if e.Tier, err = strconv.Atoi(m["tier"]); err != nil {
		return Entry{}, fmt.Errorf("%w: corrupt entry %s tier: %w", ErrLedger, e.ID, err)
	}
	if e.RecordedAt, err = time.Parse(time.RFC3339Nano, m["at"]); err != nil {
		return Entry{}, fmt.Errorf("%w: corrupt entry %s time: %w", ErrLedger, e.ID, err)
	}
	e.Seq = m["seq"]
	return e, nil
}

// pairs turns an HGETALL reply returned from Lua (a flat array) into a map.
func pairs(v any) map[string]string {
	arr, _ := v.([]any)
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		m[fmt.Sprint(arr[i])] = fmt.Sprint(arr[i+1])
	}
	return m
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func absInt64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
