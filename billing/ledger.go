package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/callgw/callgw/call"
	"github.com/callgw/callgw/phone"
)

// Duration sources of an Entry.
const (
	SourceMetaTimes = "meta_times" // the terminate webhook's end_time - start_time (preferred)
	SourceMeta      = "meta"       // the terminate webhook's duration
	SourceGateway   = "gateway"    // the gateway's own measurement
)

// Flags of an Entry whose duration needed attention (comma-separated in
// Entry.Flags). The call is still recorded and billed.
const (
	FlagNegativeDuration = "negative_duration" // clamped to 0
	FlagAbsurdDuration   = "absurd_duration"   // clamped to Config.MaxCallDuration
	FlagDurationMismatch = "duration_mismatch" // Meta's duration, end-start and the gateway disagree by > 2 s
)

// discrepancyMillis is the difference between Meta's and the gateway's
// durations above which a call is counted as a discrepancy.
const discrepancyMillis = 2000

// Entry is one call in the ledger: the record as signaling wrote it plus
// what billing derived from it.
type Entry struct {
	call.Record
	Country             string    `json:"country"`                // ISO alpha-2 of the user, "ZZ" if unknown
	Market              string    `json:"market"`                 // rate card market that priced it (tiers accrue per market)
	BilledSeconds       int64     `json:"billed_seconds"`         // 0 unless connected and business-initiated
	CostMicros          int64     `json:"cost_micros"`            // micro-units of the card's currency
	RateMicrosPerMinute int64     `json:"rate_micros_per_minute"` // rate applied, 0 when not billed
	Tier                int       `json:"tier"`                   // volume tier index, -1 when not billed
	DurationSource      string    `json:"duration_source"`        // "meta_times" | "meta" | "gateway"
	DurationSeconds     int64     `json:"duration_seconds"`       // the duration used, before rounding
	Flags               string    `json:"flags,omitempty"`        // FlagNegativeDuration, … comma-separated
	RecordedAt          time.Time `json:"recorded_at"`
	Seq                 string    `json:"seq"` // ledger sequence number; also the Calls cursor
}

// DurationFromMeta reports whether the billed duration is Meta's (its
// end_time - start_time or its duration) rather than the gateway's.
func (e Entry) DurationFromMeta() bool {
	return e.DurationSource == SourceMetaTimes || e.DurationSource == SourceMeta
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

func (k keys) entry(id call.ID) string { return k.base + "e:" + string(id) }
func (k keys) stream() string          { return k.base + "stream" }
func (k keys) seq() string             { return k.base + "seq" }
func (k keys) month(m string) string   { return k.base + "m:" + m }
func (k keys) day(d string) string     { return k.base + "d:" + d }
func (k keys) dayMeta(kind ReconKind, d string) string {
	return k.base + "dm:" + string(kind) + ":" + d
}
func (k keys) pmsg(id string) string          { return k.base + "pm:" + id }
func (k keys) recon(d string) string          { return k.base + "recon:" + d }
func (k keys) reconLast() string              { return k.base + "recon:last" }
func (k keys) lease(name string) string       { return k.base + "lease:" + name }
func (k keys) idxAll() string                 { return k.base + "idx:all" }
func (k keys) idxAgent(a string) string       { return k.base + "idx:agent:" + a }
func (k keys) idxNumber(digits string) string { return k.base + "idx:num:" + digits }
func (k keys) idxBusiness(pnid string) string { return k.base + "idx:biz:" + pnid }
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

// dayOf formats t's day in the ledger's location.
func (l *Ledger) dayOf(t time.Time) string { return t.In(l.cfg.Location).Format("2006-01-02") }

// Location is the billing time zone (month and day boundaries).
func (l *Ledger) Location() *time.Location { return l.cfg.Location }

// CountryOf returns the ISO alpha-2 country of a user given by phone number
// (any form phone.Parse accepts) or, failing that, by BSUID ("GB.1349…",
// "US.ENT.…": the country the BSUID starts with); UnknownCountry if
// neither names one.
func CountryOf(userPhone, userID string) string {
	var region string
	if userPhone != "" {
		if n, err := phone.Parse(userPhone); err == nil {
			region = n.Region
		}
	}
	return countryOf(region, userPhone, userID)
}

// countryOf is CountryOf once the number's region (if any) is known.
func countryOf(region, userPhone, userID string) string {
	if region != "" {
		return region
	}
	for _, s := range []string{userID, userPhone} {
		if cc, _, ok := strings.Cut(s, "."); ok && validCountry(cc) {
			return cc
		}
	}
	return UnknownCountry
}

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
// the stream, the monthly and daily aggregates and the indexes, so a crash
// (Redis or callgw) leaves either all of them or none. It picks the volume
// tier from the month's market counter inside the script (the tier reached
// at the call's end), so concurrent calls cannot both claim a cheaper tier
// than their order gives them.
//
// KEYS: 1 entry, 2 stream, 3 seq, 4 month hash, 5 day hash, 6.. index sorted sets
// ARGV: 1 call id, 2 record JSON, 3 country, 4 duration source, 5 duration
// seconds, 6 recorded at (RFC 3339), 7 billable "1"/"0", 8 billed seconds,
// 9 tier counter field, 10 seconds the call adds to it, 11 market, 12 flags,
// 13 number of tiers, then per tier from_seconds, rate, cost (all integers
// computed in Go).
var recordScript = redis.NewScript(`
local prev = redis.call('HGETALL', KEYS[1])
if #prev > 0 then
  return {0, prev}
end
local tier, rate, cost, billed = -1, '0', '0', '0'
local billable = ARGV[7] == '1'
if billable then
  billed = ARGV[8]
  local after = tonumber(redis.call('HGET', KEYS[4], ARGV[9]) or '0') + tonumber(ARGV[10])
  local n = tonumber(ARGV[13])
  for i = 0, n - 1 do
    if i == 0 or after > tonumber(ARGV[14 + 3 * i]) then
      tier = i
      rate = ARGV[15 + 3 * i]
      cost = ARGV[16 + 3 * i]
    end
  end
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'country', ARGV[3], 'src', ARGV[4], 'dur', ARGV[5],
  'at', ARGV[6], 'bs', billed, 'cost', cost, 'rate', rate, 'tier', tier, 'seq', seq, 'mkt', ARGV[11], 'flag', ARGV[12])
redis.call('XADD', KEYS[2], '*', 'seq', seq, 'id', ARGV[1], 'rec', ARGV[2], 'country', ARGV[3],
  'bs', billed, 'cost', cost, 'rate', rate, 'tier', tier, 'src', ARGV[4], 'at', ARGV[6], 'mkt', ARGV[11])
local c = ARGV[3] .. ':'
local biz = ARGV[14 + 3 * tonumber(ARGV[13])] or ''
local b = 'biz:' .. biz .. ':'
redis.call('HINCRBY', KEYS[4], 'all_calls', 1)
redis.call('HINCRBY', KEYS[4], c .. 'all_calls', 1)
if biz ~= '' then
  redis.call('HINCRBY', KEYS[4], b .. 'all_calls', 1)
end
if billable then
  redis.call('HINCRBY', KEYS[4], 'calls', 1)
  redis.call('HINCRBY', KEYS[4], c .. 'calls', 1)
  local tb = redis.call('HINCRBY', KEYS[4], 'billed_seconds', billed)
  redis.call('HINCRBY', KEYS[4], c .. 'billed_seconds', billed)
  redis.call('HINCRBY', KEYS[4], 'cost_micros', cost)
  redis.call('HINCRBY', KEYS[4], c .. 'cost_micros', cost)
  if biz ~= '' then
    redis.call('HINCRBY', KEYS[4], b .. 'calls', 1)
    redis.call('HINCRBY', KEYS[4], b .. 'billed_seconds', billed)
    redis.call('HINCRBY', KEYS[4], b .. 'cost_micros', cost)
  end
  redis.call('HINCRBY', KEYS[4], ARGV[9], ARGV[10])
  redis.call('HSET', KEYS[4], 'minutes', math.floor(tb / 60), c .. 'market', ARGV[11])
  local d = 'calls:' .. ARGV[3] .. ':'
  redis.call('HINCRBY', KEYS[5], d .. 'count', 1)
  redis.call('HINCRBY', KEYS[5], d .. 'billed_seconds', billed)
  redis.call('HINCRBY', KEYS[5], d .. 'cost_micros', cost)
end
for i = 6, #KEYS do
  redis.call('ZADD', KEYS[i], seq, ARGV[1])
end
return {1, seq, tier, rate, cost, billed}
`)

// tierField is the month-hash field that accrues a market's tier volume.
func tierField(c *Card, market string) string {
	if c.TierScope == TierScopePortfolio {
		return "tier:*"
	}
	return "tier:" + market
}

// callSeconds picks the duration a call is billed for, clamps it and says
// why: Meta's end_time - start_time, else Meta's duration, else the
// gateway's measurement rounded up to whole seconds.
func (l *Ledger) callSeconds(rec call.Record) (secs int64, src string, flags []string, mismatch bool) {
	metaTimes := !rec.MetaStart.IsZero() && !rec.MetaEnd.IsZero()
	switch {
	case metaTimes:
		src = SourceMetaTimes
		d := rec.MetaEnd.Sub(rec.MetaStart)
		secs = int64(d / time.Second)
		if d%time.Second > 0 {
			secs++
		}
	case rec.MetaDuration >= 0:
		src, secs = SourceMeta, rec.MetaDuration
	case rec.MetaDuration < -1:
		src, secs = SourceMeta, rec.MetaDuration // negative: clamped below
	default:
		src = SourceGateway
		secs = rec.GatewayMillis / 1000
		if rec.GatewayMillis%1000 > 0 {
			secs++
		}
	}
	if metaTimes && rec.MetaDuration >= 0 && absInt64(rec.MetaDuration-secs) > discrepancyMillis/1000 {
		mismatch = true
	}
	if rec.GatewayMillis > 0 && (metaTimes || rec.MetaDuration >= 0) && absInt64(secs*1000-rec.GatewayMillis) > discrepancyMillis {
		mismatch = true
	}
	if mismatch {
		flags = append(flags, FlagDurationMismatch)
	}
	if maxSecs := int64(l.cfg.MaxCallDuration / time.Second); secs > maxSecs {
		secs, flags = maxSecs, append(flags, FlagAbsurdDuration)
	}
	if secs < 0 {
		secs, flags = 0, append(flags, FlagNegativeDuration)
	}
	return secs, src, flags, mismatch
}

// Record writes an ended call to the ledger exactly once. Every ended call is
// recorded (it is the call log); only connected (answered) business-initiated
// calls cost. The duration is Meta's end_time - start_time when the record
// has both, else Meta's duration (rec.MetaDuration >= 0), else the gateway's
// (rec.GatewayMillis rounded up to whole seconds). A negative duration is
// clamped to 0 and an absurd one to Config.MaxCallDuration, and flagged
// (Entry.Flags, callgw_billing_clamped_durations_total): never a lost
// record. Disagreements above 2 s are counted in
// callgw_billing_duration_discrepancies_total. The callee's market comes from
// the number's country, else from the country a BSUID starts with; the
// card is the one in force in the call's month (Config.Location). Recording
// the same call id again returns the stored entry with created == false and
// changes nothing. An invalid record returns ErrInvalidRecord and writes
// nothing.
func (l *Ledger) Record(ctx context.Context, rec call.Record) (Entry, bool, error) {
	if err := rec.Validate(); err != nil {
		return Entry{}, false, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	e := Entry{Record: rec, Tier: -1}
	var numberKey, region string
	if n, err := phone.Parse(rec.UserPhone); err == nil {
		numberKey, region = n.Digits, n.Region
		e.UserPhone = n.E164
	} else if rec.UserPhone != "" {
		l.log.LogAttrs(ctx, slog.LevelWarn, "billing: user number does not parse; pricing by BSUID or default market",
			slog.String("call_id", string(rec.ID)), slog.String("user", phone.Mask(rec.UserPhone)))
	}
	e.Country = countryOf(region, rec.UserPhone, rec.UserID)
	secs, src, flags, discrepancy := l.callSeconds(rec)
	e.DurationSeconds, e.DurationSource, e.Flags = secs, src, strings.Join(flags, ",")

	month := l.monthOf(billingStart(rec))
	card := l.rc.For(month)
	billable := e.Billable()
	var p CallPrice
	mkt := card.MarketOf(e.Country)
	e.Market = mkt.ID
	if billable {
		p = card.PriceCall(e.Country, secs, 0)
	}
	e.RecordedAt = l.cfg.Now().UTC()
	recJSON, err := json.Marshal(e.Record)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	ks := []string{l.k.entry(rec.ID), l.k.stream(), l.k.seq(), l.k.month(month), l.k.day(l.dayOf(billingStart(rec))),
		l.k.idxAll(), l.k.idxDir(rec.Direction), l.k.idxOut(rec.Outcome)}
	if rec.Agent != "" {
		ks = append(ks, l.k.idxAgent(rec.Agent))
	}
	if numberKey != "" {
		ks = append(ks, l.k.idxNumber(numberKey))
	}
	if rec.PhoneNumberID != "" {
		ks = append(ks, l.k.idxBusiness(rec.PhoneNumberID))
	}
	args := []any{string(rec.ID), recJSON, e.Country, e.DurationSource, e.DurationSeconds,
		e.RecordedAt.Format(time.RFC3339Nano), boolArg(billable), p.BilledSeconds, tierField(card, mkt.ID), p.TierSeconds,
		mkt.ID, e.Flags, len(mkt.Tiers)}
	for _, t := range mkt.Tiers {
		args = append(args, t.FromMinutes*60, t.RateMicrosPerMinute, CostMicros(p.BilledSeconds, t.RateMicrosPerMinute))
	}
	args = append(args, rec.PhoneNumberID) // the business number: usage by number
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
		l.log.LogAttrs(ctx, slog.LevelWarn, "billing: call durations disagree",
			slog.String("call_id", string(rec.ID)), slog.Int64("meta_seconds", rec.MetaDuration),
			slog.Int64("billed_from_seconds", secs), slog.Int64("gateway_ms", rec.GatewayMillis))
	}
	for _, f := range flags {
		if f != FlagDurationMismatch {
			l.metrics.ClampedDurations.WithLabelValues(f).Inc()
			l.log.LogAttrs(ctx, slog.LevelWarn, "billing: call duration clamped", slog.String("call_id", string(rec.ID)),
				slog.String("flag", f), slog.Int64("seconds", secs))
		}
	}
	if billable {
		l.metrics.CallsBilled.WithLabelValues(e.Country).Inc()
		l.metrics.BilledSeconds.WithLabelValues(e.Country).Add(float64(e.BilledSeconds))
		l.metrics.BilledUSD.WithLabelValues(e.Country).Add(float64(e.CostMicros) / 1e6)
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "billing: call recorded",
		slog.String("call_id", string(rec.ID)), slog.String("user", phone.Mask(rec.UserPhone)),
		slog.String("country", e.Country), slog.String("market", e.Market), slog.String("direction", rec.Direction.String()),
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
	e.Market = m["mkt"]
	e.Flags = m["flag"]
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
